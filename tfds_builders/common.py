"""Shared pieces of every corpus builder: label sets and the feature schema.

Builders import nothing from `ser_jax`; `ser_jax` reads label names back from
`ds_info.features`, so these lists are the single source of truth.
"""
from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import inspect
import itertools
import json
import logging
import os
import re
import sys
from typing import Any, Callable, Iterator, Sequence

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

SAMPLE_RATE = 16_000   # the default build; every shipped config reads it

# SPEC §3: the unified emotion set, in RAVDESS order.
UNIFIED_EMOTIONS = (
    'neutral', 'calm', 'happy', 'sad', 'angry', 'fearful', 'disgust', 'surprised')
# The `emotion` feature: the unified emotions plus 'other' for labelled
# material outside that set (IEMOCAP's fru, oth, xxx), kept with its raw
# `label` so that nothing is dropped at build time.
OTHER = 'other'
EMOTION_NAMES = UNIFIED_EMOTIONS + (OTHER,)
# Gender ids follow the headline paper: 1 for male, 0 for female.
GENDERS = ('female', 'male')

# One split holding the whole corpus; speaker/session metadata travels with
# every example and the input pipeline selects folds (see README). ('all' is
# TFDS's reserved name for the union of a builder's splits, which is what the
# input pipeline reads.)
ALL_SPLIT = 'corpus'


@dataclasses.dataclass(eq=False)
class AudioConfig(tfds.core.BuilderConfig):
  """The rate every clip of a corpus is resampled to (soxr HQ)."""
  sample_rate: int = SAMPLE_RATE


def audio_configs() -> list[AudioConfig]:
  """Builder configs of every real corpus: `16k` (the default) and `22k`; any
  other rate on request (`rate_config`)."""
  return [
      AudioConfig(name='16k', sample_rate=SAMPLE_RATE,
                  description='16 kHz mono int16: what every shipped config reads.'),
      AudioConfig(name='22k', sample_rate=22_050,
                  description="22,050 Hz mono int16, librosa.load's default rate, at which "
                              'the Gomes et al. and Sen et al. notebooks read the corpora; '
                              'use it with --config.data.builder_config=22k '
                              '--config.features.sample_rate=22050.'),
  ]


_RATE_NAME = re.compile(r'(\d{4,6})hz')


def rate_config(name: str) -> AudioConfig | None:
  """The builder config that a name like `44100hz` stands for: any audio rate,
  beyond the two that a plain `tfds build` makes (a third registered one would
  cost every user its disk). Build it with TFDS's own form for configs made on
  the fly, `tfds build … --config='{"name": "44100hz", "sample_rate": 44100}'`
  (what `config_arg` writes), and select it with
  `--config.data.builder_config=44100hz --config.features.sample_rate=44100`.
  None for any other name."""
  m = _RATE_NAME.fullmatch(name or '')
  if not m or not 4_000 <= int(m[1]) <= 192_000:
    return None
  return AudioConfig(name=name, sample_rate=int(m[1]),
                     description=f'{int(m[1]):,} Hz mono int16, built on request.')


def config_arg(name: str) -> str:
  """The `--config=` value of `tfds build` for the builder config `name`: the
  name itself, or for a rate name (`rate_config`) its JSON, quoted for a shell."""
  rate = rate_config(name)
  if rate is None:
    return name
  return "'" + json.dumps({'name': name, 'sample_rate': rate.sample_rate}) + "'"


def sample_rate_of(builder) -> int:
  """The audio rate of a TFDS builder of this project (16 kHz unless its config says)."""
  return int(getattr(getattr(builder, 'builder_config', None), 'sample_rate', SAMPLE_RATE))


