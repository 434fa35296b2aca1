"""Data augmentation: on the fly in JAX, and offline with librosa.

On the fly (pure, jittable, batched, driven by a `jax.random` key; every
transform respects the valid lengths / frame mask and leaves padding alone):

  audio = augment_waveform(rng, audio [B, N], lengths [B] | None, cfg)
  feats = augment_features(rng, feats [B, T, F, C], mask [B, T] | None, cfg)

`cfg` is a dict / ConfigDict / None; a missing or None field disables its
transform, so an empty config is the identity (the input is returned as is).
Static fields (all of them) must be Python values: close over cfg and jit.

Waveform fields (`augment_waveform`, applied in this order: shift, gain, noise):

  shift_max_seconds   None | float: random time shift by s ~ U{-S..S} samples,
                      S = round(shift_max_seconds * sample_rate) (Sen et al.
                      "time-shifting").
  shift_mode          'roll' (default: circular within each example's valid
                      length, nothing leaves the utterance) | 'zero' (shift
                      with zero fill inside the valid length).
  shift_prob          1.0: probability that an example is shifted.
  sample_rate         16000: to turn seconds into samples.
  gain_db             None | (lo, hi): gain g ~ U(lo, hi) dB, x * 10**(g/20).
  gain_prob           1.0
  noise_amplitude     None | float: Gomes et al.'s additive noise, "amplitude
                      0.035": n = a * u * max|x| * e, with e white noise (see
                      noise_distribution), max|x| per example over its valid
                      samples, and u ~ U(0, 1) when noise_random_scale (the
                      usual librosa recipe for these four corpora,
                      0.035 * np.random.uniform() * np.amax(x) * normal; the
                      paper says "uniform distribution and amplitude 0.035").
  noise_random_scale  True: the u factor above (False: u = 1).
  noise_snr_db        None | float | (lo, hi): white noise at this SNR (dB),
                      relative to each example's mean power over its valid
                      samples; a range draws one SNR per example. Exclusive
                      with noise_amplitude.
  noise_distribution  'normal' (default, e ~ N(0, 1)) | 'uniform' (e ~
                      U(-1, 1), scaled to unit variance in the SNR mode).
  noise_prob          1.0

Feature fields (`augment_features`, SpecAugment-style masks, to be applied
after normalisation so that mask_value 0 is the mean):

  time_masks            0: number of time masks per example.
  time_mask_max_frames  0: width w ~ U{0..W} frames, start ~ U{0..L-w}
                        within the example's L valid frames (w <= L).
  freq_masks            0: number of frequency masks per example.
  freq_mask_max_bins    0: width f ~ U{0..F'} bins, start ~ U{0..F-f};
                        applied on valid frames only.
  mask_value            0.0
  (Masks cover every channel; padded frames are never touched.)

Offline (`offline_augment`, numpy + librosa on the CPU, deterministic from a
seed): Gomes et al.'s x4 data, original + noise + time stretch + pitch shift,
and optionally speed perturbation (Ko et al. 2015: resampled copies, tempo and
pitch together); see its docstring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ser_jax import cli

Array = jax.Array

WAVEFORM_DEFAULTS = dict(
    shift_max_seconds=None, shift_mode='roll', shift_prob=1.0, sample_rate=16000,
    gain_db=None, gain_prob=1.0,
    noise_amplitude=None, noise_random_scale=True, noise_snr_db=None,
    noise_distribution='normal', noise_prob=1.0,
)

FEATURE_DEFAULTS = dict(
    time_masks=0, time_mask_max_frames=0, freq_masks=0, freq_mask_max_bins=0,
    mask_value=0.0,
)

# Gomes et al.: original + noise (amplitude 0.035) + stretch + pitch shift. The
# paper gives no rate or step; these are the values of the widely used librosa
# recipe for the same four corpora (stretch rate 0.8 = slower and longer, as
# the paper describes; pitch shift 0.7 semitone).
OFFLINE_DEFAULTS = dict(
    include_original=True,
    noise_amplitude=0.035, noise_random_scale=True, noise_distribution='normal',
    stretch_rate=0.8,
    pitch_steps=0.7,
    # Speed perturbation (Ko et al., Interspeech 2015, the Kaldi recipe's 0.9 / 1.1):
    # not in Gomes et al.'s recipe, so off; e.g. (0.9, 1.1) adds one copy per rate.
    speed_rates=None,
)


def _get(cfg: Any, key: str, defaults: dict):
  if cfg is None:
    return defaults[key]
  if isinstance(cfg, Mapping):
    return cfg.get(key, defaults[key])
  return getattr(cfg, key, defaults[key])


def _valid(lengths: Optional[Array], batch: int, n: int) -> tuple[Array, Array]:
  """-> (lengths int32 [B], valid bool [B, N])."""
  if lengths is None:
    lengths = jnp.full((batch,), n, jnp.int32)
  lengths = jnp.clip(jnp.asarray(lengths, jnp.int32), 0, n)
  return lengths, jnp.arange(n, dtype=jnp.int32)[None, :] < lengths[:, None]


def _apply_prob(rng: Array, prob: float, batch: int) -> Optional[Array]:
  """bool [B, 1] selecting the examples to transform, or None (all)."""
  prob = float(prob)
  if prob >= 1.0:
    return None
  return (jax.random.uniform(rng, (batch,)) < prob)[:, None]


def _select(sel: Optional[Array], new: Array, old: Array) -> Array:
  return new if sel is None else jnp.where(sel, new, old)


def _range(value) -> tuple[float, float]:
  if isinstance(value, (int, float)):
    return float(value), float(value)
  lo, hi = value
  return float(lo), float(hi)


# ---------------------------------------------------------------------------
# Waveform transforms
# ---------------------------------------------------------------------------


def time_shift(rng: Array, audio: Array, lengths: Optional[Array], max_shift: int,
               mode: str = 'roll') -> Array:
  """Shifts each example by s ~ U{-max_shift..max_shift} samples inside its
  valid length (`mode` 'roll': circular; 'zero': zero fill). Padding stays 0.
  """
  b, n = audio.shape
  lengths, valid = _valid(lengths, b, n)
  s = jax.random.randint(rng, (b, 1), -int(max_shift), int(max_shift) + 1)
  i = jnp.arange(n, dtype=jnp.int32)[None, :]
  src = i - s
  if mode == 'roll':
    src = jnp.mod(src, jnp.maximum(lengths[:, None], 1))
    ok = valid
  elif mode == 'zero':
    ok = valid & (src >= 0) & (src < lengths[:, None])
    src = jnp.clip(src, 0, n - 1)
  else:
    raise cli.UsageError(f"shift_mode must be 'roll' or 'zero', got {mode!r}")
  out = jnp.take_along_axis(audio, src, axis=1)
  return jnp.where(ok, out, jnp.zeros((), audio.dtype))


def random_gain(rng: Array, audio: Array, gain_db) -> Array:
  """x * 10 ** (g / 20) with g ~ U(lo, hi) dB per example."""
  lo, hi = _range(gain_db)
  g = jax.random.uniform(rng, (audio.shape[0], 1), minval=lo, maxval=hi)
  return audio * (10.0 ** (g / 20.0)).astype(audio.dtype)


def _white(rng: Array, shape, distribution: str) -> Array:
  if distribution == 'normal':
    return jax.random.normal(rng, shape, jnp.float32)
  if distribution == 'uniform':
    return jax.random.uniform(rng, shape, jnp.float32, -1.0, 1.0)
  raise cli.UsageError(f"noise_distribution must be 'normal' or 'uniform', got {distribution!r}")


def add_noise_amplitude(rng: Array, audio: Array, lengths: Optional[Array],
                        amplitude: float, random_scale: bool = True,
                        distribution: str = 'normal') -> Array:
  """Gomes et al.: x + amplitude * u * max|x| * e on valid samples
  (u ~ U(0, 1) if random_scale else 1; e white, `distribution`)."""
  b, n = audio.shape
  _, valid = _valid(lengths, b, n)
  k_u, k_e = jax.random.split(rng)
  peak = jnp.max(jnp.where(valid, jnp.abs(audio), 0.0), axis=1, keepdims=True)
  scale = float(amplitude) * peak
  if random_scale:
    scale = scale * jax.random.uniform(k_u, (b, 1))
  e = _white(k_e, (b, n), distribution)
  return audio + jnp.where(valid, scale * e, 0.0).astype(audio.dtype)


def add_noise_snr(rng: Array, audio: Array, lengths: Optional[Array], snr_db,
                  distribution: str = 'normal') -> Array:
  """x + white noise at SNR ~ U(lo, hi) dB (or fixed), relative to each
  example's mean power over its valid samples; padding stays 0."""
  b, n = audio.shape
  lengths, valid = _valid(lengths, b, n)
  k_s, k_e = jax.random.split(rng)
  lo, hi = _range(snr_db)
  snr = jax.random.uniform(k_s, (b, 1), minval=lo, maxval=hi) if hi > lo \
      else jnp.full((b, 1), lo)
  x = audio.astype(jnp.float32)
  power = jnp.sum(jnp.where(valid, x * x, 0.0), axis=1, keepdims=True) / \
      jnp.maximum(lengths[:, None], 1).astype(jnp.float32)
  sigma = jnp.sqrt(power / (10.0 ** (snr / 10.0)))
  e = _white(k_e, (b, n), distribution)
  if distribution == 'uniform':
    e = e * np.float32(np.sqrt(3.0))  # unit variance
  return audio + jnp.where(valid, sigma * e, 0.0).astype(audio.dtype)


