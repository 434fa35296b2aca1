"""The 173 statistics of Gomes et al.'s SVM, with librosa on the CPU, cached.

Per waveform, the means over time of (columns in this order, `SLICES`):

  mfcc      0:20     librosa.feature.mfcc(y, sr, n_mfcc=20)
  mel      20:148    librosa.feature.melspectrogram(y, sr) (128 Mel, power)
  chroma  148:160    librosa.feature.chroma_stft(S=|stft(y)|, sr) (librosa's
                     per-file tuning estimate, as the paper's librosa calls)
  contrast 160:167   librosa.feature.spectral_contrast(S=|stft(y)|, sr)
  tonnetz 167:173    librosa.feature.tonnetz(y=librosa.effects.harmonic(y), sr)

i.e. the common librosa recipe the paper follows ("means of each row ...
173 attributes"), all with librosa's default STFT (n_fft 2048, hop 512), on
the 2.5 s from 0.5 s of each recording (the paper's offset and duration).

`svm_features(waveforms, sr)` -> float32 `[N, 173]`; results are cached on
disk, one .npy per waveform written as soon as it is computed (an interrupted
run keeps what it finished), keyed by a SHA-256 of (audio bytes, dtype, shape,
sample rate, parameters, version), under `cache_dir` (default
`$SER_JAX_CACHE/svm_features` or `~/.cache/ser_jax/svm_features`; pass
`cache_dir=False` to disable). Uncached waveforms are computed in parallel
with `joblib.Parallel` over `num_workers` loky processes (fresh interpreters,
so safe with JAX in the parent, and kept for the next call) when there are
enough of them (64) to pay for the workers' start-up (~2 s), with progress,
rate and ETA in the log.

Speed (`benchmarks/svm_features.py`): the values equal the recipe's plain
librosa calls (`feature_vector_librosa`, bitwise on real clips) at ~40 instead
of ~100 ms a file on one core: one STFT feeds every statistic and the HPSS,
the HPSS median filters are a selection over sliding windows, and the workers
use librosa's own filter cache (`$SER_JAX_CACHE/librosa`, up to ~200 MB).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import joblib
import numpy as np
import tqdm

# librosa is imported inside the functions that use it: it is heavy, and a
# worker must set LIBROSA_CACHE_DIR (`_init_worker`) before librosa is imported.

NUM_FEATURES = 173
SLICES = {
    'mfcc': slice(0, 20),
    'mel': slice(20, 148),
    'chroma': slice(148, 160),
    'contrast': slice(160, 167),
    'tonnetz': slice(167, 173),
}
DEFAULTS = dict(
    offset_seconds=0.5,     # librosa.load(offset=0.5, duration=2.5) in the paper
    duration_seconds=2.5,   # None: to the end
    n_mfcc=20,
    n_mels=128,
    n_fft=2048,
    hop_length=512,
    harmonic_tonnetz=True,  # tonnetz of the harmonic part (HPSS), as the recipe
)
_VERSION = 1
# Below this many uncached waveforms (~0.1 s each), spawning workers (~3 s) does not pay.
_MIN_PARALLEL = 64


def default_cache_dir() -> Path:
  root = os.environ.get('SER_JAX_CACHE')
  base = Path(root) if root else Path.home() / '.cache' / 'ser_jax'
  return base / 'svm_features'


def _params(overrides: dict) -> dict:
  unknown = set(overrides) - set(DEFAULTS)
  if unknown:
    raise TypeError(f'unknown svm_features parameters: {sorted(unknown)}')
  p = dict(DEFAULTS)
  p.update(overrides)
  return p


def cache_key(y: np.ndarray, sr: int, params: dict) -> str:
  """SHA-256 hex of the raw audio (bytes, dtype, shape), sr and parameters."""
  y = np.ascontiguousarray(y)
  h = hashlib.sha256()
  h.update(json.dumps({'v': _VERSION, 'sr': int(sr), 'dtype': y.dtype.str,
                       'shape': list(y.shape), 'params': params},
                      sort_keys=True).encode())
  h.update(y.tobytes())
  return h.hexdigest()


def _to_float(y: np.ndarray) -> np.ndarray:
  y = np.asarray(y)
  if y.dtype == np.int16:
    return y.astype(np.float32) / 32768.0
  if np.issubdtype(y.dtype, np.integer):
    raise TypeError(f'integer audio must be int16, got {y.dtype}')
  return y.astype(np.float32)


def _clip(y: np.ndarray, sr: int, p: dict) -> np.ndarray:
  """The analysed part of a waveform: `duration_seconds` from `offset_seconds`,
  zero-padded to one window when shorter (or past its end)."""
  y = _to_float(y)
  if y.ndim != 1:
    raise ValueError(f'waveform must be 1-D, got {y.shape}')
  y = y[int(round(p['offset_seconds'] * sr)):]
  if p['duration_seconds'] is not None:
    y = y[:int(round(p['duration_seconds'] * sr))]
  if len(y) < int(p['n_fft']):
    y = np.pad(y, (0, int(p['n_fft']) - len(y)))
  return y


def _median_filter(x: np.ndarray, size: int, axis: int) -> np.ndarray:
  """`scipy.ndimage.median_filter(x, size along axis, mode='reflect')` of a 2-D
  array, exactly (the median of the same values): a selection over sliding
  windows, 3-4x faster for the HPSS (hand-written for speed only)."""
  if axis == 1:   # windows along the rows run faster on the transposed copy
    return _median_filter(np.ascontiguousarray(x.T), size, 0).T
  half = size // 2
  padded = np.pad(x, ((half, size - 1 - half), (0, 0)), mode='symmetric')
  windows = np.lib.stride_tricks.sliding_window_view(padded, size, axis=0)
  return np.partition(windows, half, axis=-1)[..., half]


def _harmonic(stft: np.ndarray, length: int, dtype, n_fft: int, hop: int) -> np.ndarray:
  """`librosa.effects.harmonic(y)` from the STFT of y with librosa's
  defaults (kernel 31, power 2, margin 1), the median filters above."""
  import librosa

  mag, phase = librosa.magphase(stft)
  harm = _median_filter(mag, 31, axis=1)     # along time
  perc = _median_filter(mag, 31, axis=0)     # along frequency
  mask = librosa.util.softmask(harm, perc, power=2.0, split_zeros=True)
  return librosa.istft(mag * mask * phase, n_fft=n_fft, hop_length=hop, length=length,
                       dtype=dtype)


def _row_means(*parts) -> np.ndarray:
  """The vector of row means of each feature matrix, in `SLICES` order."""
  vec = np.concatenate([np.mean(a, axis=1) for a in parts])
  return np.nan_to_num(vec).astype(np.float32)


def feature_vector(y: np.ndarray, sr: int, **overrides) -> np.ndarray:
  """The statistics of one waveform (int16 or float), float32 `[173]`
  (`n_mfcc + n_mels + 25` with other sizes).

  Equal (to float rounding) to `feature_vector_librosa`, the plain librosa
  calls, in about half the time: one STFT feeds the Mel spectrogram, MFCC,
  chroma, contrast and the HPSS (whose median filters are `_median_filter`).
  """
  import librosa

  p = _params(overrides)
  y = _clip(y, sr, p)
  n_fft, hop, n_mels = int(p['n_fft']), int(p['hop_length']), int(p['n_mels'])
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # e.g. tuning estimate on silence
    stft = librosa.stft(y, n_fft=n_fft, hop_length=hop)
    mag = np.abs(stft)
    mel = librosa.feature.melspectrogram(S=mag ** 2, sr=sr, n_fft=n_fft, n_mels=n_mels)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=int(p['n_mfcc']))
    chroma = librosa.feature.chroma_stft(S=mag, sr=sr, n_fft=n_fft, hop_length=hop)
    contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=n_fft,
                                                 hop_length=hop)
    harm = (_harmonic(stft, len(y), y.dtype, n_fft, hop) if p['harmonic_tonnetz']
            else y)
    tonnetz = librosa.feature.tonnetz(y=harm, sr=sr)
  return _row_means(mfcc, mel, chroma, contrast, tonnetz)


def feature_vector_librosa(y: np.ndarray, sr: int, **overrides) -> np.ndarray:
  """`feature_vector` by the recipe's own librosa calls, one per statistic
  (the reference the fast path is tested against)."""
  import librosa

  p = _params(overrides)
  y = _clip(y, sr, p)
  n_fft, hop = int(p['n_fft']), int(p['hop_length'])
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    mag = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop))
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=int(p['n_mfcc']),
                                n_fft=n_fft, hop_length=hop,
                                n_mels=int(p['n_mels']))
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft,
                                         hop_length=hop, n_mels=int(p['n_mels']))
    chroma = librosa.feature.chroma_stft(S=mag, sr=sr, n_fft=n_fft,
                                         hop_length=hop)
    contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=n_fft,
                                                 hop_length=hop)
    harm = librosa.effects.harmonic(y) if p['harmonic_tonnetz'] else y
    tonnetz = librosa.feature.tonnetz(y=harm, sr=sr)
  return _row_means(mfcc, mel, chroma, contrast, tonnetz)


def _init_worker(librosa_cache: Optional[str]):
  """A worker process: librosa's own on-disk cache (joblib) for its filters,
  so that the CQT filter bank of tonnetz, which depends only on the per-file
  tuning estimate (0.01-bin steps), is built once per tuning value instead of
  per file (tonnetz 37 -> 15 ms a file). librosa reads LIBROSA_CACHE_DIR on
  import."""
  if librosa_cache and 'librosa' not in sys.modules:
    os.environ.setdefault('LIBROSA_CACHE_DIR', librosa_cache)


def _work(args):
  y, sr, params = args
  return feature_vector(y, sr, **params)


def _indexed(work, i: int, job):
  return i, work(job)


class _Progress:
  """Progress of a long map: a tqdm bar on a terminal, else one log line
  every `every` seconds, each with the rate and the ETA. The rate counts from
  the first finished result, so the workers' start-up (seconds of pool and
  import before any result) does not make the first ETA hours long."""

  def __init__(self, total: int, what: str, every: float = 15.0):
    self.total, self.what, self.every = total, what, every
    self.done, self.t0 = 0, time.time()
    self._last = self.t0
    self._first = None   # (time, done) at the first finished result
    self._bar = None
    if sys.stderr.isatty():
      self._bar = tqdm.tqdm(total=total, unit='file', desc=what, leave=False)

  def update(self, n: int = 1):
    self.done += n
    if self._bar is not None:
      self._bar.update(n)
      return
    now = time.time()
    if self._first is None:
      self._first = (now, self.done)
    if now - self._last >= self.every or self.done == self.total:
      self._last = now
      head = f'{self.what}: {self.done}/{self.total} ({100 * self.done / self.total:.0f}%)'
      t1, done1 = self._first
      if self.done > done1 and now > t1:
        rate = (self.done - done1) / (now - t1)
        eta = (self.total - self.done) / rate
        logging.info('%s, %.1f/s, ETA %s', head, rate,
                     time.strftime('%H:%M:%S', time.gmtime(eta)))
      elif self.done == self.total:
        logging.info('%s in %.1fs, ETA 00:00:00', head, now - self.t0)
      else:
        logging.info('%s, first result after %.1fs', head, now - self.t0)

  def close(self):
    if self._bar is not None:
      self._bar.close()


def _results(work, pending: list, num_workers: int, min_parallel: int,
             initializer=None, initargs=()):
  """(position in `pending`, result) pairs as results finish: with
  `joblib.Parallel` over `num_workers` loky processes (one BLAS thread each)
  when there are at least `min_parallel` jobs, else lazily here."""
  if num_workers <= 1 or len(pending) < min_parallel:
    return ((i, work(job)) for i, job in enumerate(pending))
  with joblib.parallel_config(backend='loky', inner_max_num_threads=1):
    return joblib.Parallel(n_jobs=num_workers, return_as='generator_unordered',
                           max_nbytes=None, initializer=initializer, initargs=initargs)(
        joblib.delayed(_indexed)(work, i, job) for i, job in enumerate(pending))


# The cache stays one .npy per result at the caller's path (svm.py keys its
# augmented cache itself), written atomically and read without pickle, and old
# caches stay valid: joblib.Memory keys calls by its own hash under its own
# layout, and joblib.load unpickles.
def _load(path: Path) -> Optional[np.ndarray]:
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError):
    return None


def _save(path: Path, vec: np.ndarray) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, suffix='.tmp')
  try:
    with os.fdopen(fd, 'wb') as f:
      np.save(f, vec, allow_pickle=False)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def svm_features(waveforms: Sequence[np.ndarray], sr: int, *,
                 cache_dir: Union[str, os.PathLike, None, bool] = None,
                 num_workers: int = 2, **overrides) -> np.ndarray:
  """float32 `[N, 173]` statistics of N waveforms (int16 or float, 1-D).

  Args:
    waveforms: the recordings (any lengths).
    sr: their sample rate.
    cache_dir: directory of the on-disk cache (None: `default_cache_dir()`;
      False: no cache).
    num_workers: processes for the uncached waveforms (1: in this process).
    **overrides: fields of `DEFAULTS` (offset_seconds, duration_seconds,
      n_mfcc, n_mels, n_fft, hop_length, harmonic_tonnetz).
  """
  params = _params(overrides)
  n_out = int(params['n_mfcc']) + int(params['n_mels']) + 25
  if cache_dir is False:
    root = None
  else:
    root = Path(cache_dir) if cache_dir not in (None, True) else default_cache_dir()
  paths = [None if root is None else cache_path(root, cache_key(np.asarray(y), sr, params))
           for y in waveforms]
  jobs = [(np.asarray(y), int(sr), params) for y in waveforms]
  librosa_cache = None if root is None else str(Path(root).parent / 'librosa')
  vecs = cached_map(_work, jobs, paths, num_workers, _MIN_PARALLEL,
                    valid=lambda v: v.shape == (n_out,), initializer=_init_worker,
                    initargs=(librosa_cache,))
  return np.stack(vecs).astype(np.float32) if vecs else np.zeros((0, n_out), np.float32)


def cache_path(root: Path, key: str) -> Path:
  return Path(root) / key[:2] / f'{key}.npy'


def cached_map(work, jobs: Sequence, paths: Sequence[Optional[Path]], num_workers: int,
               min_parallel: int, valid=lambda v: True, what: str = 'svm statistics',
               initializer=None, initargs=()) -> list:
  """[work(job) for job in jobs], each result read from its .npy `paths[i]`
  when there (and `valid`), else computed and written there atomically as
  soon as it is done (None: not cached), so an interrupted run keeps what it
  finished and the next one resumes. The missing ones run with
  `joblib.Parallel` in `num_workers` loky processes when there are at least
  `min_parallel` (`work` is pickled with cloudpickle; `initializer(*initargs)`
  starts each worker), else in this process; progress is logged with rate and
  ETA."""
  out = [None] * len(jobs)
  todo = []
  for i, path in enumerate(paths):
    vec = _load(path) if path is not None and path.exists() else None
    if vec is not None and valid(vec):
      out[i] = vec
    else:
      todo.append(i)
  if not todo:
    return out
  if len(todo) < len(jobs):
    logging.info('%s: %d of %d cached, computing %d', what, len(jobs) - len(todo),
                 len(jobs), len(todo))
  progress = _Progress(len(todo), what)
  results = _results(work, [jobs[i] for i in todo], num_workers, min_parallel,
                     initializer, initargs)
  try:
    for k, vec in results:
      i = todo[k]
      out[i] = vec
      if paths[i] is not None:
        _save(paths[i], vec)
      progress.update()
  finally:
    with warnings.catch_warnings():   # joblib's "tasks ... not used" on an interrupt
      warnings.simplefilter('ignore')
      results.close()   # stops the workers at once if interrupted
    progress.close()
  return out