def audio_feature(sample_rate: int = SAMPLE_RATE) -> tfds.features.Tensor:
  """Mono int16 PCM (16 kHz unless a builder config says), stored as raw
  little-endian bytes.

  TFDS's `Audio` feature stores int16 samples as int64 varints (up to 10
  bytes a negative sample: RAVDESS grew to ~490 MB and most of the build time
  went into that conversion), and its `encoding` option does not apply to
  in-memory arrays; a bytes-encoded Tensor is 2 bytes a sample and decodes to
  the same int16 array.
  """
  return tfds.features.Tensor(
      shape=(None,), dtype=np.int16, encoding=tfds.features.Encoding.BYTES,
      doc=f'mono PCM, {int(sample_rate)} Hz, int16')


def base_features(sample_rate: int = SAMPLE_RATE, **corpus_fields) -> tfds.features.FeaturesDict:
  """The schema every builder shares, plus corpus-specific fields."""
  return tfds.features.FeaturesDict({
      'audio': audio_feature(sample_rate),
      'emotion': tfds.features.ClassLabel(names=list(EMOTION_NAMES)),
      'label': tfds.features.Text(),        # the corpus's own label
      'speaker': tfds.features.Text(),
      'gender': tfds.features.ClassLabel(names=list(GENDERS)),
      'session': tfds.features.Text(),      # recording session ('' if none)
      'path': tfds.features.Text(),         # relative path in the corpus
      'duration': tfds.features.Scalar(dtype=np.float32),  # seconds
      **corpus_fields,
  })


# ---------------------------------------------------------------------------
# Decoding real corpus files: by content (libsndfile), down-mixed, resampled.

class UnusableAudio(ValueError):
  """A file that cannot become an example; the message is the skip reason."""


def read_audio(path, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, dict]:
  """Mono int16 audio of `path` at `sample_rate` and facts about the original.

  soundfile reads by content, so AIFF under a `.wav` name, WAVE files with
  extra RIFF chunks and odd rates all decode. Raises `UnusableAudio` for
  undecodable or empty files. All-zero audio is returned (it is a corpus
  entry) with `info['silent'] = True` so that builders can count it.
  """
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  import soxr  # pylint: disable=g-import-not-at-top
  path = str(path)
  try:
    if os.path.getsize(path) == 0:
      raise UnusableAudio('empty file (0 bytes)')
    data, rate = sf.read(path, dtype='float32', always_2d=True)
  except UnusableAudio:
    raise
  except Exception as e:  # libsndfile raises several types
    raise UnusableAudio(f'undecodable: {type(e).__name__}: {e}') from e
  if data.shape[0] == 0:
    raise UnusableAudio('no audio frames')
  info = {'sample_rate': int(rate), 'channels': int(data.shape[1]),
          'format': sf.info(path).format}
  mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
  if rate != sample_rate:
    mono = soxr.resample(mono, rate, sample_rate, quality='HQ')
  audio = np.round(np.clip(mono, -1.0, 32767 / 32768) * 32768.0).astype(np.int16)
  info['silent'] = not audio.any()
  return audio, info


def map_threaded(fn: Callable, items: Sequence, workers: int | None = None) -> Iterator:
  """fn over items in order, decoding in threads (libsndfile and soxr release the GIL).

  At most a few results per worker are held ahead of the consumer, so memory stays
  bounded on large corpora, and closing the iterator early cancels what is queued.
  """
  workers = (workers or int(os.environ.get('SER_JAX_DECODE_WORKERS', 0))
             or min(8, (os.cpu_count() or 1) * 2))
  window = 4 * workers
  it = iter(items)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    pending = collections.deque(pool.submit(fn, x) for x in itertools.islice(it, window))
    try:
      while pending:
        done = pending.popleft()
        for x in itertools.islice(it, 1):
          pending.append(pool.submit(fn, x))
        yield done.result()
    finally:
      for f in pending:
        f.cancel()


