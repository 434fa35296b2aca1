"""Jitted feature front end: STFT, (log-)Mel, deltas, masks and normalisation.

All functions are pure JAX over a batch of float32 waveforms and agree with
librosa 0.11 (see tests/test_features.py for the parity checks).

Layout convention: time comes *before* frequency. ``stft`` returns
``[..., T, n_fft // 2 + 1]`` and ``mel_spectrogram`` returns ``[..., T, n_mels]``,
i.e. the transpose of librosa's ``[..., F, T]``. The headline stack
(``logmel_deltas``) returns ``[B, T, n_mels, 3]`` (channels: static, delta,
delta-delta) plus a boolean frame mask ``[B, T]``.

Numpy constants (window, Mel matrix, Savitzky-Golay coefficients) are built
once per configuration (``functools.lru_cache``) and captured as constants, so
configuration is static: close over it (``make_frontend``) and ``jax.jit`` the
returned function.

Front ends (``FRONTENDS``, chosen by ``cfg.name``; every one returns
``feats f32 [B, T, F, C]`` and ``mask bool [B, T]``):

  ==================  ==========================================  =====================
  name                features                                    [T, F, C] for 3 s @16k
  ==================  ==========================================  =====================
  ``logmel_deltas``   40 log-Mel + delta + delta-delta (Bhushan)  [300, 40, 3]
  ``mfcc``            40 MFCC (Sen)                               [130, 40, 1]
  ``mfcc_zcr_chroma`` 20 MFCC + ZCR + 12 chroma (Ranjan)          [130, 33, 1]
  ``mel_image``       128x128 dB Mel "image" (Gomes CNN / VGG16)  [128, 128, 1 or 3]
  ==================  ==========================================  =====================

Each stack's fields and defaults are in its docstring (and
``frontend_defaults(name)``); ``num_frames(num_samples, cfg)`` gives T:
``cfg.num_frames`` when set (the first T centred frames), else all centred
frames, 1 + N // hop (mel_image: always image_frames). Note that
``train.feature_config`` fills an unset num_frames with N // hop (3 s: 300,
129 for the 'mfcc' stacks; set num_frames=130 for Sen's 130).

On a single CPU device, big batches are computed in chunks of
``cfg.cpu_chunk`` (8) examples; under data parallelism the STFT's FFT keeps
its batch split over the devices (`_rfft_last`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

Array = jax.Array
FeatureStats = dict  # {'mean': f32[n_mels, C], 'std': f32[n_mels, C]}
StatsAccumulator = dict  # {'count': f32[], 'mean': f32[...], 'm2': f32[...]}

_HIGHEST = jax.lax.Precision.HIGHEST


# ---------------------------------------------------------------------------
# Config access
# ---------------------------------------------------------------------------

_DEFAULTS = dict(
    name='logmel_deltas',
    sample_rate=16000,
    n_fft=512,
    win_length=400,
    hop_length=160,
    window='hamming',
    center=True,
    pad_mode='constant',
    n_mels=40,
    fmin=0.0,
    fmax=8000.0,
    log_eps=1e-6,
    delta_width=5,
    num_frames=300,
)


# ---------------------------------------------------------------------------
# STFT
# ---------------------------------------------------------------------------


def _hashable_window(window):
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
    return _fft_window_cached(_hashable_window(window), win_length, int(n_fft))


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
    from jax.sharding import NamedSharding, PartitionSpec
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
    from jax.experimental.custom_partitioning import custom_partitioning

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
    import librosa  # Lazy: slow import, only needed to build the constant.
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
                      precision=_HIGHEST)


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
    import scipy.fft
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
    return jnp.matmul(db, jnp.asarray(d), precision=_HIGHEST)


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
                window=_hashable_window(window), center=center, pad_mode=pad_mode)
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
    import librosa
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
                     precision=_HIGHEST)
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
                window=_hashable_window(window), center=center, pad_mode=pad_mode)
    return chroma_from_power(power_spectrogram(spec),
                             chroma_filterbank(sr, n_fft, n_chroma, tuning), norm)


# ---------------------------------------------------------------------------
# Deltas (librosa.feature.delta, mode='interp')
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _savgol_parts(width: int, order: int):
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
    left, kernel, right = _savgol_parts(width, order)
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
    tail = jnp.matmul(last, jnp.asarray(right.T), precision=_HIGHEST)
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


# ---------------------------------------------------------------------------
# Feature stacks
# ---------------------------------------------------------------------------

# Defaults of every stack (`frontend_defaults(name)` returns a copy). A config
# may carry other fields (segment_seconds, ...): each stack reads only its own.
_STACK_DEFAULTS = {
    'logmel_deltas': dict(_DEFAULTS, delta_lengths=False, cpu_chunk=8),
    # Sen et al.: librosa defaults at 22.05 kHz (n_fft 2048 = 92.9 ms, hop
    # 512 = 23.2 ms, so 3 s -> 1 + 66150 // 512 = 130 frames) carried over to
    # our 16 kHz corpus in time: n_fft 1536 (96 ms), hop 372 (23.25 ms), 3 s
    # -> 1 + 48000 // 372 = 130 frames.
    'mfcc': dict(
        name='mfcc', sample_rate=16000, n_fft=1536, win_length=None,
        hop_length=372, window='hann', center=True, pad_mode='constant',
        n_mels=128, fmin=0.0, fmax=None, n_mfcc=40, top_db=80.0, amin=1e-10,
        lifter=0.0, num_frames=None, cpu_chunk=8),
    # Ranjan et al.: librosa's mfcc / zero_crossing_rate / chroma_stft (all
    # n_fft = frame_length 2048, hop 512 at 22.05 kHz), same 16 kHz framing
    # as 'mfcc', 20 MFCC (librosa's default n_mfcc).
    'mfcc_zcr_chroma': dict(
        name='mfcc_zcr_chroma', sample_rate=16000, n_fft=1536, win_length=None,
        hop_length=372, window='hann', center=True, pad_mode='constant',
        n_mels=128, fmin=0.0, fmax=None, n_mfcc=20, top_db=80.0, amin=1e-10,
        lifter=0.0, n_chroma=12, tuning=0.0, chroma_norm=float('inf'),
        zcr_threshold=1e-10, num_frames=None, cpu_chunk=8),
    # Gomes et al.: librosa.load(offset=0.5, duration=2.5), melspectrogram
    # (128 Mel), plotted in dB and resized to a 128x128 image. We skip the
    # plot/resize: hop 314 makes 2.5 s at 16 kHz exactly 1 + 40000 // 314 =
    # 128 centred frames.
    'mel_image': dict(
        name='mel_image', sample_rate=16000, offset_seconds=0.5,
        duration_seconds=2.5, image_frames=128, n_fft=1536, win_length=None,
        hop_length=314, window='hann', center=True, pad_mode='constant',
        n_mels=128, fmin=0.0, fmax=None, top_db=80.0, amin=1e-10,
        image_scale='db', channels=1, cpu_chunk=8),
}


def frontend_defaults(name: str) -> dict:
    """The fields (with defaults) that front end `name` reads from its config."""
    if name not in _STACK_DEFAULTS:
        raise KeyError(f'unknown frontend {name!r}; known: {sorted(_STACK_DEFAULTS)}')
    return dict(_STACK_DEFAULTS[name])


def _freeze(cfg, defaults: dict) -> dict:
    """Plain dict of `defaults`' keys read from cfg (dict / ConfigDict / object)."""
    out = {}
    for k, v in defaults.items():
        if isinstance(cfg, Mapping):
            out[k] = cfg.get(k, v)
        else:
            out[k] = getattr(cfg, k, v)
    if 'window' in out:
        out['window'] = _hashable_window(out['window'])
    return out


