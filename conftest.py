"""Test set-up: the repo root on sys.path, quiet TensorFlow, small thread pools,
no inherited non-tests,
and one persistent XLA compilation cache for the session.

The many subprocess runs of the tests (resume, signals, faults, two hosts) compile
the same tiny programs; JAX's persistent cache, in a folder made for this
session (and removed after), lets every run after the first load them instead
(test_resume.py: 263 s -> 183 s on 2 cores). A loaded executable is the one
that was compiled, so results are unchanged (the SIGKILL test stays bitwise).
"""
import atexit
import fcntl
import os
import shutil
import sys
import tempfile

import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# Two malloc arenas per process (the xdist workers and every run.py the tests
# start inherit it): XLA's and TensorFlow's threads otherwise each grow their own
# arena, and the suite's peak memory with them.
os.environ.setdefault('MALLOC_ARENA_MAX', '2')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Before anything imports JAX (xla_setup does), which reads these when it loads.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix='ser_jax_test_xla_cache_')
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '-1')

# The XLA defaults run.py applies (YNNPACK dots: the tests' numbers are those
# of the program), before anything starts JAX.
from ser_jax import xla_setup  # noqa: E402
xla_setup.configure()


# The test files that take longest, longest first (their summed test times in a
# `--durations=0` run on 2 cores, 2026-12-03: 677, 568, 421, 232, 222, 129, 115 s
# under load). pytest-xdist hands whole files to its workers in the order of the
# collection (`--no-loadscope-reorder`, pytest.ini); starting with the long ones
# leaves the short ones to even out the two workers at the end. By default xdist
# orders files by their number of tests, which put the one-test test_demo.py (a
# 2-minute training) last, alone on one worker while the other was idle.
LONGEST_FIRST = ('test_zoo.py', 'test_resume.py', 'test_recipe.py', 'test_train.py',
                 'test_benchmarks.py', 'test_demo.py', 'test_features.py')


def pytest_collection_modifyitems(config, items):
  """Drops `test_session`, which TFDS's builder test case inherits from
  tf.test.TestCase (a deprecated context manager, not a test: pytest would
  report it as skipped), and puts the longest files first (LONGEST_FIRST)."""
  kept = [i for i in items if i.name != 'test_session']
  if len(kept) != len(items):
    config.hook.pytest_deselected(items=[i for i in items if i.name == 'test_session'])
  rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
  kept.sort(key=lambda i: rank.get(i.path.name, len(rank)))   # stable: the rest keep their order
  items[:] = kept


def release_memory():
  """Frees what the tests compiled (JAX's caches) and hands the freed heap back
  to the OS."""
  import gc  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  jax.clear_caches()
  gc.collect()
  try:
    import ctypes  # pylint: disable=g-import-not-at-top
    ctypes.CDLL('libc.so.6').malloc_trim(0)
  except (OSError, AttributeError):
    pass


@pytest.fixture(autouse=True, scope='module')
def _release_memory_after_each_module():
  """The suite's memory stays that of its largest module (a module of many
  models also releases after each test: `release_memory_after_each_test`)."""
  yield
  release_memory()


@pytest.fixture
def release_memory_after_each_test():
  yield
  release_memory()


def pytest_xdist_auto_num_workers(config):
  """`-n auto` (pytest.ini): one worker per core, at most 2, fewer where memory is
  short; each worker peaks near 2 GB on the suite's largest module."""
  del config
  avail = 8 * 2**30
  try:
    with open('/proc/meminfo') as f:   # MemAvailable counts reclaimable page cache
      for line in f:
        if line.startswith('MemAvailable:'):
          avail = int(line.split()[1]) * 1024
  except (OSError, ValueError, IndexError):
    pass
  return max(1, min(os.cpu_count() or 1, 2, int(avail // (3 * 2**30))))


# Tests marked `exclusive` (several run.py processes at once) run while no other
# test of another xdist worker runs, so the suite's peak memory is not the sum of
# the two heaviest moments of two workers. The lock file is shared by the workers
# (they inherit the controller's environment).
if 'SER_JAX_TEST_LOCK' not in os.environ:
  os.environ['SER_JAX_TEST_LOCK'] = os.path.join(tempfile.gettempdir(),
                                                 f'ser_jax_tests_{os.getpid()}.lock')
  atexit.register(lambda path=os.environ['SER_JAX_TEST_LOCK']: os.path.exists(path)
                  and os.remove(path))


@pytest.fixture(autouse=True)
def _memory_slot(request):
  exclusive = request.node.get_closest_marker('exclusive') is not None
  fd = os.open(os.environ['SER_JAX_TEST_LOCK'], os.O_CREAT | os.O_RDWR, 0o600)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    yield
  finally:
    os.close(fd)   # releases the lock


def pytest_configure(config):
  """Before xdist starts its workers: compile librosa's numba functions once, so
  that the workers and the processes they spawn read numba's on-disk cache
  instead of writing it at the same time. (Concurrent first writes in a fresh
  venv left a corrupt gufunc cache that segfaulted later readers.)"""
  if os.environ.get('PYTEST_XDIST_WORKER') or getattr(config.option, 'numprocesses', None) in (
      None, 0):
    return
  import numpy as np  # pylint: disable=g-import-not-at-top
  import librosa  # pylint: disable=g-import-not-at-top
  from ser_jax import svm_features  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  for dtype in (np.float32, np.float64):
    y = (0.1 * rng.standard_normal(16000 * 3)).astype(dtype)
    svm_features.feature_vector_librosa(y, 16000)
    svm_features.feature_vector(y, 16000)
    librosa.feature.zero_crossing_rate(y)
    librosa.feature.chroma_stft(y=y, sr=16000)
    librosa.util.peak_pick(np.abs(y[:2000]), pre_max=3, post_max=3, pre_avg=3, post_avg=5,
                           delta=0.01, wait=10)
