"""The experiment layer of the neural systems: what their trainer, predict and export share.

Building a run from its config (front end, model, optimiser, the split of
`experiment.load_split` cut into segments), and a trained model restored for
inference: `evaluate_to_folder` (--mode=evaluate), `load_predictor`
(--mode=predict), `restore_for_eval` (also the export's). Nothing here
trains: the loop is `ser_jax.trainers.neural`, which imports this module,
never the other way round.
"""
from __future__ import annotations

import dataclasses
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
from ser_jax import cli
from ser_jax import evaluate as evaluate_lib
from ser_jax import experiment as experiment_lib
from ser_jax import features as features_lib
from ser_jax import input_pipeline
from ser_jax import models
from ser_jax import monitoring
from ser_jax import reports
from ser_jax import sharding

class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Any
  opt_state: Any
  norm: Any        # feature statistics {'mean', 'std'} of the training split
  rng: jax.Array   # raw uint32 key data, so it checkpoints as a plain array
  ema: Any = None  # exponential moving average of params (`ema_decay` > 0), else None


def inference_params(state: TrainState):
  """The parameters evaluation, predict and export use: the moving average
  when the run keeps one (`ema_decay` > 0), else the trained parameters."""
  return state.params if state.ema is None else state.ema


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
  """The optimiser (its state is part of a checkpoint, so inference builds it too)."""
  name = config.optimizer
  if name not in _OPTIMIZERS:
    raise cli.UsageError(f'unknown optimizer {name!r}; known: {sorted(_OPTIMIZERS)}')
  tx = _OPTIMIZERS[name](config.learning_rate)
  if config.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
  return tx


def segment_samples(config) -> int:
  return int(round(config.features.segment_seconds * config.features.sample_rate))


def feature_config(config) -> ml_collections.ConfigDict:
  """The front end's config for one segment (frame count filled in by its rule)."""
  return features_lib.with_num_frames(config.features, segment_samples(config))


def segmentation(config) -> tuple[int, int, int, bool]:
  """(segment samples, hop samples, max segments per utterance (0: all), whether the
  last segment ends at the utterance's end): how training, prediction and the
  export cut utterances into segments (`input_pipeline.segment`)."""
  f = config.features
  return (segment_samples(config), int(round(f.segment_hop_seconds * f.sample_rate)),
          int(f.max_segments), bool(f.last_segment_at_end))


def build_experiment(config, mesh=None, with_data: bool = True, corpus=None) -> Experiment:
  """Builds front end, model and optimiser; with data, also the split
  (`load_split`; the training split augmented offline if configured) cut into
  segments."""
  check_norm(config)
  mesh = mesh or sharding.make_mesh()
  sharding.check_batch_size(config.batch_size, mesh)
  class_names = tuple(config.data.classes)
  exp = Experiment(
      config=config, class_names=class_names,
      frontend=make_frontend(config),
      model=models.create_model(config.model, len(class_names)),
      tx=make_optimizer(config), mesh=mesh)
  if with_data:
    parts, exp.speakers = experiment_lib.load_split(config, corpus)
    offline = config.augment.offline
    if offline.enabled and not offline.before_split:
      # the training split only (before the split: load_split did the whole corpus)
      parts['train'] = input_pipeline.augment_offline(
          parts['train'], offline, config.seed, config.features.sample_rate,
          num_workers=os.cpu_count() or 1)
    logging.info('Protocol %s fold %s: %s', config.protocol.name, config.protocol.fold,
                 input_pipeline.describe(parts, class_names, segment_samples(config),
                                         config.features.sample_rate,
                                         *segmentation(config)[1:]))
    exp.segments = {name: input_pipeline.segment(u, *segmentation(config))
                    for name, u in parts.items()}
    if config.speaker_norm:
      t0 = time.time()
      add_speaker_norm(exp)
      logging.info('Per-speaker feature statistics of %d speakers in %.1fs (transductive: '
                   'from every split\'s unlabelled audio).',
                   len({s for seg in exp.segments.values() for s in seg.utterances.speakers}),
                   time.time() - t0)
    elif config.utterance_norm:
      t0 = time.time()
      moments = segment_moments(exp)
      for name, seg in exp.segments.items():
        exp.segments[name] = dataclasses.replace(seg, norm_stats=utterance_stats(seg, moments))
      logging.info('Per-utterance feature statistics of %d utterances in %.1fs (inductive: '
                   'each file by its own audio).',
                   sum(len(s.utterances) for s in exp.segments.values()), time.time() - t0)
  return exp


