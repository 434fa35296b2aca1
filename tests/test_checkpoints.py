"""Orbax checkpoints: last K plus the best by validation UAR; damaged steps
moved aside; failed saves reported once."""
import errno
import json
import logging
import os
import resource
import signal

import jax.numpy as jnp
import numpy as np
import pytest

from ser_jax import checkpoints

_BY_UAR = dict(metric='val_uar', mode='max')   # the configs' selection


def _state(v):
  return {'params': {'w': jnp.full((3,), float(v))}, 'step': jnp.asarray(v, jnp.int32)}


def test_keeps_last_k_and_best(tmp_path):
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=2, **_BY_UAR)
  for step, uar in zip([1, 2, 3, 4], [0.5, 0.9, 0.3, 0.4]):
    ckpt.save(step, _state(step), {'val_uar': uar})
  ckpt.wait()
  assert sorted(ckpt.manager.all_steps()) == [2, 3, 4]
  reopened = checkpoints.Checkpoints(str(tmp_path), keep=2, **_BY_UAR)
  assert reopened.best_step() == 2
  restored = reopened.restore(2, _state(0))
  np.testing.assert_array_equal(restored['params']['w'], [2.0, 2.0, 2.0])


def test_best_step_is_the_earliest_among_ties_and_needs_the_metric(tmp_path):
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=5, **_BY_UAR)
  for step, uar, loss in ((1, 0.5, 0.9), (2, 0.7, 0.4), (3, 0.7, 0.4), (4, 0.1, 1.0)):
    ckpt.save(step, _state(step), {'val_uar': uar, 'val_loss': loss})
  ckpt.save(5, _state(5))   # no metrics: never the best
  ckpt.close()
  assert checkpoints.Checkpoints(str(tmp_path), keep=5, **_BY_UAR).best_step() == 2
  by_loss = checkpoints.Checkpoints(str(tmp_path), keep=5, metric='val_loss', mode='min')
  assert by_loss.best_step() == 2
  assert checkpoints.Checkpoints(str(tmp_path), keep=5, metric='val_f1', mode='max').best_step() is None


@pytest.mark.parametrize('damaged', ['', 'default'])  # everything / only the arrays
def test_corrupt_latest_falls_back_to_previous(tmp_path, damaged):
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=3, **_BY_UAR)
  for step in (1, 2):
    ckpt.save(step, _state(step), {'val_uar': 0.1 * step})
  ckpt.wait()
  for root, _, files in os.walk(tmp_path / '2' / damaged):
    for f in files:
      with open(os.path.join(root, f), 'wb') as fh:
        fh.write(b'\0garbage')
  state, step = checkpoints.Checkpoints(str(tmp_path), keep=3, **_BY_UAR).restore_latest(_state(0))
  assert step == 1
  np.testing.assert_array_equal(state['params']['w'], [1.0, 1.0, 1.0])


def test_no_checkpoint(tmp_path):
  state, step = checkpoints.Checkpoints(str(tmp_path), **_BY_UAR).restore_latest(_state(0))
  assert state is None and step is None


# ---------------------------------------------------------------------------
# Faults: damaged steps are moved aside; failed saves raise one clear error.

def damage_step(step_dir, kind):
  """Damages a saved step the way a crash, a bad disk or a bad copy would."""
  if kind == 'arrays':        # the array data (OCDBT chunks) only
    for root, _, files in os.walk(os.path.join(step_dir, 'default')):
      if os.path.basename(root) == 'd':
        for f in files:
          with open(os.path.join(root, f), 'wb') as fh:
            fh.write(b'\0garbage')
  elif kind == 'metadata':
    with open(os.path.join(step_dir, '_CHECKPOINT_METADATA'), 'w') as fh:
      fh.write('{"truncated')
  elif kind == 'commit_marker':
    os.remove(os.path.join(step_dir, checkpoints.COMMIT_MARKER))
  elif kind == 'item_commit_marker':
    os.remove(os.path.join(step_dir, 'default', checkpoints.COMMIT_MARKER))
  elif kind == 'tmp_folder':  # a save killed before Orbax renamed its folder
    os.rename(step_dir, step_dir + '.orbax-checkpoint-tmp-1796000000')
  else:
    raise ValueError(kind)


DAMAGES = ['arrays', 'metadata', 'commit_marker', 'item_commit_marker', 'tmp_folder']


