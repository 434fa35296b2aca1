"""The neural trainer: the jitted train step and the loop around it.

`train_and_evaluate(config, workdir)` trains one fold of a protocol, keeps
Orbax checkpoints (the last few and the best by `selection`), resumes from
the latest one, and ends by evaluating the best checkpoint on validation and
test. What inference needs (building the experiment, restoring a checkpoint,
the eval step) is in `ser_jax.neural_experiment`.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ser_jax import cli
from ser_jax import augment as augment_lib
from ser_jax import checkpoints as checkpoints_lib
from ser_jax import evaluate as evaluate_lib
from ser_jax import experiment as experiment_lib
from ser_jax import features as features_lib
from ser_jax import input_pipeline
from ser_jax import monitoring
from ser_jax import sharding
from ser_jax import neural_experiment as neural_lib
from ser_jax.neural_experiment import Experiment, TrainState, frontend_output


def _features(exp: Experiment, batch, norm, rng=None):
  """Normalised features of a batch; with `rng` (training), the on-the-fly
  augmentation of `config.augment.waveform` / `.features` is applied."""
  aug = exp.config.augment
  transform = None
  if rng is not None and augment_lib.waveform_enabled(aug.waveform):
    if 'feats' in batch:
      raise ValueError('waveform augmentation needs audio batches, not cached features')
    transform = lambda audio: augment_lib.augment_waveform(  # noqa: E731
        jax.random.fold_in(rng, 1), audio, batch['lengths'], aug.waveform)
  feats, mask = frontend_output(exp, batch, transform)
  feats = features_lib.normalize(feats, norm, mask)
  if rng is not None:   # (off unless config.augment.features turns a transform on)
    feats = augment_lib.augment_features(jax.random.fold_in(rng, 2), feats, mask,
                                         aug.features)
  return feats, mask


_METRICS = ('val_uar', 'val_wa', 'val_loss')   # what each validation records


def check_config(config) -> None:
  """The neural trainer's `Trainer.check`: UsageError for values no run can use,
  before anything is read or written. Builds the front end, model and optimiser
  and traces one initialisation (eval_shape: no compiling, no data)."""
  check_training_config(config, sharding.make_mesh())
  if int(config.log_every_steps) < 1:
    raise cli.UsageError(f'log_every_steps={config.log_every_steps}: must be at least 1')
  if float(config.eval_every_epochs) <= 0:
    raise cli.UsageError(f'eval_every_epochs={config.eval_every_epochs}: must be above 0')
  if config.selection.metric not in _METRICS:
    raise cli.UsageError(f'selection.metric={config.selection.metric!r}: one of {", ".join(_METRICS)}')
  stop = config.early_stopping
  if int(stop.patience) and stop.metric not in _METRICS:
    raise cli.UsageError(f'early_stopping.metric={stop.metric!r}: one of {", ".join(_METRICS)}')
  monitoring.EarlyStopping(stop)   # its mode
  augment_lib.offline_variants(config.augment.offline)   # its parameters
  exp = neural_lib.build_experiment(config, with_data=False)
  try:
    jax.eval_shape(lambda key: neural_lib.create_train_state(exp, key), jax.random.key(0))
  except ValueError as e:   # e.g. a pool larger than what reaches it
    raise cli.UsageError(f'model: {e}') from e


def check_training_config(config, mesh) -> None:
  """UsageError for training fields no run can use: checked when training starts,
  before the corpus is read, and by make_train_step."""
  if int(config.num_epochs) < 1:
    raise cli.UsageError(f'num_epochs={config.num_epochs}: must be at least 1')
  sharding.check_batch_size(config.batch_size, mesh)
  k = int(config.grad_accum_steps)
  per_device = config.batch_size // mesh.devices.size
  if k < 1 or per_device % k:
    raise cli.UsageError(f'grad_accum_steps={k} must divide the per-device batch '
                         f'({config.batch_size} / {mesh.devices.size} devices = {per_device})')
  if float(config.ema_decay) > 0 and float(config.ema_warmup) <= 1:
    raise cli.UsageError(f'ema_warmup={config.ema_warmup} must be above 1 (r = (1 + t) / '
                         '(ema_warmup + t) must start below 1, or the average keeps the '
                         'initial weights)')


def class_weights(config, seg: input_pipeline.Segments, num_classes: int) -> np.ndarray | None:
  """`config.class_balance`: per-class loss weights N / (K * n_c) over the K
  classes the training segments hold (0 for a class they lack), so every class
  weighs the same in the loss (calm and surprised are rare in the combined
  corpora); None when off."""
  if not config.class_balance:
    return None
  counts = np.bincount(seg.labels, minlength=num_classes).astype(np.float64)
  present = counts > 0
  w = np.zeros(num_classes, np.float32)
  w[present] = counts.sum() / (present.sum() * counts[present])
  return w


def make_train_step(exp: Experiment, loss_weights: np.ndarray | None = None) -> Callable:
  """jit-compiled (state, batch) → (state, metrics), data-parallel over the mesh.

  The loss is the cross-entropy averaged over the batch, each example weighted
  by `loss_weights[label]` when given (`class_weights`). With
  `config.mixup_alpha` > 0, each example's features are mixed with another's of
  the batch, lam * x_i + (1 - lam) * x_j with lam ~ Beta(alpha, alpha) per
  example, the mask the union of theirs, and the loss lam * CE(y_i) + (1 - lam) *
  CE(y_j) (Zhang et al., mixup).

  One call is one optimiser update on the global batch. With
  `grad_accum_steps=k` the batch is processed in k micro-batches (a scan;
  each device keeps its own rows) whose summed gradients equal the
  full-batch gradient, for k times less activation memory.
  A non-finite loss or gradient leaves the state unchanged and is reported in
  the metrics (`nonfinite`), so the last good parameters survive.

  With `config.ema_decay` = d > 0 the state also keeps an exponential moving
  average of the parameters, ema ← r·ema + (1 − r)·params after each update
  with r = min(d, (1 + t) / (w + t)) at update t, w = `config.ema_warmup` (10:
  the warm-up of TensorFlow's ExponentialMovingAverage, so the average does not
  remember the initialisation). Until r reaches d, at t = (d·w − 1) / (1 − d)
  (8,990 updates for d = 0.999, w = 10), the average spans about t / (w − 1)
  updates, whatever d is; evaluation, checkpoint selection, predict and export
  use it.
  """
  check_training_config(exp.config, exp.mesh)
  k = int(exp.config.grad_accum_steps)
  micro_sharding = jax.sharding.NamedSharding(
      exp.mesh, jax.sharding.PartitionSpec(None, sharding.DATA_AXIS))

  alpha = float(exp.config.mixup_alpha)
  ema_decay = float(exp.config.ema_decay)
  ema_warmup = float(exp.config.ema_warmup)
  cw = None if loss_weights is None else jnp.asarray(loss_weights, jnp.float32)

  def loss_sum(params, feats, mask, gender, labels, weight, loss_weight, mixed, rng):
    logits = exp.model.apply({'params': params}, feats, mask, gender, train=True,
                             rngs={'dropout': rng})
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    if alpha > 0:   # mixed = (partner labels, lam, partner loss weight)
      other, lam, other_weight = mixed
      ce2 = optax.softmax_cross_entropy_with_integer_labels(logits, other)
      loss = (lam * ce * loss_weight + (1 - lam) * ce2 * other_weight).sum()
    else:
      loss = (ce * loss_weight).sum()
    correct = ((logits.argmax(-1) == labels) * weight).sum()
    return loss, correct

  grad_fn = jax.value_and_grad(loss_sum, has_aux=True)

  def train_step(state: TrainState, batch):
    # Dropout and augmentation noise: a pure function of the run's key and the
    # step, so a resumed run draws the same noise.
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    feats, mask = _features(exp, batch, state.norm, rng)
    labels, weight = batch['labels'], batch['weight']
    loss_weight = weight if cw is None else weight * cw[labels]
    mixed, pair_weight = (), loss_weight   # pair_weight: what the loss averages over
    if alpha > 0:
      k_perm, k_lam = jax.random.split(jax.random.fold_in(rng, 3))
      perm = jax.random.permutation(k_perm, labels.shape[0])
      lam = jax.random.beta(k_lam, alpha, alpha, labels.shape)
      shape = (-1,) + (1,) * (feats.ndim - 1)
      feats = lam.reshape(shape) * feats + (1 - lam.reshape(shape)) * feats[perm]
      mask = mask | mask[perm]
      mixed = (labels[perm], lam, loss_weight[perm])
      pair_weight = lam * loss_weight + (1 - lam) * loss_weight[perm]
    inputs = (feats, mask, batch['gender'], labels, weight, loss_weight, mixed)
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
    total = jnp.maximum(weight.sum(), 1.0)
    # A weighted mean over pair_weight (= weight, so `total`, when both are off).
    norm = total if cw is None and alpha == 0 else jnp.maximum(pair_weight.sum(), 1e-6)
    loss, grads = loss / norm, jax.tree.map(lambda g: g / norm, grads)
    grad_norm = optax.global_norm(grads)
    updates, opt_state = exp.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
    new_state = state.replace(step=state.step + 1, params=keep(params, state.params),
                              opt_state=keep(opt_state, state.opt_state))
    if ema_decay > 0:
      t = state.step.astype(jnp.float32)
      r = jnp.minimum(ema_decay, (1.0 + t) / (ema_warmup + t))
      ema = jax.tree.map(lambda e, p: r * e + (1.0 - r) * p, state.ema, new_state.params)
      new_state = new_state.replace(ema=keep(ema, state.ema))
    metrics = {'loss': loss, 'accuracy': correct / total, 'grad_norm': grad_norm,
               'nonfinite': ~finite}
    return new_state, metrics

  rep, data = sharding.replicated(exp.mesh), sharding.batch_sharded(exp.mesh)
  return jax.jit(train_step, in_shardings=(rep, data), out_shardings=(rep, rep),
                 donate_argnums=0)


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
  return bool(config.feature_cache) and not augment_lib.waveform_enabled(
      config.augment.waveform)


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

def make_checkpoints(config, workdir: str) -> checkpoints_lib.Checkpoints:
  return neural_lib.open_checkpoints(
      os.path.join(workdir, 'checkpoints'), config.selection, keep=config.checkpoint_keep,
      repair=True)   # the training run holds the workdir's lock


def _validate(exp, eval_step, state, step, per_epoch, train_loss) -> dict:
  val = evaluate_lib.evaluate_segments(
      eval_step, state, exp.segments['validation'], exp.config.batch_size, exp.mesh,
      exp.class_names, exp.config.aggregation)
  return {'step': step, 'epoch': round(step / per_epoch, 4), 'train_loss': train_loss,
          'val_loss': val['loss'], 'val_uar': val['uar'], 'val_wa': val['wa']}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       mesh=None, corpus=None) -> dict:
  """Trains one fold in `workdir` (resuming if possible); returns the results.

  Evaluates on validation every `eval_every_epochs` and checkpoints then (and
  every `checkpoint_every_steps`); stops early per `early_stopping`; on
  SIGTERM/SIGINT saves the current step and raises `monitoring.TrainingInterrupted`.
  Ends by evaluating the best checkpoint (by `selection`) on validation and test.
  """
  started = time.time()
  mesh = mesh or sharding.make_mesh()
  check_training_config(config, mesh)
  workdir = experiment_lib.start_run(config, workdir)
  exp = neural_lib.build_experiment(config, mesh, corpus=corpus)
  experiment_lib.write_splits(config, workdir, exp.class_names, exp.speakers,
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
  ckpt_every = int(config.checkpoint_every_steps)

  ckpt = make_checkpoints(config, workdir)
  state = neural_lib.create_train_state(exp, jax.random.key(config.seed))
  restored, step = ckpt.restore_latest(state)
  clock = monitoring.RunClock(os.path.join(workdir, 'wall_time.json'), started)
  clock.resume(int(step or 0) if restored is not None else 0)
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
  stopper = monitoring.EarlyStopping(config.early_stopping, history.records)
  stopped_early = bool(history.records) and stopper.patience and stopper.bad >= stopper.patience

  train_step = make_train_step(
      exp, class_weights(config, train_seg, len(exp.class_names)))
  eval_step = neural_lib.make_eval_step(exp)
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
          raise monitoring.NonFiniteLossError(
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
        clock.mark(step)   # before the save: a committed step always has its time
        ckpt.save(step, state, {k: record[k] for k in _METRICS})
        if stopper.update(record):
          logging.info('Early stopping at step %d: no %s improvement in %d evaluations.',
                       step, stopper.metric, stopper.patience)
          stopped_early = True
        t0, examples = time.time(), 0
      elif (ckpt_every and step % ckpt_every == 0) or signals.received:
        clock.mark(step)
        ckpt.save(step, state)
      if signals.received:
        ckpt.wait()
        writer.close()
        raise monitoring.TrainingInterrupted(signals.received, step)
  ckpt.wait()
  writer.close()
  return evaluate_checkpoint(exp, ckpt, workdir, clock=clock)


def evaluate_checkpoint(exp: Experiment, ckpt: checkpoints_lib.Checkpoints, workdir: str,
                        step: int | None = None, splits=('validation', 'test'),
                        clock: monitoring.RunClock | None = None) -> dict:
  """The end of training: evaluates a checkpoint (default: the best by the
  selection metric) on validation and test, prints the figures and writes
  results.json and the run's reports (`experiment.finish_run`)."""
  state, step = neural_lib.restore_for_eval(exp, ckpt, step)
  results = {'checkpoint_step': step, 'speakers': exp.speakers,
             **neural_lib.evaluate_splits(exp, state, splits)}
  if clock is not None:   # corpus loading to results, over every sitting (RunClock)
    results['wall_seconds'] = round(clock.seconds(), 1)
    results['sittings'] = clock.sittings
    if not clock.complete:
      results['wall_seconds_this_sitting_only'] = True
  if monitoring.is_chief():
    evaluate_lib.write_json(os.path.join(workdir, f'results_step{step}.json'), results)
  experiment_lib.finish_run(
      workdir, results, monitoring.History(os.path.join(workdir, 'history.jsonl')).records,
      splits)
  return results
