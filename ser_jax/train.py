"""Training: create_train_state, train_step, eval_step and the loop.

`train_and_evaluate(config, workdir)` trains one fold of a protocol, keeps
Orbax checkpoints (the last few and the best by validation UAR), resumes from
the latest one, and ends by evaluating the best checkpoint on the test split.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ser_jax import augment as augment_lib
from ser_jax import checkpoints as checkpoints_lib
from ser_jax import evaluate as evaluate_lib
from ser_jax import features as features_lib
from ser_jax import input_pipeline
from ser_jax import models
from ser_jax import monitoring
from ser_jax import reports
from ser_jax import sharding
from ser_jax import workdir as workdir_lib


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Any
  opt_state: Any
  norm: Any        # feature statistics {'mean', 'std'} of the training split
  rng: jax.Array   # raw uint32 key data, so it checkpoints as a plain array


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or Inf loss."""


@dataclasses.dataclass
class Experiment:
  """Everything a fold needs, built once from the config."""
  config: ml_collections.ConfigDict
  class_names: tuple
  frontend: Callable
  model: Any
  tx: optax.GradientTransformation
  mesh: Any
  segments: dict | None = None   # split name → input_pipeline.Segments
  speakers: dict | None = None   # split name → speaker ids


# ---------------------------------------------------------------------------
# Construction.

_OPTIMIZERS = {
    'nadam': optax.nadam,            # Adam with Nesterov momentum (the paper)
    'adam': optax.adam,
    'adamw': optax.adamw,
    'sgd': optax.sgd,
}


def make_optimizer(config) -> optax.GradientTransformation:
  name = config.optimizer
  if name not in _OPTIMIZERS:
    raise ValueError(f'unknown optimizer {name!r}; known: {sorted(_OPTIMIZERS)}')
  tx = _OPTIMIZERS[name](config.learning_rate)
  if config.get('grad_clip_norm'):
    tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
  return tx


def feature_config(config) -> ml_collections.ConfigDict:
  """Feature config with `num_frames` derived from the segment length if unset."""
  fcfg = ml_collections.ConfigDict(config.features.to_dict())
  if fcfg.get('num_frames') is None:
    fcfg.num_frames = segment_samples(config) // fcfg.hop_length
  return fcfg


def segment_samples(config) -> int:
  return int(round(config.features.segment_seconds * config.features.sample_rate))


def segmentation(config) -> tuple[int, int, int]:
  """(segment samples, hop samples, max segments per utterance, 0: all): how
  training, prediction and the export cut utterances into segments."""
  f = config.features
  return (segment_samples(config), int(round(f.segment_hop_seconds * f.sample_rate)),
          int(f.get('max_segments', 0) or 0))


def build_experiment(config, mesh=None, with_data: bool = True, corpus=None) -> Experiment:
  """Builds front end, model and optimiser; with data, also loads the corpus
  (or takes `corpus` = `input_pipeline.load_corpus`'s result, already loaded),
  splits it under the protocol and segments every split."""
  mesh = mesh or sharding.make_mesh()
  sharding.check_batch_size(config.batch_size, mesh)
  class_names = tuple(config.data.classes)
  exp = Experiment(
      config=config, class_names=class_names,
      frontend=features_lib.make_frontend(feature_config(config)),
      model=models.create_model(config.model, len(class_names)),
      tx=make_optimizer(config), mesh=mesh)
  if with_data:
    utts, speaker_session = corpus or input_pipeline.load_corpus(config.data)
    parts, exp.speakers = input_pipeline.split_corpus(utts, speaker_session, config.protocol)
    offline = (config.get('augment') or {}).get('offline')
    if offline and offline.get('enabled', True):  # the training split only
      parts['train'] = input_pipeline.augment_offline(
          parts['train'], offline, config.seed, config.features.sample_rate)
    logging.info('Protocol %s fold %s: %s', config.protocol.name, config.protocol.get('fold'),
                 input_pipeline.describe(parts, class_names, segment_samples(config),
                                         config.features.sample_rate))
    exp.segments = {name: input_pipeline.segment(u, *segmentation(config))
                    for name, u in parts.items()}
  return exp


