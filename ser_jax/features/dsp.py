"""librosa-matching DSP in pure JAX: windows, framing, STFT, power, Mel,
log-Mel, dB, DCT / MFCC, zero-crossing rate, chroma, deltas and frame masks.

Every transform works on a batch of float32 waveforms (or spectra) and agrees
with librosa 0.11 (see tests/test_features.py for the parity checks).

Layout convention: time comes *before* frequency. `stft` returns
`[..., T, n_fft // 2 + 1]` and `mel_spectrogram` returns `[..., T, n_mels]`,
i.e. the transpose of librosa's `[..., F, T]`.

Numpy constants (window, Mel / chroma / DCT matrices, Savitzky-Golay
coefficients) are built once per configuration (`functools.lru_cache`) and
captured as constants, so their parameters are static Python values.
"""

from __future__ import annotations

import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import scipy.fft
import scipy.signal
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec

Array = jax.Array

# Precision of the matmuls with filterbank and DCT matrices: full float32 (no
# bfloat16 / TF32 passes on accelerators).
HIGHEST = jax.lax.Precision.HIGHEST

# ---------------------------------------------------------------------------
# STFT
# ---------------------------------------------------------------------------


def hashable_window(window):
  """A window spec usable as a cache key (a list of samples becomes a tuple)."""
  return tuple(window) if isinstance(window, list) else window


@functools.lru_cache(maxsize=64)
def _fft_window_cached(window, win_length: int, n_fft: int) -> np.ndarray:
  win = scipy.signal.get_window(window, win_length, fftbins=True)
  if win_length > n_fft:
    raise ValueError(f'win_length={win_length} must be <= n_fft={n_fft}')
  # librosa.util.pad_center: left pad = (n - len) // 2.
  lpad = (n_fft - win_length) // 2
  out = np.zeros(n_fft, dtype=np.float64)
  out[lpad:lpad + win_length] = win
  out = out.astype(np.float32)
  out.setflags(write=False)
  return out


def fft_window(window='hamming', win_length: Optional[int] = None,
               n_fft: int = 512) -> np.ndarray:
  """Analysis window of `win_length`, zero-padded centred to `n_fft` (librosa)."""
  win_length = n_fft if win_length is None else int(win_length)
  return _fft_window_cached(hashable_window(window), win_length, int(n_fft))