class SkipLog:
  """Counts and logs every file a builder does not turn into an example."""

  def __init__(self, corpus: str):
    self.corpus = corpus
    self.reasons = collections.Counter()
    self.examples = collections.defaultdict(list)
    self.notes = collections.Counter()   # kept files worth a mention (e.g. silent)
    self.skipped_files = []              # [(path, reason)], every one
    self.noted_files = []                # [(path, what)], every one
    self.ignored = collections.Counter()  # files not considered at all, by suffix

  def skip(self, path, reason: str):
    key = reason.split(':')[0]
    self.reasons[key] += 1
    if len(self.examples[key]) < 5:
      self.examples[key].append(str(path))
    self.skipped_files.append((str(path), reason))
    logging.warning('%s: skipping %s: %s', self.corpus, path, reason)

  def note(self, path, what: str):
    self.notes[what] += 1
    self.noted_files.append((str(path), what))
    logging.warning('%s: keeping %s, but it is %s', self.corpus, path, what)

  @property
  def total(self) -> int:
    return sum(self.reasons.values())

  def summary(self, kept: int) -> str:
    lines = [f'{self.corpus}: {kept} examples written, {self.total} files skipped.']
    for reason, n in self.reasons.most_common():
      lines.append(f'  skipped {n}: {reason} (e.g. {", ".join(self.examples[reason][:3])})')
    for what, n in self.notes.most_common():
      lines.append(f'  kept {n} that are {what}')
    if self.ignored:
      kinds = ', '.join(f'{k or "no suffix"} x{n}' for k, n in self.ignored.most_common(8))
      lines.append(f'  ignored {sum(self.ignored.values())} files that are not audio '
                   f'candidates ({kinds})')
    return '\n'.join(lines)

  def as_metadata(self, kept: int) -> dict:
    """JSON-able record of the build, for `DatasetInfo.metadata['build']`."""
    return {
        'examples': kept,
        'skipped': dict(self.reasons),
        'skipped_files': [list(x) for x in self.skipped_files],
        'notes': dict(self.notes),
        'noted_files': [list(x) for x in self.noted_files],
        'ignored': dict(self.ignored),
        'summary': self.summary(kept),
    }


class ManualDirError(FileNotFoundError):
  """`--manual_dir` is missing or holds something else. `tfds build` prints it
  as one paragraph, without a traceback (`_excepthook`), and the builder
  removes the empty folders TFDS made for the dataset (`ManualCorpusMixin`)."""


def _excepthook(kind, value, tb, previous=sys.excepthook):
  if isinstance(value, ManualDirError):
    print(f'error: {value}', file=sys.stderr)
    return
  previous(kind, value, tb)


# Only changes how an uncaught ManualDirError is printed (exit status stays 1).
sys.excepthook = _excepthook


def check_manual_dir(manual_dir, corpus: str, expected: str, found: Callable[[Any], bool]):
  """Fails at once, naming what was expected, if `manual_dir` is wrong."""
  path = epath.Path(manual_dir) if manual_dir else None
  if path is None or not path.exists():
    given = (f'--manual_dir {manual_dir!s} does not exist' if manual_dir and not
             str(manual_dir).rstrip('/').endswith('downloads/manual') else
             f'no --manual_dir was given (TFDS looked in {manual_dir!s})')
    raise ManualDirError(f'{corpus}: {given}. Pass the folder that holds {expected}.')
  if not found(path):
    raise ManualDirError(
        f'{corpus}: --manual_dir {manual_dir!s} does not look like {corpus}: expected '
        f'{expected}.')
  return path


# ---------------------------------------------------------------------------
# A shared driver for corpora read from --manual_dir: list the files, parse
# each name (skip what does not parse, counted), decode in threads (skip what
# does not decode, counted), yield examples, record and log a summary.

BUILD_METADATA_KEY = 'build'   # DatasetInfo.metadata[...] = SkipLog.as_metadata()


class Unparseable(ValueError):
  """A file whose name or place does not give its metadata; message = skip reason.

  `kind` heads the reason in the summary (e.g. 'unparseable name',
  'no demographics row', 'not audio-only speech').
  """

  def __init__(self, message: str, kind: str = 'unparseable name'):
    super().__init__(message)
    self.kind = kind


