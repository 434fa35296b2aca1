"""JAX feature front end vs librosa on the same 3 s, 16 kHz clips (issue 4).

    python benchmarks/features.py [--clips 1024] [--batch 8] [--rounds 3]
                                  [--devices 2] [--librosa-clips 512]

Work per clip, both sides (the headline front end plus MFCC): 40-band Mel
power (25 ms Hamming window, n_fft 512, 10 ms hop, centred; 301 frames), its
natural log (+1e-6), delta and delta-delta (width 5), and 40 MFCC from the
same Mel power (power_to_db, top_db 80, DCT-II ortho).

  librosa_1proc  `librosa.feature.melspectrogram` -> log -> `feature.delta` x2
                 and `feature.mfcc(S=power_to_db(mel))`, clip by clip (one
                 BLAS thread, see below).
  librosa_2proc  the same over a 2-process pool (spawned before JAX starts;
                 pool start-up excluded, clip transfer included).
  jax_1dev       one jitted function over batches of --batch clips on one CPU
                 device (compilation excluded).
  jax_2dev       the same with the host split into --devices XLA CPU devices
                 (`--xla_force_host_platform_device_count`), each batch cut in
                 per-device parts dispatched asynchronously (data parallel).

Every method runs --rounds times, interleaved; each figure is the best round
(the machine may be shared). `clips_per_cpu_s` divides by the CPU time the
method used instead of wall time (less sensitive to other load). The JAX outputs are checked against librosa on a
few clips first. Prints one line per round, then one JSON line of results.
"""
from __future__ import annotations

import os

# One BLAS thread per process, set before numpy loads: librosa's Mel matmul
# otherwise runs OpenBLAS threads that spin against the other process / JAX
# (on a shared 2-core machine that made librosa 3-6x slower, erratically).
_THREAD_VARS = ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS')
for _k in _THREAD_VARS:
  os.environ.setdefault(_k, '1')

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ser_jax import xla_setup  # noqa: E402

xla_setup.configure()   # run.py's XLA flags, before JAX starts

SR = 16000
N_SAMPLES = 3 * SR
PARAMS = dict(n_fft=512, hop_length=160, win_length=400, window='hamming',
              n_mels=40, fmin=0.0, fmax=8000.0, log_eps=1e-6, delta_width=5,
              n_mfcc=40, top_db=80.0)


def make_clips(n: int, seed: int = 0) -> np.ndarray:
  """Speech-like clips: chirped harmonics with syllable-rate envelope + noise."""
  rng = np.random.default_rng(seed)
  t = np.arange(N_SAMPLES) / SR
  out = np.empty((n, N_SAMPLES), np.float32)
  for i in range(n):
    f0 = rng.uniform(90, 250) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.2, 1) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    y = sum(np.sin(k * phase) / k for k in range(1, 16))
    y *= 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(2, 6) * t))
    y = 0.2 * y / np.max(np.abs(y)) + 0.003 * rng.standard_normal(N_SAMPLES)
    out[i] = y
  return out


# ---------------------------------------------------------------------------
# librosa
# ---------------------------------------------------------------------------


def librosa_features(y: np.ndarray):
  import librosa
  p = PARAMS
  mel = librosa.feature.melspectrogram(
      y=y, sr=SR, n_fft=p['n_fft'], hop_length=p['hop_length'],
      win_length=p['win_length'], window=p['window'], n_mels=p['n_mels'],
      fmin=p['fmin'], fmax=p['fmax'])
  lm = np.log(mel + p['log_eps'])
  d1 = librosa.feature.delta(lm, width=p['delta_width'], order=1)
  d2 = librosa.feature.delta(lm, width=p['delta_width'], order=2)
  mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=p['top_db']),
                              n_mfcc=p['n_mfcc'])
  return lm, d1, d2, mfcc


def _librosa_chunk(chunk: np.ndarray) -> float:
  """Computes the features of every clip; returns the CPU seconds used."""
  c0 = time.process_time()
  for y in chunk:
    librosa_features(y)
  return time.process_time() - c0