def waveform_enabled(cfg) -> bool:
  """Whether `cfg` turns on any waveform transform (shift, gain or noise)."""
  if not cfg:
    return False
  return any(_get(cfg, k, WAVEFORM_DEFAULTS) is not None
             for k in ('shift_max_seconds', 'gain_db', 'noise_amplitude', 'noise_snr_db'))


def augment_waveform(rng: Array, audio: Array, lengths: Optional[Array], cfg) -> Array:
  """Applies the waveform transforms `cfg` enables (module docstring) to
  `audio` f32 `[B, N]` (zero-padded past `lengths` [B]; None = all valid).
  Returns `[B, N]`, same dtype; all disabled -> `audio` unchanged."""
  g = lambda k: _get(cfg, k, WAVEFORM_DEFAULTS)  # noqa: E731
  audio = jnp.asarray(audio)
  if audio.ndim != 2:
    raise ValueError(f'audio must be [B, N], got {audio.shape}')
  if g('noise_amplitude') is not None and g('noise_snr_db') is not None:
    raise cli.UsageError('set noise_amplitude or noise_snr_db, not both')
  b = audio.shape[0]
  k_shift, k_gain, k_noise = jax.random.split(rng, 3)

  if g('shift_max_seconds') is not None:
    s = int(round(float(g('shift_max_seconds')) * int(g('sample_rate'))))
    if s > 0:
      k, kp = jax.random.split(k_shift)
      new = time_shift(k, audio, lengths, s, g('shift_mode'))
      audio = _select(_apply_prob(kp, g('shift_prob'), b), new, audio)

  if g('gain_db') is not None:
    k, kp = jax.random.split(k_gain)
    new = random_gain(k, audio, g('gain_db'))
    audio = _select(_apply_prob(kp, g('gain_prob'), b), new, audio)

  if g('noise_amplitude') is not None or g('noise_snr_db') is not None:
    k, kp = jax.random.split(k_noise)
    if g('noise_amplitude') is not None:
      new = add_noise_amplitude(k, audio, lengths, float(g('noise_amplitude')),
                                bool(g('noise_random_scale')),
                                g('noise_distribution'))
    else:
      new = add_noise_snr(k, audio, lengths, g('noise_snr_db'),
                          g('noise_distribution'))
    audio = _select(_apply_prob(kp, g('noise_prob'), b), new, audio)
  return audio