def _name(cfg) -> str:
    return cfg.get('name', 'logmel_deltas') if isinstance(cfg, Mapping) else \
        getattr(cfg, 'name', 'logmel_deltas')


def _image_geometry(p: dict) -> Tuple[int, int, int]:
    """mel_image: (offset samples, duration samples, hop) for frozen cfg p."""
    sr = int(p['sample_rate'])
    off = int(round(float(p['offset_seconds']) * sr))
    dur = int(round(float(p['duration_seconds']) * sr))
    frames = int(p['image_frames'])
    hop = p['hop_length']
    hop = dur // (frames - 1) if hop is None else int(hop)
    got = stft_num_frames(dur, int(p['n_fft']), hop, bool(p['center']))
    if got != frames:
        raise ValueError(
            f'mel_image: {dur} samples at hop {hop} give {got} frames, not '
            f'image_frames={frames}; set hop_length=None to derive it')
    return off, dur, hop


def num_frames(num_samples: int, cfg) -> int:
    """Frames T the configured front end produces for `num_samples` samples.

    `cfg.num_frames` if set; else all centred frames, 1 + N // hop_length
    (mel_image: always image_frames).
    """
    name = _name(cfg)
    p = _freeze(cfg, _STACK_DEFAULTS.get(name, _DEFAULTS))
    if name == 'mel_image':
        _image_geometry(p)
        return int(p['image_frames'])
    nf = p['num_frames']
    if nf is not None:
        return int(nf)
    return stft_num_frames(int(num_samples), int(p['n_fft']),
                           int(p['hop_length']), bool(p['center']))


