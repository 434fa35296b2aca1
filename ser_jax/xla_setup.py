"""XLA flags ser_jax sets by default, before JAX starts its backends.

XLA:CPU in the pinned jaxlib can hand dots and convolutions to YNNPACK (the
XNNPACK successor) instead of its Eigen kernels. Measured with
`benchmarks/train_step.py` on 2 cores (README, "Benchmarks"), it is the largest
single CPU speed-up of the training step (a 32→64 3×3 convolution's forward
pass 21 → 3 ms, its weight gradient 48 → 8 ms), with float32 results equal to
the Eigen path within rounding (the feature-parity and model tests run with
it). The flag only concerns the CPU backend; GPU compilation ignores it.

A flag the user already put in `XLA_FLAGS` is left alone; set
`SER_JAX_XLA_DEFAULTS=0` to add none. The flags take effect only if they are
in the environment before the first JAX computation initialises the
backends: `ser_jax/__init__.py` calls `configure()` on import, and a warning
says when it came too late.
"""
from __future__ import annotations

import logging
import os

DEFAULT_FLAGS = ('--xla_cpu_experimental_ynn_fusion_type=dot',)


def configure(environ=os.environ) -> list[str]:
  """Adds the missing DEFAULT_FLAGS to XLA_FLAGS; returns the flags added."""
  if environ.get('SER_JAX_XLA_DEFAULTS', '1').strip().lower() in ('0', 'false', 'no', 'off'):
    return []
  current = environ.get('XLA_FLAGS', '')
  present = {f.split('=', 1)[0] for f in current.split()}
  added = [f for f in DEFAULT_FLAGS if f.split('=', 1)[0] not in present]
  if not added:
    return []
  environ['XLA_FLAGS'] = ' '.join([current.strip()] + added).strip()
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
    late = xla_bridge.backends_are_initialized()
  except (ImportError, AttributeError):
    late = False
  if late:
    logging.getLogger(__name__).warning(
        'JAX backends were initialised before ser_jax was imported; the default XLA '
        'flags %s do not apply to this process (import ser_jax first, or put them in '
        'XLA_FLAGS).', ' '.join(added))
  return added