def create_train_state(exp: Experiment, rng: jax.Array) -> TrainState:
  """Initialised, replicated state (normalisation statistics still identity)."""
  n = exp.config.batch_size
  audio = jnp.zeros((n, segment_samples(exp.config)), jnp.float32)
  feats, mask = jax.eval_shape(exp.frontend, audio, jnp.full((n,), audio.shape[1]))
  init_rng, state_rng = jax.random.split(rng)

  def init():
    params = exp.model.init(init_rng, jnp.zeros(feats.shape, feats.dtype),
                            jnp.ones(mask.shape, bool), jnp.zeros((n,), jnp.int32))['params']
    shape = feats.shape[2:]
    return TrainState(
        step=jnp.zeros((), jnp.int32), params=params, opt_state=exp.tx.init(params),
        norm={'mean': jnp.zeros(shape, jnp.float32), 'std': jnp.ones(shape, jnp.float32)},
        rng=jax.random.key_data(state_rng))

  return jax.jit(init, out_shardings=sharding.replicated(exp.mesh))()


def frontend_output(exp: Experiment, batch, audio_transform=None):
  """(feats, mask) of a batch before normalisation: the front end on its audio
  ('audio' int16, 'lengths'; `audio_transform` applied to the float waveform
  first), or the cached output it carries ('feats', 'mask': `cache_features`)."""
  if 'feats' in batch:
    return batch['feats'], batch['mask']
  audio = batch['audio'].astype(jnp.float32) / 32768.0
  if audio_transform is not None:
    audio = audio_transform(audio)
  return exp.frontend(audio, batch['lengths'])


def _features(exp: Experiment, batch, norm, rng=None):
  """Normalised features of a batch; with `rng` (training), the on-the-fly
  augmentation of `config.augment.waveform` / `.features` is applied."""
  aug = exp.config.get('augment') or {}
  transform = None
  if rng is not None and augment_lib.waveform_enabled(aug.get('waveform')):
    if 'feats' in batch:
      raise ValueError('waveform augmentation needs audio batches, not cached features')
    transform = lambda audio: augment_lib.augment_waveform(  # noqa: E731
        jax.random.fold_in(rng, 1), audio, batch['lengths'], aug['waveform'])
  feats, mask = frontend_output(exp, batch, transform)
  feats = features_lib.normalize(feats, norm, mask)
  if rng is not None and aug.get('features'):
    feats = augment_lib.augment_features(jax.random.fold_in(rng, 2), feats, mask,
                                         aug['features'])
  return feats, mask


def _accum_steps(exp: Experiment) -> int:
  k = int(exp.config.get('grad_accum_steps', 1) or 1)
  per_device = exp.config.batch_size // exp.mesh.devices.size
  if per_device % k:
    raise ValueError(f'grad_accum_steps={k} must divide the per-device batch '
                     f'({exp.config.batch_size} / {exp.mesh.devices.size} devices = {per_device})')
  return k