@dataclasses.dataclass(frozen=True)
class Parsed:
  """What a corpus's name parser returns for one file."""
  fields: dict            # every feature except audio, path and duration
  key: Any = None         # recording identity: a second file with the same key
                          # (a copy in another folder) is skipped as a duplicate
  notes: tuple = ()       # things worth a note if the file is kept


@dataclasses.dataclass(frozen=True)
class Candidate:
  path: str               # absolute path, for decoding
  rel: str                # relative to manual_dir (posix): example key and `path`
  fields: dict
  notes: tuple = ()


def manual_dir_of(dl_manager) -> epath.Path | None:
  """`--manual_dir` as given, leaving the "missing/wrong" message to check_manual_dir."""
  try:
    return dl_manager.manual_dir
  except (AssertionError, ValueError):   # TFDS's generic "missing or empty"
    return getattr(dl_manager, '_manual_dir', None)


def find_dirs(root, match: Callable[[str], bool], max_depth: int = 3) -> list[epath.Path]:
  """Folders under root (root included, depth <= max_depth) whose name matches."""
  root = epath.Path(root)
  found, level = [], [root]
  for _ in range(max_depth + 1):
    found += [d for d in level if match(d.name)]
    level = [c for d in level for c in sorted(d.iterdir()) if c.is_dir()]
  return found


def list_files(root, log: SkipLog, suffixes=('.wav',)) -> list[tuple[str, str]]:
  """(absolute, relative posix) of every file under root ending in a suffix
  (case-insensitive), sorted; symlinks followed. Other files are counted in
  `log.ignored`."""
  root = os.fspath(root)
  out, seen = [], set()
  for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
    real = os.path.realpath(dirpath)
    if real in seen:   # a symlink loop, or a folder linked twice
      dirnames[:] = []
      continue
    seen.add(real)
    dirnames.sort()
    for name in sorted(filenames):
      full = os.path.join(dirpath, name)
      suffix = os.path.splitext(name)[1].lower()
      if suffix in suffixes:
        out.append((full, os.path.relpath(full, root).replace(os.sep, '/')))
      else:
        log.ignored[suffix] += 1
  out.sort(key=lambda x: x[1])
  return out


def collect(files: Sequence[tuple[str, str]], parse: Callable[[str], Parsed],
            log: SkipLog) -> list[Candidate]:
  """Parses every file's relative path; skips (counted) what does not parse and
  later copies of the same recording (the shallowest path is kept)."""
  parsed = []
  for full, rel in files:
    parts = rel.split('/')
    if '__MACOSX' in parts or parts[-1].startswith('._'):
      log.skip(rel, 'macOS metadata file: not audio')
      continue
    try:
      p = parse(rel)
    except Unparseable as e:
      log.skip(rel, f'{e.kind}: {e}')
      continue
    parsed.append((full, rel, p))
  first = {}
  for full, rel, p in sorted(parsed, key=lambda x: (x[1].count('/'), x[1])):
    if p.key is not None:
      first.setdefault(p.key, (full, rel))
  out = []
  for full, rel, p in parsed:
    if p.key is not None and first[p.key][1] != rel:
      other_full, other = first[p.key]
      same = os.path.getsize(full) == os.path.getsize(other_full)
      log.skip(rel, f'duplicate recording: same recording as {other} '
                    f'({"same" if same else "different"} size)')
      continue
    out.append(Candidate(full, rel, p.fields, tuple(p.notes)))
  return out


def _load(candidate: Candidate, sample_rate: int = SAMPLE_RATE):
  try:
    return read_audio(candidate.path, sample_rate)
  except UnusableAudio as e:
    try:
      with open(candidate.path, 'rb') as f:
        head = f.read(64)
    except OSError:
      head = b''
    if head.startswith(b'version https://git-lfs'):
      return UnusableAudio('git-lfs pointer, not audio: fetch the audio with `git lfs pull`')
    return e
  except Exception as e:  # pylint: disable=broad-except  never crash half-way
    return UnusableAudio(f'error while decoding: {type(e).__name__}: {e}')


