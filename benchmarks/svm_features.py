"""The SVM path's 173 statistics of a whole corpus, from a cold cache (issue 12).

    python benchmarks/svm_features.py                        # the embedded demo corpus
    python benchmarks/svm_features.py --config=configs/svm_features.py \\
        --data_dir=DIR [--limit=N] [--num_workers=2] [--reference=200]

Loads the config's corpus the way the SVM trainer does (TFDS, the config's
classes), computes `svm_features.svm_features` into a fresh cache folder (cold:
no statistic cached), then again (warm: every file cached), and with
`--reference=N` times the recipe's plain librosa calls on N files in this
process (`feature_vector_librosa`) against the fast path, checking they agree.
Prints one JSON line: files, seconds, files/s (cold and warm), and the per-file
times of both implementations on one core.
"""
from __future__ import annotations

import os

for _k in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
  os.environ.setdefault(_k, '1')   # one BLAS thread per process (see features.py)

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--config', default='configs/svm_features.py:synthetic')
  p.add_argument('--data_dir', default=None, help='TFDS data dir (default: TFDS default)')
  p.add_argument('--limit', type=int, default=0, help='first N utterances only (0: all)')
  p.add_argument('--num_workers', type=int, default=os.cpu_count() or 1)
  p.add_argument('--reference', type=int, default=0,
                 help='also time the plain librosa calls on this many files')
  p.add_argument('--cache_dir', default=None,
                 help='cache folder to use (default: a fresh temporary one, removed after)')
  args = p.parse_args()
  logging.basicConfig(level=logging.INFO, format='%(message)s')

  from ml_collections import config_flags  # noqa: F401 (config files import it)
  from ser_jax import cli
  from ser_jax import input_pipeline
  from ser_jax.trainers import svm
  from ser_jax import svm_features as S
  from ser_jax import workdir as workdir_lib
  path, colon, arg = args.config.partition(':')
  if not os.path.exists(path):   # relative to the repository, from anywhere
    path = os.path.relpath(REPO / path)
  try:
    config = cli.load_config(path + colon + arg)
  except cli.UsageError as e:
    p.error(str(e))
  if args.data_dir:
    config.data.data_dir = args.data_dir

  t0 = time.time()
  utts, _ = input_pipeline.load_corpus(config.data)
  audio = list(utts.audio[:args.limit] if args.limit else utts.audio)
  load_s = time.time() - t0
  sr = int(config.features.sample_rate)
  params = svm.feature_params(config.features)
  root = pathlib.Path(args.cache_dir or tempfile.mkdtemp(prefix='ser_jax_svm_bench_'))
  cache = root / 'svm_features'
  try:
    t0 = time.time()
    cold = S.svm_features(audio, sr, cache_dir=cache, num_workers=args.num_workers, **params)
    cold_s = time.time() - t0
    t0 = time.time()
    warm = S.svm_features(audio, sr, cache_dir=cache, num_workers=args.num_workers, **params)
    warm_s = time.time() - t0
    assert np.array_equal(cold, warm)
    result = {
        'benchmark': 'svm_features', 'config': args.config, 'files': len(audio),
        'load_s': round(load_s, 1), 'num_workers': args.num_workers,
        'cold_s': round(cold_s, 1), 'cold_files_per_s': round(len(audio) / cold_s, 1),
        'warm_s': round(warm_s, 2), 'warm_files_per_s': round(len(audio) / warm_s, 1),
        'cpu': workdir_lib.cpu_model(), 'cores': os.cpu_count(),
    }
    if args.reference:
      n = min(args.reference, len(audio))
      S.feature_vector(audio[0], sr, **params)   # warm-up (imports, FFT plans)
      S.feature_vector_librosa(audio[0], sr, **params)
      times = {}
      outs = {}
      for name, fn in (('fast', S.feature_vector), ('librosa', S.feature_vector_librosa)):
        t0 = time.perf_counter()
        outs[name] = np.stack([fn(a, sr, **params) for a in audio[:n]])
        times[name] = (time.perf_counter() - t0) / n
      diff = np.abs(outs['fast'] - outs['librosa'])
      result.update({
          'reference_files': n,
          'ms_per_file_fast_1core': round(1000 * times['fast'], 1),
          'ms_per_file_librosa_1core': round(1000 * times['librosa'], 1),
          'max_abs_diff_vs_librosa': float(diff.max()),
          'max_rel_diff_vs_librosa': float((diff / (np.abs(outs['librosa']) + 1e-6)).max()),
      })
  finally:
    if not args.cache_dir:
      shutil.rmtree(root, ignore_errors=True)
  print(json.dumps(result), flush=True)


if __name__ == '__main__':
  try:
    main()
  except KeyboardInterrupt:
    sys.exit('interrupted: the statistics computed so far are in the cache folder; the same '
             'command with the same --cache_dir resumes')