def _pad_for_frames(x: Array, cfg: dict) -> Array:
    """Zero-pads the waveform (at the end) so at least cfg['num_frames']
    centred frames exist (cfg: a frozen dict)."""
    nf = cfg['num_frames']
    if nf is None:
        return x
    hop = int(cfg['hop_length'])
    n_fft = int(cfg['n_fft'])
    if bool(cfg['center']):
        need = (int(nf) - 1) * hop + n_fft - 2 * (n_fft // 2)
    else:
        need = (int(nf) - 1) * hop + n_fft
    n = x.shape[-1]
    if n < need:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, need - n)])
    return x


def _power_from(x: Array, p: dict, max_frames: Optional[int] = None) -> Array:
    """`[B, N]` -> power spectrogram `[B, T, n_fft // 2 + 1]` (first
    `max_frames` centred frames only, when given)."""
    return power_spectrogram(stft(
        x, n_fft=int(p['n_fft']), hop_length=int(p['hop_length']),
        win_length=p['win_length'], window=p['window'],
        center=bool(p['center']), pad_mode=p['pad_mode'],
        max_frames=max_frames))


def _mel_matrix(p: dict) -> np.ndarray:
    fmax = p['fmax']
    return mel_filterbank(int(p['sample_rate']), int(p['n_fft']), int(p['n_mels']),
                          float(p['fmin']), None if fmax is None else float(fmax))


def _default_lengths(x: Array, lengths: Optional[Array]) -> Array:
    if lengths is None:
        return jnp.full(x.shape[:-1], x.shape[-1], jnp.int32)
    return jnp.asarray(lengths)


def _logmel_from_cfg(x: Array, cfg, max_frames: Optional[int] = None) -> Array:
    """`[B, N]` -> log-Mel `[B, T, n_mels]` (all centred frames, or the first
    max_frames)."""
    p = _freeze(cfg, _DEFAULTS)
    mel = mel_spectrogram(_power_from(x, p, max_frames), _mel_matrix(p))
    return log_mel(mel, float(p['log_eps']))


