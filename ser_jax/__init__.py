"""ser_jax: speech emotion recognition in JAX (see README.md).

Importing it changes nothing in the process: the XLA defaults of
`ser_jax.xla_setup` are applied where a program starts (run.py, the
benchmarks, the tests' conftest.py); call `ser_jax.xla_setup.configure()`
yourself, before JAX starts, to get them in your own program.
"""