@pytest.mark.parametrize('kind', DAMAGES)
def test_damaged_latest_is_quarantined_and_the_step_can_be_saved_again(tmp_path, kind):
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=3, **_BY_UAR)
  for step in (1, 2):
    ckpt.save(step, _state(step), {'val_uar': 0.1 * step})
  ckpt.close()
  damage_step(str(tmp_path / '2'), kind)
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=3, repair=True, **_BY_UAR)
  state, step = ckpt.restore_latest(_state(0))
  assert step == 1
  np.testing.assert_array_equal(state['params']['w'], [1.0, 1.0, 1.0])
  moved = os.listdir(tmp_path / checkpoints.QUARANTINE)
  assert len(moved) == 1 and moved[0].startswith('2'), moved
  with open(tmp_path / checkpoints.QUARANTINE / moved[0] / 'QUARANTINED.json') as f:
    assert json.load(f)['reason']
  # The resumed run saves step 2 again (this raised StepAlreadyExistsError).
  ckpt.save(2, _state(2), {'val_uar': 0.2})
  ckpt.wait()
  assert ckpt.all_steps() == [1, 2]
  assert checkpoints.Checkpoints(str(tmp_path), keep=3, **_BY_UAR).restore_latest(_state(0))[1] == 2


@pytest.mark.parametrize('kind', DAMAGES)
def test_readers_skip_damaged_steps_without_moving_anything(tmp_path, kind):
  """evaluate/predict/export (no repair) may run beside training: they skip a
  damaged step and leave every folder, a save in progress included, in place
  (but a step whose metadata JSON is unreadable, on which Orbax itself fails
  to open, is moved aside: it is finished, no save is writing into it)."""
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=3, **_BY_UAR)
  for step in (1, 2):
    ckpt.save(step, _state(step), {'val_uar': 0.1 * step})
  ckpt.close()
  damage_step(str(tmp_path / '2'), kind)
  before = sorted(os.listdir(tmp_path))
  reader = checkpoints.Checkpoints(str(tmp_path), keep=3, **_BY_UAR)
  for restore in (reader.restore_latest, reader.restore_best):
    state, step = restore(_state(0))
    assert step == 1 and float(state['params']['w'][0]) == 1.0
  if kind == 'metadata':
    assert sorted(os.listdir(tmp_path)) == ['1', checkpoints.QUARANTINE]
  else:
    assert sorted(os.listdir(tmp_path)) == before


def test_unreadable_step_that_cannot_be_moved_is_skipped_not_retried(tmp_path, monkeypatch):
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=3, **_BY_UAR)
  for step in (1, 2):
    ckpt.save(step, _state(step), {'val_uar': 0.1 * step})
  ckpt.close()
  damage_step(str(tmp_path / '2'), 'arrays')
  moves = []
  def refuse(*a, **k):
    moves.append(a)
    raise PermissionError(13, 'Permission denied')
  monkeypatch.setattr(checkpoints.shutil, 'move', refuse)
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=3, repair=True, **_BY_UAR)
  state, step = ckpt.restore_latest(_state(0))
  assert step == 1 and len(moves) == 1
  assert (tmp_path / '2').is_dir() and ckpt.all_steps() == [1]   # left in place, skipped
  # Asked again, the same object neither reads nor tries to move step 2 again.
  restored = []
  real_restore = ckpt.manager.restore
  monkeypatch.setattr(ckpt.manager, 'restore',
                      lambda s, *a, **k: restored.append(s) or real_restore(s, *a, **k))
  state, step = ckpt.restore_latest(_state(0))
  assert step == 1 and len(moves) == 1 and restored == [1], (moves, restored)


def test_damaged_best_falls_back_to_the_next_best(tmp_path):
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=1, **_BY_UAR)
  for step, uar in zip((1, 2, 3), (0.9, 0.5, 0.7)):
    ckpt.save(step, _state(step), {'val_uar': uar})
  ckpt.close()
  assert sorted(os.listdir(tmp_path)) == ['1', '3']
  damage_step(str(tmp_path / '1'), 'arrays')
  state, step = checkpoints.Checkpoints(str(tmp_path), keep=1, repair=True, **_BY_UAR).restore_best(
      _state(0))
  assert step == 3
  np.testing.assert_array_equal(state['params']['w'], [3.0, 3.0, 3.0])


def _big_state(v):  # 256 KiB of incompressible data
  w = np.random.default_rng(0).standard_normal((64, 1024)).astype(np.float32)
  w[0, 0] = v
  return {'params': {'w': jnp.asarray(w)}, 'step': jnp.asarray(v, jnp.int32)}