def time_librosa(clips: np.ndarray, pool=None) -> tuple[float, float]:
  """-> (clips per wall second, clips per CPU second of the workers)."""
  t0 = time.perf_counter()
  if pool is None:
    cpu = _librosa_chunk(clips)
  else:
    chunks = np.array_split(clips, max(1, len(clips) // 16))
    cpu = sum(pool.imap_unordered(_librosa_chunk, chunks))
  return len(clips) / (time.perf_counter() - t0), len(clips) / cpu


# ---------------------------------------------------------------------------
# JAX
# ---------------------------------------------------------------------------


def jax_features_fn():
  """`x [B, N] -> (log-Mel + deltas [B, T, 40, 3], MFCC [B, T, 40])`."""
  import jax.numpy as jnp
  from ser_jax import features as F
  p = PARAMS
  mel_m = F.mel_filterbank(SR, p['n_fft'], p['n_mels'], p['fmin'], p['fmax'])

  def fn(x):
    power = F.power_spectrogram(F.stft(
        x, n_fft=p['n_fft'], hop_length=p['hop_length'],
        win_length=p['win_length'], window=p['window']))
    mel = F.mel_spectrogram(power, mel_m)  # computed once, used twice
    lm = F.log_mel(mel, p['log_eps'])
    d1 = F.delta(lm, width=p['delta_width'], order=1)
    d2 = F.delta(lm, width=p['delta_width'], order=2)
    mfcc = F.mfcc_from_mel(mel, n_mfcc=p['n_mfcc'], top_db=p['top_db'])
    return jnp.stack([lm, d1, d2], axis=-1), mfcc

  return fn


def check_parity(fn, clips: np.ndarray) -> dict:
  """Max abs error of the JAX outputs vs librosa (log domain / MFCC dB)."""
  import jax
  feats, mfcc = jax.jit(fn)(clips)
  err_lm = err_mfcc = 0.0
  for i, y in enumerate(clips):
    lm, d1, d2, mf = librosa_features(y)
    ref = np.stack([lm.T, d1.T, d2.T], axis=-1)
    err_lm = max(err_lm, float(np.max(np.abs(np.asarray(feats[i]) - ref))))
    err_mfcc = max(err_mfcc, float(np.max(np.abs(np.asarray(mfcc[i]) - mf.T))
                                   / np.max(np.abs(mf))))
  return {'logmel_deltas_max_abs_err': err_lm, 'mfcc_max_rel_err': err_mfcc}


def time_jax(jfn, batches, devices) -> tuple[float, float]:
  """(clips per wall second, clips per CPU second of this process) of `jfn`
  over the pre-built host batches (a list of [B, N])."""
  import jax
  n = 0
  t0, c0 = time.perf_counter(), time.process_time()
  if len(devices) == 1:
    for xb in batches:
      jax.block_until_ready(jfn(jax.device_put(xb, devices[0])))
      n += len(xb)
  else:
    for xb in batches:
      parts = np.array_split(xb, len(devices))
      outs = [jfn(jax.device_put(part, d)) for part, d in zip(parts, devices)]
      jax.block_until_ready(outs)
      n += len(xb)
  return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def main():
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--clips', type=int, default=2048, help='clips per JAX round')
  ap.add_argument('--librosa-clips', type=int, default=512,
                  help='clips per librosa round (a subset of the same clips)')
  ap.add_argument('--batch', type=int, default=8,
                  help='JAX batch (per device); small batches stay in cache on CPU')
  ap.add_argument('--rounds', type=int, default=3)
  ap.add_argument('--devices', type=int, default=2,
                  help='XLA host devices for jax_2dev (1 skips it)')
  args = ap.parse_args()

  clips = make_clips(max(args.clips, args.librosa_clips))
  lib_clips = clips[:args.librosa_clips]
  # The pool first, before JAX starts its threads (workers inherit the
  # one-BLAS-thread environment).
  ctx = multiprocessing.get_context('spawn')
  pool = ctx.Pool(2)
  pool.map(_librosa_chunk, [clips[:2], clips[2:4]])  # warm-up: imports, caches

  if args.devices > 1:
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                               f' --xla_force_host_platform_device_count={args.devices}')
  import jax
  cpu = jax.devices('cpu')
  backend = jax.default_backend()
  fn = jax_features_fn()
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    parity = check_parity(fn, clips[:4])
  jfn = jax.jit(fn)

  devices_1 = [jax.devices()[0]]
  devices_n = cpu[:args.devices] if backend == 'cpu' else jax.devices()[:args.devices]
  b1 = args.batch
  batches_1 = [clips[i:i + b1] for i in range(0, args.clips - b1 + 1, b1)]
  bn = args.batch * len(devices_n)
  batches_n = [clips[i:i + bn] for i in range(0, args.clips - bn + 1, bn)]
  # Warm-up (compilation) for every shape and device.
  time_jax(jfn, batches_1[:2], devices_1)
  if len(devices_n) > 1:
    time_jax(jfn, batches_n[:2], devices_n)
  librosa_features(clips[0])

  results = {k: [] for k in ('librosa_1proc', 'librosa_2proc', 'jax_1dev', 'jax_2dev')}
  for r in range(args.rounds):
    results['librosa_1proc'].append(time_librosa(lib_clips))
    results['librosa_2proc'].append(time_librosa(lib_clips, pool))
    results['jax_1dev'].append(time_jax(jfn, batches_1, devices_1))
    if len(devices_n) > 1:
      results['jax_2dev'].append(time_jax(jfn, batches_n, devices_n))
    print(f'round {r}: ' + ', '.join(f'{k} {v[-1][0]:.0f}' for k, v in results.items() if v),
          flush=True)
  pool.close()
  pool.join()

  best = {k: max(w for w, _ in v) for k, v in results.items() if v}
  per_cpu = {k: max(c for _, c in v) for k, v in results.items() if v}
  jax_best = max(v for k, v in best.items() if k.startswith('jax'))
  out = {
      'clips_per_s': {k: round(v, 1) for k, v in best.items()},
      # Contention-robust view: clips per CPU-second actually used (all of
      # the process's threads / both workers), best round.
      'clips_per_cpu_s': {k: round(v, 1) for k, v in per_cpu.items()},
      'jax_best': round(jax_best, 1),
      'ratio_jax_vs_librosa_2proc': round(jax_best / best['librosa_2proc'], 2),
      'ratio_jax_1dev_vs_librosa_2proc': round(best['jax_1dev'] / best['librosa_2proc'], 2),
      'batch': args.batch, 'clips': args.clips, 'librosa_clips': args.librosa_clips,
      'rounds': args.rounds, 'backend': backend, 'devices': len(devices_n),
      'cpu_count': os.cpu_count(), **parity,
  }
  print(json.dumps(out))


if __name__ == '__main__':
  main()