def logmel_deltas(x: Array, lengths: Optional[Array], cfg) -> Tuple[Array, Array]:
    """Headline model's input: log-Mel + delta + delta-delta.

    Args:
      x: float32 waveforms `[B, N]` (zero-padded past each length).
      lengths: int `[B]` valid samples per row, or None (all valid).
      cfg: config with (defaults) sample_rate (16000), n_fft (512),
        win_length (400), hop_length (160), window ('hamming'), center
        (True), pad_mode ('constant'), n_mels (40), fmin (0.0), fmax (8000.0),
        log_eps (1e-6, natural log of mel + eps), delta_width (5 = HTK N=2),
        num_frames (300), delta_lengths (False), cpu_chunk (8, see
        `make_frontend`).

    Returns:
      feats f32 `[B, T, n_mels, 3]` (channels: static, delta order 1,
      delta order 2, each `librosa.feature.delta` of the static log-Mel over
      the T frames), mask bool `[B, T]`.

      T = cfg.num_frames if set: the first num_frames centred frames are kept
      (a 3 s segment at hop 160 has 301 -> first 300); a shorter waveform is
      zero-padded at the end first. The log-Mel is truncated to T *before*
      the deltas are taken, and the deltas run over all T frames, padded or
      not (as for the paper's zero-padded 3 s chunks); with delta_lengths,
      each example's deltas run over its valid frames only (`delta(...,
      lengths=mask.sum(1))`, zero on padded frames). If num_frames is None,
      T = all centred frames.
    """
    p = _freeze(cfg, _STACK_DEFAULTS['logmel_deltas'])
    x = jnp.asarray(x, jnp.float32)
    x = _pad_for_frames(x, p)
    nf = p['num_frames']
    lm = _logmel_from_cfg(x, p, None if nf is None else int(nf))  # [B, T, M]
    t = lm.shape[-2]
    mask = frame_mask(_default_lengths(x, lengths), t, int(p['hop_length']))
    w = int(p['delta_width'])
    dl = jnp.sum(mask, axis=-1) if p['delta_lengths'] else None
    d1 = delta(lm, width=w, order=1, axis=-2, lengths=dl)
    d2 = delta(lm, width=w, order=2, axis=-2, lengths=dl)
    feats = jnp.stack([lm, d1, d2], axis=-1)
    return feats, mask


def mfcc_stack(x: Array, lengths: Optional[Array], cfg) -> Tuple[Array, Array]:
    """Sen et al.'s input: 40 MFCC per frame, `[B, T, n_mfcc, 1]`.

    cfg fields (defaults): sample_rate (16000), n_fft (1536), win_length
    (None = n_fft), hop_length (372), window ('hann'), center (True),
    pad_mode ('constant'), n_mels (128), fmin (0.0), fmax (None = sr / 2),
    n_mfcc (40), top_db (80.0), amin (1e-10), lifter (0.0), num_frames (None),
    cpu_chunk (8, see `make_frontend`).

    Each example is `librosa.feature.mfcc(S=power_to_db(melspectrogram(y)
    [:, :T]), n_mfcc=n_mfcc)`: dB with ref=1.0, floored at the example's own
    max - top_db over its T frames (padded frames included), DCT-II ortho.
    The paper's ~130 frames for 3 s come from librosa's defaults at 22.05 kHz
    (hop 512); at 16 kHz hop 372 keeps the hop in time (23.25 ms) and gives
    1 + 48000 // 372 = 130 frames, n_fft 1536 (96 ms) the window (92.9 ms).

    T: num_frames if set (first T centred frames; shorter input is zero-padded
    at the end first), else 1 + N // hop_length. Mask: frame t valid iff
    t * hop_length < length.
    """
    p = _freeze(cfg, _STACK_DEFAULTS['mfcc'])
    x = _pad_for_frames(jnp.asarray(x, jnp.float32), p)
    nf = p['num_frames']
    power = _power_from(x, p, None if nf is None else int(nf))
    mel = mel_spectrogram(power, _mel_matrix(p))
    feats = mfcc_from_mel(mel, n_mfcc=int(p['n_mfcc']), top_db=p['top_db'],
                          amin=float(p['amin']), lifter=float(p['lifter']))
    mask = frame_mask(_default_lengths(x, lengths), feats.shape[-2],
                      int(p['hop_length']))
    return feats[..., None], mask


@functools.lru_cache(maxsize=16)
def _mel_chroma_cached(mel_key, chroma_key) -> np.ndarray:
    m = np.concatenate([mel_filterbank(*mel_key), chroma_filterbank(*chroma_key)],
                       axis=1)
    m.setflags(write=False)
    return m