def make_frontend(config) -> Callable:
  """The config's front end, built and traced on one segment's shape (no compiling,
  no data), so that parameters it cannot use (n_mfcc above n_mels, a window longer
  than the FFT) are one UsageError before any work, not a traceback."""
  try:
    frontend = features_lib.make_frontend(feature_config(config))
    jax.eval_shape(frontend, jax.ShapeDtypeStruct((1, segment_samples(config)), jnp.float32),
                   jax.ShapeDtypeStruct((1,), jnp.int32))
  except ValueError as e:
    raise cli.UsageError(f'features: {e}') from e
  return frontend


def check_norm(config) -> None:
  """speaker_norm and utterance_norm each replace the segment's statistics: one at most."""
  if config.speaker_norm and config.utterance_norm:
    raise cli.UsageError('speaker_norm and utterance_norm are alternatives (each z-scores a '
                         'segment by its own group\'s statistics): set one of them')


NORM_MIN_STD = 1e-3


def segment_moments(exp: Experiment) -> Callable:
  """seg → per segment (valid frames [S], sum [S, F, C], sum of squares [S, F, C]) of
  its front-end features, float64 on the host: what speaker statistics add up."""
  rep, data = sharding.replicated(exp.mesh), sharding.batch_sharded(exp.mesh)

  def moments(batch):
    feats, mask = exp.frontend(batch['audio'].astype(jnp.float32) / 32768.0, batch['lengths'])
    m = mask.astype(jnp.float32)[..., None, None]
    return m.sum(axis=(1, 2, 3)), (feats * m).sum(axis=1), (jnp.square(feats) * m).sum(axis=1)

  moments = jax.jit(moments, in_shardings=(data,), out_shardings=rep)

  def run(seg: input_pipeline.Segments):
    rows = []
    for batch in input_pipeline.eval_batches(seg, exp.config.batch_size):
      batch = {'audio': batch['audio'], 'lengths': batch['lengths']}
      rows.append([np.asarray(v, np.float64)
                   for v in jax.device_get(moments(sharding.shard_batch(batch, exp.mesh)))])
    return tuple(np.concatenate([r[i] for r in rows])[:len(seg)] for i in range(3))

  return run


