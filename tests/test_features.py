"""Parity of ser_jax.features with librosa 0.11, masks, batching and stats.

librosa returns [F, T]; ser_jax returns [T, F], so references are transposed.
Linear-domain quantities (STFT, Mel power, deltas of arbitrary data) are
compared by relative error = max |got - ref| / max |ref| <= 1e-4. Log-domain
quantities (log-Mel and its deltas) are compared with an absolute tolerance of
2e-4 nats (observed <= 3e-5 on CPU): float32 rounding of the FFT is relative to a frame's total
energy, so bands whose energy is many decades below the frame's peak (and the
padded frames near log(eps)) carry a small absolute, not relative, error.
"""

import functools
import warnings

import jax
import jax.numpy as jnp
import librosa
import ml_collections
import numpy as np
import pytest

from ser_jax import cli
from ser_jax import features as F

# The log-Mel + deltas front end on any config, without CPU chunking.
LOGMEL = F.frontends.unchunked('logmel_deltas')

SR = 16000
N_FFT, WIN, HOP = 512, 400, 160
LENGTHS = (300, 1000, 12345, 48000)
LOG_ATOL = 2e-4


def rel_err(got, ref):
  got, ref = np.asarray(got), np.asarray(ref)
  assert got.shape == ref.shape, (got.shape, ref.shape)
  return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))


def noise(n, seed=0):
  return np.random.default_rng(seed).standard_normal(n).astype(np.float32) * 0.1


def harmonic(n, seed=1):
  """Chirped sum of harmonics (f0 120 -> 300 Hz) with 4 Hz amplitude
  modulation, plus a -60 dB noise floor (as any recording has)."""
  t = np.arange(n) / SR
  dur = max(n / SR, 1e-3)
  f0 = 120.0 + (300.0 - 120.0) * t / dur
  phase = 2 * np.pi * np.cumsum(f0) / SR
  y = sum(np.sin(k * phase) / k for k in range(1, 25))
  y = y * (0.6 + 0.4 * np.sin(2 * np.pi * 4.0 * t))
  y = 0.3 * y / np.max(np.abs(y))
  y = y + 3e-4 * np.random.default_rng(seed).standard_normal(n)
  return y.astype(np.float32)


SIGNALS = [(kind, n) for kind in ('noise', 'harmonic') for n in LENGTHS]


def make_signal(kind, n):
  return noise(n) if kind == 'noise' else harmonic(n)


def ref_melspec(y, window='hamming', n_mels=40, fmin=0.0, fmax=8000.0):
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # librosa warns n_fft > len for short y
    return librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=N_FFT, hop_length=HOP, win_length=WIN,
        window=window, center=True, pad_mode='constant', power=2.0,
        n_mels=n_mels, fmin=fmin, fmax=fmax).T


def default_cfg(**overrides):
  cfg = ml_collections.ConfigDict(dict(
      name='logmel_deltas', sample_rate=SR, n_fft=N_FFT, win_length=WIN,
      hop_length=HOP, window='hamming', n_mels=40, fmin=0.0, fmax=8000.0,
      log_eps=1e-6, delta_width=5, num_frames=300))
  cfg.update(overrides)
  return cfg


