"""Orbax checkpoints of a training run: the last K steps plus the best one.

Each checkpoint holds the whole train state (params, optimiser state, step,
RNG and the feature normalisation statistics) and its validation metrics;
the best step is the one with the highest validation UAR.
"""
from __future__ import annotations

import json
import logging
import os
import shutil

import jax
import orbax.checkpoint as ocp


class Checkpoints:
  """A thin wrapper of `ocp.CheckpointManager` for one run's directory.

  `metric`/`mode` choose the best checkpoint: 'val_uar'/'max' (the papers'
  model selection) or e.g. 'val_loss'/'min' (Keras-style early stopping).
  """

  def __init__(self, directory: str, keep: int = 2, async_save: bool = True,
               metric: str = 'val_uar', mode: str = 'max'):
    if mode not in ('min', 'max'):
      raise ValueError(f'mode must be min or max, not {mode!r}')
    self.metric, self.mode = metric, mode
    sign = 1.0 if mode == 'max' else -1.0
    score = lambda m: sign * m[metric]
    policy = ocp.checkpoint_managers.AnyPreservationPolicy([
        ocp.checkpoint_managers.LatestN(keep),
        ocp.checkpoint_managers.BestN(
            get_metric_fn=score, n=1, keep_checkpoints_without_metrics=False),
    ])
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policy,
        best_fn=score, best_mode='max',  # makes Orbax store metrics
        enable_async_checkpointing=async_save, create=True)
    directory = os.path.abspath(directory)
    _quarantine_unreadable(directory)
    self.manager = ocp.CheckpointManager(directory, options=options)

  def latest_step(self):
    return self.manager.latest_step()

  def best_step(self):
    """Step with the best `metric` (earliest among ties), or None."""
    sign = 1.0 if self.mode == 'max' else -1.0
    best, best_value = None, None
    for step in sorted(self.manager.all_steps()):
      metrics = self.manager.metrics(step)
      if metrics is None or self.metric not in metrics:
        continue
      if best_value is None or sign * metrics[self.metric] > best_value:
        best, best_value = step, sign * metrics[self.metric]
    return best

  def save(self, step: int, state, metrics: dict | None = None):
    """Saves asynchronously; without metrics the step is kept only while among the last K."""
    self.manager.save(int(step), args=ocp.args.StandardSave(state),
                      metrics={k: float(v) for k, v in metrics.items()} if metrics else None,
                      force=True)

  def restore(self, step: int, target):
    """Restores `step` into the structure, dtypes and shardings of `target`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return self.manager.restore(int(step), args=ocp.args.StandardRestore(abstract))

  def restore_latest(self, target):
    """(state, step) of the newest readable checkpoint, or (None, None).

    A corrupt or partial checkpoint is skipped with a warning and the
    previous one is tried.
    """
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        return self.restore(step, target), step
      except Exception as e:  # pylint: disable=broad-except
        logging.warning('Checkpoint step %d in %s is unreadable (%s: %s); '
                        'falling back to the previous one.',
                        step, self.manager.directory, type(e).__name__, e)
    return None, None

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.close()


def _quarantine_unreadable(directory: str):
  """Moves step folders whose metadata JSON is unreadable to `corrupt/`.

  Orbax reads every step's metadata when a manager opens, so one damaged
  step would otherwise make the whole run unrecoverable.
  """
  if not os.path.isdir(directory):
    return
  for name in sorted(os.listdir(directory)):
    step_dir = os.path.join(directory, name)
    if not (name.isdigit() and os.path.isdir(step_dir)):
      continue
    for meta in ('_CHECKPOINT_METADATA', os.path.join('metrics', 'metrics')):
      path = os.path.join(step_dir, meta)
      if not os.path.exists(path):
        continue
      try:
        with open(path) as f:
          json.load(f)
      except (OSError, ValueError) as e:
        target = os.path.join(directory, 'corrupt', name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(step_dir, target)
        logging.warning('Checkpoint step %s has unreadable %s (%s); moved to %s.',
                        name, meta, e, target)
        break
