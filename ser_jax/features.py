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
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Callable, Optional, Tuple

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


def _cfg(cfg: Any, key: str):
    """Reads `key` from a ConfigDict / dict / attribute object, with defaults."""
    if isinstance(cfg, Mapping):
        return cfg.get(key, _DEFAULTS[key])
    return getattr(cfg, key, _DEFAULTS[key])


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


def frame_signal(x: Array, frame_length: int, hop_length: int) -> Array:
    """`x[..., N]` -> frames `[..., T, frame_length]`, T = 1 + (N - L) // hop."""
    n = x.shape[-1]
    num = 1 + (n - frame_length) // hop_length
    idx = (np.arange(num)[:, None] * hop_length
           + np.arange(frame_length)[None, :]).astype(np.int32)
    return x[..., idx]


def stft(x: Array, *, n_fft: int = 512, hop_length: Optional[int] = None,
         win_length: Optional[int] = None, window='hann', center: bool = True,
         pad_mode: str = 'constant') -> Array:
    """Short-time Fourier transform with librosa's framing.

    Args:
      x: float waveform(s) `[..., N]` (cast to float32).
      n_fft, hop_length, win_length, window, center, pad_mode: as in
        `librosa.stft` (hop defaults to win_length // 4, win_length to n_fft).
        With `center`, the signal is padded by n_fft // 2 on both sides with
        `jnp.pad(mode=pad_mode)`; frame t is centred on sample t * hop_length.

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
    frames = frame_signal(x, n_fft, hop_length)
    win = jnp.asarray(fft_window(window, win_length, n_fft))
    return jnp.fft.rfft(frames * win, n=n_fft, axis=-1)


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


def delta(x: Array, *, width: int = 9, order: int = 1, axis: int = -2) -> Array:
    """Exactly `librosa.feature.delta(x, width=width, order=order, axis=axis)`.

    Savitzky-Golay derivative of polyorder `order`, mode='interp' edges. With
    our `[..., T, F]` layout time is axis -2 (the default); pass the axis for
    other layouts. Order 2 is the direct second derivative (librosa's
    delta-delta), not the delta of the delta.
    """
    x = jnp.asarray(x)
    axis = axis % x.ndim
    t = x.shape[axis]
    _check_delta_args(width, order, t)
    left, kernel, right = _savgol_parts(int(width), int(order))
    half = width // 2
    xt = jnp.moveaxis(x, axis, -1)  # [..., T]
    head = jnp.matmul(xt[..., :width], jnp.asarray(left.T), precision=_HIGHEST)
    tail = jnp.matmul(xt[..., t - width:], jnp.asarray(right.T),
                      precision=_HIGHEST)
    n_mid = t - 2 * half
    parts = [head]
    if n_mid > 0:
        mid = None
        for k in range(width):
            c = float(kernel[k])
            if c == 0.0:
                continue
            term = c * xt[..., k:k + n_mid]
            mid = term if mid is None else mid + term
        if mid is None:
            mid = jnp.zeros(xt.shape[:-1] + (n_mid,), xt.dtype)
        parts.append(mid)
    parts.append(tail)
    out = jnp.concatenate(parts, axis=-1)
    return jnp.moveaxis(out, -1, axis)


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


def num_frames(num_samples: int, cfg) -> int:
    """Frames the configured front end produces for `num_samples` samples."""
    nf = _cfg(cfg, 'num_frames')
    if nf is not None:
        return int(nf)
    return stft_num_frames(int(num_samples), int(_cfg(cfg, 'n_fft')),
                           int(_cfg(cfg, 'hop_length')),
                           bool(_cfg(cfg, 'center')))


def _logmel_from_cfg(x: Array, cfg) -> Array:
    """`[B, N]` -> log-Mel `[B, T_all, n_mels]` (all centred frames)."""
    sr = int(_cfg(cfg, 'sample_rate'))
    n_fft = int(_cfg(cfg, 'n_fft'))
    spec = stft(x, n_fft=n_fft, hop_length=int(_cfg(cfg, 'hop_length')),
                win_length=int(_cfg(cfg, 'win_length')),
                window=_hashable_window(_cfg(cfg, 'window')),
                center=bool(_cfg(cfg, 'center')),
                pad_mode=_cfg(cfg, 'pad_mode'))
    fmax = _cfg(cfg, 'fmax')
    mel_m = mel_filterbank(sr, n_fft, int(_cfg(cfg, 'n_mels')),
                           float(_cfg(cfg, 'fmin')),
                           None if fmax is None else float(fmax))
    mel = mel_spectrogram(power_spectrogram(spec), mel_m)
    return log_mel(mel, float(_cfg(cfg, 'log_eps')))


def _pad_for_frames(x: Array, cfg) -> Array:
    """Zero-pads the waveform (at the end) so at least cfg.num_frames exist."""
    nf = _cfg(cfg, 'num_frames')
    if nf is None:
        return x
    hop = int(_cfg(cfg, 'hop_length'))
    n_fft = int(_cfg(cfg, 'n_fft'))
    if bool(_cfg(cfg, 'center')):
        need = (int(nf) - 1) * hop + n_fft - 2 * (n_fft // 2)
    else:
        need = (int(nf) - 1) * hop + n_fft
    n = x.shape[-1]
    if n < need:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, need - n)])
    return x


def logmel_deltas(x: Array, lengths: Optional[Array], cfg) -> Tuple[Array, Array]:
    """Headline model's input: log-Mel + delta + delta-delta.

    Args:
      x: float32 waveforms `[B, N]` (zero-padded past each length).
      lengths: int `[B]` valid samples per row, or None (all valid).
      cfg: config with sample_rate, n_fft, win_length, hop_length, window,
        n_mels, fmin, fmax, log_eps, delta_width, num_frames.

    Returns:
      feats f32 `[B, T, n_mels, 3]` (channels: static, delta order 1,
      delta order 2, each `librosa.feature.delta` of the static log-Mel over
      the T frames), mask bool `[B, T]`.

      T = cfg.num_frames if set: the first num_frames centred frames are kept
      (a 3 s segment at hop 160 has 301 -> first 300); a shorter waveform is
      zero-padded at the end first. The log-Mel is truncated to T *before*
      the deltas are taken, and the deltas run over all T frames, padded or
      not (as for the paper's zero-padded 3 s chunks). If num_frames is None,
      T = all centred frames.
    """
    x = jnp.asarray(x, jnp.float32)
    x = _pad_for_frames(x, cfg)
    lm = _logmel_from_cfg(x, cfg)  # [B, T_all, M]
    nf = _cfg(cfg, 'num_frames')
    if nf is not None:
        lm = lm[..., :int(nf), :]
    t = lm.shape[-2]
    w = int(_cfg(cfg, 'delta_width'))
    d1 = delta(lm, width=w, order=1, axis=-2)
    d2 = delta(lm, width=w, order=2, axis=-2)
    feats = jnp.stack([lm, d1, d2], axis=-1)
    if lengths is None:
        lengths = jnp.full(x.shape[:-1], x.shape[-1], jnp.int32)
    mask = frame_mask(lengths, t, int(_cfg(cfg, 'hop_length')))
    return feats, mask


def _make_logmel_deltas(cfg) -> Callable[[Array, Optional[Array]], Tuple[Array, Array]]:
    frozen = {k: _cfg(cfg, k) for k in _DEFAULTS}
    frozen['window'] = _hashable_window(frozen['window'])
    # Build (and cache) numpy constants eagerly so tracing does no host work.
    fft_window(frozen['window'], frozen['win_length'], frozen['n_fft'])
    mel_filterbank(frozen['sample_rate'], frozen['n_fft'], frozen['n_mels'],
                   frozen['fmin'], frozen['fmax'])
    _savgol_parts(int(frozen['delta_width']), 1)
    _savgol_parts(int(frozen['delta_width']), 2)

    def fn(x, lengths=None):
        return logmel_deltas(x, lengths, frozen)

    return fn


# name -> factory(cfg) -> fn(x [B, N], lengths [B] | None) -> (feats, mask)
FRONTENDS: dict = {
    'logmel_deltas': _make_logmel_deltas,
}


def make_frontend(cfg) -> Callable[[Array, Optional[Array]], Tuple[Array, Array]]:
    """Returns `fn(x, lengths) -> (feats, mask)` for `cfg.name` (default
    'logmel_deltas'); the config is captured statically, so `jax.jit(fn)`."""
    name = _cfg(cfg, 'name')
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
