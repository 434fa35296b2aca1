"""ser_jax.augment: on-the-fly JAX transforms and offline librosa variants."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from ser_jax import augment as A

SR = 16000


def batch(lengths=(16000, 9000, 3000), n=16000, seed=0):
  rng = np.random.default_rng(seed)
  x = np.zeros((len(lengths), n), np.float32)
  t = np.arange(n) / SR
  for i, ln in enumerate(lengths):
    x[i, :ln] = (0.3 * np.sin(2 * np.pi * (150 + 50 * i) * t[:ln])
                 + 0.01 * rng.standard_normal(ln))
  return jnp.asarray(x), jnp.asarray(lengths, jnp.int32)


def test_disabled_is_identity():
  x, ln = batch()
  key = jax.random.key(0)
  for cfg in (None, {}, ml_collections.ConfigDict(), dict(noise_amplitude=None)):
    assert A.augment_waveform(key, x, ln, cfg) is x
  feats = jnp.asarray(np.random.default_rng(1).standard_normal((3, 20, 8, 2)),
                      jnp.float32)
  mask = jnp.arange(20)[None] < jnp.array([[20], [7], [0]])
  for cfg in (None, {}, dict(time_masks=2), dict(freq_mask_max_bins=3)):
    assert A.augment_features(key, feats, mask, cfg) is feats


def test_snr_of_added_noise():
  x, ln = batch(lengths=(16000, 12000), n=16000)
  key = jax.random.key(1)
  for snr in (0.0, 10.0, 20.0):
    y = A.augment_waveform(key, x, ln, dict(noise_snr_db=snr))
    for i, n in enumerate(np.asarray(ln)):
      sig = np.asarray(x[i, :n], np.float64)
      noise = np.asarray(y[i, :n], np.float64) - sig
      got = 10 * np.log10(np.mean(sig ** 2) / np.mean(noise ** 2))
      assert abs(got - snr) < 0.2, (snr, got)
      assert np.all(np.asarray(y[i, n:]) == 0.0)  # padding untouched
  # Uniform noise is scaled to the same power; a range draws within it.
  y = A.augment_waveform(key, x, ln, dict(noise_snr_db=10.0, noise_distribution='uniform'))
  noise = np.asarray(y[0] - x[0], np.float64)
  got = 10 * np.log10(np.mean(np.asarray(x[0], np.float64) ** 2) / np.mean(noise ** 2))
  assert abs(got - 10.0) < 0.2
  assert np.max(np.abs(noise)) <= np.sqrt(3) * 1.02 * np.sqrt(np.mean(noise ** 2))
  y = A.augment_waveform(key, x, ln, dict(noise_snr_db=(5.0, 15.0)))
  for i, n in enumerate(np.asarray(ln)):
    noise = np.asarray(y[i, :n] - x[i, :n], np.float64)
    got = 10 * np.log10(np.mean(np.asarray(x[i, :n], np.float64) ** 2) / np.mean(noise ** 2))
    assert 4.8 < got < 15.2


def test_noise_amplitude_gomes():
  x, ln = batch()
  key = jax.random.key(2)
  y = A.augment_waveform(key, x, ln, dict(noise_amplitude=0.035, noise_random_scale=False))
  for i, n in enumerate(np.asarray(ln)):
    noise = np.asarray(y[i, :n] - x[i, :n])
    peak = np.max(np.abs(np.asarray(x[i, :n])))
    assert abs(np.std(noise) / (0.035 * peak) - 1.0) < 0.05
    assert np.all(np.asarray(y[i, n:]) == 0.0)
  y2 = A.augment_waveform(key, x, ln, dict(noise_amplitude=0.035, noise_distribution='uniform',
                                           noise_random_scale=False))
  peak = np.max(np.abs(np.asarray(x[0])))
  assert np.max(np.abs(np.asarray(y2[0] - x[0]))) <= 0.035 * peak * 1.0001
  # With the random scale u ~ U(0, 1) the noise is never larger.
  y3 = A.augment_waveform(key, x, ln, dict(noise_amplitude=0.035, noise_distribution='uniform'))
  peaks = np.max(np.abs(np.asarray(x)), axis=1, keepdims=True)
  assert np.all(np.abs(np.asarray(y3 - x)) <= 0.035 * peaks * 1.0001)
  with pytest.raises(ValueError):
    A.augment_waveform(key, x, ln, dict(noise_amplitude=0.035, noise_snr_db=10.0))


def test_gain_and_shift_respect_lengths():
  x, ln = batch()
  key = jax.random.key(3)
  y = np.asarray(A.augment_waveform(key, x, ln, dict(gain_db=(-6.0, 6.0))))
  gains = []
  for i, n in enumerate(np.asarray(ln)):
    ratio = y[i, :n] / np.where(np.asarray(x[i, :n]) == 0, 1, np.asarray(x[i, :n]))
    g = 20 * np.log10(np.median(ratio))
    assert -6.0 - 1e-4 <= g <= 6.0 + 1e-4
    np.testing.assert_allclose(ratio[np.asarray(x[i, :n]) != 0], np.median(ratio), rtol=1e-5)
    gains.append(g)
  assert max(abs(g) for g in gains) > 0.1 and len(set(np.round(gains, 3))) > 1   # it acts
  for mode in ('roll', 'zero'):
    moved = 0
    cfg = dict(shift_max_seconds=0.1, shift_mode=mode)
    y = np.asarray(A.augment_waveform(key, x, ln, cfg))
    for i, n in enumerate(np.asarray(ln)):
      xi = np.asarray(x[i, :n])
      assert np.all(y[i, n:] == 0.0)
      shifts = [s for s in range(-1600, 1601)
                if (mode == 'roll' and np.array_equal(y[i, :n], np.roll(xi, s)))
                or (mode == 'zero' and np.array_equal(
                    y[i, :n], np.roll(xi, s) * ((np.arange(n) - s >= 0) & (np.arange(n) - s < n))))]
      assert shifts, (mode, i)
      moved += 0 not in shifts
    assert moved, mode   # some example was shifted
  # shift_prob=0 leaves everything as is.
  y = A.augment_waveform(key, x, ln, dict(shift_max_seconds=0.1, shift_prob=0.0))
  np.testing.assert_array_equal(y, x)


def test_determinism_and_jit():
  x, ln = batch()
  cfg = dict(shift_max_seconds=0.05, gain_db=(-3.0, 3.0), noise_snr_db=(10.0, 20.0),
             noise_prob=0.5)
  f = jax.jit(functools.partial(A.augment_waveform, cfg=cfg))
  a = f(jax.random.key(7), x, ln)
  b = f(jax.random.key(7), x, ln)
  c = f(jax.random.key(8), x, ln)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(np.asarray(a), np.asarray(c))
  np.testing.assert_allclose(a, A.augment_waveform(jax.random.key(7), x, ln, cfg), atol=1e-6)
  fcfg = dict(time_masks=2, time_mask_max_frames=5, freq_masks=2, freq_mask_max_bins=4)
  feats = jnp.asarray(np.random.default_rng(0).standard_normal((3, 30, 16, 3)) + 5, jnp.float32)
  mask = jnp.arange(30)[None] < jnp.array([[30], [12], [3]])
  g = jax.jit(functools.partial(A.augment_features, cfg=fcfg))
  np.testing.assert_array_equal(g(jax.random.key(1), feats, mask),
                                g(jax.random.key(1), feats, mask))
  np.testing.assert_array_equal(g(jax.random.key(1), feats, mask),
                                A.augment_features(jax.random.key(1), feats, mask, fcfg))


def test_spec_masks_touch_valid_frames_within_bounds():
  b, t, f, c = 6, 40, 20, 3
  feats = jnp.asarray(np.random.default_rng(0).uniform(1, 2, (b, t, f, c)), jnp.float32)
  lengths = np.array([40, 33, 10, 4, 1, 0])
  mask = jnp.arange(t)[None] < jnp.asarray(lengths)[:, None]
  cfg = dict(time_masks=2, time_mask_max_frames=6, freq_masks=2, freq_mask_max_bins=5)
  masked = {'time': 0, 'freq': 0}
  for seed in range(10):
    out = np.asarray(A.augment_features(jax.random.key(seed), feats, mask, cfg))
    hit = out == 0.0
    assert np.all(hit == hit[..., :1])  # every channel alike
    hit = hit[..., 0]
    for i, n in enumerate(lengths):
      assert not hit[i, n:].any()  # padding untouched
      rows = hit[i, :n].all(axis=1)  # fully masked frames: time masks
      cols = hit[i, :n].all(axis=0) if n else np.zeros(f, bool)
      if n > 12:   # long enough that a frame masked on every bin is a time mask's
        masked['time'] += rows.any()
        masked['freq'] += cols.any()
      assert rows.sum() <= 2 * 6
      if n > 12:  # bins masked on every valid frame: freq masks
        assert cols.sum() <= 2 * 5
      # Anything masked is in a masked row or a masked column.
      assert np.all(hit[i, :n] <= (rows[:, None] | cols[None, :]))
  assert masked['time'] and masked['freq'], masked   # both kinds of mask act
  # Time masks only / freq masks only.
  out = np.asarray(A.augment_features(jax.random.key(0), feats, mask,
                                      dict(time_masks=1, time_mask_max_frames=40)))
  full = (out == 0).all(axis=(2, 3)).sum(1)
  assert (full <= lengths).all() and full.any()
  out = np.asarray(A.augment_features(jax.random.key(0), feats, mask,
                                      dict(freq_masks=1, freq_mask_max_bins=20, mask_value=-1.0)))
  assert not (out[~np.asarray(mask)] == -1.0).any()
  assert (out == -1.0).any()


def test_offline_augment_lengths_pitch_determinism():
  sr = 16000
  t = np.arange(sr) / sr
  sine = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
  ints = (sine[:8000] * 20000).astype(np.int16)
  cfg = dict(pitch_steps=12.0)
  out = A.offline_augment([sine, ints], sr, cfg, seed=3)
  names = A.offline_variants(cfg)
  assert names == ['original', 'noise', 'stretch', 'pitch']
  assert [n for n, _ in out] == names * 2
  assert all(z.dtype == np.float32 for _, z in out)
  orig, noisy, stretched, pitched = (z for _, z in out[:4])
  np.testing.assert_array_equal(orig, sine)
  assert len(noisy) == sr and 0 < np.max(np.abs(noisy - sine)) < 0.035 * 0.5 * 6
  assert abs(len(stretched) - sr / 0.8) <= 2  # rate 0.8: 1.25 x as long
  assert len(pitched) == sr
  spec = np.abs(np.fft.rfft(pitched * np.hanning(sr)))
  assert abs(np.argmax(spec) - 880.0) < 5  # 12 semitones up

  # Stretched sine keeps its pitch.
  spec = np.abs(np.fft.rfft(stretched[:sr] * np.hanning(sr)))
  assert abs(np.argmax(spec) - 440.0) < 5
  assert len(out[4][1]) == 8000 and abs(np.max(np.abs(out[4][1])) - 0.5 * 20000 / 32768) < 1e-3
  again = A.offline_augment([sine, ints], sr, cfg, seed=3)
  for (_, a), (_, b) in zip(out, again):
    np.testing.assert_array_equal(a, b)
  other = A.offline_augment([sine], sr, dict(stretch_rate=None, pitch_steps=None), seed=4)
  assert [n for n, _ in other] == ['original', 'noise']
  assert not np.array_equal(other[1][1], out[1][1])


def test_speed_perturbation_changes_tempo_and_pitch_together():
  """speed_rates: one copy per rate, r times as fast (length / r, a 440 Hz tone at
  440 r Hz), like sox's `speed r`; off by default, so Gomes et al.'s x4 is unchanged."""
  sr = 16000
  t = np.arange(sr) / sr
  sine = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
  assert not any(n.startswith('speed') for n in A.offline_variants())
  cfg = dict(noise_amplitude=None, stretch_rate=None, pitch_steps=None, speed_rates=(0.9, 1.1))
  assert A.offline_variants(cfg) == ['original', 'speed0.9', 'speed1.1']
  out = A.offline_augment([sine], sr, cfg)
  for (name, z), rate in zip(out[1:], (0.9, 1.1)):
    assert z.dtype == np.float32 and abs(len(z) - sr / rate) <= 2, name
    n = len(z)
    spec = np.abs(np.fft.rfft(z * np.hanning(n)))
    assert abs(np.argmax(spec) * sr / n - 440.0 * rate) < 3, name
    assert abs(np.max(np.abs(z[n // 4:-n // 4])) - 0.5) < 0.01   # level kept
  assert A.is_speed_copy('a/b.wav#speed0.9') and not A.is_speed_copy('a/b.wav#pitch')
  assert not A.is_speed_copy('speed/b.wav') and not A.is_speed_copy('a/b.wav#original')
  for bad in ((1.0,), (), (0.9, -1.0), 'fast', (True,)):
    with pytest.raises(ValueError, match='speed_rates must be None or positive numbers'):
      A.offline_variants(dict(speed_rates=bad))


def test_offline_variants_drop_on_none_and_refuse_a_non_number():
  assert A.offline_variants(dict(stretch_rate=None)) == ['original', 'noise', 'pitch']
  with pytest.raises(ValueError, match='stretch_rate must be a number or None'):
    A.offline_variants(dict(stretch_rate='abc'))   # what --config...stretch_rate=abc gives