_RIFF_FORMATS = ('WAV', 'WAVEX', 'RF64', 'W64')


def generate_examples(candidates: Sequence[Candidate], log: SkipLog, info=None, *,
                      native_rate: int | None = None, workers: int | None = None,
                      sample_rate: int = SAMPLE_RATE):
  """(key, example) for every candidate that decodes, in order.

  Decodes in threads. Files that do not decode are skipped with their reason;
  kept files that are silent, multi-channel, not RIFF WAVE or not at
  `native_rate` are noted. At the end the summary is logged and stored in
  `info.metadata[BUILD_METADATA_KEY]` (if the info has a MetadataDict).
  """
  kept = 0
  load = functools.partial(_load, sample_rate=int(sample_rate))
  for c, res in zip(candidates, map_threaded(load, candidates, workers)):
    if isinstance(res, UnusableAudio):
      log.skip(c.rel, str(res))
      continue
    audio, ainfo = res
    for what in c.notes:
      log.note(c.rel, what)
    if ainfo['silent']:
      log.note(c.rel, 'all zeros (silent; kept: it is a corpus entry)')
    if ainfo['channels'] > 1:
      log.note(c.rel, f"{ainfo['channels']}-channel (down-mixed to mono)")
    if ainfo['format'] not in _RIFF_FORMATS:
      log.note(c.rel, f"{ainfo['format']} data, not RIFF WAVE (read by content)")
    if native_rate and ainfo['sample_rate'] != native_rate:
      log.note(c.rel, f"at {ainfo['sample_rate']} Hz, not the corpus's "
                      f'{native_rate} Hz (resampled)')
    kept += 1
    yield c.rel, {**c.fields, 'audio': audio, 'path': c.rel,
                  'duration': np.float32(len(audio) / sample_rate)}
  if info is not None and isinstance(info.metadata, dict):
    info.metadata[BUILD_METADATA_KEY] = log.as_metadata(kept)
  logging.info('%s', log.summary(kept))
  if not kept:
    raise RuntimeError(f'{log.corpus}: no usable file.\n{log.summary(kept)}')


class ManualCorpusMixin:
  """For builders of corpora under `--manual_dir`: `download_and_prepare` ends by
  logging the build summary (what was skipped and why, for builders that use
  `generate_examples`), also when the dataset was prepared before; a wrong
  `--manual_dir` leaves no empty dataset folder behind. Each builder declares
  MANUAL_DIR_HINT, the folder its messages suggest for --manual_dir."""

  MANUAL_DIR_HINT = '~/corpora/CORPUS'
  # `tfds build ... --config=22k` stores 22,050 Hz audio (the papers' librosa rate).
  BUILDER_CONFIGS = audio_configs()
  DEFAULT_CONFIG_NAME = '16k'

  @property
  def sample_rate(self) -> int:
    return sample_rate_of(self)

  @classmethod
  def build_command(cls, config: str = '', data_dir: str | None = None) -> str:
    """The `tfds build` command that prepares this corpus."""
    folder = os.path.basename(os.path.dirname(inspect.getfile(cls)))
    cmd = f'tfds build tfds_builders/{folder}'
    config = config or (cls.DEFAULT_CONFIG_NAME if cls.BUILDER_CONFIGS else '')
    if config:   # without --config, `tfds build` builds every config
      cmd += f' --config={config_arg(config)}'
    cmd += f' --manual_dir={cls.MANUAL_DIR_HINT}'
    if data_dir:
      cmd += f' --data_dir={data_dir}'
    return cmd

  def download_and_prepare(self, *args, **kwargs):
    try:
      result = super().download_and_prepare(*args, **kwargs)
    except ManualDirError:
      self._remove_empty_folders()
      raise
    metadata = self.info.metadata
    build = metadata.get(BUILD_METADATA_KEY) if isinstance(metadata, dict) else None
    if build:
      logging.warning('%s %s build summary:\n%s', self.name, self.version,
                      build['summary'])
    return result

  def _remove_empty_folders(self):
    """The dataset's folders under the data dir that TFDS created before the
    manual folder was checked, if they hold nothing (innermost first; local
    disks only), and TFDS's record of the default config (`.config/metadata.json`)
    when no config of the dataset is left."""
    root = os.fspath(self.data_dir_root)
    dataset = os.path.join(root, self.name)
    record = os.path.join(dataset, '.config')
    inner = [d for d, _, _ in os.walk(dataset, topdown=False)] if os.path.isdir(dataset) else []
    for folder in inner + [os.path.join(root, 'downloads', 'extracted'),
                           os.path.join(root, 'downloads')]:
      try:
        if folder == dataset and os.listdir(folder) == ['.config'] and \
            os.listdir(record) == ['metadata.json']:
          os.remove(os.path.join(record, 'metadata.json'))
          os.rmdir(record)
        if os.path.isdir(folder) and not os.listdir(folder):
          os.rmdir(folder)
      except OSError:
        pass