def moment_stats(n, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
  """[..., 2, F, C] mean and std (floored at NORM_MIN_STD) from summed moments
  (n: frames, a scalar or [...]; s1, s2: [..., F, C])."""
  n = np.maximum(np.asarray(n, np.float64), 1.0)[..., None, None]
  mean = s1 / n
  std = np.sqrt(np.maximum(s2 / n - mean ** 2, 0.0))
  return np.stack([mean, np.maximum(std, NORM_MIN_STD)], axis=-3).astype(np.float32)


def utterance_stats(seg: input_pipeline.Segments, moments: Callable) -> np.ndarray:
  """[S, 2, F, C]: every segment's utterance statistics, over the valid frames of all
  of that utterance's segments (`utterance_norm`: inductive, each file by itself)."""
  n, s1, s2 = moments(seg)
  k = len(seg.utterances)
  sums = [np.zeros((k,) + s1.shape[1:]) for _ in range(2)]
  np.add.at(sums[0], seg.utterance, s1)
  np.add.at(sums[1], seg.utterance, s2)
  stats = moment_stats(np.bincount(seg.utterance, weights=n, minlength=k), *sums)
  return stats[seg.utterance]


def add_speaker_norm(exp: Experiment) -> None:
  """Gives every segment of every split its speaker's feature mean and std
  (`Segments.norm_stats`), over all of that speaker's valid frames in all
  splits; the steps then z-score each segment with them before the training
  statistics. Speaker normalisation uses the test speakers' unlabelled audio
  (transductive) and is reported as such. Offline copies that keep the voice
  (noise, stretch, pitch: 'path#noise', ...) take their speaker's statistics
  from its own audio; speed-perturbed copies ('path#speed0.9') are a new voice,
  normalised as a speaker of their own (speaker and rate), as Kaldi's
  perturbation makes new speakers."""
  moments = segment_moments(exp)
  totals = {}
  keys = {}
  for name, seg in exp.segments.items():
    speakers = seg.utterances.speakers[seg.utterance].astype(str)
    paths = seg.utterances.paths[seg.utterance].astype(str)
    speed = np.asarray([augment_lib.is_speed_copy(p) for p in paths], bool)
    # The key a segment is normalised under: its speaker, or speaker#rate for speed copies.
    key = speakers.astype(object)
    key[speed] = [f'{s}#{p.rsplit("#", 1)[1]}' for s, p in zip(speakers[speed], paths[speed])]
    keys[name] = key
    own = (np.char.find(paths, '#') < 0) | np.char.endswith(paths, '#original') | speed
    n, s1, s2 = moments(seg)
    for spk in np.unique(key):
      for which, pick in ((0, (key == spk) & own), (1, key == spk)):
        t = totals.setdefault(spk, [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])[which]
        t[0] += n[pick].sum()
        t[1] = t[1] + s1[pick].sum(axis=0)
        t[2] = t[2] + s2[pick].sum(axis=0)
  stats = {}
  for spk, (own_totals, all_totals) in totals.items():
    if own_totals[0] == 0:   # offline augmentation without include_original
      logging.warning('speaker_norm: speaker %s has no original audio (offline augmentation '
                      'without include_original); using its augmented copies.', spk)
      own_totals = all_totals
    if own_totals[0] == 0:
      raise ValueError(f'speaker_norm: speaker {spk} has no valid frames')
    stats[spk] = moment_stats(*own_totals)
  for name, seg in exp.segments.items():
    exp.segments[name] = dataclasses.replace(
        seg, norm_stats=np.stack([stats[k] for k in keys[name]]))


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
        rng=jax.random.key_data(state_rng),
        ema=jax.tree.map(jnp.copy, params) if exp.config.ema_decay > 0 else None)

  return jax.jit(init, out_shardings=sharding.replicated(exp.mesh))()


def frontend_output(exp: Experiment, batch, audio_transform=None):
  """(feats, mask) of a batch before normalisation: the front end on its audio
  ('audio' int16, 'lengths'; `audio_transform` applied to the float waveform
  first), or the cached output it carries ('feats', 'mask'); z-scored with
  the segment's own statistics (its speaker's or its utterance's) when the batch
  carries them ('norm_stats')."""
  if 'feats' in batch:
    feats, mask = batch['feats'], batch['mask']
  else:
    audio = batch['audio'].astype(jnp.float32) / 32768.0
    if audio_transform is not None:
      audio = audio_transform(audio)
    feats, mask = exp.frontend(audio, batch['lengths'])
  if 'norm_stats' in batch:   # each segment by its speaker's/utterance's statistics first
    sn = batch['norm_stats']
    feats = features_lib.normalize(feats, {'mean': sn[:, None, 0], 'std': sn[:, None, 1]}, mask)
  return feats, mask


