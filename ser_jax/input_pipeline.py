"""TFDS corpus → speaker-independent splits → fixed-length segments → batches.

The corpora of SER are small (IEMOCAP is ~12 h), so a split is loaded once into
host memory as int16 and batched with numpy. Batches are a pure function of
(seed, step), which makes a resumed run see exactly the batches an
uninterrupted one would. Feature extraction happens later, on device.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import sys
import time
from typing import Iterator, Mapping, Sequence

import ml_collections
import numpy as np

from ser_jax import cli
from ser_jax import augment
from ser_jax import splits as splits_lib

class CorpusNotPreparedError(RuntimeError):
  """The requested corpus has not been built with `tfds build` yet."""


@dataclasses.dataclass
class Utterances:
  """One split of a corpus, one entry per utterance (audio as int16)."""
  audio: list            # of int16 arrays
  labels: np.ndarray     # int32 class index into the config's class list
  genders: np.ndarray    # int32, 0 female 1 male
  speakers: np.ndarray   # str
  paths: np.ndarray      # str
  sample_rate: int = 16_000   # of the audio: the corpus's build (`tfds build --config=22k`)

  def __len__(self):
    return len(self.audio)

  def take(self, idx) -> 'Utterances':
    idx = np.asarray(idx, np.int64)
    return Utterances([self.audio[i] for i in idx], self.labels[idx],
                      self.genders[idx], self.speakers[idx], self.paths[idx],
                      self.sample_rate)


@dataclasses.dataclass
class Segments:
  """Fixed-length segments of a split, with the segment→utterance map."""
  audio: np.ndarray      # int16 [S, segment_samples], zero-padded tail
  lengths: np.ndarray    # int32 [S] valid samples of each segment
  labels: np.ndarray     # int32 [S]
  genders: np.ndarray    # int32 [S]
  utterance: np.ndarray  # int32 [S] index of the segment's utterance
  utterances: Utterances
  # Front-end output cached by `trainers.neural.cache_features` (None: batches carry
  # audio and the step computes the features).
  feats: np.ndarray | None = None   # float32 [S, T, F, C]
  mask: np.ndarray | None = None    # bool [S, T] valid frames
  # Per-segment feature statistics of its speaker (`config.speaker_norm`) or of its
  # utterance (`config.utterance_norm`): float32 [S, 2, F, C], mean and std, applied
  # before the training split's statistics; None: those only.
  norm_stats: np.ndarray | None = None

  def __len__(self):
    return len(self.lengths)


def tfds_name(data_cfg) -> str:
  return (f'{data_cfg.name}/{data_cfg.builder_config}' if data_cfg.builder_config
          else data_cfg.name)


def _build_command(data_cfg) -> str:
  """The `tfds build` command for the corpus, from its builder (which knows its
  folder and --manual_dir), or the folder of the name when none is registered."""
  import tensorflow_datasets as tfds  # heavy: only on this error path and in get_builder
  import tfds_builders  # noqa: F401  (registers the project's builders)
  try:
    cls = tfds.builder_cls(data_cfg.name)
  except tfds.core.registered.DatasetNotFoundError:
    cls = None
  if hasattr(cls, 'build_command'):
    return cls.build_command(data_cfg.builder_config, data_cfg.data_dir)
  cmd = f'tfds build tfds_builders/{data_cfg.name}'
  if data_cfg.builder_config:
    cmd += f' --config={data_cfg.builder_config}'
  if data_cfg.data_dir:
    cmd += f' --data_dir={data_cfg.data_dir}'
  return cmd


def _registered_configs(name: str) -> list[str] | None:
  """The builder config names the project's builder `name` registers ([] for one
  without configs, IEMOCAP); None for a name that is not one of its builders."""
  import tensorflow_datasets as tfds
  import tfds_builders  # noqa: F401  (registers the project's builders)
  try:
    cls = tfds.builder_cls(name)
  except tfds.core.registered.DatasetNotFoundError:
    return None
  return [c.name for c in getattr(cls, 'BUILDER_CONFIGS', None) or ()]


def _check_builder_config(data_cfg) -> None:
  """A builder config the corpus does not have (IEMOCAP is stored at 16 kHz only,
  so a union with `builder_config=22k` cannot include it) is a usage error, said
  before TFDS answers with a build command that could not work."""
  if not data_cfg.builder_config:
    return
  have = _registered_configs(data_cfg.name)
  if have is None:
    return   # not ours: the not-prepared error below says how to build it
  if data_cfg.builder_config not in have and not _on_request(data_cfg):
    rates = (f'builder configs {", ".join(have)} (or any rate as e.g. 44100hz)' if have
             else 'no builder configs')
    raise CorpusNotPreparedError(
        f'Corpus {data_cfg.name!r} has {rates}, not {data_cfg.builder_config!r}'
        + ('' if have else ' (its audio is stored at 16 kHz only)')
        + '; leave it out of the union or drop --config.data.builder_config.')


def _on_request(data_cfg):
  """The AudioConfig of a rate name (`44100hz`) that the corpus does not
  register (see tfds_builders.common.rate_config); None otherwise, and for a
  corpus without builder configs (IEMOCAP)."""
  from tfds_builders import common
  if not data_cfg.builder_config:
    return None
  have = _registered_configs(data_cfg.name)
  if not have or data_cfg.builder_config in have:
    return None
  return common.rate_config(data_cfg.builder_config)


def get_builder(data_cfg):
  """The TFDS builder of `data_cfg.name`, prepared.

  Corpora that need no download (the embedded synthetic one) are built on
  first use; the others must have been built with `tfds build`, otherwise
  `CorpusNotPreparedError` names the command to run.
  """
  import tensorflow_datasets as tfds  # heavy (TensorFlow): only where a corpus is read
  import tfds_builders  # noqa: F401  (registers the project's builders)

  name = tfds_name(data_cfg)
  data_dir = os.path.expanduser(data_cfg.data_dir) if data_cfg.data_dir else None
  try:
    with _quiet_tfds():
      rate = _on_request(data_cfg)
      if rate is not None:   # a rate built on request (`44100hz`), not registered
        builder = tfds.builder_cls(data_cfg.name)(config=rate, data_dir=data_dir)
      else:
        builder = tfds.builder(name, data_dir=data_dir)
      prepared = builder.is_prepared()
  except (tfds.core.registered.DatasetNotFoundError, ValueError) as e:
    raise CorpusNotPreparedError(
        f'Corpus {name!r} is not prepared in {data_dir or tfds.core.constants.DATA_DIR} '
        f'({type(e).__name__}). Build it once with:\n  {_build_command(data_cfg)}') from e
  if prepared:
    return builder
  if getattr(builder, 'MANUAL_DOWNLOAD_INSTRUCTIONS', None):
    raise CorpusNotPreparedError(
        f'Corpus {name!r} is not prepared in {builder.data_dir_root}. It needs '
        f'the original files; build it once with:\n  {_build_command(data_cfg)}')
  logging.info('Preparing %s in %s (first use).', name, builder.data_dir_root)
  t0 = time.time()
  with _quiet_tfds(progress=sys.stderr.isatty()):
    builder.download_and_prepare()
  logging.info('Prepared %s in %.1fs (%d examples).', name, time.time() - t0,
               builder.info.splits.total_num_examples)
  return builder


class _DropRecords(logging.Filter):
  WHAT = ('has no dataset_info.json',   # TFDS on a corpus not built yet: expected here
          'Using custom data configuration')   # a rate built on request (`44100hz`)

  def filter(self, record):
    return not any(w in str(record.msg) for w in self.WHAT)


@contextlib.contextmanager
def _quiet_tfds(progress: bool = True):
  """TFDS without its notes on an unbuilt corpus, its print()s to stdout and
  (progress=False) its progress bars."""
  import tensorflow_datasets as tfds
  drop = _DropRecords()
  logging.getLogger('absl').addFilter(drop)
  if not progress:
    tfds.disable_progress_bar()
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      yield
  finally:
    logging.getLogger('absl').removeFilter(drop)
    if not progress:
      tfds.enable_progress_bar()


def _selected(ex, emotion: str, data_cfg) -> str | None:
  """None if the example belongs to the configured subset, else why not."""
  if emotion not in data_cfg.classes:
    return f'emotion {emotion}'
  raw = ex['label'].decode() if isinstance(ex['label'], bytes) else ex['label']
  if raw in data_cfg.exclude_labels:
    return f'label {raw}'
  for field, wanted in data_cfg.where.items():
    if field not in ex:
      raise cli.UsageError(f'data.where names {field!r}, which this corpus does not have')
    value = ex[field]
    value = value.decode() if isinstance(value, bytes) else value
    if value != wanted:
      return f'{field}={value}'
  return None


def corpus_names(data_cfg) -> list[str]:
  """The TFDS datasets of `data.name` (a ConfigDict or the dict of a workdir's
  config.json): one name, a tuple (list) of names for a union, or the
  command-line sugar of a '+'-joined string."""
  name = data_cfg['name']
  names = name.split('+') if isinstance(name, str) else list(name)
  return [str(n).strip() for n in names if str(n).strip()]


def check_corpus_names(data_cfg) -> list[str]:
  """`corpus_names`, or UsageError for a name that is not one of the project's
  corpora (before TFDS is asked: its catalog has a `crema_d` of its own)."""
  import tfds_builders  # noqa: F401  (its NAMES; registers the builders)
  names = corpus_names(data_cfg)
  unknown = [n for n in names if n not in tfds_builders.NAMES]
  if unknown:
    raise cli.UsageError(f'data.name names {", ".join(map(repr, unknown))}, not a corpus of the '
                         f'project; known: {", ".join(tfds_builders.NAMES)} (+ joins several)')
  return names


def load_corpus(data_cfg) -> tuple[Utterances, dict[str, str]]:
  """The configured subset of one corpus, or of a union of corpora.

  A union (`data.name=('ser_crema_d', 'ravdess', 'ser_savee', 'tess')`, the combined set
  of the Ranjan and Gomes papers) loads each corpus with the same classes and
  filters and concatenates them; speaker and session ids are prefixed with
  the corpus name (`ravdess:01`) so that they stay distinct, and paths with
  `corpus/`. A builder config (e.g. `22k`, the audio rate) applies to every corpus
  of a union.
  """
  names = check_corpus_names(data_cfg)
  cfgs = [ml_collections.ConfigDict(dict(data_cfg.to_dict(), name=n)) for n in names]
  for cfg in cfgs:   # every corpus, before the first is read
    _check_builder_config(cfg)
  if len(names) == 1:
    return _load_one(cfgs[0])
  parts, speaker_session = [], {}
  for name, cfg in zip(names, cfgs):
    utts, sessions = _load_one(cfg)
    utts.speakers = np.asarray([f'{name}:{s}' for s in utts.speakers])
    utts.paths = np.asarray([f'{name}/{p}' for p in utts.paths])
    speaker_session.update({f'{name}:{s}': f'{name}:{v}' for s, v in sessions.items()})
    parts.append(utts)
  union = Utterances(
      [a for u in parts for a in u.audio], np.concatenate([u.labels for u in parts]),
      np.concatenate([u.genders for u in parts]), np.concatenate([u.speakers for u in parts]),
      np.concatenate([u.paths for u in parts]), parts[0].sample_rate)   # one config: one rate
  return union, speaker_session


def _load_one(data_cfg) -> tuple[Utterances, dict[str, str]]:
  """All utterances of one corpus's configured subset, and speaker → session.

  The subset is: emotion among `data_cfg.classes`, raw label not in
  `data_cfg.exclude_labels` (e.g. IEMOCAP's 'exc' for the no-merge set),
  and every `data_cfg.where` field equal to its value (e.g.
  {'improvised': True}). What is left out is counted and logged by reason.
  """
  import tensorflow_datasets as tfds
  from tfds_builders import common   # the builders' audio rate (after TFDS, which it needs)

  t0 = time.time()
  builder = get_builder(data_cfg)
  features = builder.info.features
  emotion_names = features['emotion'].names
  gender_names = features['gender'].names
  class_index = {c: i for i, c in enumerate(data_cfg.classes)}
  unknown = set(class_index) - set(emotion_names)
  if unknown:
    raise cli.UsageError(f'classes {sorted(unknown)} are not emotions of '
                         f'{builder.name}: {emotion_names}')
  if tuple(gender_names) != ('female', 'male'):
    raise ValueError(f'unexpected gender names {gender_names}')

  ds = builder.as_dataset(split=data_cfg.split, shuffle_files=False)
  audio, labels, genders, speakers, paths = [], [], [], [], []
  speaker_session, skipped = {}, {}
  for ex in tfds.as_numpy(ds):
    speaker = ex['speaker'].decode()
    speaker_session[speaker] = ex['session'].decode()
    why_not = _selected(ex, emotion_names[ex['emotion']], data_cfg)
    if why_not:
      skipped[why_not] = skipped.get(why_not, 0) + 1
      continue
    emotion = emotion_names[ex['emotion']]
    audio.append(np.asarray(ex['audio'], np.int16).reshape(-1))
    labels.append(class_index[emotion])
    genders.append(int(ex['gender']))
    speakers.append(speaker)
    paths.append(ex['path'].decode())
  left_out = (f'; left out {sum(skipped.values())} outside the configured subset: '
              + ', '.join(f'{k} {v}' for k, v in sorted(skipped.items()))) if skipped else ''
  logging.info('Corpus %s: %d utterances of %d speakers read in %.1fs%s', tfds_name(data_cfg),
               len(audio), len(set(speakers)), time.time() - t0, left_out)
  if not audio:
    raise cli.UsageError(f'{builder.name}: no utterance of classes {list(data_cfg.classes)}')
  order = np.argsort(np.asarray(paths), kind='stable')  # deterministic order
  utts = Utterances(audio, np.asarray(labels, np.int32), np.asarray(genders, np.int32),
                    np.asarray(speakers), np.asarray(paths), common.sample_rate_of(builder))
  return utts.take(order), speaker_session


def check_sample_rate(utts: Utterances, features_cfg) -> None:
  """A clear error when the corpus's audio rate is not the front end's."""
  want = int(features_cfg.get('sample_rate', 16_000))
  if int(utts.sample_rate) != want:
    raise cli.UsageError(
        f'the corpus audio is at {utts.sample_rate} Hz but features.sample_rate is '
        f'{want}: pass --config.features.sample_rate={utts.sample_rate}, or build and '
        f'select the corpus at {want} Hz (--config.data.builder_config)')


def split_corpus(utts: Utterances, speaker_session: Mapping[str, str],
                 protocol) -> tuple[dict[str, Utterances], dict[str, list[str]]]:
  """Utterances of train/validation/test under the protocol, and the speakers of each.

  Speaker protocols (loso, loso_session, holdout) assign whole speakers;
  utterance protocols (stratified_kfold, stratified_split and their
  speaker-grouped variants) assign utterances (see `splits`).
  """
  if protocol.name in splits_lib.SPEAKER_PROTOCOLS:
    speaker_sets = splits_lib.speaker_split(speaker_session, protocol)
    out = {name: utts.take(np.flatnonzero(np.isin(utts.speakers, spk)))
           for name, spk in speaker_sets.items()}
  else:
    index = splits_lib.utterance_split(utts.labels, utts.speakers, protocol)
    if protocol.name == 'cross_corpus':
      index = restrict_to_test_classes(index, utts.labels)
    out = {name: utts.take(idx) for name, idx in index.items()}
    speaker_sets = {name: sorted(set(map(str, part.speakers))) for name, part in out.items()}
  for name, part in out.items():
    if not len(part):
      raise cli.UsageError(f'split {name!r} (speakers {speaker_sets[name]}) has no '
                           'utterance of the configured classes')
  return out, speaker_sets


def restrict_to_test_classes(index: dict, labels) -> dict:
  """The indices restricted to the classes that both the test corpus and the
  training corpora have: a cross-corpus test on SAVEE has no 'calm', so none
  is taught; one on RAVDESS has 'calm', which no other corpus can teach, so its
  calm clips are not tested. The model's outputs stay the config's classes."""
  labels = np.asarray(labels)
  shared = np.intersect1d(labels[index['test']], labels[index['train']])
  out = dict(index)
  for name in ('train', 'validation', 'test'):
    keep = np.isin(labels[index[name]], shared)
    if not keep.all():
      logging.info('cross_corpus: %d %s utterances of classes not shared by the training and '
                   'test corpora left out.', int((~keep).sum()), name)
    out[name] = index[name][keep]
  return out


# Fewer files than this are augmented in this process: starting workers costs more.
_MIN_PARALLEL_AUGMENT = 16


def _augment_one(job) -> list:
  """int16 variants of one waveform (a worker's job: waveform, sr, cfg, seed, index)."""
  y, sr, cfg, seed, index = job
  return [np.round(np.clip(z, -1.0, 32767 / 32768) * 32768).astype(np.int16)
          for _, z in augment.offline_augment([y], sr, cfg, seed, first=index)]


def augment_offline(utts: Utterances, cfg, seed: int, sample_rate: int,
                    num_workers: int = 1, what: str = 'training') -> Utterances:
  """The utterances with their offline variants (`augment.offline_augment`:
  original + noise + time stretch + pitch shift, Gomes et al.'s ×4), each
  variant keeping its utterance's label, gender and speaker; paths get
  '#variant'. Meant for the training split; `augment.offline.before_split`
  applies it to the whole corpus (leaky, see `experiment.load_split`).
  `num_workers` > 1 augments in that many processes (librosa's stretch and
  pitch shift take ~0.3 s a file), with the same result as one."""
  from ser_jax import svm_features   # its joblib map: workers, progress with rate and ETA
  names = augment.offline_variants(cfg)
  cfg = cfg.to_dict() if hasattr(cfg, 'to_dict') else dict(cfg or {})
  jobs = [(y, int(sample_rate), cfg, int(seed), i) for i, y in enumerate(utts.audio)]
  per_file = svm_features.cached_map(_augment_one, jobs, [None] * len(jobs),
                                     max(1, int(num_workers)), _MIN_PARALLEL_AUGMENT,
                                     what=f'offline augmentation of {what} files')
  audio = [z for variants in per_file for z in variants]
  k = len(names)
  logging.info('Offline augmentation: %d %s utterances → %d (%s).',
               len(utts), what, len(audio), ', '.join(names))
  return Utterances(audio, np.repeat(utts.labels, k), np.repeat(utts.genders, k),
                    np.repeat(utts.speakers, k),
                    np.asarray([f'{p}#{n}' for p in utts.paths for n in names]),
                    utts.sample_rate)


def segment_count(n: int, segment_samples: int, hop_samples: int) -> int:
  """How many segments cover an n-sample utterance: 1, or 1 + ceil((n - segment) / hop)."""
  return 1 + max(0, -(-(n - segment_samples) // hop_samples))


def segment_starts(n: int, count: int, segment_samples: int, hop_samples: int,
                   last_at_end: bool = False) -> np.ndarray:
  """Where the `count` segments of an n-sample utterance start: every hop, or with
  `last_at_end` no later than n - segment, so that the last one ends where the
  utterance ends instead of holding a short zero-padded tail (the export's graph
  computes the same)."""
  starts = np.arange(count, dtype=np.int64) * hop_samples
  return np.minimum(starts, max(n - segment_samples, 0)) if last_at_end else starts


def segment(utts: Utterances, segment_samples: int, hop_samples: int,
            max_segments: int = 0, last_at_end: bool = False) -> Segments:
  """Cuts each utterance into segments.

  An utterance shorter than one segment gives one zero-padded segment (never
  dropped); a longer one gives 1 + ceil((n - segment) / hop) segments, the last
  covering the end: starting a hop after the one before, zero-padded (it may hold
  a few samples only), or with `last_at_end` ending where the utterance ends, so
  that every segment of such an utterance is full. `max_segments` > 0 keeps only
  the first ones (1: the first 3 s of every file, as Sen et al. and Gomes et al. do).
  """
  if segment_samples <= 0 or hop_samples <= 0:
    raise cli.UsageError('segment and hop lengths must be positive')
  counts = [segment_count(len(a), segment_samples, hop_samples) for a in utts.audio]
  if max_segments > 0:
    counts = [min(c, int(max_segments)) for c in counts]
  total = int(np.sum(counts))
  audio = np.zeros((total, segment_samples), np.int16)
  lengths = np.zeros(total, np.int32)
  utterance = np.repeat(np.arange(len(utts), dtype=np.int32), counts)
  row = 0
  for a, n in zip(utts.audio, counts):
    for start in segment_starts(len(a), n, segment_samples, hop_samples, last_at_end):
      piece = a[start:start + segment_samples]
      audio[row, :len(piece)] = piece
      lengths[row] = len(piece)
      row += 1
  return Segments(audio, lengths, utts.labels[utterance], utts.genders[utterance],
                  utterance, utts)


def _batch(seg: Segments, idx: np.ndarray, weight: np.ndarray) -> dict[str, np.ndarray]:
  inputs = ({'audio': seg.audio[idx], 'lengths': seg.lengths[idx]} if seg.feats is None
            else {'feats': seg.feats[idx], 'mask': seg.mask[idx]})
  if seg.norm_stats is not None:
    inputs['norm_stats'] = seg.norm_stats[idx]
  return {**inputs, 'labels': seg.labels[idx], 'gender': seg.genders[idx],
          'weight': weight.astype(np.float32)}


def steps_per_epoch(seg: Segments, batch_size: int) -> int:
  return max(1, len(seg) // batch_size)


def train_batches(seg: Segments, batch_size: int, seed: int,
                  start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Endless shuffled batches; batch k is a pure function of (seed, k).

  Each epoch is a fresh permutation seeded by (seed, epoch); the incomplete
  last batch of an epoch is dropped (a corpus smaller than one batch is
  sampled with replacement up to one batch).
  """
  n = len(seg)
  per_epoch = steps_per_epoch(seg, batch_size)
  step = start_step
  while True:
    epoch, k = divmod(step, per_epoch)
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(n)
    if n < batch_size:
      perm = np.concatenate([perm, rng.choice(n, batch_size - n)])
    idx = perm[k * batch_size:(k + 1) * batch_size]
    yield _batch(seg, idx, np.ones(batch_size))
    step += 1


def eval_batches(seg: Segments, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
  """All segments in order; the last batch is padded with weight-0 rows."""
  n = len(seg)
  for start in range(0, n, batch_size):
    idx = np.arange(start, min(start + batch_size, n))
    weight = np.ones(batch_size)
    if len(idx) < batch_size:
      weight[len(idx):] = 0
      idx = np.concatenate([idx, np.zeros(batch_size - len(idx), np.int64)])
    yield _batch(seg, idx, weight)


def describe(parts: Mapping[str, Utterances], class_names: Sequence[str],
             segment_samples: int = 0, sample_rate: int = 16_000, hop_samples: int = 0,
             max_segments: int = 0, last_at_end: bool = False) -> str:
  """One line per split: utterances, speakers (a count: splits.json lists them),
  per-class counts, the clips shorter than one segment (zero-padded) and, given the
  hop, the longer ones whose last segment holds under half a segment (`segment`'s
  zero-padded tail, which counts as a full segment in the utterance's pooling)."""
  lines = []
  for name, u in parts.items():
    counts = np.bincount(u.labels, minlength=len(class_names))
    per_class = ', '.join(f'{c} {k}' for c, k in zip(class_names, counts))
    line = f'{name}: {len(u)} utterances of {len(set(map(str, u.speakers)))} speakers; {per_class}'
    short = np.asarray([len(a) for a in u.audio if len(a) < segment_samples], np.float64)
    if len(short):
      line += (f'; {len(short)} shorter than one {segment_samples / sample_rate:.2f} s segment '
               f'(zero-padded by {(segment_samples - short).mean() / sample_rate:.2f} s on average)')
    if hop_samples > 0 and not last_at_end:
      tails = 0
      for a in u.audio:
        n = len(a)
        count = segment_count(n, segment_samples, hop_samples)
        if n > segment_samples and (max_segments <= 0 or count <= max_segments):
          last = segment_starts(n, count, segment_samples, hop_samples)[-1]
          tails += n - last < segment_samples / 2
      if tails:
        line += (f'; {tails} longer whose last segment holds under '
                 f'{segment_samples / 2 / sample_rate:.2f} s (zero-padded; '
                 'features.last_segment_at_end=True ends it at the file\'s end)')
    lines.append(line)
  return '\n'.join(lines)