def mfcc_zcr_chroma(x: Array, lengths: Optional[Array], cfg) -> Tuple[Array, Array]:
    """Ranjan et al.'s input: MFCC, zero-crossing rate and chroma per frame,
    concatenated on the feature axis: `[B, T, n_mfcc + 1 + n_chroma, 1]`
    (features 0..n_mfcc-1 MFCC, then ZCR, then chroma C, C#, ..., B).

    cfg fields (defaults): those of 'mfcc' (sample_rate 16000, n_fft 1536,
    win_length None, hop_length 372, window 'hann', center True, pad_mode
    'constant', n_mels 128, fmin 0.0, fmax None, top_db 80.0, amin 1e-10,
    lifter 0.0, num_frames None, cpu_chunk 8) with n_mfcc (20), plus n_chroma
    (12), tuning (0.0), chroma_norm (inf), zcr_threshold (1e-10).

    One STFT serves MFCC and chroma (one matmul with the stacked Mel and chroma
    matrices). Per example: MFCC as in `mfcc_stack`;
    `librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=
    hop_length)` (edge-padded centring, as librosa); `librosa.feature.
    chroma_stft(y, n_fft=n_fft, hop_length=hop_length, tuning=tuning)` with a
    fixed tuning (librosa's default estimates it per file). T and mask as in
    `mfcc_stack`.
    """
    p = _freeze(cfg, _STACK_DEFAULTS['mfcc_zcr_chroma'])
    x = _pad_for_frames(jnp.asarray(x, jnp.float32), p)
    nf = p['num_frames']
    power = _power_from(x, p, None if nf is None else int(nf))
    t = power.shape[-2]
    fmax = p['fmax']
    n_mels, n_chroma = int(p['n_mels']), int(p['n_chroma'])
    mc = _mel_chroma_cached(
        (int(p['sample_rate']), int(p['n_fft']), n_mels, float(p['fmin']),
         None if fmax is None else float(fmax)),
        (int(p['sample_rate']), int(p['n_fft']), n_chroma, float(p['tuning'])))
    both = jnp.matmul(power, jnp.asarray(mc), precision=_HIGHEST)
    mf = mfcc_from_mel(both[..., :n_mels], n_mfcc=int(p['n_mfcc']),
                       top_db=p['top_db'], amin=float(p['amin']),
                       lifter=float(p['lifter']))
    chroma = normalize_frames(both[..., n_mels:], p['chroma_norm'])
    zcr = zero_crossing_rate(x, frame_length=int(p['n_fft']),
                             hop_length=int(p['hop_length']),
                             center=bool(p['center']),
                             threshold=float(p['zcr_threshold']))[..., :t]
    if zcr.shape[-1] != t:
        raise ValueError('zero-crossing frames do not line up with the STFT '
                         '(use an even n_fft)')
    feats = jnp.concatenate([mf, zcr[..., None], chroma], axis=-1)
    mask = frame_mask(_default_lengths(x, lengths), t, int(p['hop_length']))
    return feats[..., None], mask


def mel_image(x: Array, lengths: Optional[Array], cfg) -> Tuple[Array, Array]:
    """Gomes et al.'s 128x128 Mel "image": `[B, image_frames, n_mels, channels]`
    = `[B, 128 (time), 128 (Mel, low to high), 1 or 3]`.

    cfg fields (defaults): sample_rate (16000), offset_seconds (0.5),
    duration_seconds (2.5), image_frames (128), n_fft (1536), win_length
    (None = n_fft), hop_length (314; None derives duration // (image_frames -
    1)), window ('hann'), center (True), pad_mode ('constant'), n_mels (128),
    fmin (0.0), fmax (None = sr / 2), top_db (80.0), amin (1e-10),
    image_scale ('db' | 'unit'), channels (1, or 3 for VGG16: the one channel
    repeated), cpu_chunk (8, see `make_frontend`). cfg.num_frames is ignored
    (T is always image_frames).

    The paper loads 2.5 s from 0.5 s (librosa.load(offset=0.5, duration=2.5)),
    takes librosa's melspectrogram, draws it in dB and lets Keras resize the
    picture to 128x128. We take samples [offset, offset + duration) of each
    waveform (zero-padded when shorter), and pick the hop so the 2.5 s give
    exactly 128 centred frames (1 + 40000 // 314), i.e. no resampling of the
    image. Values: `librosa.power_to_db(S, ref=np.max, top_db=80)` per
    example, in [-80, 0] dB ('db'), or mapped linearly to [0, 1] as pixel
    intensity / 255 ('unit': (dB + top_db) / top_db).

    Mask: frame t valid iff t * hop < (length - offset), clipped to [0, duration].
    """
    p = _freeze(cfg, _STACK_DEFAULTS['mel_image'])
    off, dur, hop = _image_geometry(p)
    p = dict(p, hop_length=hop)
    x = jnp.asarray(x, jnp.float32)[..., off:off + dur]
    if x.shape[-1] < dur:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, dur - x.shape[-1])])
    mel = mel_spectrogram(_power_from(x, p), _mel_matrix(p))
    top_db = p['top_db']
    img = power_to_db(mel, ref='max', amin=float(p['amin']), top_db=top_db)
    scale = p['image_scale']
    if scale == 'unit':
        if top_db is None:
            raise ValueError("image_scale='unit' needs top_db")
        img = (img + float(top_db)) / float(top_db)
    elif scale != 'db':
        raise ValueError(f"image_scale must be 'db' or 'unit', got {scale!r}")
    ch = int(p['channels'])
    feats = jnp.repeat(img[..., None], ch, axis=-1) if ch > 1 else img[..., None]
    if lengths is None:
        valid = jnp.full(x.shape[:-1], dur, jnp.int32)
    else:
        valid = jnp.clip(jnp.asarray(lengths, jnp.int32) - off, 0, dur)
    mask = frame_mask(valid, img.shape[-2], hop)
    return feats, mask


