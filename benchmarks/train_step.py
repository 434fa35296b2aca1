"""Steady-state training-step speed of a model at its paper's batch size.

  python benchmarks/train_step.py --model=selfattn_gender [--dtype=bfloat16] [--steps=5]

Prints one JSON line per model: examples/s, step time, compile time, parameter
count and peak memory (host RSS on CPU; device peak on GPU), XLA's FLOP count
and the fraction of the device's peak it reaches (GPUs), minor page faults per
step and GLIBC_TUNABLES (see ser_jax/xla_setup.py), with the device, the dtype
and the config it ran. The step is the real `train_step` (features on
device, forward, backward, optimiser update) on random audio; `--inputs=features`
starts it from cached front-end output instead (what a run with
`feature_cache=True` does, and what the Keras/PyTorch peers time), and
`--profile=DIR` adds the slowest XLA operations of a traced step.
"""
import argparse
import collections
import glob
import importlib.util
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ser_jax import xla_setup  # noqa: E402

if __name__ == '__main__':
  xla_setup.reexec_with_malloc_tunable()   # huge pages for XLA's buffers (see xla_setup)
  xla_setup.configure()                    # run.py's XLA flags, before JAX starts

import jax  # noqa: E402
import numpy as np  # noqa: E402

from ser_jax import sharding  # noqa: E402
from ser_jax import workdir  # noqa: E402
from ser_jax import neural_experiment  # noqa: E402
from ser_jax.trainers import neural  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(model: str, arg: str | None):
  path = os.path.join(REPO, 'configs', f'{model}.py')
  if not os.path.exists(path):
    raise SystemExit(f'no config file {path} for model {model!r}')
  spec = importlib.util.spec_from_file_location(f'configs.{model}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def peak_memory_bytes() -> int:
  stats = jax.devices()[0].memory_stats() or {}
  if 'peak_bytes_in_use' in stats:
    return int(stats['peak_bytes_in_use'])
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# Dense tensor-core peaks (TFLOP/s, vendor data sheets, SXM parts) used for
# `peak_fraction` on GPUs: float32 matmuls run as TF32 under JAX's default
# precision there. Other devices: pass --peak_tflops.
PEAK_TFLOPS = {
    ('H100', 'float32'): 494.7, ('H100', 'bfloat16'): 989.4,
    ('H200', 'float32'): 494.7, ('H200', 'bfloat16'): 989.4,
    ('A100', 'float32'): 156.0, ('A100', 'bfloat16'): 312.0,
}


def peak_tflops(device_kind: str, dtype: str) -> float | None:
  for (name, dt), value in PEAK_TFLOPS.items():
    if name in device_kind and dt == dtype:
      return value
  return None


def profile_ops(compiled, state, batch, directory: str, steps: int, top: int = 15) -> dict:
  """Runs `steps` steps under the JAX profiler (trace kept in `directory`, for
  TensorBoard/XProf) and returns the `top` XLA operations by time per step.

  Times are summed over the runtime's worker threads (on CPU the sum can
  exceed the step time when operations overlap).
  """
  os.makedirs(directory, exist_ok=True)
  with jax.profiler.trace(directory):
    for _ in range(steps):
      state, m = compiled(state, batch)
      jax.block_until_ready(m)
  paths = sorted(glob.glob(os.path.join(directory, '**', '*.xplane.pb'), recursive=True),
                 key=os.path.getmtime)
  totals = collections.Counter()
  for plane in jax.profiler.ProfileData.from_file(paths[-1]).planes:
    if not plane.name.startswith(('/host:CPU', '/device:')):
      continue
    for line in plane.lines:
      if line.name == 'python':
        continue
      for event in line.events:
        if 'Execute' in event.name or 'Await' in event.name:
          continue  # executor wrappers, not operations
        totals[event.name] += event.duration_ns
  return {name: round(ns / 1e6 / steps, 2) for name, ns in totals.most_common(top)}


def bench(model: str, config_arg, dtype, steps: int, batch_size, overrides,
          inputs: str = 'audio', profile_dir: str | None = None,
          peak_tflops_arg: float | None = None) -> dict:
  config = load_config(model, config_arg)
  if dtype:
    config.model.dtype = dtype
  if batch_size:
    config.batch_size = batch_size
  for item in overrides:
    key, value = item.split('=', 1)
    node = config
    *parents, leaf = key.split('.')
    for p in parents:
      node = node[p]
    node[leaf] = type(node[leaf])(json.loads(value)) if node[leaf] is not None else json.loads(value)
  exp = neural_experiment.build_experiment(config, with_data=False)
  state = neural_experiment.create_train_state(exp, jax.random.key(0))
  n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state.params))
  rng = np.random.default_rng(0)
  b, n = config.batch_size, neural_experiment.segment_samples(config)
  batch = {'audio': (rng.standard_normal((b, n)) * 3000).astype(np.int16),
           'lengths': np.full(b, n, np.int32),
           'labels': rng.integers(0, len(config.data.classes), b).astype(np.int32),
           'gender': rng.integers(0, 2, b).astype(np.int32),
           'weight': np.ones(b, np.float32)}
  if inputs == 'features':
    # The step's input is the front end's output (a run with cached features).
    feats, mask = jax.jit(lambda b: neural_experiment.frontend_output(exp, b))(batch)
    batch = {**{k: v for k, v in batch.items() if k not in ('audio', 'lengths')},
             'feats': np.asarray(feats), 'mask': np.asarray(mask)}
  batch = sharding.shard_batch(batch, exp.mesh)
  step = neural.make_train_step(exp)
  t0 = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - t0
  state, m = compiled(state, batch)  # warm-up
  jax.block_until_ready(m)
  times = []
  faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(steps):
    t0 = time.perf_counter()
    state, m = compiled(state, batch)
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
  faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / steps
  step_s = float(np.median(times))
  top_ops = profile_ops(compiled, state, batch, profile_dir, 3) if profile_dir else None
  flops = None
  try:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = float(cost.get('flops', 0.0)) or None
  except Exception:  # pylint: disable=broad-except
    pass
  dtype_name = str(config.model.get('dtype', 'float32'))
  peak = peak_tflops_arg or peak_tflops(jax.devices()[0].device_kind, dtype_name)
  return {
      'model': model, 'config_arg': config_arg, 'inputs': inputs, 'dtype': dtype_name,
      'batch_size': b, 'devices': jax.device_count(), 'device_kind': jax.devices()[0].device_kind,
      'platform': jax.default_backend(), 'cpu': workdir.cpu_model(), 'cores': os.cpu_count(),
      'cpu_bf16_flags': workdir.cpu_bf16_flags(), 'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'params': n_params,
      'compile_s': round(compile_s, 2), 'step_s': round(step_s, 4),
      'step_s_min': round(min(times), 4), 'examples_per_s': round(b / step_s, 2),
      'xla_gflop_per_step': round(flops / 1e9, 3) if flops else None,
      'achieved_gflop_s': round(flops / 1e9 / step_s, 1) if flops else None,
      'peak_fraction': round(flops / step_s / (peak * 1e12), 3) if flops and peak else None,
      'peak_memory_mib': round(peak_memory_bytes() / 2**20, 1),
      'loss_finite': bool(np.isfinite(float(m['loss']))),
      'glibc_tunables': os.environ.get('GLIBC_TUNABLES') or None,
      'page_faults_per_step': round(faults),   # minor faults: fresh memory touched
      **({'top_ops_ms_per_step': top_ops} if top_ops else {}),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--model', default='selfattn_gender',
                      help='comma-separated names of neural configs (configs/NAME.py): '
                      + ','.join(sorted(f[:-3] for f in os.listdir(os.path.join(REPO, 'configs'))
                                        if f.endswith('.py') and f not in ('common.py',
                                                                           'svm_features.py'))))
  parser.add_argument('--config_arg', default=None, help='config argument (e.g. synthetic)')
  parser.add_argument('--dtype', default=None, help='compute dtype override, e.g. bfloat16')
  parser.add_argument('--batch_size', type=int, default=None)
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--inputs', choices=('audio', 'features'), default='audio',
                      help='audio: the step computes the features (default); features: '
                           'the step starts from cached front-end output')
  parser.add_argument('--peak_tflops', type=float, default=None,
                      help="the device's peak TFLOP/s for peak_fraction (known GPUs built in)")
  parser.add_argument('--profile', default=None, metavar='DIR',
                      help='also trace 3 steps into DIR and report the slowest XLA ops')
  parser.add_argument('--set', action='append', default=[],
                      help='config override key=json, e.g. model.lstm_units=64')
  args = parser.parse_args()
  for model in args.model.split(','):
    print(json.dumps(bench(model, args.config_arg, args.dtype, args.steps, args.batch_size,
                           args.set, args.inputs,
                           os.path.join(args.profile, model) if args.profile else None,
                           args.peak_tflops)),
          flush=True)


if __name__ == '__main__':
  main()
