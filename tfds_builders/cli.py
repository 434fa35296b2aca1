"""`tfds build` on one of this repository's builders, run the way a user runs it
(the TFDS command-line tool in a subprocess, from the repository root, without
PYTHONPATH: the CLI must find the builder by itself). Used by the builder tests
and benchmarks/build_datasets.py.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def build_command(builder: str, *flags: str) -> list[str]:
  """['tfds', 'build', 'tfds_builders/BUILDER', *flags] for this interpreter."""
  script = pathlib.Path(sys.executable).parent / 'tfds'
  cmd = ([str(script)] if script.exists()
         else [sys.executable, '-m', 'tensorflow_datasets.scripts.cli.main'])
  return cmd + ['build', f'tfds_builders/{builder}', *flags]


def run_build(builder: str, *flags: str, **run_kwargs) -> subprocess.CompletedProcess:
  """Runs `build_command(builder, *flags)`; keyword arguments go to subprocess.run
  (text output captured unless given otherwise)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  env.pop('PYTHONPATH', None)
  run_kwargs.setdefault('capture_output', 'stdout' not in run_kwargs)
  run_kwargs.setdefault('text', True)
  return subprocess.run(build_command(builder, *flags), cwd=REPO, env=env, **run_kwargs)