def stft_num_frames(num_samples: int, n_fft: int, hop_length: int,
                    center: bool = True) -> int:
  """Number of STFT frames librosa produces for a signal of `num_samples`."""
  padded = num_samples + 2 * (n_fft // 2) if center else num_samples
  if padded < n_fft:
    raise ValueError(
        f'signal of {num_samples} samples is too short for n_fft={n_fft} '
        f'(center={center})')
  return 1 + (padded - n_fft) // hop_length


def frame_signal(x: Array, frame_length: int, hop_length: int,
                 max_frames: Optional[int] = None) -> Array:
  """`x[..., N]` -> frames `[..., T, frame_length]`, T = 1 + (N - L) // hop
  (at most max_frames).

  Each frame is one contiguous slice (a gather of `frame_length`-long
  slices, not of single samples: ~5x faster on CPU).
  """
  n = x.shape[-1]
  num = 1 + (n - frame_length) // hop_length
  if max_frames is not None:
    num = min(num, int(max_frames))
  if num < 1:
    raise ValueError(f'signal of {n} samples has no frame of {frame_length}')
  lead = x.shape[:-1]
  flat = x.reshape((-1, n))
  starts = jnp.asarray(np.arange(num) * hop_length, jnp.int32)

  def row_frames(row):
    return jax.vmap(
        lambda s: jax.lax.dynamic_slice_in_dim(row, s, frame_length))(starts)

  frames = jax.vmap(row_frames)(flat)  # [M, T, L]
  return frames.reshape(lead + (num, frame_length))


# Whether `stft` gives its FFT a partitioning rule when several devices are
# visible (see `_rfft_last`). The rule is a Python callback at compile time, so
# it cannot be serialised: it is never used for symbolic (export-polymorphic)
# shapes, and this switch turns it off for any other export.
SPMD_FFT = True


def _use_spmd_fft(x) -> bool:
  return (SPMD_FFT and all(isinstance(d, int) for d in x.shape)
          and jax.device_count() > 1)


def _lead_sharded(mesh, sharding, ndim: int):
  """`sharding`'s partitioning of every axis but the last (replicated)."""
  spec = getattr(sharding, 'spec', None)
  if spec is None or not isinstance(sharding, NamedSharding):
    return NamedSharding(mesh, PartitionSpec())
  spec = tuple(spec) + (None,) * (ndim - len(spec))
  return NamedSharding(mesh, PartitionSpec(*spec[:-1], None))


@functools.lru_cache(maxsize=None)
def _rfft_last(n: int) -> Callable[[Array], Array]:
  """`jnp.fft.rfft(x, n, axis=-1)` that XLA's SPMD partitioner keeps split.

  Left alone, both partitioners (Shardy and GSPMD) all-gather an FFT's
  operand, so under data parallelism every device would gather the frames of
  the whole global batch and transform all of them. A transform over the
  last axis is independent over the leading ones, which is what the
  custom partitioning rule says; custom_vmap keeps it vmappable.
  """
  @custom_partitioning
  def cp(x):
    return jnp.fft.rfft(x, n=n, axis=-1)

  def infer(mesh, arg_shapes, result_shape):
    a = arg_shapes[0]
    return _lead_sharded(mesh, a.sharding, len(a.shape))

  def partition(mesh, arg_shapes, result_shape):
    a = arg_shapes[0]
    sh = _lead_sharded(mesh, a.sharding, len(a.shape))
    return mesh, lambda x: jnp.fft.rfft(x, n=n, axis=-1), sh, (sh,)

  cp.def_partition(infer_sharding_from_operands=infer, partition=partition,
                   sharding_rule='... i -> ... j')

  @jax.custom_batching.custom_vmap
  def fn(x):
    return cp(x)

  @fn.def_vmap
  def _vmap_rule(axis_size, in_batched, x):
    del axis_size, in_batched  # batched along axis 0: still leading
    return fn(x), True

  return fn


def stft(x: Array, *, n_fft: int = 512, hop_length: Optional[int] = None,
         win_length: Optional[int] = None, window='hann', center: bool = True,
         pad_mode: str = 'constant', max_frames: Optional[int] = None) -> Array:
  """Short-time Fourier transform with librosa's framing.

  Args:
    x: float waveform(s) `[..., N]` (cast to float32).
    n_fft, hop_length, win_length, window, center, pad_mode: as in
      `librosa.stft` (hop defaults to win_length // 4, win_length to n_fft).
      With `center`, the signal is padded by n_fft // 2 on both sides with
      `jnp.pad(mode=pad_mode)`; frame t is centred on sample t * hop_length.
    max_frames: keep (and compute) only the first max_frames frames.

  Returns:
    complex64 `[..., T, n_fft // 2 + 1]` (time before frequency; the
    transpose of librosa's layout).
  """
  win_length = n_fft if win_length is None else int(win_length)
  hop_length = win_length // 4 if hop_length is None else int(hop_length)
  x = jnp.asarray(x, jnp.float32)
  if center:
    pad = [(0, 0)] * (x.ndim - 1) + [(n_fft // 2, n_fft // 2)]
    x = jnp.pad(x, pad, mode=pad_mode)
  if x.shape[-1] < n_fft:
    raise ValueError(
        f'input of length {x.shape[-1]} (after centring) < n_fft={n_fft}')
  frames = frame_signal(x, n_fft, hop_length, max_frames)
  win = jnp.asarray(fft_window(window, win_length, n_fft))
  frames = frames * win
  if _use_spmd_fft(frames):
    return _rfft_last(int(n_fft))(frames)
  return jnp.fft.rfft(frames, n=n_fft, axis=-1)


def power_spectrogram(spec: Array, power: float = 2.0) -> Array:
  """|spec| ** power (power 2 computed as re^2 + im^2)."""
  if power == 2.0:
    return jnp.square(spec.real) + jnp.square(spec.imag)
  mag = jnp.abs(spec)
  return mag if power == 1.0 else mag ** power


# ---------------------------------------------------------------------------
# Mel
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _mel_cached(sr, n_fft, n_mels, fmin, fmax) -> np.ndarray:
  import librosa  # Lazy: ~1 s to import, only needed to build the constant.
  m = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                          fmax=fmax, dtype=np.float32)
  m = np.ascontiguousarray(m.T)  # [n_fft // 2 + 1, n_mels]
  m.setflags(write=False)
  return m


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: Optional[float] = None) -> np.ndarray:
  """librosa's (Slaney-normalised) Mel matrix, transposed: `[F, n_mels]`.

  Cached numpy float32 constant. `fmax=None` means sr / 2.
  """
  fmax = float(sr) / 2 if fmax is None else float(fmax)
  return _mel_cached(int(sr), int(n_fft), int(n_mels), float(fmin), fmax)


def mel_spectrogram(power_spec: Array, mel_matrix) -> Array:
  """`[..., T, F]` power spectrogram x `[F, n_mels]` -> `[..., T, n_mels]`."""
  return jnp.matmul(power_spec, jnp.asarray(mel_matrix, jnp.float32),
                    precision=HIGHEST)


def log_mel(mel: Array, eps: float = 1e-6) -> Array:
  """Natural log of (mel + eps)."""
  return jnp.log(mel + eps)


# ---------------------------------------------------------------------------
# dB, MFCC, zero-crossing rate, chroma
# ---------------------------------------------------------------------------


def power_to_db(s: Array, *, ref=1.0, amin: float = 1e-10,
                top_db: Optional[float] = 80.0, axes=(-2, -1)) -> Array:
  """`librosa.power_to_db`, per example.

  10 * log10(max(amin, s)) - 10 * log10(max(amin, ref)), then floored at
  (its max - top_db). librosa takes the max (for ``ref=np.max`` and for
  top_db) over its whole input, i.e. one clip; here both maxima are over
  `axes` only (default the last two, `[T, F]`), so each example of a batch
  `[B, T, F]` is scaled as librosa scales that clip alone.

  Args:
    s: power (e.g. Mel power `[..., T, F]`), >= 0.
    ref: a number, or 'max' (librosa's ``ref=np.max``: per-example max).
    amin, top_db: as in librosa (top_db None: no floor).
  """
  s = jnp.asarray(s, jnp.float32)
  if not amin > 0:
    raise ValueError('amin must be strictly positive')
  log_spec = 10.0 * jnp.log10(jnp.maximum(amin, s))
  if isinstance(ref, str) and ref == 'max':
    ref_val = jnp.max(s, axis=axes, keepdims=True)
    log_spec = log_spec - 10.0 * jnp.log10(jnp.maximum(amin, ref_val))
  else:
    ref_db = 10.0 * np.log10(max(float(amin), abs(float(ref))))
    if ref_db != 0.0:
      log_spec = log_spec - np.float32(ref_db)
  if top_db is not None:
    if top_db < 0:
      raise ValueError('top_db must be non-negative')
    floor = jnp.max(log_spec, axis=axes, keepdims=True) - float(top_db)
    log_spec = jnp.maximum(log_spec, floor)
  return log_spec


@functools.lru_cache(maxsize=64)
def _dct_cached(n_in: int, n_out: int, lifter: float) -> np.ndarray:
  d = scipy.fft.dct(np.eye(n_in), type=2, norm='ortho', axis=0)  # [k, n]
  d = d[:n_out].T  # [n_in, n_out]: y = x @ d
  if lifter > 0:
    k = np.arange(1, n_out + 1, dtype=np.float64)
    d = d * (1.0 + (lifter / 2.0) * np.sin(np.pi * k / lifter))[None, :]
  elif lifter < 0:
    raise ValueError('MFCC lifter must be non-negative')
  out = np.ascontiguousarray(d, dtype=np.float32)
  out.setflags(write=False)
  return out


def dct_matrix(n_in: int, n_out: int, lifter: float = 0.0) -> np.ndarray:
  """`[n_in, n_out]` matrix D with `x @ D == scipy.fft.dct(x, type=2,
  norm='ortho')[..., :n_out]` (times librosa's liftering when lifter > 0)."""
  if not 0 < n_out <= n_in:
    raise ValueError(f'need 0 < n_mfcc={n_out} <= n_mels={n_in}')
  return _dct_cached(int(n_in), int(n_out), float(lifter))


def mfcc_from_mel(mel_power: Array, *, n_mfcc: int = 20, top_db: Optional[float] = 80.0,
                  amin: float = 1e-10, lifter: float = 0.0) -> Array:
  """`librosa.feature.mfcc(S=librosa.power_to_db(mel))` on our layout.

  mel_power `[..., T, n_mels]` -> `[..., T, n_mfcc]`: dB with ref=1.0 (and
  the per-example top_db floor over `[T, n_mels]`), then DCT-II ortho over
  the Mel axis, first n_mfcc coefficients.
  """
  db = power_to_db(mel_power, ref=1.0, amin=amin, top_db=top_db)
  d = dct_matrix(mel_power.shape[-1], int(n_mfcc), float(lifter))
  return jnp.matmul(db, jnp.asarray(d), precision=HIGHEST)


def mfcc(x: Array, *, sr: int = 22050, n_mfcc: int = 20, n_fft: int = 2048,
         hop_length: Optional[int] = None, win_length: Optional[int] = None,
         window='hann', center: bool = True, pad_mode: str = 'constant',
         n_mels: int = 128, fmin: float = 0.0, fmax: Optional[float] = None,
         top_db: Optional[float] = 80.0, amin: float = 1e-10,
         lifter: float = 0.0) -> Array:
  """`librosa.feature.mfcc(y=x, ...)` (power-2 Mel, Slaney norm), `[..., T, n_mfcc]`.

  Defaults are librosa's (hop = n_fft // 4 when None).
  """
  spec = stft(x, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
              window=hashable_window(window), center=center, pad_mode=pad_mode)
  mel = mel_spectrogram(power_spectrogram(spec),
                        mel_filterbank(sr, n_fft, n_mels, fmin, fmax))
  return mfcc_from_mel(mel, n_mfcc=n_mfcc, top_db=top_db, amin=amin,
                       lifter=lifter)


def zero_crossing_rate(x: Array, *, frame_length: int = 2048, hop_length: int = 512,
                       center: bool = True, threshold: float = 1e-10) -> Array:
  """`librosa.feature.zero_crossing_rate` (defaults included), `[..., T]`.

  librosa: with `center`, pad frame_length // 2 samples on both sides with
  mode='edge' (repeat the end samples; the STFT pads zeros instead), frame,
  then per frame the mean over its frame_length positions of
  `zero_crossings(pad=False, threshold=1e-10, zero_pos=True)`: position 0
  of every frame counts as no crossing, and position i > 0 is a crossing iff
  samples i - 1 and i fall on different sides, |x| <= threshold counting as
  positive (so the sign is just `x < -threshold`). Computed here with a
  cumulative sum of sample-level crossings (exact, integer).
  """
  x = jnp.asarray(x, jnp.float32)
  if center:
    pad = [(0, 0)] * (x.ndim - 1) + [(frame_length // 2, frame_length // 2)]
    x = jnp.pad(x, pad, mode='edge')
  n = x.shape[-1]
  if n < frame_length:
    raise ValueError(f'input of length {n} (after centring) < frame_length')
  num = 1 + (n - frame_length) // hop_length
  neg = x < -float(threshold)
  cross = (neg[..., 1:] != neg[..., :-1]).astype(jnp.int32)  # at 1..n-1
  csum = jnp.concatenate(
      [jnp.zeros(x.shape[:-1] + (1,), jnp.int32), jnp.cumsum(cross, axis=-1)],
      axis=-1)  # csum[i] = crossings at positions 1..i
  starts = np.arange(num, dtype=np.int32) * hop_length
  count = csum[..., starts + frame_length - 1] - csum[..., starts]
  return count.astype(jnp.float32) / float(frame_length)


@functools.lru_cache(maxsize=64)
def _chroma_cached(sr, n_fft, n_chroma, tuning, ctroct, octwidth, norm, base_c):
  import librosa  # Lazy: ~1 s to import, only needed to build the constant.
  m = librosa.filters.chroma(sr=sr, n_fft=n_fft, n_chroma=n_chroma,
                             tuning=tuning, ctroct=ctroct, octwidth=octwidth,
                             norm=norm, base_c=base_c, dtype=np.float32)
  m = np.ascontiguousarray(m.T)  # [n_fft // 2 + 1, n_chroma]
  m.setflags(write=False)
  return m


def chroma_filterbank(sr: int, n_fft: int, n_chroma: int = 12, tuning: float = 0.0,
                      ctroct: float = 5.0, octwidth: Optional[float] = 2.0,
                      norm: Optional[float] = 2, base_c: bool = True) -> np.ndarray:
  """`librosa.filters.chroma(...)`, transposed: cached float32 `[F, n_chroma]`.

  `tuning` is a fixed deviation in fractions of a chroma bin (0.0 = A440).
  """
  return _chroma_cached(int(sr), int(n_fft), int(n_chroma), float(tuning),
                        float(ctroct), None if octwidth is None else float(octwidth),
                        None if norm is None else float(norm), bool(base_c))


def normalize_frames(s: Array, norm: Optional[float] = np.inf) -> Array:
  """`librosa.util.normalize(s, norm=norm, axis=feature)` over the last axis
  (librosa's default threshold: frames whose norm is below float32's tiny,
  e.g. silent ones, are left unnormalised)."""
  if norm is None:
    return s
  mag = jnp.abs(s)
  norm = float(norm)
  if norm == np.inf:
    length = jnp.max(mag, axis=-1, keepdims=True)
  elif norm > 0:
    length = jnp.sum(mag ** norm, axis=-1, keepdims=True) ** (1.0 / norm)
  else:
    raise ValueError(f'unsupported norm {norm!r}')
  tiny = np.finfo(np.float32).tiny
  length = jnp.where(length < tiny, 1.0, length)
  return s / length


def chroma_from_power(power_spec: Array, chroma_matrix,
                      norm: Optional[float] = np.inf) -> Array:
  """`[..., T, F]` power spectrogram -> normalised chroma `[..., T, n_chroma]`."""
  raw = jnp.matmul(power_spec, jnp.asarray(chroma_matrix, jnp.float32),
                   precision=HIGHEST)
  return normalize_frames(raw, norm)


def chroma_stft(x: Array, *, sr: int = 22050, n_fft: int = 2048,
                hop_length: Optional[int] = None, win_length: Optional[int] = None,
                window='hann', center: bool = True, pad_mode: str = 'constant',
                tuning: float = 0.0, n_chroma: int = 12,
                norm: Optional[float] = np.inf) -> Array:
  """`librosa.feature.chroma_stft(y=x, tuning=tuning, ...)`, `[..., T, n_chroma]`.

  librosa's default ``tuning=None`` estimates the tuning of each input
  (`librosa.estimate_tuning`, a pitch-tracking pass that is data dependent
  and not jittable); here tuning is a fixed, static number (default 0.0,
  A440), i.e. this equals librosa called with ``tuning=0.0``.
  """
  spec = stft(x, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
              window=hashable_window(window), center=center, pad_mode=pad_mode)
  return chroma_from_power(power_spectrogram(spec),
                           chroma_filterbank(sr, n_fft, n_chroma, tuning), norm)


# ---------------------------------------------------------------------------
# Deltas (librosa.feature.delta, mode='interp')
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def savgol_parts(width: int, order: int):
  """Savitzky-Golay pieces for scipy's mode='interp'.

  Applying savgol_filter(mode='interp') to the identity of size `width`
  gives the full linear operator for T == width; its first/last `half` rows
  are the polynomial-fit edge operators (acting on the first/last `width`
  samples) and its middle row is the interior correlation kernel, valid for
  any T >= width.
  """
  half = width // 2
  m = scipy.signal.savgol_filter(np.eye(width), width, polyorder=order,
                                 deriv=order, mode='interp', axis=0)
  left = np.asarray(m[:half], np.float32)        # [half, width]
  right = np.asarray(m[width - half:], np.float32)  # [half, width]
  kernel = np.asarray(m[half], np.float64)        # y[t] = sum_k c[k] x[t-half+k]
  return left, kernel, right


def _check_delta_args(width: int, order: int, length: int):
  if width < 3 or width % 2 != 1:
    raise ValueError(f'delta width must be an odd integer >= 3, got {width}')
  if not isinstance(order, (int, np.integer)) or order <= 0:
    raise ValueError(f'delta order must be a positive integer, got {order}')
  if width > length:
    raise ValueError(
        f"delta width={width} cannot exceed the number of frames {length} "
        "(librosa mode='interp')")


def delta(x: Array, *, width: int = 9, order: int = 1, axis: int = -2,
          lengths: Optional[Array] = None) -> Array:
  """Exactly `librosa.feature.delta(x, width=width, order=order, axis=axis)`.

  Savitzky-Golay derivative of polyorder `order`, mode='interp' edges. With
  our `[..., T, F]` layout time is axis -2 (the default); pass the axis for
  other layouts. Order 2 is the direct second derivative (librosa's
  delta-delta), not the delta of the delta.

  Args:
    lengths: optional int valid frame counts, one per example, of shape
      `x.shape[:axis]` (e.g. `[B]` for `[B, T, F]`; may be traced). Without
      it, every example's delta runs over all T frames (padded or not).
      With it, example b gets `librosa.feature.delta` of its first
      `lengths[b]` frames alone (the right-hand 'interp' edge sits at its
      own last valid frame) and zeros on frames >= lengths[b]. A length
      below `width` (librosa would raise) is treated as `width`, i.e. the
      edge fit then also sees the first padded frames. Either way a batch
      equals the one-by-one result.
  """
  x = jnp.asarray(x)
  axis = axis % x.ndim
  _check_delta_args(width, order, x.shape[axis])
  return _delta_jit(x, lengths, width=int(width), order=int(order), axis=axis)


@functools.partial(jax.jit, static_argnames=('width', 'order', 'axis'))
def _delta_jit(x: Array, lengths: Optional[Array], *, width: int, order: int,
               axis: int) -> Array:
  # One compiled program per shape/config (eagerly, the many slices below
  # would each be dispatched and compiled on their own); inlined under jit.
  t = x.shape[axis]
  left, kernel, right = savgol_parts(width, order)
  half = width // 2

  def frames(start, stop):
    return jax.lax.slice_in_dim(x, start, stop, axis=axis)

  def wsum(coefs, start, stop):
    # sum_k coefs[k] * x[start + k : stop + k] along `axis` (elementwise,
    # so XLA fuses the whole delta, edges included, into one loop and no
    # transpose of the time axis is needed).
    acc = None
    for k, c in enumerate(coefs):
      if c == 0.0:
        continue
      term = np.float32(c) * frames(start + k, stop + k)
      acc = term if acc is None else acc + term
    if acc is None:
      shape = list(x.shape)
      shape[axis] = stop - start
      acc = jnp.zeros(shape, x.dtype)
    return acc

  parts = [wsum(left[j], 0, 1) for j in range(half)]  # 'interp' left edge
  if t - 2 * half > 0:
    parts.append(wsum(kernel, 0, t - 2 * half))  # interior correlation
  parts += [wsum(right[j], t - width, t - width + 1) for j in range(half)]
  out = jnp.concatenate(parts, axis=axis)
  if lengths is not None:
    xt = jnp.moveaxis(x, axis, -1)
    out = _delta_valid_tail(xt, jnp.moveaxis(out, axis, -1), lengths, right,
                            width, axis)
    out = jnp.moveaxis(out, -1, axis)
  return out


def _delta_valid_tail(xt: Array, out: Array, lengths: Array, right: np.ndarray,
                      width: int, axis: int) -> Array:
  """Re-does the right 'interp' edge at each example's own length.

  xt/out: `[*lead, *trail, T]` (time moved last); lengths: `lead` shape,
  where `lead = x.shape[:axis]`.
  """
  t = xt.shape[-1]
  half = width // 2
  lead = xt.shape[:axis]
  n_trail = xt.ndim - 1 - axis
  lengths = jnp.asarray(lengths, jnp.int32)
  if lengths.shape != lead:
    raise ValueError(f'lengths shape {lengths.shape} != {lead}')
  ln = jnp.clip(lengths, width, t).reshape(lead + (1,) * n_trail + (1,))
  # The last `width` valid frames of each example: [..., width].
  idx = ln - width + jnp.arange(width, dtype=jnp.int32)
  idx = jnp.broadcast_to(idx, xt.shape[:-1] + (width,))
  last = jnp.take_along_axis(xt, idx, axis=-1)
  tail = jnp.matmul(last, jnp.asarray(right.T), precision=HIGHEST)
  pos = jnp.arange(t, dtype=jnp.int32)
  rel = pos - (ln - half)  # position inside the right edge, [..., T]
  for j in range(half):
    out = jnp.where(rel == j, tail[..., j:j + 1], out)
  valid = pos < lengths.reshape(ln.shape)
  return jnp.where(valid, out, jnp.zeros((), out.dtype))


# ---------------------------------------------------------------------------
# Masks
# ---------------------------------------------------------------------------


def frame_mask(lengths: Array, num_frames: int, hop_length: int) -> Array:
  """bool `[B, T]`: frame t is valid iff t * hop_length < length.

  (With centred framing, frame t is centred on sample t * hop_length.)
  """
  lengths = jnp.asarray(lengths)
  t = jnp.arange(num_frames, dtype=jnp.int32) * hop_length
  return t[None, :] < lengths.astype(jnp.int32)[..., None]
