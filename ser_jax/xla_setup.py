"""Runtime defaults ser_jax sets before JAX starts: XLA flags and, for its
entry points, transparent huge pages for large allocations.

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
backends: the programs call `configure()` where they start (run.py, the
benchmarks, the tests' conftest.py; importing ser_jax changes nothing), and a
warning says when it came too late.

Huge pages. XLA:CPU allocates a step's buffers afresh on every call, and
glibc serves large blocks with new `mmap` regions that it returns on free, so
every step touches fresh memory: ~20,000 page faults per cnn2d_bilstm step
(83 MB of 4 KiB pages, ~27 % of its time on 2 cores). With glibc's
`glibc.malloc.hugetlb=1` tunable those regions are advised to use 2 MiB
transparent huge pages: 50× fewer faults, 1.37× the examples/s (README,
"Benchmarks"). A tunable is read when the process starts, so the entry
points (`run.py`, `benchmarks/train_step.py`) call `reexec_with_malloc_tunable()`
first: on Linux with glibc ≥ 2.35, transparent huge pages in `madvise` mode and the
tunable not yet set, it restarts the same command with it added to
`GLIBC_TUNABLES` (the library never re-executes a process it was imported
into; set the variable yourself there). `SER_JAX_XLA_DEFAULTS=0` turns this
off too.
"""
from __future__ import annotations

import logging
import os
import platform
import sys

DEFAULT_FLAGS = ('--xla_cpu_experimental_ynn_fusion_type=dot',)


MALLOC_TUNABLE = 'glibc.malloc.hugetlb=1'
THP_MODE_FILE = '/sys/kernel/mm/transparent_hugepage/enabled'


def _opted_out(environ) -> bool:
  return environ.get('SER_JAX_XLA_DEFAULTS', '1').strip().lower() in ('0', 'false', 'no', 'off')


def configure(environ=os.environ) -> list[str]:
  """Adds the missing DEFAULT_FLAGS to XLA_FLAGS; returns the flags added."""
  if _opted_out(environ):
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
        'JAX backends were initialised before xla_setup.configure() was called; the '
        'default XLA flags %s do not apply to this process (call it first, or put them '
        'in XLA_FLAGS).', ' '.join(added))
  return added


def _thp_mode(path: str = THP_MODE_FILE) -> str | None:
  """The kernel's transparent-huge-page mode ('always', 'madvise', 'never')."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError:
    return None
  start, end = text.find('['), text.find(']')
  return text[start + 1:end] if 0 <= start < end else None


def malloc_tunable_missing(environ=os.environ, thp_mode: str | None = None,
                           libc: tuple[str, str] | None = None) -> bool:
  """Whether restarting with MALLOC_TUNABLE would change anything here."""
  if _opted_out(environ) or not sys.platform.startswith('linux'):
    return False
  name, version = libc or platform.libc_ver()
  try:
    new_enough = tuple(int(v) for v in version.split('.')[:2]) >= (2, 35)
  except ValueError:
    new_enough = False
  if name != 'glibc' or not new_enough:
    return False
  if MALLOC_TUNABLE.split('=')[0] in environ.get('GLIBC_TUNABLES', ''):
    return False        # set already (by the user or a restart): theirs wins
  # 'always' already backs every large mapping with huge pages; 'never' has none.
  return (thp_mode or _thp_mode()) == 'madvise'


def with_malloc_tunable(environ) -> dict:
  """A copy of `environ` whose GLIBC_TUNABLES also holds MALLOC_TUNABLE."""
  env = dict(environ)
  env['GLIBC_TUNABLES'] = ':'.join(t for t in (env.get('GLIBC_TUNABLES', ''), MALLOC_TUNABLE) if t)
  return env


def reexec_with_malloc_tunable() -> None:
  """Restarts this command with MALLOC_TUNABLE when it is missing (see the
  module docstring); returns only if it is not needed or the restart failed.
  For entry points, before they import JAX."""
  if not malloc_tunable_missing():
    return
  argv = [sys.executable] + list(getattr(sys, 'orig_argv', [sys.executable] + sys.argv)[1:])
  sys.stdout.flush()
  sys.stderr.flush()
  try:
    os.execve(sys.executable, argv, with_malloc_tunable(os.environ))
  except OSError as e:
    logging.getLogger(__name__).warning(
        'could not restart with GLIBC_TUNABLES=%s (%s); continuing without huge pages',
        MALLOC_TUNABLE, e)