# ---------------------------------------------------------------------------
# Dummy corpora (tests, benchmarks): small audio files with real-world quirks.

def dummy_signal(seconds: float, rate: int, seed: int, channels: int = 1) -> np.ndarray:
  """A short tone plus noise, float32 (frames, channels) in [-0.5, 0.5]."""
  rng = np.random.default_rng(seed)
  n = max(1, int(round(seconds * rate)))
  t = np.arange(n) / rate
  x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t) + 0.05 * rng.standard_normal(n)
  out = np.stack([x * (1 - 0.3 * c) for c in range(channels)], axis=1)
  return out.astype(np.float32)


def _chunk(cid: bytes, body: bytes) -> bytes:
  import struct  # pylint: disable=g-import-not-at-top
  return cid + struct.pack('<I', len(body)) + body + (b'\0' if len(body) % 2 else b'')


def write_audio(path, data: np.ndarray, rate: int, *, extra_chunks: bool = False,
                fmt: str = 'WAV', subtype: str = 'PCM_16') -> None:
  """Writes data (frames[, channels]) to path as `fmt` whatever the name says.

  extra_chunks: a WAV with odd-sized JUNK, LIST and bext chunks before `fmt `/
  `data` and id3/LIST chunks after `data`, as some corpora ship.
  """
  import io  # pylint: disable=g-import-not-at-top
  import struct  # pylint: disable=g-import-not-at-top
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  path = os.fspath(path)
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  if not extra_chunks:
    sf.write(path, data, rate, format=fmt, subtype=subtype)
    return
  buf = io.BytesIO()
  sf.write(buf, data, rate, format='WAV', subtype=subtype)
  raw, chunks, pos = buf.getvalue(), {}, 12
  while pos + 8 <= len(raw):
    cid, size = raw[pos:pos + 4], struct.unpack('<I', raw[pos + 4:pos + 8])[0]
    chunks[cid] = raw[pos + 8:pos + 8 + size]
    pos += 8 + size + size % 2
  info = b'INFOISFT' + struct.pack('<I', 13) + b'Lavf58.29.100\0'
  body = (b'WAVE' + _chunk(b'JUNK', b'\0' * 27) + _chunk(b'fmt ', chunks[b'fmt '])
          + _chunk(b'LIST', info) + _chunk(b'bext', b'x' * 31)
          + _chunk(b'data', chunks[b'data'])
          + _chunk(b'id3 ', b'ID3\x03\0\0\0\0\0\0') + _chunk(b'LIST', info))
  with open(path, 'wb') as f:
    f.write(b'RIFF' + struct.pack('<I', len(body)) + body)