def make_train_step(exp: Experiment) -> Callable:
  """jit-compiled (state, batch) → (state, metrics), data-parallel over the mesh.

  One call is one optimiser update on the global batch. With
  `grad_accum_steps=k` the batch is processed in k micro-batches (a scan;
  each device keeps its own rows) whose summed gradients equal the
  full-batch gradient, for k times less activation memory.
  A non-finite loss or gradient leaves the state unchanged and is reported in
  the metrics (`nonfinite`), so the last good parameters survive.
  """
  k = _accum_steps(exp)
  micro_sharding = jax.sharding.NamedSharding(
      exp.mesh, jax.sharding.PartitionSpec(None, sharding.DATA_AXIS))

  def loss_sum(params, feats, mask, gender, labels, weight, rng):
    logits = exp.model.apply({'params': params}, feats, mask, gender, train=True,
                             rngs={'dropout': rng})
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = ((logits.argmax(-1) == labels) * weight).sum()
    return (ce * weight).sum(), correct

  grad_fn = jax.value_and_grad(loss_sum, has_aux=True)

  def train_step(state: TrainState, batch):
    # Dropout and augmentation noise: a pure function of the run's key and the
    # step, so a resumed run draws the same noise.
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    feats, mask = _features(exp, batch, state.norm, rng)
    inputs = (feats, mask, batch['gender'], batch['labels'], batch['weight'])
    if k == 1:
      (loss, correct), grads = grad_fn(state.params, *inputs, rng)
    else:
      def split(x):  # [B, ...] → [k, B/k, ...]; row i*k+m → micro-batch m
        x = jnp.moveaxis(x.reshape((x.shape[0] // k, k) + x.shape[1:]), 1, 0)
        return jax.lax.with_sharding_constraint(x, micro_sharding)

      def body(carry, micro):
        micro, i = micro
        (l, c), g = grad_fn(state.params, *micro, jax.random.fold_in(rng, i))
        return jax.tree.map(jnp.add, carry, (l, c, g)), None

      zeros = (jnp.zeros(()), jnp.zeros(()), jax.tree.map(jnp.zeros_like, state.params))
      (loss, correct, grads), _ = jax.lax.scan(
          body, zeros, (jax.tree.map(split, inputs), jnp.arange(k)))
    total = jnp.maximum(batch['weight'].sum(), 1.0)
    loss, grads = loss / total, jax.tree.map(lambda g: g / total, grads)
    grad_norm = optax.global_norm(grads)
    updates, opt_state = exp.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
    new_state = state.replace(step=state.step + 1, params=keep(params, state.params),
                              opt_state=keep(opt_state, state.opt_state))
    metrics = {'loss': loss, 'accuracy': correct / total, 'grad_norm': grad_norm,
               'nonfinite': ~finite}
    return new_state, metrics

  rep, data = sharding.replicated(exp.mesh), sharding.batch_sharded(exp.mesh)
  return jax.jit(train_step, in_shardings=(rep, data), out_shardings=(rep, rep),
                 donate_argnums=0)


def make_eval_step(exp: Experiment) -> Callable:
  """jit-compiled (state, batch) → segment posteriors [B, K] (replicated)."""

  def eval_step(state: TrainState, batch):
    feats, mask = _features(exp, batch, state.norm)
    logits = exp.model.apply({'params': state.params}, feats, mask, batch['gender'])
    return jax.nn.softmax(logits, axis=-1)

  rep, data = sharding.replicated(exp.mesh), sharding.batch_sharded(exp.mesh)
  return jax.jit(eval_step, in_shardings=(rep, data), out_shardings=rep)


def compute_norm_stats(exp: Experiment, seg: input_pipeline.Segments) -> dict:
  """Per-(band, channel) mean and std over the valid frames of `seg` (training split)."""

  def stats(batch):
    feats, mask = frontend_output(exp, batch)
    return features_lib.accumulate_stats(feats, mask & (batch['weight'] > 0)[:, None])

  rep, data = sharding.replicated(exp.mesh), sharding.batch_sharded(exp.mesh)
  stats = jax.jit(stats, in_shardings=(data,), out_shardings=rep)
  acc = None
  for batch in input_pipeline.eval_batches(seg, exp.config.batch_size):
    part = stats(sharding.shard_batch(batch, exp.mesh))
    acc = part if acc is None else features_lib.merge_stats(acc, part)
  return jax.device_put(features_lib.finalize_stats(acc), sharding.replicated(exp.mesh))


FEATURE_CACHE_MAX_BYTES = 8 * 2**30   # host memory the cache of one split may take


def feature_cache_enabled(config) -> bool:
  """`config.feature_cache` unless waveform augmentation needs the audio."""
  aug = config.get('augment') or {}
  return bool(config.get('feature_cache', False)) and not augment_lib.waveform_enabled(
      aug.get('waveform'))


def cache_features(exp: Experiment, seg: input_pipeline.Segments) -> input_pipeline.Segments:
  """`seg` with its front-end output computed once (on device, in batches).

  Batches of the returned Segments carry features instead of audio, so each
  training step skips the front end (for cnn2d_bilstm on 2 CPU cores the
  MFCC front end is ~15 % of a step from audio). The values are those the step
  would compute (same jitted front end); normalisation and feature
  augmentation still happen in the step. Host memory: S × T × F × C float32;
  beyond FEATURE_CACHE_MAX_BYTES `seg` is returned unchanged (with a warning).
  """
  rep, data = sharding.replicated(exp.mesh), sharding.batch_sharded(exp.mesh)
  frontend = functools.partial(frontend_output, exp)
  n = len(seg)
  shape = jax.eval_shape(frontend, {
      'audio': jax.ShapeDtypeStruct((1, seg.audio.shape[1]), jnp.int16),
      'lengths': jax.ShapeDtypeStruct((1,), jnp.int32)})[0]
  size = n * int(np.prod(shape.shape[1:])) * shape.dtype.itemsize
  if size > FEATURE_CACHE_MAX_BYTES:
    logging.warning('Feature cache of %d segments would take %.1f GiB (limit %.0f GiB): '
                    'computing features in every step instead.', n, size / 2**30,
                    FEATURE_CACHE_MAX_BYTES / 2**30)
    return seg
  frontend = jax.jit(frontend, in_shardings=(data,), out_shardings=rep)
  feats, masks = [], []
  for batch in input_pipeline.eval_batches(seg, exp.config.batch_size):
    batch = {'audio': batch['audio'], 'lengths': batch['lengths']}
    f, m = jax.device_get(frontend(sharding.shard_batch(batch, exp.mesh)))
    feats.append(f)
    masks.append(m)
  feats, masks = np.concatenate(feats)[:n], np.concatenate(masks)[:n]
  return dataclasses.replace(seg, feats=feats, mask=masks)


# ---------------------------------------------------------------------------
# The loop.

class TrainingInterrupted(Exception):
  """SIGTERM/SIGINT arrived; a checkpoint of the current step was saved."""

  def __init__(self, signum: int, step: int):
    super().__init__(f'stopped by signal {signum} at step {step}; checkpoint saved, '
                     're-run the same command to resume')
    self.signum, self.step = signum, step


def make_checkpoints(config, workdir: str) -> checkpoints_lib.Checkpoints:
  sel = config.get('selection') or {}
  return checkpoints_lib.Checkpoints(
      os.path.join(workdir, 'checkpoints'), keep=config.checkpoint_keep,
      metric=sel.get('metric', 'val_uar'), mode=sel.get('mode', 'max'),
      repair=True)   # the training run holds the workdir's lock


def restore_for_eval(exp: Experiment, ckpt: checkpoints_lib.Checkpoints,
                     step: int | None = None) -> tuple[TrainState, int]:
  """The state of `step` (default: the best by the selection metric, else latest)."""
  target = create_train_state(exp, jax.random.key(0))
  if step is not None:
    return ckpt.restore(step, target), step
  state, step = ckpt.restore_best(target)   # unreadable steps are moved aside
  if state is None:
    raise FileNotFoundError(f'no readable checkpoint in {ckpt.directory}')
  return state, step


def _validate(exp, eval_step, state, step, per_epoch, train_loss) -> dict:
  val = evaluate_lib.evaluate_segments(
      eval_step, state, exp.segments['validation'], exp.config.batch_size, exp.mesh,
      exp.class_names, exp.config.aggregation)
  return {'step': step, 'epoch': round(step / per_epoch, 4), 'train_loss': train_loss,
          'val_loss': val['loss'], 'val_uar': val['uar'], 'val_wa': val['wa']}


def write_splits(config, workdir: str, class_names, speakers: dict, utterances: dict):
  """WORKDIR/splits.json: the fold assignment of this run (speakers and the
  utterance paths of each split, `utterances` = {split: Utterances}), for
  others to reuse. Both trainers write it."""
  if monitoring.is_chief():
    evaluate_lib.write_json(os.path.join(workdir, 'splits.json'), {
        'protocol': config.protocol.to_dict(), 'corpus': config.data.name,
        'classes': list(class_names), 'speakers': speakers,
        'utterances': {k: sorted(map(str, u.paths)) for k, u in utterances.items()}})


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       mesh=None, corpus=None) -> dict:
  """Trains one fold in `workdir` (resuming if possible); returns the results.

  Evaluates on validation every `eval_every_epochs` and checkpoints then (and
  every `checkpoint_every_steps`); stops early per `early_stopping`; on
  SIGTERM/SIGINT saves the current step and raises `TrainingInterrupted`.
  Ends by evaluating the best checkpoint (by `selection`) on validation and test.
  """
  started = time.time()
  workdir = os.path.abspath(workdir)
  workdir_lib.write_config(config, workdir)
  exp = build_experiment(config, mesh, corpus=corpus)
  write_splits(config, workdir, exp.class_names, exp.speakers,
               {k: seg.utterances for k, seg in exp.segments.items()})
  if feature_cache_enabled(config):
    # Once per run: the steps, the validations and the normalisation
    # statistics below all read these features.
    t0 = time.time()
    for name in ('train', 'validation'):
      if name in exp.segments and len(exp.segments[name]):
        exp.segments[name] = cache_features(exp, exp.segments[name])
    logging.info('Features of %d training and %d validation segments cached in %.1fs '
                 '(%.0f MiB).', len(exp.segments['train']),
                 len(exp.segments.get('validation', ())), time.time() - t0,
                 sum(s.feats.nbytes for s in exp.segments.values()
                     if s.feats is not None) / 2**20)
  train_seg = exp.segments['train']
  per_epoch = input_pipeline.steps_per_epoch(train_seg, config.batch_size)
  total_steps = config.num_epochs * per_epoch
  eval_every = max(1, int(config.eval_every_epochs * per_epoch))
  ckpt_every = int(config.get('checkpoint_every_steps', 0) or 0)

  ckpt = make_checkpoints(config, workdir)
  state = create_train_state(exp, jax.random.key(config.seed))
  restored, step = ckpt.restore_latest(state)
  if restored is not None:
    state = restored
    logging.info('Resumed from checkpoint step %d of %d.', step, total_steps)
  else:
    t0 = time.time()
    state = state.replace(norm=compute_norm_stats(exp, train_seg))
    logging.info('Normalisation statistics from %d training segments in %.1fs.',
                 len(train_seg), time.time() - t0)
  step = int(jax.device_get(state.step))
  history = monitoring.History(os.path.join(workdir, 'history.jsonl'))
  history.truncate(step)
  stopper = monitoring.EarlyStopping(config.get('early_stopping'), history.records)
  stopped_early = bool(history.records) and stopper.patience and stopper.bad >= stopper.patience

  train_step = make_train_step(exp)
  eval_step = make_eval_step(exp)
  writer = monitoring.MetricWriter(os.path.join(workdir, 'tensorboard'))
  batches = input_pipeline.train_batches(train_seg, config.batch_size, config.seed,
                                         start_step=step)
  lr = float(config.learning_rate)
  t0, examples, pending = time.time(), 0, []
  progress = monitoring.Progress(total_steps, step, per_epoch)  # logs the compilation
  with ckpt.save_errors_first(), monitoring.TerminationSignals() as signals, \
       monitoring.progress_bar(total_steps, step) as bar:
    while step < total_steps and not stopped_early:
      state, metrics = train_step(state, sharding.shard_batch(next(batches), exp.mesh))
      step += 1
      examples += config.batch_size
      if progress.compiling:
        jax.block_until_ready(metrics)
        progress.compiled()
        t0, examples = time.time(), 0   # the rate counts compiled steps only
      pending.append(metrics)
      bar.update(1)
      is_eval = step % eval_every == 0 or step == total_steps
      if step % config.log_every_steps == 0 or is_eval or signals.received:
        host = jax.device_get(pending)
        pending = []
        if any(bool(m['nonfinite']) for m in host):
          raise NonFiniteLossError(
              f'non-finite loss or gradient before step {step} '
              f'(losses {[float(m["loss"]) for m in host]}); stopping. The last good '
              f'checkpoint in {ckpt.directory} is kept; lower the learning rate '
              'or check the input features.')
        rate = examples / max(time.time() - t0, 1e-9)
        train_loss = float(np.mean([m['loss'] for m in host]))
        train_acc = float(np.mean([m['accuracy'] for m in host]))
        writer.scalars(step, {'train/loss': train_loss, 'train/learning_rate': lr,
                              'train/accuracy': train_acc,
                              'train/grad_norm': np.mean([m['grad_norm'] for m in host]),
                              'train/examples_per_second': rate})
        bar.set_postfix(loss=f'{train_loss:.3f}', refresh=False)
        t0, examples = time.time(), 0
        line = progress.line(step, train_loss, train_acc, rate)
        if not is_eval:
          logging.info('%s', line)
      if is_eval:
        record = _validate(exp, eval_step, state, step, per_epoch, train_loss)
        history.append(record)
        writer.scalars(step, {'val/loss': record['val_loss'], 'val/uar': record['val_uar'],
                              'val/wa': record['val_wa']})
        writer.flush()
        line += (f' | val UAR {100 * record["val_uar"]:.2f}%  WA {100 * record["val_wa"]:.2f}%'
                 f'  loss {record["val_loss"]:.4f}')
        logging.info('%s', line)
        ckpt.save(step, state, {k: record[k] for k in ('val_uar', 'val_wa', 'val_loss')})
        if stopper.update(record):
          logging.info('Early stopping at step %d: no %s improvement in %d evaluations.',
                       step, stopper.metric, stopper.patience)
          stopped_early = True
        t0, examples = time.time(), 0
      elif (ckpt_every and step % ckpt_every == 0) or signals.received:
        ckpt.save(step, state)
      if signals.received:
        ckpt.wait()
        writer.close()
        raise TrainingInterrupted(signals.received, step)
  ckpt.wait()
  writer.close()
  return evaluate_checkpoint(exp, ckpt, workdir, started=started)


def evaluate_splits(exp: Experiment, state: TrainState, splits) -> dict:
  """{split: utterance-level report} of `state` on the named splits."""
  eval_step = make_eval_step(exp)
  return {split: evaluate_lib.evaluate_segments(
      eval_step, state, exp.segments[split], exp.config.batch_size, exp.mesh,
      exp.class_names, exp.config.aggregation) for split in splits}


def evaluate_checkpoint(exp: Experiment, ckpt: checkpoints_lib.Checkpoints, workdir: str,
                        step: int | None = None, splits=('validation', 'test'),
                        started: float | None = None) -> dict:
  """The end of training: evaluates a checkpoint (default: the best by the
  selection metric) on validation and test, prints the figures (the last
  split with its confusion) and writes results.json and the run's reports."""
  state, step = restore_for_eval(exp, ckpt, step)
  results = {'checkpoint_step': step, 'speakers': exp.speakers,
             **evaluate_splits(exp, state, splits)}
  if started is not None:   # this invocation's wall time, corpus loading to results
    results['wall_seconds'] = round(time.time() - started, 1)
  if monitoring.is_chief():
    for split in splits:
      print(evaluate_lib.format_report(f'{split} ({len(exp.speakers[split])} speakers)',
                                       results[split], confusion=split == splits[-1]),
            flush=True)
    evaluate_lib.write_json(os.path.join(workdir, f'results_step{step}.json'), results)
    reports.write_run_reports(
        workdir, results, monitoring.History(os.path.join(workdir, 'history.jsonl')).records)
    # Written last: its presence marks a finished run (protocols skip it).
    evaluate_lib.write_json(os.path.join(workdir, 'results.json'), results)
  return results


def evaluate_to_folder(exp: Experiment, ckpt: checkpoints_lib.Checkpoints, outdir: str,
                       step: int | None = None, splits=('test',)) -> dict:
  """`--mode=evaluate`: a checkpoint (default: the best by the selection
  metric) on the named splits, written beside the training's results, never
  over them: OUTDIR/<split>_step<N>.json, confusion_<split>_step<N>.{csv,png}
  and per_class_<split>_step<N>.csv."""
  state, step = restore_for_eval(exp, ckpt, step)
  if monitoring.is_chief():
    print(f'checkpoint step {step} of {ckpt.directory}', flush=True)
  results = evaluate_splits(exp, state, splits)
  if monitoring.is_chief():
    for split, report in results.items():
      print(evaluate_lib.format_report(f'{split} ({len(exp.speakers[split])} speakers)', report),
            flush=True)
      stem = f'{split}_step{step}'
      evaluate_lib.write_json(os.path.join(outdir, f'{stem}.json'), {
          'checkpoint_step': step, 'checkpoint_dir': ckpt.directory, 'split': split,
          'speakers': exp.speakers[split], **report})
      reports.write_split_reports(outdir, split, report, suffix=f'_step{step}')
    print(f'written to {os.path.abspath(outdir)}: ' + ', '.join(
        f'{s}_step{step}.json' for s in results), flush=True)
  return {'checkpoint_step': step, **results}