# ---------------------------------------------------------------------------
# SpecAugment-style masks
# ---------------------------------------------------------------------------


def _band_masks(rng: Array, count: int, max_width: int, limit: Array, size: int) -> Array:
  """bool [B, size]: union of `count` bands, width w ~ U{0..max_width}
  clipped to `limit` [B], start ~ U{0..limit - w}."""
  b = limit.shape[0]
  pos = jnp.arange(size, dtype=jnp.int32)[None, :]
  out = jnp.zeros((b, size), bool)
  for k in jax.random.split(rng, count):
    kw, ks = jax.random.split(k)
    w = jax.random.randint(kw, (b,), 0, int(max_width) + 1)
    w = jnp.minimum(w, limit)
    start = jnp.floor(jax.random.uniform(ks, (b,)) *
                      (limit - w + 1).astype(jnp.float32)).astype(jnp.int32)
    start = jnp.clip(start, 0, jnp.maximum(limit - w, 0))
    out = out | ((pos >= start[:, None]) & (pos < (start + w)[:, None]))
  return out


def spec_masks(rng: Array, mask: Array, num_bins: int, cfg) -> tuple[Array, Array]:
  """-> (time bool [B, T], freq bool [B, F]) regions to mask; time masks lie
  within each example's valid frames (mask is a valid prefix or not: the
  band is drawn over [0, number of valid frames))."""
  g = lambda k: _get(cfg, k, FEATURE_DEFAULTS)  # noqa: E731
  b, t = mask.shape
  k_t, k_f = jax.random.split(rng)
  n_valid = jnp.sum(mask, axis=1).astype(jnp.int32)
  tm = jnp.zeros((b, t), bool)
  fm = jnp.zeros((b, num_bins), bool)
  if int(g('time_masks')) > 0 and int(g('time_mask_max_frames')) > 0:
    tm = _band_masks(k_t, int(g('time_masks')), int(g('time_mask_max_frames')),
                     n_valid, t) & mask
  if int(g('freq_masks')) > 0 and int(g('freq_mask_max_bins')) > 0:
    fm = _band_masks(k_f, int(g('freq_masks')), int(g('freq_mask_max_bins')),
                     jnp.full((b,), num_bins, jnp.int32), num_bins)
  return tm, fm