def test_save_refused_when_the_disk_has_less_than_a_checkpoint(tmp_path, monkeypatch):
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=3, **_BY_UAR)
  ckpt.save(1, _big_state(1), {'val_uar': 0.1})
  ckpt.wait()
  size = sum(os.path.getsize(os.path.join(r, f))
             for r, _, fs in os.walk(tmp_path / '1') for f in fs)
  monkeypatch.setattr(checkpoints.Checkpoints, '_free_bytes', lambda self: size // 2)
  with pytest.raises(checkpoints.CheckpointSaveError) as e:
    ckpt.save(2, _big_state(2), {'val_uar': 0.2})
  assert e.value.errno == errno.ENOSPC and e.value.step == 2 and e.value.last_good == 1
  assert e.value.needed >= size
  message = str(e.value)
  assert 'step 2' in message and 'step 1, is intact' in message and 'free there' in message
  assert sorted(os.listdir(tmp_path)) == ['1']      # nothing written


def test_failed_write_raises_once_and_keeps_the_last_good_step(tmp_path, caplog):
  """A real write failure (the file-size limit makes every chunk write fail
  with EFBIG, as a full disk does with ENOSPC) in an asynchronous save."""
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=3, **_BY_UAR)
  ckpt.save(1, _big_state(1), {'val_uar': 0.1})
  ckpt.wait()
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
  try:
    ckpt.save(2, _big_state(2), {'val_uar': 0.2})   # asynchronous: fails in threads
    with pytest.raises(checkpoints.CheckpointSaveError) as e:
      ckpt.wait()
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous)
  assert e.value.step == 2 and e.value.last_good == 1
  assert e.value.errno == errno.EFBIG and 'file too large' in str(e.value)
  assert sorted(os.listdir(tmp_path)) == ['1']      # the partial folder is gone
  assert not [r for r in caplog.records
              if r.levelno >= logging.ERROR and '/orbax/' in r.pathname]
  state, step = checkpoints.Checkpoints(str(tmp_path), keep=3, **_BY_UAR).restore_latest(_big_state(0))
  assert step == 1 and float(state['params']['w'][0, 0]) == 1.0


def test_intact_checkpoint_of_another_model_is_not_quarantined(tmp_path):
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=3, **_BY_UAR)
  ckpt.save(1, _state(1), {'val_uar': 0.1})
  ckpt.close()
  other = {'params': {'w': jnp.zeros((5,)), 'b': jnp.zeros(())}, 'step': jnp.asarray(0)}
  for repair in (False, True):
    with pytest.raises(checkpoints.CheckpointMismatchError, match='not in the checkpoint'):
      checkpoints.Checkpoints(str(tmp_path), keep=3, repair=repair, **_BY_UAR).restore_latest(other)
  assert not (tmp_path / checkpoints.QUARANTINE).exists()
  assert checkpoints.Checkpoints(str(tmp_path), **_BY_UAR).restore_latest(_state(0))[1] == 1


def test_machine_errors_on_restore_are_raised_not_quarantined(tmp_path, monkeypatch):
  ckpt = checkpoints.Checkpoints(str(tmp_path), keep=3, **_BY_UAR)
  ckpt.save(1, _state(1), {'val_uar': 0.1})
  ckpt.close()
  reader = checkpoints.Checkpoints(str(tmp_path), keep=3, repair=True, **_BY_UAR)

  def out_of_memory(*a, **k):
    raise ValueError('RESOURCE_EXHAUSTED: Out of memory allocating 4 GiB')

  monkeypatch.setattr(reader.manager, 'restore', out_of_memory)
  with pytest.raises(ValueError, match='RESOURCE_EXHAUSTED'):
    reader.restore_latest(_state(0))
  assert sorted(os.listdir(tmp_path)) == ['1']


def test_tensorflow_file_errors_become_os_errors():
  from ser_jax import monitoring
  with pytest.raises(OSError) as e:
    with monitoring.os_errors('/w/tensorboard'):
      raise RuntimeError('events.out; No space left on device. Could not flush events file.')
  assert e.value.errno == errno.ENOSPC and e.value.filename == '/w/tensorboard'
  with pytest.raises(KeyError):   # anything else passes through unchanged
    with monitoring.os_errors('/w/tensorboard'):
      raise KeyError('x')
