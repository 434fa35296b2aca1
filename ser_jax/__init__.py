"""ser_jax: speech emotion recognition in JAX (see README.md)."""
from ser_jax import xla_setup as _xla_setup

_xla_setup.configure()
