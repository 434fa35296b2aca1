"""Orbax checkpoints: last K plus the best by validation UAR; corrupt-latest fallback."""
import os

import jax.numpy as jnp
import numpy as np
import pytest

from ser_jax import checkpoints


def _state(v):
  return {'params': {'w': jnp.full((3,), float(v))}, 'step': jnp.asarray(v, jnp.int32)}


def test_keeps_last_k_and_best(tmp_path):
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=2)
  for step, uar in zip([1, 2, 3, 4], [0.5, 0.9, 0.3, 0.4]):
    ckpt.save(step, _state(step), {'val_uar': uar})
  ckpt.wait()
  assert sorted(ckpt.manager.all_steps()) == [2, 3, 4]
  reopened = checkpoints.Checkpoints(str(tmp_path), keep=2)
  assert reopened.best_step() == 2
  restored = reopened.restore(2, _state(0))
  np.testing.assert_array_equal(restored['params']['w'], [2.0, 2.0, 2.0])


@pytest.mark.parametrize('damaged', ['', 'default'])  # everything / only the arrays
def test_corrupt_latest_falls_back_to_previous(tmp_path, damaged):
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=3)
  for step in (1, 2):
    ckpt.save(step, _state(step), {'val_uar': 0.1 * step})
  ckpt.wait()
  for root, _, files in os.walk(tmp_path / '2' / damaged):
    for f in files:
      with open(os.path.join(root, f), 'wb') as fh:
        fh.write(b'\0garbage')
  state, step = checkpoints.Checkpoints(str(tmp_path), keep=3).restore_latest(_state(0))
  assert step == 1
  np.testing.assert_array_equal(state['params']['w'], [1.0, 1.0, 1.0])


def test_no_checkpoint(tmp_path):
  state, step = checkpoints.Checkpoints(str(tmp_path)).restore_latest(_state(0))
  assert state is None and step is None
