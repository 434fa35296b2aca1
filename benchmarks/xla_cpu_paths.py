"""Which XLA:CPU library path runs float32 and bfloat16 dots and convolutions
fastest on this CPU: Eigen (no flags), YNNPACK (the project's default),
oneDNN and XNNPACK.

  python benchmarks/xla_cpu_paths.py
  python benchmarks/xla_cpu_paths.py --n=4096 --paths=eigen,ynn_dot

XLA flags are read once, when JAX starts, so each path is timed in a fresh
subprocess with its flags in XLA_FLAGS (nothing else of the environment
changes). For each path and dtype: a square matmul and a 3×3 'SAME'
convolution (NHWC/HWIO), both accumulating in float32
(`preferred_element_type`), best of `--reps` timed calls after a compile;
GFLOP/s counts 2 flops per multiply-add. The bf16 results are also compared
with the float32 ones (relative error), so a path that is fast but wrong
shows. The first line names the machine and the bf16 instructions its CPU
reports (avx512_bf16, amx_bf16); then one JSON line per path, and a table.

`benchmarks/train_step.py --dtype=bfloat16` answers the same question for a
whole training step; this probe says which operation is the reason.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PATHS = {
    'eigen': '',
    'ynn_dot': '--xla_cpu_experimental_ynn_fusion_type=dot',
    'onednn_custom_call': '--xla_cpu_experimental_onednn_custom_call=true',
    'onednn_dot': '--xla_cpu_experimental_onednn_fusion_type=dot',
    'xnn_dot': '--xla_cpu_experimental_xnn_fusion_type=dot',
}


def _time(fn, args, reps: int) -> tuple[float, object]:
  out = fn(*args)
  out.block_until_ready()            # compile + first run, not timed
  best = float('inf')
  for _ in range(reps):
    start = time.perf_counter()
    out = fn(*args)
    out.block_until_ready()
    best = min(best, time.perf_counter() - start)
  return best, out


def measure(n: int, conv: tuple[int, int, int, int, int], reps: int) -> dict:
  """GFLOP/s of a dot and a conv in float32 and bfloat16, in this process."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  b, h, w, c_in, c_out = conv
  dot_in = (rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32))
  conv_in = (rng.standard_normal((b, h, w, c_in), np.float32),
             rng.standard_normal((3, 3, c_in, c_out), np.float32) / np.sqrt(9 * c_in))
  dot = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32))
  conv2d = jax.jit(lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      preferred_element_type=jnp.float32))
  flops = {'dot': 2.0 * n ** 3, 'conv': 2.0 * b * h * w * 9 * c_in * c_out}
  result, reference = {}, {}
  for dtype in ('float32', 'bfloat16'):
    for name, fn, args in (('dot', dot, dot_in), ('conv', conv2d, conv_in)):
      cast = [jnp.asarray(a, dtype) for a in args]
      seconds, out = _time(fn, cast, reps)
      result[f'{name}_{dtype}_gflop_s'] = float(f'{flops[name] / seconds / 1e9:.4g}')
      out = np.asarray(out, np.float64)
      if dtype == 'float32':
        reference[name] = out
      else:
        ref = reference[name]
        result[f'{name}_bf16_rel_err'] = float(
            np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))
  for name in ('dot', 'conv'):
    result[f'{name}_bf16_speedup'] = round(
        result[f'{name}_bfloat16_gflop_s'] / result[f'{name}_float32_gflop_s'], 2)
  return result


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--paths', default=','.join(PATHS),
                 help=f'comma-separated; known: {",".join(PATHS)}')
  p.add_argument('--n', type=int, default=2048, help='matmul size (n×n by n×n)')
  p.add_argument('--conv', default='32,64,64,64,128',
                 help='batch,height,width,in_channels,out_channels of the 3×3 convolution')
  p.add_argument('--reps', type=int, default=5)
  p.add_argument('--timeout', type=float, default=300.0, help='seconds per path')
  p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  try:
    conv = tuple(int(v) for v in args.conv.split(','))
    assert len(conv) == 5 and min(conv) > 0
  except (ValueError, AssertionError):
    p.error(f'--conv wants five positive integers, got {args.conv!r}')
  if args.child:
    print(json.dumps(measure(args.n, conv, args.reps)))
    return 0
  unknown = [x for x in args.paths.split(',') if x not in PATHS]
  if unknown:
    p.error(f'unknown path(s) {unknown}; known: {",".join(PATHS)}')

  from ser_jax import workdir  # pylint: disable=g-import-not-at-top
  print(json.dumps({'cpu': workdir.cpu_model(), 'cores': os.cpu_count(),
                    'cpu_bf16_flags': workdir.cpu_bf16_flags(), 'n': args.n, 'conv': conv}), flush=True)
  rows = []
  for name in args.paths.split(','):
    env = dict(os.environ, XLA_FLAGS=PATHS[name], SER_JAX_XLA_DEFAULTS='0')
    cmd = [sys.executable, os.path.abspath(__file__), '--child', f'--n={args.n}',
           f'--conv={args.conv}', f'--reps={args.reps}']
    try:
      out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
      lines = [l for l in out.stdout.splitlines() if l.startswith('{')]
      row = json.loads(lines[-1]) if out.returncode == 0 and lines else {
          'error': (out.stderr.strip().splitlines() or ['no output'])[-1][:300]}
    except subprocess.TimeoutExpired:
      row = {'error': f'timed out after {args.timeout:.0f} s'}
    row = {'path': name, 'xla_flags': PATHS[name], **row}
    rows.append(row)
    print(json.dumps(row), flush=True)
  cols = ('dot_float32_gflop_s', 'dot_bfloat16_gflop_s', 'conv_float32_gflop_s',
          'conv_bfloat16_gflop_s')
  print('\nGFLOP/s\n| path | dot f32 | dot bf16 | conv f32 | conv bf16 |', file=sys.stderr)
  print('|---|---|---|---|---|', file=sys.stderr)
  for r in rows:
    cells = [str(r.get(c, r.get('error', '—'))) for c in cols]
    print(f'| {r["path"]} | ' + ' | '.join(cells) + ' |', file=sys.stderr)
  return 0 if all('error' not in r for r in rows) else 1


if __name__ == '__main__':
  sys.exit(main())