def _chunk_batches() -> bool:
    """Whether to cut big batches into cpu_chunk pieces: on a single CPU
    device only (not on accelerators, and not when the batch may be sharded
    over several devices, where a reshape of the batch axis would reshard)."""
    return jax.default_backend() == 'cpu' and jax.device_count() == 1


def _chunked(stack: Callable, x: Array, lengths: Optional[Array], p: dict,
             chunk: int) -> Tuple[Array, Array]:
    """`stack` over `[B, N]` in sequential chunks of `chunk` examples
    (`lax.map`; the batch is zero-padded to a multiple of chunk first)."""
    x = jnp.asarray(x, jnp.float32)
    b, n = x.shape
    nc = -(-b // chunk)
    pad = nc * chunk - b
    if pad:
        x = jnp.pad(x, ((0, pad), (0, 0)))
    xs = x.reshape(nc, chunk, n)
    if lengths is None:
        feats, mask = jax.lax.map(lambda a: stack(a, None, p), xs)
    else:
        ln = jnp.asarray(lengths, jnp.int32)
        if pad:
            ln = jnp.pad(ln, (0, pad))
        feats, mask = jax.lax.map(lambda a: stack(a[0], a[1], p),
                                  (xs, ln.reshape(nc, chunk)))
    feats = feats.reshape((nc * chunk,) + feats.shape[2:])[:b]
    mask = mask.reshape((nc * chunk,) + mask.shape[2:])[:b]
    return feats, mask


def _factory(stack: Callable, name: str):
    def make(cfg) -> Callable[[Array, Optional[Array]], Tuple[Array, Array]]:
        frozen = _freeze(cfg, _STACK_DEFAULTS[name])
        # Build numpy constants and check the geometry eagerly, so a bad config
        # fails here and tracing does no host work.
        if name == 'mel_image':
            _, _, hop = _image_geometry(frozen)
            frozen['hop_length'] = hop
        if name == 'logmel_deltas':
            _savgol_parts(int(frozen['delta_width']), 1)
            _savgol_parts(int(frozen['delta_width']), 2)
        fft_window(frozen['window'], frozen['win_length'], frozen['n_fft'])
        _mel_matrix(frozen)
        chunk = frozen.get('cpu_chunk')

        def fn(x, lengths=None):
            b = jnp.shape(x)[0] if jnp.ndim(x) == 2 else None
            if (chunk and isinstance(b, int) and b > int(chunk)
                    and _chunk_batches()):
                return _chunked(stack, x, lengths, frozen, int(chunk))
            return stack(x, lengths, frozen)

        fn.config = dict(frozen)
        return fn
    return make


# name -> factory(cfg) -> fn(x [B, N], lengths [B] | None) -> (feats, mask)
FRONTENDS: dict = {
    'logmel_deltas': _factory(logmel_deltas, 'logmel_deltas'),
    'mfcc': _factory(mfcc_stack, 'mfcc'),
    'mfcc_zcr_chroma': _factory(mfcc_zcr_chroma, 'mfcc_zcr_chroma'),
    'mel_image': _factory(mel_image, 'mel_image'),
}


def make_frontend(cfg) -> Callable[[Array, Optional[Array]], Tuple[Array, Array]]:
    """Returns `fn(x, lengths) -> (feats, mask)` for `cfg.name` (default
    'logmel_deltas'); the config is captured statically, so `jax.jit(fn)`.

    x: float32 `[B, N]` waveforms (zero-padded past each length); lengths:
    int `[B]` or None. feats f32 `[B, T, F, C]`, mask bool `[B, T]`.

    cfg.cpu_chunk (default 8; 0/None: off): on a single CPU device, a batch
    larger than this is computed in sequential chunks of cpu_chunk examples
    (`lax.map`), which keeps the frames and spectra in cache: ~3x the
    throughput at batch 40. Same values; ignored on accelerators and with
    several devices.
    """
    name = _name(cfg)
    if name not in FRONTENDS:
        raise KeyError(f'unknown frontend {name!r}; known: {sorted(FRONTENDS)}')
    return FRONTENDS[name](cfg)


# ---------------------------------------------------------------------------
# Normalisation statistics (masked, mergeable, numerically stable)
# ---------------------------------------------------------------------------


def zero_stats(feature_shape) -> StatsAccumulator:
    """Empty accumulator for per-feature stats of shape `feature_shape`
    (e.g. (n_mels, 3))."""
    return {'count': jnp.zeros((), jnp.float32),
            'mean': jnp.zeros(feature_shape, jnp.float32),
            'm2': jnp.zeros(feature_shape, jnp.float32)}


def accumulate_stats(feats: Array, mask: Optional[Array] = None) -> StatsAccumulator:
    """Per-(band, channel) count, mean and M2 (sum of squared deviations)
    over the valid frames of one batch.

    feats `[B, T, ...]`, mask bool `[B, T]` (None = all valid). Two-pass
    within the batch (stable); combine batches with `merge_stats` (Chan et
    al.'s parallel update), not by plain addition.
    """
    feats = jnp.asarray(feats, jnp.float32)
    if mask is None:
        mask = jnp.ones(feats.shape[:2], bool)
    m = mask.astype(jnp.float32).reshape(mask.shape + (1,) * (feats.ndim - 2))
    count = jnp.sum(mask.astype(jnp.float32))
    safe = jnp.maximum(count, 1.0)
    mean = jnp.sum(feats * m, axis=(0, 1)) / safe
    m2 = jnp.sum(jnp.square((feats - mean) * m), axis=(0, 1))
    return {'count': count, 'mean': mean, 'm2': m2}


def merge_stats(a: StatsAccumulator, b: StatsAccumulator) -> StatsAccumulator:
    """Chan's parallel merge of two accumulators (jittable; counts may be 0)."""
    na, nb = a['count'], b['count']
    n = na + nb
    frac = jnp.where(n > 0, nb / jnp.maximum(n, 1.0), 0.0)
    d = b['mean'] - a['mean']
    mean = a['mean'] + d * frac
    m2 = a['m2'] + b['m2'] + jnp.square(d) * na * frac
    return {'count': n, 'mean': mean, 'm2': m2}


def finalize_stats(acc: StatsAccumulator, min_std: float = 1e-5) -> FeatureStats:
    """-> {'mean', 'std'} (population std, floored at `min_std`)."""
    var = acc['m2'] / jnp.maximum(acc['count'], 1.0)
    std = jnp.maximum(jnp.sqrt(jnp.maximum(var, 0.0)), min_std)
    return {'mean': jnp.asarray(acc['mean'], jnp.float32),
            'std': jnp.asarray(std, jnp.float32)}


def normalize(feats: Array, stats: FeatureStats,
              mask: Optional[Array] = None) -> Array:
    """(feats - mean) / std, broadcast over the leading [B, T] axes.

    With a mask `[B, T]`, invalid frames are set to 0 (the normalised mean);
    without one, padded frames keep their (normalised) values.
    """
    out = (feats - stats['mean']) / stats['std']
    if mask is not None:
        m = mask.reshape(mask.shape + (1,) * (feats.ndim - mask.ndim))
        out = jnp.where(m, out, 0.0)
    return out