# ---------------------------------------------------------------------------
# STFT / Mel / log-Mel
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('kind,n', SIGNALS)
@pytest.mark.parametrize('window', ['hamming', 'hann'])
def test_stft_matches_librosa(kind, n, window):
  y = make_signal(kind, n)
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    ref = librosa.stft(y, n_fft=N_FFT, hop_length=HOP, win_length=WIN,
                       window=window, center=True, pad_mode='constant').T
  got = np.asarray(F.stft(y, n_fft=N_FFT, hop_length=HOP, win_length=WIN,
                          window=window))
  assert got.shape == (1 + n // HOP, N_FFT // 2 + 1)
  assert F.stft_num_frames(n, N_FFT, HOP) == got.shape[0]
  assert rel_err(np.abs(got), np.abs(ref)) <= 1e-4
  assert rel_err(got, ref) <= 1e-4  # complex values (phase) too


def test_stft_not_centered_and_batched():
  y = np.stack([noise(4000, 3), harmonic(4000, 4)])
  ref = np.stack([librosa.stft(r, n_fft=N_FFT, hop_length=HOP, win_length=WIN,
                               window='hann', center=False).T for r in y])
  got = np.asarray(F.stft(y, n_fft=N_FFT, hop_length=HOP, win_length=WIN,
                          window='hann', center=False))
  assert rel_err(got, ref) <= 1e-4


@pytest.mark.parametrize('kind,n', SIGNALS)
@pytest.mark.parametrize('window', ['hamming', 'hann'])
def test_mel_and_log_mel_match_librosa(kind, n, window):
  y = make_signal(kind, n)
  ref = ref_melspec(y, window=window)
  spec = F.stft(y, n_fft=N_FFT, hop_length=HOP, win_length=WIN, window=window)
  mel = F.mel_spectrogram(F.power_spectrogram(spec),
                          F.mel_filterbank(SR, N_FFT, 40, 0.0, 8000.0))
  assert rel_err(mel, ref) <= 1e-4
  lm = np.asarray(F.log_mel(mel, 1e-6))
  np.testing.assert_allclose(lm, np.log(ref + 1e-6), rtol=0, atol=LOG_ATOL)


def test_mel_filterbank_cached_and_fmax_none():
  a = F.mel_filterbank(SR, N_FFT, 40, 0.0, None)
  b = F.mel_filterbank(SR, N_FFT, 40, 0.0, 8000.0)
  assert a is b and a.shape == (N_FFT // 2 + 1, 40) and a.dtype == np.float32
  np.testing.assert_array_equal(
      a.T, librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=40, fmin=0.0,
                               fmax=8000.0))


# ---------------------------------------------------------------------------
# Deltas
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('width', [3, 5, 9])
@pytest.mark.parametrize('order', [1, 2])
@pytest.mark.parametrize('t', [9, 10, 57, 300])
def test_delta_matches_librosa(width, order, t):
  x = np.random.default_rng(t).standard_normal((2, t, 40)).astype(np.float32)
  x = x + 10.0  # log-Mel-like offset
  ref = librosa.feature.delta(np.swapaxes(x, -1, -2), width=width,
                              order=order, axis=-1)
  got = F.delta(x, width=width, order=order)  # time axis -2
  assert rel_err(got, np.swapaxes(ref, -1, -2)) <= 1e-4
  # Explicit axis, librosa layout.
  got2 = F.delta(np.swapaxes(x, -1, -2), width=width, order=order, axis=-1)
  assert rel_err(got2, ref) <= 1e-4


def test_delta_width_equal_to_length():
  x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
  for order in (1, 2):
    ref = librosa.feature.delta(x.T, width=5, order=order).T
    assert rel_err(F.delta(x, width=5, order=order), ref) <= 1e-4


@pytest.mark.parametrize('kwargs,t', [
    (dict(width=4), 20), (dict(width=1), 20), (dict(width=9), 8),
    (dict(width=5, order=0), 20), (dict(width=5, order=1.5), 20)])
def test_delta_rejects_bad_args(kwargs, t):
  with pytest.raises(ValueError):
    F.delta(jnp.zeros((t, 4)), **kwargs)


# ---------------------------------------------------------------------------
# Masks and the headline stack
# ---------------------------------------------------------------------------


def test_frame_mask():
  lengths = np.array([0, 1, 160, 161, 25000, 48000])
  m = np.asarray(F.frame_mask(lengths, 301, HOP))
  assert m.shape == (6, 301) and m.dtype == bool
  np.testing.assert_array_equal(m.sum(1), [0, 1, 1, 2, 157, 300])
  for row, n in zip(m, lengths):  # valid frames form a prefix
    np.testing.assert_array_equal(row, np.arange(301) * HOP < n)


def ref_stack(y_padded, cfg):
  lm = np.log(ref_melspec(y_padded) + cfg.log_eps).T  # [M, T_all]
  if cfg.num_frames is not None:
    lm = lm[:, :cfg.num_frames]
  d1 = librosa.feature.delta(lm, width=cfg.delta_width, order=1)
  d2 = librosa.feature.delta(lm, width=cfg.delta_width, order=2)
  return np.stack([lm.T, d1.T, d2.T], axis=-1)  # [T, M, 3]


@pytest.mark.parametrize('width', [5, 9])
def test_logmel_deltas_matches_librosa(width):
  cfg = default_cfg(delta_width=width)
  n_total = 3 * SR
  lengths = np.array([n_total, 30000, 12345])
  ys = [harmonic(n_total), noise(30000), harmonic(12345, seed=7)]
  x = np.zeros((3, n_total), np.float32)
  for i, y in enumerate(ys):
    x[i, :len(y)] = y[:n_total]
  feats, mask = jax.jit(F.make_frontend(cfg))(x, lengths)
  assert feats.shape == (3, 300, 40, 3) and feats.dtype == jnp.float32
  assert mask.shape == (3, 300) and mask.dtype == jnp.bool_
  assert F.num_frames(n_total, cfg) == 300
  np.testing.assert_array_equal(mask, F.frame_mask(lengths, 300, HOP))
  for i in range(3):
    ref = ref_stack(x[i], cfg)
    np.testing.assert_allclose(np.asarray(feats[i]), ref, rtol=0, atol=LOG_ATOL)
    # Static channel relative to its dynamic range, too.
    assert rel_err(feats[i, ..., 0], ref[..., 0]) <= 1e-4


def test_logmel_deltas_all_frames_and_short_padding():
  cfg = default_cfg(num_frames=None, delta_width=9)
  y = harmonic(20000)
  feats, mask = LOGMEL(y[None], None, cfg)
  # num_frames None: the frames centred inside the signal, ceil(N / hop);
  # librosa's frame 125, centred on sample 20000 == length, is left out.
  assert feats.shape == (1, 20000 // HOP, 40, 3)
  assert F.num_frames(20000, cfg) == feats.shape[1] == 125
  assert F.num_frames(20001, cfg) == 126 == 1 + 20001 // HOP
  np.testing.assert_array_equal(mask[0], np.ones(125, bool))
  np.testing.assert_allclose(np.asarray(feats[0]),
                             ref_stack(y, default_cfg(num_frames=125, delta_width=9)),
                             rtol=0, atol=LOG_ATOL)
  # A waveform shorter than num_frames is zero-padded at the end.
  cfg300 = default_cfg()
  short, mshort = LOGMEL(y[None], jnp.array([20000]), cfg300)
  padded = np.zeros(3 * SR, np.float32)
  padded[:20000] = y
  full, mfull = LOGMEL(padded[None], jnp.array([20000]), cfg300)
  assert short.shape == (1, 300, 40, 3)
  np.testing.assert_allclose(short, full, rtol=0, atol=1e-5)
  np.testing.assert_array_equal(mshort, mfull)


def test_too_few_frames_for_delta_raises():
  cfg = default_cfg(num_frames=None, delta_width=9)
  with pytest.raises(ValueError):
    LOGMEL(jnp.zeros((1, 1000)), None, cfg)  # 7 frames < 9


def test_batch_independence_and_jit():
  cfg = default_cfg()
  fn = F.make_frontend(cfg)
  jfn = jax.jit(fn)
  n_total = 3 * SR
  a, b = harmonic(40000, seed=2), noise(25000, seed=5)
  x = np.zeros((2, n_total), np.float32)
  x[0, :40000], x[1, :25000] = a, b
  lengths = np.array([40000, 25000])
  fb, mb = jfn(x, lengths)
  for i in range(2):
    fi, mi = jfn(x[i:i + 1], lengths[i:i + 1])
    np.testing.assert_allclose(fb[i], fi[0], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(mb[i], mi[0])
  # Eager == jitted, and a plain dict config works the same way.
  fe, me = fn(x, lengths)
  np.testing.assert_allclose(fe, fb, rtol=0, atol=1e-5)
  np.testing.assert_array_equal(me, mb)
  fd, _ = jax.jit(F.make_frontend(dict(cfg)))(x, lengths)
  np.testing.assert_allclose(fd, fb, rtol=0, atol=1e-5)
  assert set(F.FRONTENDS) >= {'logmel_deltas'}
  with pytest.raises(cli.UsageError):
    F.make_frontend(default_cfg(name='nope'))


# ---------------------------------------------------------------------------
# Normalisation statistics
# ---------------------------------------------------------------------------


def test_stats_match_numpy_over_valid_frames():
  rng = np.random.default_rng(0)
  shape = (40, 3)
  # Log-Mel-like magnitudes (~ -10 +- 3) with small per-feature variance.
  loc = rng.uniform(-12, -8, size=shape)
  scale = rng.uniform(0.05, 3.0, size=shape)
  acc_fn = jax.jit(F.accumulate_stats)
  merge_fn = jax.jit(F.merge_stats)
  acc = F.zero_stats(shape)
  valid = []
  for b in range(4):
    feats = (loc + scale * rng.standard_normal((5, 50) + shape)).astype(
        np.float32)
    lengths = rng.integers(0, 51, size=5)
    if b == 2:
      lengths[:] = 0  # an all-padding batch must be a no-op
    mask = np.arange(50)[None] < lengths[:, None]
    feats[~mask] = -1e3  # garbage in padded frames must be ignored
    acc = merge_fn(acc, acc_fn(feats, mask))
    valid.append(feats[mask].astype(np.float64))
  valid = np.concatenate(valid)
  stats = F.finalize_stats(acc)
  assert float(acc['count']) == len(valid)
  np.testing.assert_allclose(stats['mean'], valid.mean(0), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(stats['std'], valid.std(0), rtol=1e-4, atol=1e-5)
  assert stats['mean'].dtype == jnp.float32 and stats['std'].shape == shape

  # Floor on the std, and normalize.
  const = F.finalize_stats(F.accumulate_stats(jnp.full((2, 4) + shape, 3.0)))
  np.testing.assert_allclose(const['std'], 1e-5)
  feats = jnp.asarray(loc + scale * rng.standard_normal((2, 7) + shape),
                      jnp.float32)
  z = F.normalize(feats, stats)
  np.testing.assert_allclose(z, (feats - stats['mean']) / stats['std'],
                             rtol=1e-6)
  mask = jnp.arange(7)[None] < jnp.array([[3], [7]])
  zm = F.normalize(feats, stats, mask)
  assert float(jnp.abs(zm[0, 3:]).max()) == 0.0
  np.testing.assert_allclose(zm[1], z[1])


# ---------------------------------------------------------------------------
# dB, MFCC, zero-crossing rate, chroma (librosa parity)
# ---------------------------------------------------------------------------

SEN = dict(n_fft=1536, hop_length=372)  # the 16 kHz 'mfcc' stack framing
PARITY_SIGNALS = [('noise', 5000), ('noise', 48000), ('harmonic', 5000),
                  ('harmonic', 48000)]


def jitted(fn, **kw):
  return jax.jit(functools.partial(fn, **kw))


def quiet(x):
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    return x()


def test_power_to_db_per_example():
  rng = np.random.default_rng(0)
  s = (rng.uniform(0, 1, (3, 50, 20)) ** 8).astype(np.float32)
  s[1] *= 1e-4  # a quiet example: its floor is its own max - top_db
  s[2, :, :3] = 0.0
  for kw in (dict(), dict(top_db=None), dict(amin=1e-6, top_db=40.0)):
    got = F.power_to_db(s, **kw)
    got_max = F.power_to_db(s, ref='max', **kw)
    for i in range(3):
      ref = librosa.power_to_db(s[i], **kw)
      assert rel_err(got[i], ref) <= 1e-5
      ref = librosa.power_to_db(s[i], ref=np.max, **kw)
      np.testing.assert_allclose(got_max[i], ref, rtol=0, atol=1e-4)
  np.testing.assert_allclose(F.power_to_db(s[0], ref=2.0),
                             librosa.power_to_db(s[0], ref=2.0), atol=1e-4)


def test_dct_matrix():
  x = np.random.default_rng(0).standard_normal((7, 40))
  import scipy.fft
  ref = scipy.fft.dct(x, type=2, norm='ortho', axis=-1)[:, :13]
  np.testing.assert_allclose(x @ F.dct_matrix(40, 13), ref, rtol=0, atol=1e-5)
  with pytest.raises(ValueError):
    F.dct_matrix(40, 41)


@pytest.mark.parametrize('kind,n', PARITY_SIGNALS)
def test_mfcc_matches_librosa(kind, n):
  y = make_signal(kind, n)
  for kw in (dict(n_mfcc=40, **SEN), dict(n_mfcc=20, n_fft=2048, hop_length=512, lifter=22)):
    ref = quiet(lambda: librosa.feature.mfcc(y=y, sr=SR, **kw)).T
    got = jitted(F.mfcc, sr=SR, **kw)(y)
    assert rel_err(got, ref) <= 1e-4, kw
  # Batched: each example gets its own top_db floor.
  yb = np.stack([y, 1e-3 * make_signal('noise', n)])
  got = jitted(F.mfcc, sr=SR, n_mfcc=40, **SEN)(yb)
  for i in range(2):
    ref = quiet(lambda: librosa.feature.mfcc(y=yb[i], sr=SR, n_mfcc=40, **SEN)).T
    assert rel_err(got[i], ref) <= 1e-4


@pytest.mark.parametrize('kind,n', PARITY_SIGNALS)
def test_zero_crossing_rate_matches_librosa(kind, n):
  y = make_signal(kind, n)
  y[100:300] = 0.0  # exact zeros count as positive
  y[400:420] = 1e-11 * (-1) ** np.arange(20)  # under the threshold
  for kw in (dict(), dict(frame_length=1536, hop_length=372),
             dict(frame_length=512, hop_length=160, center=False),
             dict(frame_length=400, hop_length=100, threshold=0.05)):
    ref = librosa.feature.zero_crossing_rate(y, **kw)[0]
    got = jitted(F.zero_crossing_rate, **kw)(y)
    assert rel_err(got, ref) <= 1e-6, kw


@pytest.mark.parametrize('kind,n', PARITY_SIGNALS)
def test_chroma_matches_librosa_fixed_tuning(kind, n):
  y = make_signal(kind, n)
  for tuning, norm in ((0.0, np.inf), (0.0, 2), (0.25, np.inf), (0.0, None)):
    ref = quiet(lambda: librosa.feature.chroma_stft(
        y=y, sr=SR, tuning=tuning, norm=norm, **SEN)).T
    got = jitted(F.chroma_stft, sr=SR, tuning=tuning, norm=norm, **SEN)(y)
    assert rel_err(got, ref) <= 1e-4, (tuning, norm)
  # Silent frames stay 0 (librosa leaves them unnormalised).
  z = np.zeros(4000, np.float32)
  np.testing.assert_array_equal(F.chroma_stft(z, sr=SR, **SEN), 0.0)


# ---------------------------------------------------------------------------
# Per-model stacks
# ---------------------------------------------------------------------------


def stack_cfg(name, **kw):
  cfg = ml_collections.ConfigDict(F.frontend_defaults(name))
  cfg.update(kw)
  return cfg


def padded_batch(lengths, n_total, seed=0):
  x = np.zeros((len(lengths), n_total), np.float32)
  for i, ln in enumerate(lengths):
    y = harmonic(ln, seed=seed + i) if i % 2 == 0 else noise(ln, seed=seed + i)
    x[i, :ln] = y
  return x


def ref_mfcc_stack(y, cfg, t):
  mel = quiet(lambda: librosa.feature.melspectrogram(
      y=y, sr=SR, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
      n_mels=cfg.n_mels))[:, :t]
  return librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=cfg.n_mfcc).T


def test_mfcc_stack_matches_librosa():
  cfg = stack_cfg('mfcc', num_frames=130)
  assert F.num_frames(3 * SR, cfg) == 130
  assert F.num_frames(3 * SR, stack_cfg('mfcc')) == 130  # 1 + 48000 // 372
  lengths = np.array([48000, 30000, 9000])
  x = padded_batch(lengths, 48000)
  feats, mask = jax.jit(F.make_frontend(cfg))(x, lengths)
  assert feats.shape == (3, 130, 40, 1) and mask.shape == (3, 130)
  np.testing.assert_array_equal(mask, F.frame_mask(lengths, 130, 372))
  for i in range(3):
    assert rel_err(feats[i, ..., 0], ref_mfcc_stack(x[i], cfg, 130)) <= 1e-4


def test_mfcc_zcr_chroma_matches_librosa():
  cfg = stack_cfg('mfcc_zcr_chroma')
  lengths = np.array([48000, 20000])
  x = padded_batch(lengths, 48000, seed=3)
  feats, mask = jax.jit(F.make_frontend(cfg))(x, lengths)
  t = 1 + 48000 // 372
  assert feats.shape == (2, t, 20 + 1 + 12, 1)
  for i in range(2):
    f = np.asarray(feats[i, ..., 0])
    assert rel_err(f[:, :20], ref_mfcc_stack(x[i], cfg, t)) <= 1e-4
    zcr = librosa.feature.zero_crossing_rate(x[i], frame_length=1536,
                                             hop_length=372)[0]
    assert rel_err(f[:, 20], zcr) <= 1e-6
    chroma = librosa.feature.chroma_stft(y=x[i], sr=SR, n_fft=1536,
                                         hop_length=372, tuning=0.0).T
    assert rel_err(f[:, 21:], chroma) <= 1e-4


@pytest.mark.parametrize('scale,channels', [('db', 1), ('unit', 3)])
def test_mel_image_matches_librosa(scale, channels):
  cfg = stack_cfg('mel_image', image_scale=scale, channels=channels)
  assert F.num_frames(3 * SR, cfg) == 128
  lengths = np.array([48000, 30000, 20000, 5000])
  x = padded_batch(lengths, 48000, seed=5)
  feats, mask = jax.jit(F.make_frontend(cfg))(x, lengths)
  assert feats.shape == (4, 128, 128, channels)
  # Valid frames of the 2.5 s window that starts at 0.5 s.
  win_len = np.clip(lengths - 8000, 0, 40000)
  np.testing.assert_array_equal(mask, F.frame_mask(win_len, 128, 314))
  assert not np.asarray(mask[3]).any()
  for i in range(3):  # (the last one is silent in the window)
    y = x[i, 8000:48000]
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=1536, hop_length=314,
                                         n_mels=128)
    ref = librosa.power_to_db(mel, ref=np.max).T
    if scale == 'unit':
      ref = (ref + 80.0) / 80.0
    for c in range(channels):
      np.testing.assert_allclose(feats[i, ..., c], ref, rtol=0,
                                 atol=1e-4 * np.abs(ref).max())
  if scale == 'db':
    # (ref=max in float32: the peak itself may round to a hair above 0.)
    assert float(feats.max()) <= 1e-5 and float(feats.min()) >= -80.0
  with pytest.raises(ValueError):
    F.make_frontend(stack_cfg('mel_image', hop_length=160))  # 251 frames
  derived = F.make_frontend(stack_cfg('mel_image', hop_length=None))
  assert derived.config['hop_length'] == 314


def one_by_one_cases():
  return [
      ('logmel_deltas', dict()),
      ('logmel_deltas', dict(delta_lengths=True, delta_width=9)),
      ('mfcc', dict(num_frames=130)),
      ('mfcc_zcr_chroma', dict(num_frames=129)),
      ('mel_image', dict(channels=3)),
  ]


@pytest.mark.parametrize('name,kw', one_by_one_cases())
def test_mixed_length_batch_equals_one_by_one(name, kw):
  cfg = stack_cfg(name, **kw)
  lengths = np.array([48000, 16001, 2000])
  x = padded_batch(lengths, 48000, seed=11)
  fn = jax.jit(F.make_frontend(cfg))
  fb, mb = fn(x, lengths)
  scale = max(float(jnp.abs(fb).max()), 1.0)
  for i, ln in enumerate(lengths):
    # Alone, at the batch's padded length ...
    fi, mi = fn(x[i:i + 1], lengths[i:i + 1])
    np.testing.assert_allclose(fb[i], fi[0], rtol=0, atol=1e-5 * scale)
    np.testing.assert_array_equal(mb[i], mi[0])
    # ... and alone at its own length (zero-padded inside as needed).
    fo, mo = fn(x[i:i + 1, :ln], lengths[i:i + 1])
    np.testing.assert_allclose(fb[i], fo[0], rtol=0, atol=1e-5 * scale)
    np.testing.assert_array_equal(mb[i], mo[0])


@pytest.mark.parametrize('width', [5, 9])
@pytest.mark.parametrize('order', [1, 2])
def test_delta_with_lengths_matches_librosa_per_example(width, order):
  rng = np.random.default_rng(width + order)
  x = rng.standard_normal((5, 40, 6)).astype(np.float32) + 3.0
  lengths = np.array([40, 25, 9, 3, 0])
  got = np.asarray(F.delta(x, width=width, order=order, lengths=lengths))
  for i, ln in enumerate(lengths):
    eff = max(int(ln), width)  # shorter than width: the fit sees padding
    ref = librosa.feature.delta(x[i, :eff].T, width=width, order=order).T
    assert rel_err(got[i, :ln], ref[:ln]) <= 1e-4 if ln else True
    assert np.all(got[i, ln:] == 0.0)
  # Full lengths == no lengths; librosa layout with a leading axis.
  np.testing.assert_allclose(
      F.delta(x, width=width, order=order, lengths=np.full(5, 40)),
      F.delta(x, width=width, order=order), rtol=0, atol=1e-6)
  xs = np.swapaxes(x, 1, 2)  # [B, F, T], time last
  np.testing.assert_allclose(
      np.swapaxes(F.delta(xs, width=width, order=order, axis=-1,
                          lengths=np.broadcast_to(lengths[:, None], (5, 6))), 1, 2),
      got, rtol=0, atol=1e-6)


def test_logmel_deltas_delta_lengths_matches_librosa_unpadded():
  cfg = default_cfg(delta_lengths=True)
  ln = 25001  # 157 valid frames; librosa on y[:ln] also gives 1 + ln // 160
  x = padded_batch([ln], 48000, seed=2)
  feats, mask = F.make_frontend(cfg)(x, np.array([ln]))
  t = int(mask.sum())
  assert t == 1 + ln // HOP
  lm = np.log(ref_melspec(x[0, :ln]) + 1e-6).T
  for c, order in ((1, 1), (2, 2)):
    ref = librosa.feature.delta(lm, width=5, order=order).T
    np.testing.assert_allclose(feats[0, :t, :, c], ref, rtol=0, atol=LOG_ATOL)
    assert np.all(np.asarray(feats[0, t:, :, c]) == 0.0)


def test_registry_defaults_and_num_frames():
  # The shipped front ends (a new one only adds to them) and their shapes.
  assert set(F.FRONTENDS) >= {'logmel_deltas', 'mfcc', 'mfcc_zcr_chroma', 'mel_image'}
  shapes = {}
  x = jnp.zeros((2, 3 * SR))
  for name in F.FRONTENDS:
    cfg = stack_cfg(name)
    # Extra fields (as the configs' segment settings) are ignored.
    cfg.segment_seconds = 3.0
    feats, mask = jax.eval_shape(F.make_frontend(cfg), x, jnp.array([48000, 100]))
    shapes[name] = feats.shape
    assert mask.shape == feats.shape[:2]
    assert F.num_frames(3 * SR, cfg) == feats.shape[1]
  assert {k: shapes[k] for k in ('logmel_deltas', 'mfcc', 'mfcc_zcr_chroma', 'mel_image')} == {
      'logmel_deltas': (2, 300, 40, 3), 'mfcc': (2, 130, 40, 1),
      'mfcc_zcr_chroma': (2, 130, 33, 1), 'mel_image': (2, 128, 128, 1)}
  for name in F.FRONTENDS:
    assert 'cpu_chunk' in F.frontend_defaults(name), name   # else CPU chunking is off
  with pytest.raises(cli.UsageError):
    F.frontend_defaults('nope')


def test_with_num_frames_one_rule():
  """with_num_frames fills an unset num_frames by num_frames' rule (the
  frames centred inside the segment), and the filled config gives the same
  features as the unfilled one."""
  from ml_collections import config_dict
  cfg = ml_collections.ConfigDict(dict(
      F.frontend_defaults('logmel_deltas'), segment_seconds=3.0,
      num_frames=config_dict.placeholder(int)))  # as configs/selfattn_gender.py
  out = F.with_num_frames(cfg, 3 * SR)
  assert isinstance(out, ml_collections.ConfigDict) and out is not cfg
  assert out.num_frames == 300 and cfg.num_frames is None
  assert out.segment_seconds == 3.0
  assert F.with_num_frames(cfg, SR).num_frames == 100
  assert F.with_num_frames(stack_cfg('mfcc', num_frames=44), 3 * SR).num_frames == 44
  assert F.with_num_frames(dict(stack_cfg('mfcc')), 3 * SR).num_frames == 130
  assert F.with_num_frames(stack_cfg('mel_image'), 3 * SR).num_frames == 128
  x = jnp.zeros((2, 20001))
  for name in F.FRONTENDS:
    unset = stack_cfg(name)
    if 'num_frames' in unset:
      unset.num_frames = None
    filled = F.with_num_frames(unset, x.shape[1])
    a, ma = jax.eval_shape(F.make_frontend(unset), x, None)
    b, _ = jax.eval_shape(F.make_frontend(filled), x, None)
    assert a.shape == b.shape and a.shape[1] == filled.num_frames, name
    if name != 'mel_image':  # T = the mask's valid count of a full row
      hop = unset.hop_length
      t = filled.num_frames
      assert t == -(-x.shape[1] // hop)
      assert np.asarray(F.frame_mask(np.array([x.shape[1]]), t + 1, hop)).sum() == t
  with pytest.raises(cli.UsageError):
    F.with_num_frames(dict(name='nope'), SR)


@pytest.mark.parametrize('name', ['logmel_deltas', 'mel_image'])
def test_cpu_chunking_same_values(name):
  lengths = np.array([48000, 30000, 12000, 9000, 48000])
  x = padded_batch(lengths, 48000, seed=4)
  ref = jax.jit(F.make_frontend(stack_cfg(name, cpu_chunk=0)))
  chunked = jax.jit(F.make_frontend(stack_cfg(name, cpu_chunk=2)))  # 3 chunks, 1 padded row
  for ln in (lengths, None):
    fa, ma = ref(x, ln)
    fb, mb = chunked(x, ln)
    np.testing.assert_allclose(fa, fb, rtol=0, atol=1e-5 * float(jnp.abs(fa).max()))
    np.testing.assert_array_equal(ma, mb)
  assert 'while' in jax.jit(F.make_frontend(stack_cfg(name, cpu_chunk=2))).lower(
      x, lengths).as_text()


def test_stft_vmappable_and_sharding_friendly():
  y = np.stack([noise(4000, 1), harmonic(4000, 2)])
  a = jax.vmap(lambda r: F.stft(r, n_fft=N_FFT, hop_length=HOP))(jnp.asarray(y))
  np.testing.assert_allclose(a, F.stft(y, n_fft=N_FFT, hop_length=HOP), atol=1e-6)


_SHARDED = r'''
import jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from ser_jax import features as F
assert jax.device_count() == 2
sh = NamedSharding(Mesh(np.array(jax.devices()), ('data',)), P('data'))
x = np.random.default_rng(0).standard_normal((4, 48000)).astype(np.float32) * 0.1
lengths = np.array([48000, 30000, 20000, 9000])
for name in ('logmel_deltas', 'mfcc_zcr_chroma'):
    fn = jax.jit(F.make_frontend({'name': name}))
    xs, ls = jax.device_put(x, sh), jax.device_put(lengths, sh)
    hlo = fn.lower(xs, ls).compile().as_text()
    assert 'all-gather' not in hlo and 'all-to-all' not in hlo, name
    feats, mask = fn(xs, ls)
    assert len(feats.sharding.device_set) == 2
    one = jax.jit(F.make_frontend({'name': name}), device=jax.devices()[0])
    ref, rmask = one(x, lengths)
    np.testing.assert_allclose(np.asarray(feats), np.asarray(ref), rtol=0, atol=1e-4)
    np.testing.assert_array_equal(mask, rmask)
print('OK')
'''


def test_batch_sharded_over_devices_has_no_gather():
  """Data parallel: the FFT stays split over the batch (no all-gather of the
  frames), and the values equal one device's."""
  import os
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2')
  proc = subprocess.run([sys.executable, '-c', _SHARDED], cwd=repo, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
  assert 'OK' in proc.stdout