def augment_features(rng: Array, feats: Array, mask: Optional[Array], cfg) -> Array:
  """SpecAugment time/frequency masks on `feats [B, T, F, C]` (mask bool
  [B, T], None = all valid): masked entries set to cfg.mask_value, padded
  frames untouched. All disabled -> `feats` unchanged."""
  g = lambda k: _get(cfg, k, FEATURE_DEFAULTS)  # noqa: E731
  time_on = int(g('time_masks')) > 0 and int(g('time_mask_max_frames')) > 0
  freq_on = int(g('freq_masks')) > 0 and int(g('freq_mask_max_bins')) > 0
  if not (time_on or freq_on):
    return feats
  feats = jnp.asarray(feats)
  if feats.ndim != 4:
    raise ValueError(f'feats must be [B, T, F, C], got {feats.shape}')
  b, t, f, _ = feats.shape
  if mask is None:
    mask = jnp.ones((b, t), bool)
  mask = jnp.asarray(mask, bool)
  tm, fm = spec_masks(rng, mask, f, cfg)
  hit = (tm[:, :, None] | (fm[:, None, :] & mask[:, :, None]))[..., None]
  return jnp.where(hit, jnp.asarray(g('mask_value'), feats.dtype), feats)


# ---------------------------------------------------------------------------
# Offline (librosa, CPU)
# ---------------------------------------------------------------------------


def offline_variants(cfg=None) -> list[str]:
  """Names of the variants `offline_augment` makes per waveform, in order."""
  g = lambda k: _get(cfg, k, OFFLINE_DEFAULTS)  # noqa: E731
  for k in ('noise_amplitude', 'stretch_rate', 'pitch_steps'):   # None drops the variant
    if g(k) is not None and (isinstance(g(k), bool) or not isinstance(g(k), (int, float))):
      raise cli.UsageError(f'augment offline {k} must be a number or None, got {g(k)!r}')
  names = []
  if g('include_original'):
    names.append('original')
  if g('noise_amplitude') is not None:
    names.append('noise')
  if g('stretch_rate') is not None:
    names.append('stretch')
  if g('pitch_steps') is not None:
    names.append('pitch')
  rates = g('speed_rates')
  if rates is not None:
    rates = [rates] if isinstance(rates, (int, float)) and not isinstance(rates, bool) else rates
    if (isinstance(rates, (str, bytes)) or not hasattr(rates, '__iter__') or not list(rates)
        or any(isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r != 1
               for r in rates)):
      raise cli.UsageError('augment offline speed_rates must be None or positive numbers '
                           f'other than 1, e.g. (0.9, 1.1); got {rates!r}')
    names.extend(speed_variant(r) for r in rates)
  return names