def make_eval_step(exp: Experiment) -> Callable:
  """jit-compiled (state, batch) → segment posteriors [B, K] (replicated)."""

  def eval_step(state: TrainState, batch):
    feats, mask = frontend_output(exp, batch)
    feats = features_lib.normalize(feats, state.norm, mask)
    logits = exp.model.apply({'params': inference_params(state)}, feats, mask, batch['gender'])
    return jax.nn.softmax(logits, axis=-1)

  rep, data = sharding.replicated(exp.mesh), sharding.batch_sharded(exp.mesh)
  return jax.jit(eval_step, in_shardings=(rep, data), out_shardings=rep)


# ---------------------------------------------------------------------------
# Checkpoints of a finished (or running) training, for inference.

def open_checkpoints(directory: str, selection, **kwargs) -> checkpoints_lib.Checkpoints:
  """A run's checkpoints, best chosen by `selection` ({'metric', 'mode'})."""
  return checkpoints_lib.Checkpoints(directory, metric=selection.metric, mode=selection.mode,
                                     **kwargs)


def resolve_checkpoint(workdir: str | None, checkpoint: str | None, selection):
  """(Checkpoints, step or None) from a workdir and/or a checkpoint spec.

  `checkpoint` may be a step number (in workdir/checkpoints), a step folder
  (…/checkpoints/1200) or a checkpoints folder; None means the workdir's
  best checkpoint by `selection` ({'metric', 'mode'}).
  """
  step = None
  directory = os.path.join(workdir, 'checkpoints') if workdir else None
  if checkpoint:
    if checkpoint.isdigit():
      step = int(checkpoint)
    else:
      path = os.path.abspath(os.path.expanduser(checkpoint))
      if not os.path.isdir(path):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
      if os.path.basename(path).isdigit():
        directory, step = os.path.dirname(path), int(os.path.basename(path))
      elif os.path.isdir(os.path.join(path, 'checkpoints')):
        directory = os.path.join(path, 'checkpoints')
      else:
        directory = path
  if not directory or not os.path.isdir(directory):
    raise FileNotFoundError(f'no checkpoints at {directory!r}; train first or pass --checkpoint')
  ckpt = open_checkpoints(directory, selection, async_save=False)
  if step is not None and step not in ckpt.manager.all_steps():
    raise FileNotFoundError(f'no checkpoint step {step} in {directory}; '
                            f'available: {sorted(ckpt.manager.all_steps())}')
  return ckpt, step


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


# ---------------------------------------------------------------------------
# Workdir files and evaluation.

def evaluate_splits(exp: Experiment, state: TrainState, splits) -> dict:
  """{split: utterance-level report} of `state` on the named splits."""
  eval_step = make_eval_step(exp)
  return {split: evaluate_lib.evaluate_segments(
      eval_step, state, exp.segments[split], exp.config.batch_size, exp.mesh,
      exp.class_names, exp.config.aggregation) for split in splits}


def evaluate_to_folder(config, workdir: str | None, checkpoint: str | None, splits,
                       outdir: str | None = None) -> dict:
  """`--mode=evaluate`: a checkpoint (default: the best by the selection
  metric) on the named splits, written beside the training's results, never
  over them: OUTDIR (default WORKDIR/eval)/<split>_step<N>.json,
  confusion_<split>_step<N>.{csv,png} and per_class_<split>_step<N>.csv."""
  ckpt, step = resolve_checkpoint(workdir, checkpoint, config.selection)
  outdir = outdir or os.path.join(workdir or os.path.dirname(ckpt.directory), 'eval')
  cli.check_writable(outdir, '--output_dir=FOLDER (a read-only workdir is fine)')
  exp = build_experiment(config)
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


# ---------------------------------------------------------------------------
# Prediction with a trained neural model.

def check_no_speaker_norm(config, mode: str):
  """export takes waveforms one at a time: a model trained on speaker-normalised
  features has no speaker statistics there."""
  if config.speaker_norm:
    raise cli.ModeNotAvailable(
        f'--mode={mode} is not available for a model trained with speaker_norm=True: it '
        'normalises each speaker by that speaker\'s own recordings, and the SavedModel '
        'takes one waveform at a time')


