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


def test_importing_ser_jax_sets_the_flags_before_jax_starts():
  code = ('import os, ser_jax, jax; jax.devices(); '
          'print(os.environ["XLA_FLAGS"])')
  env = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', 'SER_JAX_XLA_DEFAULTS')}
  out = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env, capture_output=True,
                       text=True, check=True)
  assert out.stdout.split() == list(xla_setup.DEFAULT_FLAGS)