def speed_variant(rate: float) -> str:
  """The variant name of speed perturbation at `rate` ('speed0.9')."""
  return f'speed{float(rate):g}'


def is_speed_copy(path: str) -> bool:
  """Whether an augmented utterance's path ('file.wav#speed0.9') is a speed-perturbed
  copy: a new voice (pitch and formants moved), which per-speaker statistics keep apart."""
  return '#' in path and path.rsplit('#', 1)[1].startswith('speed')


def offline_augment(waveforms: Sequence[np.ndarray], sr: int, cfg=None,
                    seed: int = 0, first: int = 0) -> list[tuple[str, np.ndarray]]:
  """Gomes et al.'s offline augmentation with librosa (x4 with the defaults).

  For each waveform (float, or int16 scaled by 1/32768), in order, the
  variants of `offline_variants(cfg)`:
    'original'  the waveform (float32),
    'noise'     x + a * u * max|x| * e (a = noise_amplitude 0.035; u ~ U(0,1)
                if noise_random_scale; e ~ N(0, 1) or U(-1, 1)),
    'stretch'   `librosa.effects.time_stretch(x, rate=stretch_rate)` (0.8:
                slower, 1 / 0.8 as long),
    'pitch'     `librosa.effects.pitch_shift(x, sr=sr, n_steps=pitch_steps)`
                (0.7 semitone up, same length),
    'speed<r>'  for each r of speed_rates: x played r times as fast (tempo and
                pitch x r, length / r), `librosa.resample` (soxr) from sr to
                sr / r, read at sr: sox's `speed r`, Kaldi's perturbation.
  cfg fields: include_original (True), noise_amplitude (0.035; None drops
  the variant), noise_random_scale (True), noise_distribution ('normal'),
  stretch_rate (0.8; None drops), pitch_steps (0.7; None drops),
  speed_rates (None; e.g. (0.9, 1.1)).

  Returns a flat list of (name, float32 array), waveform-major: entry
  i * k + j is variant j of waveform i, k = len(offline_variants(cfg)).
  Deterministic given `seed` (noise of waveform i uses its own stream, so it
  does not depend on the other waveforms); `first` numbers the waveforms from
  there, so a call on waveforms[a:b] with first=a gives that part of the
  whole call's output (what parallel callers use).
  """
  import librosa  # Lazy: ~1 s to import, only the offline variants need it.

  g = lambda k: _get(cfg, k, OFFLINE_DEFAULTS)  # noqa: E731
  names = offline_variants(cfg)
  out: list[tuple[str, np.ndarray]] = []
  # = SeedSequence(seed).spawn(first + n)[first:], without making the first ones.
  seeds = [np.random.SeedSequence(int(seed), spawn_key=(int(first) + i,))
           for i in range(len(waveforms))]
  for y, ss in zip(waveforms, seeds):
    y = np.asarray(y)
    if y.dtype == np.int16:
      y = y.astype(np.float32) / 32768.0
    y = np.asarray(y, np.float32)
    for name in names:
      if name == 'original':
        z = y.copy()
      elif name == 'noise':
        rng = np.random.default_rng(ss)
        u = rng.uniform() if g('noise_random_scale') else 1.0
        amp = float(g('noise_amplitude')) * u * (np.max(np.abs(y)) if y.size else 0.0)
        if g('noise_distribution') == 'uniform':
          e = rng.uniform(-1.0, 1.0, size=y.shape)
        else:
          e = rng.standard_normal(size=y.shape)
        z = (y + amp * e).astype(np.float32)
      elif name == 'stretch':
        z = librosa.effects.time_stretch(y, rate=float(g('stretch_rate')))
      elif name == 'pitch':
        z = librosa.effects.pitch_shift(y, sr=sr, n_steps=float(g('pitch_steps')))
      else:   # 'speed<r>'
        z = librosa.resample(y, orig_sr=sr, target_sr=sr / float(name[len('speed'):]),
                             res_type='soxr_hq')
      out.append((name, np.asarray(z, np.float32)))
  return out
