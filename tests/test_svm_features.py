"""ser_jax.svm_features: the 173 Gomes SVM statistics (librosa) and their cache."""

import re
import time

import librosa
import numpy as np
import pytest

from ser_jax import svm_features as S

SR = 16000


def clips(n=3, seconds=1.5, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * SR)) / SR
  out = []
  for i in range(n):
    y = 0.3 * np.sin(2 * np.pi * (180 + 40 * i) * t) * (1 + np.sin(2 * np.pi * 3 * t))
    y = y + 0.02 * rng.standard_normal(len(t))
    out.append((y * 12000).astype(np.int16))
  return out


def test_shape_columns_and_spot_checks(tmp_path):
  ws = clips()
  feats = S.svm_features(ws, SR, cache_dir=tmp_path, num_workers=1)
  assert feats.shape == (3, S.NUM_FEATURES) and feats.dtype == np.float32
  assert sum(s.stop - s.start for s in S.SLICES.values()) == 173
  assert np.isfinite(feats).all()
  # Direct librosa calls on the paper's window: 2.5 s from 0.5 s (here to the end).
  y = ws[1].astype(np.float32)[SR // 2:] / 32768.0
  mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20).mean(axis=1)
  mel = librosa.feature.melspectrogram(y=y, sr=SR).mean(axis=1)
  mag = np.abs(librosa.stft(y))
  contrast = librosa.feature.spectral_contrast(S=mag, sr=SR).mean(axis=1)
  np.testing.assert_allclose(feats[1, S.SLICES['mfcc']], mfcc, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(feats[1, S.SLICES['mel']], mel, rtol=1e-5, atol=1e-9)
  np.testing.assert_allclose(feats[1, S.SLICES['contrast']], contrast, rtol=1e-5)
  # Chroma peaks at the tone's pitch class (220 Hz = A).
  assert np.argmax(feats[1, S.SLICES['chroma']]) == librosa.note_to_midi('A3') % 12
  # int16 and the same float waveform agree; a float vector equals feature_vector.
  f = S.svm_features([ws[1].astype(np.float32) / 32768.0], SR, cache_dir=False)
  np.testing.assert_array_equal(f[0], feats[1])
  np.testing.assert_array_equal(S.feature_vector(ws[1], SR), feats[1])


def test_cache_hit_is_identical_and_faster(tmp_path):
  ws = clips(n=2, seed=1)
  t0 = time.perf_counter()
  a = S.svm_features(ws, SR, cache_dir=tmp_path, num_workers=1)
  cold = time.perf_counter() - t0
  files = sorted(tmp_path.rglob('*.npy'))
  assert len(files) == 2
  t0 = time.perf_counter()
  b = S.svm_features(ws, SR, cache_dir=tmp_path, num_workers=1)
  warm = time.perf_counter() - t0
  np.testing.assert_array_equal(a, b)
  assert warm < cold / 5, (warm, cold)
  # Keys depend on audio, sample rate and parameters.
  k = S.cache_key(ws[0], SR, S._params({}))
  assert k != S.cache_key(ws[0], 22050, S._params({}))
  assert k != S.cache_key(ws[0], SR, S._params({'offset_seconds': 0.0}))
  assert k != S.cache_key(ws[0].astype(np.float32), SR, S._params({}))
  c = S.svm_features(ws, SR, cache_dir=tmp_path, num_workers=1, offset_seconds=0.0)
  assert len(list(tmp_path.rglob('*.npy'))) == 4
  assert not np.array_equal(a, c)
  # A corrupt cache file is recomputed.
  files[0].write_bytes(b'garbage')
  np.testing.assert_array_equal(S.svm_features(ws, SR, cache_dir=tmp_path, num_workers=1), a)
  with pytest.raises(TypeError):
    S.svm_features(ws, SR, cache_dir=False, n_chroma=24)


def test_short_and_parallel(tmp_path, monkeypatch):
  short = [np.zeros(100, np.int16), (np.ones(9000) * 0.1).astype(np.float32)]
  f = S.svm_features(short, SR, cache_dir=False)
  assert f.shape == (2, 173) and np.isfinite(f).all()
  ws = clips(n=4, seconds=1.0, seed=2)
  serial = S.svm_features(ws, SR, cache_dir=False, num_workers=1)
  monkeypatch.setattr(S, '_MIN_PARALLEL', 2)
  par = S.svm_features(ws, SR, cache_dir=tmp_path, num_workers=2)
  np.testing.assert_allclose(par, serial, rtol=1e-6, atol=1e-7)


def _fails_on_third(job):
  if job == 3:
    raise KeyboardInterrupt   # as Ctrl-C half-way
  return np.full(2, float(job), np.float32)


def test_interrupted_map_keeps_what_finished_and_resumes(tmp_path, caplog):
  caplog.set_level('INFO')
  jobs = list(range(6))
  paths = [tmp_path / f'{j}.npy' for j in jobs]
  with pytest.raises(KeyboardInterrupt):
    S.cached_map(_fails_on_third, jobs, paths, num_workers=1, min_parallel=100)
  assert sorted(p.name for p in tmp_path.glob('*.npy')) == ['0.npy', '1.npy', '2.npy']
  calls = []

  def work(job):
    calls.append(job)
    return np.full(2, float(job), np.float32)

  out = S.cached_map(work, jobs, paths, num_workers=1, min_parallel=100, what='stats')
  assert calls == [3, 4, 5]   # only what the interrupted run had not finished
  np.testing.assert_array_equal(np.stack(out)[:, 0], jobs)
  messages = [r.getMessage() for r in caplog.records]
  assert any('stats: 3 of 6 cached, computing 3' in m for m in messages)
  assert any(m.startswith('stats: 3/3 (100%)') and 'ETA' in m for m in messages)


def test_fast_path_equals_the_recipes_librosa_calls():
  ws = clips(n=3, seconds=3.2, seed=4) + [np.zeros(500, np.int16)]
  for w in ws:
    np.testing.assert_allclose(S.feature_vector(w, SR), S.feature_vector_librosa(w, SR),
                               rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(S.feature_vector(ws[0], SR, harmonic_tonnetz=False),
                             S.feature_vector_librosa(ws[0], SR, harmonic_tonnetz=False),
                             rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('size', [31, 4])
def test_median_filter_equals_scipy(size):
  from scipy import ndimage
  x = np.random.default_rng(0).random((57, 23)).astype(np.float32)
  for axis in (0, 1):
    shape = [1, 1]
    shape[axis] = size
    np.testing.assert_array_equal(S._median_filter(x, size, axis),
                                  ndimage.median_filter(x, size=shape, mode='reflect'))


def test_progress_rate_counts_from_the_first_result(monkeypatch, caplog):
  # A pool that takes 20 s to give its first result, then 10 results a second:
  # the first line must not extrapolate the start-up into an ETA of hours.
  caplog.set_level('INFO')
  clock = [1000.0]
  monkeypatch.setattr(S.time, 'time', lambda: clock[0])
  monkeypatch.setattr(S.sys.stderr, 'isatty', lambda: False)
  p = S._Progress(total=301, what='aug', every=15.0)
  clock[0] += 20.0
  p.update()
  for _ in range(160):
    clock[0] += 0.1
    p.update()
  messages = [r.getMessage() for r in caplog.records]
  assert messages[0] == 'aug: 1/301 (0%), first result after 20.0s'
  m = re.fullmatch(r'aug: (\d+)/301 \(\d+%\), ([\d.]+)/s, ETA 00:00:(\d\d)', messages[1])
  assert m and m[2] == '10.0' and abs(int(m[3]) - (301 - int(m[1])) / 10) <= 1, messages
