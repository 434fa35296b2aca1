"""Trainer registry: `config.trainer` → the function that trains and evaluates one run.

Every trainer has the signature `(config, workdir, mesh=None, corpus=None) -> results`
with the results dict of `train.evaluate_checkpoint` ('validation', 'test', 'speakers',
...), so protocols, reports and run.py treat all systems alike.
"""
from __future__ import annotations

import importlib

_TRAINERS = {
    'neural': ('ser_jax.train', 'train_and_evaluate'),   # Flax models (default)
    'svm': ('ser_jax.svm', 'train_and_evaluate'),        # scikit-learn on statistics
}


def get(config):
  name = config.get('trainer', 'neural') or 'neural'
  if name not in _TRAINERS:
    raise ValueError(f'unknown trainer {name!r}; known: {sorted(_TRAINERS)}')
  module, fn = _TRAINERS[name]
  return getattr(importlib.import_module(module), fn)
