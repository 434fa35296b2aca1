"""Throughput of `--mode=predict` over a folder: files/s and first-result latency.

  python benchmarks/predict.py --model=cnn2d_bilstm --files=500
  python benchmarks/predict.py --model=selfattn_gender --config_arg=synthetic --wav=DIR

The model is the config's at random initialisation (speed does not depend on
the weights), saved as a checkpoint in a temporary workdir; the clips are
`--wav` (a folder or comma-separated files, e.g. real corpus clips) or
`--files` synthetic 16 kHz clips of 2–3 s, written as WAV files. Each result
is consumed as `run.py --mode=predict` would (one JSON line per file). With
`--compare=N` the first N files are also predicted one at a time (what predict
did before it batched across files): their rate (compiled first), and the
largest difference of the posteriors. One JSON line per model: files/s, first-result
latency, the compile included, and the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ser_jax import xla_setup  # noqa: E402

if __name__ == '__main__':
  xla_setup.reexec_with_malloc_tunable()   # huge pages for XLA's buffers (see xla_setup)
  xla_setup.configure()                    # run.py's XLA flags, before JAX starts

import jax  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from ser_jax import neural_experiment  # noqa: E402
from ser_jax import predict  # noqa: E402
from ser_jax import workdir as workdir_lib  # noqa: E402
from benchmarks.train_step import load_config  # noqa: E402


def write_clips(folder: str, n: int, seed: int = 0) -> list[str]:
  """n speech-like 16 kHz clips of 2–3 s (harmonics with a syllable envelope)."""
  rng = np.random.default_rng(seed)
  paths = []
  for i in range(n):
    length = int(rng.uniform(2.0, 3.0) * 16000)
    t = np.arange(length) / 16000
    f0 = rng.uniform(100, 250) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    y = sum(np.sin(k * phase) / k for k in range(1, 6))
    y *= 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t) ** 2
    y = 0.3 * y / np.abs(y).max() + 0.005 * rng.standard_normal(length)
    path = os.path.join(folder, f'clip_{i:05d}.wav')
    sf.write(path, y.astype(np.float32), 16000, subtype='PCM_16')
    paths.append(path)
  return paths


def make_workdir(config, workdir: str) -> None:
  """A workdir with config.json and one checkpoint of the initialised model."""
  exp = neural_experiment.build_experiment(config, with_data=False)
  state = neural_experiment.create_train_state(exp, jax.random.key(config.seed))
  workdir_lib.write_config(config, workdir)
  ckpt = neural_experiment.open_checkpoints(os.path.join(workdir, 'checkpoints'),
                                            config.selection, async_save=False)
  ckpt.save(1, state, {'val_uar': 0.0, 'val_wa': 0.0, 'val_loss': 1.0})
  ckpt.wait()


def bench(model: str, config_arg: str | None, paths: list[str], gender: str | None,
          compare: int) -> dict:
  config = load_config(model, config_arg)
  with tempfile.TemporaryDirectory() as workdir:
    make_workdir(config, workdir)
    t0 = time.perf_counter()
    first, results = None, []
    with open(os.devnull, 'w') as sink:
      for r in predict.predict_files(config, workdir, paths, gender):
        print(json.dumps(r), file=sink)   # what run.py does with each
        if first is None:
          first = time.perf_counter() - t0
        results.append(r)
    total = time.perf_counter() - t0
    out = {'model': model, 'config_arg': config_arg, 'files': len(paths),
           'errors': sum('error' in r for r in results),
           'files_per_s': round(len(paths) / total, 1), 'total_s': round(total, 2),
           'first_result_s': round(first, 2),
           'files_per_s_after_first': round((len(paths) - 1) / max(total - first, 1e-9), 1),
           'gender': results[0].get('gender'), 'segments': sum(r.get('segments', 0) for r in results),
           'batch_size': config.batch_size, 'device': jax.devices()[0].device_kind,
           'cpu': workdir_lib.cpu_model(), 'cores': os.cpu_count()}
    if compare:
      predictor = predict.load_predictor(config, workdir, None, gender)
      predictor(predict.load_audio(paths[0], predictor.sample_rate))   # compiled
      diff, t0 = 0.0, time.perf_counter()
      for path, r in zip(paths[:compare], results):
        probs, _ = predictor(predict.load_audio(path, predictor.sample_rate))
        diff = max(diff, float(np.abs(probs - np.asarray(list(r['probabilities'].values()))).max()))
      n = min(compare, len(paths))
      out['compared_files'] = n
      out['one_at_a_time_files_per_s'] = round(n / (time.perf_counter() - t0), 1)
      out['max_abs_diff_vs_one_at_a_time'] = diff   # the answers are rounded to 1e-5
    return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model', default='cnn2d_bilstm',
                      help='comma-separated configs/<model>.py names')
  parser.add_argument('--config_arg', default=None, help='the config argument (e.g. synthetic)')
  parser.add_argument('--wav', default=None, help='folder(s)/file(s) to predict')
  parser.add_argument('--files', type=int, default=300, help='synthetic clips without --wav')
  parser.add_argument('--gender', default=None, choices=['female', 'male'])
  parser.add_argument('--compare', type=int, default=0,
                      help='also predict the first N one at a time and report the difference')
  args = parser.parse_args(argv)
  with tempfile.TemporaryDirectory() as folder:
    paths = predict.expand_paths(args.wav) if args.wav else write_clips(folder, args.files)
    for model in args.model.split(','):
      print(json.dumps(bench(model, args.config_arg, paths, args.gender, args.compare)),
            flush=True)


if __name__ == '__main__':
  main()