def load_predictor(config, workdir: str | None, checkpoint: str | None = None,
                   gender: str | None = None) -> experiment_lib.Predictor:
  """The neural trainers' predictor: a checkpoint (default: the best), each
  utterance cut into the training's segments, posteriors aggregated as in
  evaluation; with a gender-conditioned model and no `gender`, the posteriors
  of both gender inputs are averaged (a model without the input runs once). A model
  trained with speaker_norm takes the waveforms it observes as one speaker's:
  `observe` them all first (predict.predict_files does); their statistics
  normalise each. With utterance_norm each waveform is normalised by its own. The
  segments of all the waveforms of a call share batches (one compiled batch
  shape), so a folder of short clips costs one forward pass per `batch_size`
  segments, not one per file."""
  if gender is not None and gender not in experiment_lib.GENDERS:
    raise ValueError(f'gender must be one of {experiment_lib.GENDERS}, not {gender!r}')
  exp = build_experiment(config, with_data=False)
  ckpt, step = resolve_checkpoint(workdir, checkpoint, config.selection)
  state, step = restore_for_eval(exp, ckpt, step)
  eval_step = make_eval_step(exp)
  cut = segmentation(config)
  if not config.model.use_gender:   # the model ignores its gender input: one pass
    genders, said = [0], gender or 'not an input of this model'
  elif gender:
    genders, said = [experiment_lib.GENDERS.index(gender)], gender
  else:
    genders, said = [0, 1], 'unknown (averaged)'
  fields = {'gender': said, 'checkpoint_step': int(step)}

  moments = segment_moments(exp) if config.speaker_norm or config.utterance_norm else None
  speaker = {'totals': [0.0, 0.0, 0.0], 'files': 0}   # speaker_norm: the observed speaker

  def segments_of(audios, copies):
    n = len(audios)
    unknown = np.full(n * copies, '?')
    utts = input_pipeline.Utterances(   # every waveform once per gender input
        [a for _ in range(copies) for a in audios], np.zeros(n * copies, np.int32),
        np.repeat(np.asarray(genders[:copies], np.int32), n), unknown, unknown)
    return input_pipeline.segment(utts, *cut)

  def observe(audios):
    """Adds waveforms to the statistics of the one speaker they are taken to be."""
    n_, s1, s2 = moments(segments_of(audios, 1))
    t = speaker['totals']
    speaker['totals'] = [t[0] + n_.sum(), t[1] + s1.sum(axis=0), t[2] + s2.sum(axis=0)]
    speaker['files'] += len(audios)

  def many(audios):
    n, g = len(audios), len(genders)
    seg = segments_of(audios, g)
    if config.speaker_norm:
      if not speaker['files']:
        raise ValueError('speaker_norm: observe() the speaker\'s recordings first')
      stats = moment_stats(*speaker['totals'])
      seg = dataclasses.replace(seg, norm_stats=np.broadcast_to(stats, (len(seg),) + stats.shape))
    elif config.utterance_norm:
      seg = dataclasses.replace(seg, norm_stats=utterance_stats(seg, moments))
    p = evaluate_lib.segment_posteriors(eval_step, state, seg, config.batch_size, exp.mesh)
    pooled = evaluate_lib.aggregate(p, seg.utterance, n * g, config.aggregation)
    probs = pooled.reshape(g, n, -1).mean(axis=0)
    probs = probs / probs.sum(axis=1, keepdims=True)   # max-pooled posteriors do not sum to one
    counts = np.bincount(seg.utterance, minlength=n * g)[:n]
    return [(probs[i], {'segments': int(counts[i]), **fields}) for i in range(n)]

  return experiment_lib.Predictor(exp.class_names, int(config.features.sample_rate), cut[0],
                                  many, files_per_call=max(1, 2 * config.batch_size // len(genders)),
                                  observe=observe if config.speaker_norm else None)
