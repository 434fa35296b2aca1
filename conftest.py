"""Test set-up: the repo root on sys.path, quiet TensorFlow, small thread pools,
and one persistent XLA compilation cache for the session.

The many subprocess runs of the tests (resume, signals, faults, two hosts) compile
the same tiny programs; JAX's persistent cache, in a folder made for this
session (and removed after), lets every run after the first load them instead
(test_resume.py: 263 s -> 183 s on 2 cores). A loaded executable is the one
that was compiled, so results are unchanged (the SIGKILL test stays bitwise).
"""
import atexit
import os
import shutil
import sys
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix='ser_jax_test_xla_cache_')
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '-1')
