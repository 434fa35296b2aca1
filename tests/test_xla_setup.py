"""ser_jax.xla_setup: default XLA flags, added without overriding the user's."""
import os
import subprocess
import sys

from ser_jax import xla_setup

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_adds_missing_defaults_and_keeps_user_flags():
  env = {'XLA_FLAGS': '--xla_force_host_platform_device_count=8'}
  added = xla_setup.configure(env)
  assert added == list(xla_setup.DEFAULT_FLAGS)
  assert env['XLA_FLAGS'].split() == ['--xla_force_host_platform_device_count=8',
                                      *xla_setup.DEFAULT_FLAGS]
  assert xla_setup.configure(env) == []                       # idempotent
  name = xla_setup.DEFAULT_FLAGS[0].split('=')[0]
  env = {'XLA_FLAGS': f'{name}=dot,eltwise'}                  # the user's value wins
  assert xla_setup.configure(env) == [] and env['XLA_FLAGS'] == f'{name}=dot,eltwise'
  env = {'SER_JAX_XLA_DEFAULTS': '0'}                         # opt out
  assert xla_setup.configure(env) == [] and 'XLA_FLAGS' not in env


def test_configure_where_the_program_starts_sets_the_flags_before_jax_starts():
  # What run.py and the benchmarks do first (importing ser_jax sets nothing:
  # tests/test_layout.py).
  code = ('import os; from ser_jax import xla_setup; xla_setup.configure(); '
          'import jax; jax.devices(); print(os.environ["XLA_FLAGS"])')
  env = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', 'SER_JAX_XLA_DEFAULTS')}
  out = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env, capture_output=True,
                       text=True, check=True)
  assert out.stdout.split() == list(xla_setup.DEFAULT_FLAGS)


def test_malloc_tunable_is_wanted_only_where_it_changes_something():
  glibc = ('glibc', '2.36')
  missing = lambda env, mode='madvise', libc=glibc: xla_setup.malloc_tunable_missing(
      env, thp_mode=mode, libc=libc)
  if not sys.platform.startswith('linux'):
    assert not missing({})
    return
  assert missing({})
  assert missing({'GLIBC_TUNABLES': 'glibc.malloc.arena_max=2'})
  assert not missing({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=2'})   # the user's value wins
  assert not missing({'SER_JAX_XLA_DEFAULTS': 'off'})                # opt out
  assert not missing({}, mode='always') and not missing({}, mode='never')
  assert not missing({}, libc=('glibc', '2.31'))                     # no such tunable yet
  assert not missing({}, libc=('', ''))                              # musl, ...
  env = xla_setup.with_malloc_tunable({'GLIBC_TUNABLES': 'glibc.malloc.arena_max=2', 'A': 'b'})
  assert env == {'GLIBC_TUNABLES': f'glibc.malloc.arena_max=2:{xla_setup.MALLOC_TUNABLE}',
                 'A': 'b'}
  assert xla_setup.with_malloc_tunable({})['GLIBC_TUNABLES'] == xla_setup.MALLOC_TUNABLE


def test_entry_point_restarts_once_with_the_tunable_and_the_same_arguments():
  code = ('import os, sys\n'
          'from ser_jax import xla_setup\n'
          'print("start", flush=True)\n'
          'xla_setup.reexec_with_malloc_tunable()\n'
          'print(os.environ.get("GLIBC_TUNABLES"), sys.argv[1:])\n')
  env = {k: v for k, v in os.environ.items()
         if k not in ('GLIBC_TUNABLES', 'SER_JAX_XLA_DEFAULTS')}
  out = subprocess.run([sys.executable, '-c', code, 'a b', '--x=1'], cwd=REPO, env=env,
                       capture_output=True, text=True, check=True).stdout.splitlines()
  if xla_setup.malloc_tunable_missing(env):       # this machine: glibc, THP 'madvise'
    assert out == ['start', 'start', f"{xla_setup.MALLOC_TUNABLE} ['a b', '--x=1']"]
  else:
    assert out == ['start', "None ['a b', '--x=1']"]
  out = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                       env={**env, 'SER_JAX_XLA_DEFAULTS': '0'}, capture_output=True,
                       text=True, check=True).stdout.splitlines()
  assert out == ['start', 'None []']
