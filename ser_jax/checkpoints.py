"""Orbax checkpoints of a training run: the last K steps plus the best one.

Each checkpoint holds the whole train state (params, optimiser state, step,
RNG and the feature normalisation statistics) and its validation metrics;
the best step is the one with the highest validation UAR.

Faults (README "What survives a fault"):
  * A damaged step (unreadable arrays or metadata, no commit marker, a
    left-over temporary folder of an interrupted save) is moved by the
    training run (`repair=True`) to `checkpoints/quarantine/<step>-<time>/`
    before anything is saved again, and the previous step is used; readers
    (evaluate, predict, export) skip it and move nothing. An intact step that
    does not fit the caller's state raises CheckpointMismatchError; errors of
    the machine (out of memory, OS errors) are raised as they are.
  * A save that cannot be written (no space, read-only, I/O error) raises one
    `CheckpointSaveError` naming the step, the folder, the space needed and
    free; its unfinished folder is removed and earlier steps are left intact.
    Orbax's per-thread error reports of that save are held back (the error
    carries their cause), so the failure is reported once.
"""
from __future__ import annotations

import atexit
import contextlib
import errno
import json
import logging
import os
import re
import shutil
import socket
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp

from ser_jax import cli

QUARANTINE = 'quarantine'
COMMIT_MARKER = 'commit_success.txt'   # Orbax writes it last, in every step and item
_TMP_RE = re.compile(r'^(\d+)\.orbax-checkpoint-tmp')
_SPACE_MARGIN = 1.1                    # free space wanted: 1.1 x the last checkpoint


class CheckpointSaveError(OSError):
  """A checkpoint could not be written; earlier checkpoints are intact."""

  def __init__(self, step: int, directory: str, cause: str, needed: int, free: int | None,
               last_good: int | None, code: int | None = None, wrote: bool = True):
    self.step, self.directory, self.cause = step, directory, cause
    self.needed, self.free, self.last_good = needed, free, last_good
    space = f'it needs about {_size(needed)}'
    if free is not None:
      space += f', {_size(free)} free there'
    kept = (f'the last good checkpoint, step {last_good}, is intact'
            if last_good is not None else 'no earlier checkpoint exists')
    super().__init__(code or errno.EIO, (
        f'saving checkpoint step {step} to {directory} failed: {cause} ({space}). '
        f'{"Its partial folder was removed and " if wrote else "Nothing was written; "}'
        f'{kept}. Free some space or use another '
        '--workdir, then re-run the same command to resume.'))

  def __str__(self):
    return self.strerror


class CheckpointMismatchError(ValueError):
  """An intact checkpoint does not fit the state the config builds."""


def _size(n: int) -> str:
  for unit in ('B', 'KiB', 'MiB', 'GiB'):
    if n < 1024 or unit == 'GiB':
      return f'{n:.0f} {unit}' if unit == 'B' else f'{n:.1f} {unit}'
    n /= 1024
  return f'{n:.1f} TiB'


def _remove_tree(path: str, attempts: int = 20, pause: float = 0.1):
  """rmtree that outlasts a writer thread of a failed save still closing files
  in it (TensorStore may finish a chunk after Orbax has raised): tried again
  until the folder is gone, for up to attempts x pause seconds."""
  for _ in range(attempts):
    shutil.rmtree(path, ignore_errors=True)
    if not os.path.exists(path):
      return
    time.sleep(pause)
  logging.warning('Could not remove the unfinished checkpoint folder %s.', path)


def _dir_bytes(path: str) -> int:
  total = 0
  for root, _, files in os.walk(path):
    for f in files:
      try:
        total += os.lstat(os.path.join(root, f)).st_size
      except OSError:
        pass
  return total


def _short(e: BaseException, limit: int = 240) -> str:
  """The first line of an error, without TensorStore's spec dump."""
  text = str(e).split('\n', 1)[0].split(' [tensorstore_spec', 1)[0]
  return text if len(text) <= limit else text[:limit] + '…'


def _os_error(e: BaseException) -> tuple[int | None, str]:
  """(errno, reason) of a failed write, from an OSError anywhere in the chain or
  from TensorStore's "[os_error_code='28']" in the message."""
  seen = e
  while seen is not None:
    if isinstance(seen, OSError) and seen.errno:
      return seen.errno, os.strerror(seen.errno).lower()
    m = re.search(r"os_error_code='(\d+)'", str(seen))
    if m:
      code = int(m.group(1))
      return code, os.strerror(code).lower()
    seen = seen.__cause__ or seen.__context__
  return None, _short(e)


class _FailureNoise(logging.Filter):
  """Keeps one failed save or restore from being reported many times.

  While a save is in flight Orbax's ERROR records are held (each writer
  thread reports the same failure; `CheckpointSaveError` reports it once) and
  re-emitted if the save succeeds. What abandoned TensorStore callbacks and
  coroutines of a failing save or restore print ("Event loop is closed",
  "Task exception was never retrieved", "sys.meta_path is None" at exit) is
  dropped: it repeats the error that is reported once.
  """

  NOISE = ('Event loop is closed', 'sys.meta_path is None', 'exception was never retrieved')

  def __init__(self):
    super().__init__()
    self.active = 0       # saves in flight
    self.failed = False   # a failed save or restore was handled in this process
    self.restoring = 0    # restores in progress (a failing one is noisy before it raises)
    self.held = []

  def _is_noise(self, text: str) -> bool:
    return bool(self.failed or self.restoring or self.active) and any(
        n in text for n in self.NOISE)

  def filter(self, record):
    if '/orbax/' in record.pathname and 'did not provide metrics' in record.getMessage():
      return False   # by design: steps saved between evaluations carry no metrics
    if record.levelno >= logging.ERROR and '/orbax/' in record.pathname and self.active:
      self.held.append(record)
      return False
    if record.levelno >= logging.ERROR and self._is_noise(record.getMessage()):
      return False
    return True

  def flush(self):
    """Lets held records through (at exit, in case no wait() came)."""
    self.release(failed=False)

  def release(self, failed: bool):
    held, self.held = self.held, []
    self.active = max(0, self.active - 1)
    if failed:
      self.failed = True   # the held records repeat the error reported once
    else:
      for record in held:   # not about a failed save: let them through
        logging.getLogger(record.name).handle(record)

  def unraisable(self, info):
    if self._is_noise(f'{info.exc_value}'):
      return
    _PREVIOUS_UNRAISABLE(info)


_NOISE = _FailureNoise()
logging.getLogger('absl').addFilter(_NOISE)      # Orbax logs through absl
logging.getLogger('asyncio').addFilter(_NOISE)
_PREVIOUS_UNRAISABLE = sys.unraisablehook
sys.unraisablehook = _NOISE.unraisable
atexit.register(_NOISE.flush)


def _is_chief() -> bool:
  return jax.process_index() == 0


def _sync(name: str):
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


class Checkpoints:
  """A thin wrapper of `ocp.CheckpointManager` for one run's directory.

  `metric`/`mode` choose the best checkpoint: 'val_uar'/'max' (the papers'
  model selection) or e.g. 'val_loss'/'min' (Keras-style early stopping).
  With `repair` (the training run, which holds the workdir's lock) damaged
  steps are moved to quarantine; without it (evaluate, predict, export, which
  may run beside training) they are only skipped, and nothing is moved.
  """

  def __init__(self, directory: str, *, metric: str, mode: str, keep: int = 2,
               async_save: bool = True, repair: bool = False):
    if mode not in ('min', 'max'):
      raise cli.UsageError(f'mode must be min or max, not {mode!r}')
    self.metric, self.mode = metric, mode
    sign = 1.0 if mode == 'max' else -1.0
    score = lambda m: sign * m[metric]
    policy = ocp.checkpoint_managers.AnyPreservationPolicy([
        ocp.checkpoint_managers.LatestN(keep),
        ocp.checkpoint_managers.BestN(
            get_metric_fn=score, n=1, keep_checkpoints_without_metrics=False),
    ])
    self._options = ocp.CheckpointManagerOptions(
        preservation_policy=policy,
        best_fn=score, best_mode='max',  # makes Orbax store metrics
        enable_async_checkpointing=async_save, create=True)
    self.directory = os.path.abspath(directory)
    self._in_flight = None     # step of an asynchronous save not yet waited for
    self._in_flight_needed = 0
    self.repair = repair
    self._skip = set()         # damaged steps set aside (or left in place) by this object
    self.manager = None
    self._quarantine_damaged()
    self.manager = ocp.CheckpointManager(self.directory, options=self._options)

  # -- reading ---------------------------------------------------------------

  def all_steps(self) -> list[int]:
    return sorted(s for s in self.manager.all_steps() if s not in self._skip)

  def latest_step(self):
    steps = self.all_steps()
    return steps[-1] if steps else None

  def best_step(self):
    """Step with the best `metric` (earliest among ties), or None."""
    # Not `self.manager.best_step()`: Orbax's picks the latest among ties, still
    # lists the damaged steps this object skips (`_skip`), and fails on metrics without `metric`.
    sign = 1.0 if self.mode == 'max' else -1.0
    scored = [(step, sign * m[self.metric]) for step in self.all_steps()
              if (m := self.manager.metrics(step)) is not None and self.metric in m]
    return max(scored, key=lambda s: s[1])[0] if scored else None   # max: the first best

  def restore(self, step: int, target):
    """Restores `step` into the structure, dtypes and shardings of `target`.
    An intact step that does not fit `target` raises CheckpointMismatchError."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    _NOISE.restoring += 1
    try:
      return self.manager.restore(int(step), args=ocp.args.StandardRestore(abstract))
    except Exception:  # pylint: disable=broad-except
      mismatch = self._mismatch(step, abstract)
      if mismatch:
        raise CheckpointMismatchError(
            f'checkpoint step {step} in {self.directory} is intact but does not fit the '
            f'state this config builds ({mismatch}); use the config the run was trained '
            'with (its config.json)') from None
      raise
    finally:
      _NOISE.restoring -= 1

  def restore_latest(self, target):
    """(state, step) of the newest readable checkpoint, or (None, None).

    A damaged step is moved to quarantine (or skipped) with a warning and the
    previous one is tried.
    """
    return self._restore_first(self.latest_step, target, 'the previous one')

  def restore_best(self, target):
    """(state, step) of the best readable checkpoint by `metric` (else the
    newest), or (None, None); damaged steps are moved to quarantine (or skipped)."""
    def pick():
      best = self.best_step()
      return self.latest_step() if best is None else best
    return self._restore_first(pick, target, 'the next best')

  def _restore_first(self, pick, target, fallback: str):
    """Restores the step `pick()` names; a step whose data cannot be read
    (and whose metadata fits `target`) is set aside and `pick()` asked again.
    Errors that say nothing about the step (out of memory, an I/O error of the
    file system, a state that does not fit) are raised, never quarantined."""
    while (step := pick()) is not None:
      try:
        return self.restore(step, target), step
      except CheckpointMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        if _transient(e):
          raise
        _NOISE.failed = True   # what TensorStore's abandoned reads print later
        if jax.process_count() > 1:   # the hosts would have to agree first
          raise RuntimeError(
              f'checkpoint step {step} in {self.directory} could not be read '
              f'({type(e).__name__}: {_short(e)}); move it out of the checkpoints '
              'folder and re-run to resume from the previous one') from None
        self._set_aside(str(step), f'unreadable ({type(e).__name__}: {_short(e)})')
        logging.warning('Trying %s instead of step %d.', fallback, step)
    return None, None

  def _mismatch(self, step: int, abstract) -> str | None:
    """How the saved tree of `step` differs from `abstract` (structure, shapes,
    dtypes), or None when they agree or the metadata cannot be read."""
    try:
      saved = ocp.StandardCheckpointer().metadata(
          os.path.join(self.directory, str(step), 'default')).item_metadata.tree
      saved = {jax.tree_util.keystr(k): (tuple(v.shape), np.dtype(v.dtype).name)
               for k, v in jax.tree_util.tree_leaves_with_path(saved)}
    except Exception:  # pylint: disable=broad-except
      return None
    wanted = {jax.tree_util.keystr(k): (tuple(v.shape), np.dtype(v.dtype).name)
              for k, v in jax.tree_util.tree_leaves_with_path(abstract)}
    if saved == wanted:
      return None
    missing = sorted(set(wanted) - set(saved))
    extra = sorted(set(saved) - set(wanted))
    changed = sorted(k for k in set(saved) & set(wanted) if saved[k] != wanted[k])
    parts = []
    if missing:
      parts.append(f'not in the checkpoint: {", ".join(missing[:3])}'
                   + (f' and {len(missing) - 3} more' if len(missing) > 3 else ''))
    if extra:
      parts.append(f'only in the checkpoint: {", ".join(extra[:3])}'
                   + (f' and {len(extra) - 3} more' if len(extra) > 3 else ''))
    for k in changed[:3]:
      parts.append(f'{k}: saved {saved[k]}, wanted {wanted[k]}')
    return '; '.join(parts)

  # -- writing ---------------------------------------------------------------

  def save(self, step: int, state, metrics: dict | None = None):
    """Saves asynchronously; without metrics the step is kept only while among
    the last K. Raises CheckpointSaveError (for this step, or for the previous
    asynchronous one) when a save cannot be written."""
    self.wait()   # surfaces the previous save's error, under its own step
    needed = self._needed_bytes(state)
    free = self._free_bytes()
    refuse = free is not None and free < needed
    if jax.process_count() > 1:   # process 0 decides for all: they save together
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      refuse = bool(multihost_utils.broadcast_one_to_all(np.int32(refuse)))
    if refuse:
      raise CheckpointSaveError(int(step), self.directory, 'not enough free space',
                                needed, free, self.latest_step(), errno.ENOSPC, wrote=False)
    self._in_flight, self._in_flight_needed = int(step), needed
    _NOISE.active += 1
    try:
      self.manager.save(int(step), args=ocp.args.StandardSave(state),
                        metrics={k: float(v) for k, v in metrics.items()} if metrics else None,
                        force=True)
    except Exception as e:  # pylint: disable=broad-except
      self._failed(e, needed)
    if not self._options.enable_async_checkpointing:
      self.wait()

  def wait(self):
    """Waits for an asynchronous save; raises CheckpointSaveError if it failed."""
    if self._in_flight is None:
      self.manager.wait_until_finished()
      return
    try:
      self.manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      self._failed(e, self._in_flight_needed)
    self._in_flight = None
    _NOISE.release(failed=False)

  @contextlib.contextmanager
  def save_errors_first(self):
    """An OSError in the block (a full disk failing a log write) while a save
    is in flight is reported as that save's CheckpointSaveError if it failed
    too, after its writer threads have ended."""
    try:
      yield
    except OSError as e:
      if not isinstance(e, CheckpointSaveError) and self._in_flight is not None:
        self.wait()
      raise

  def close(self):
    self.wait()
    self.manager.close()

  def _failed(self, e: BaseException, needed: int):
    """Reports a failed save once: as CheckpointSaveError when the file system
    refused it (an errno), else the error itself. Its unfinished folder is
    removed; a step Orbax committed (it may fail afterwards, deleting old
    steps) is kept."""
    step = self._in_flight
    try:  # let every writer thread of the failed save end before reporting
      self.manager.wait_until_finished()
    except Exception:  # pylint: disable=broad-except
      pass
    self._in_flight = None
    _NOISE.release(failed=True)
    if _is_chief() and step is not None:  # no barrier: other hosts may not have failed
      for name in os.listdir(self.directory):
        m = _TMP_RE.match(name)
        path = os.path.join(self.directory, name)
        unfinished = (m and int(m.group(1)) == step) or (
            name == str(step) and os.path.isdir(path) and step_problem(path))
        if unfinished:
          _remove_tree(path)
    try:
      self._reopen()
      last_good = self.latest_step()
    except Exception:  # pylint: disable=broad-except
      last_good = None
    code, reason = _os_error(e)
    if code is None:
      raise e
    raise CheckpointSaveError(step, self.directory, reason, needed, self._free_bytes(),
                              last_good, code) from None

  def _needed_bytes(self, state) -> int:
    """Space a save needs: the last checkpoint's size, else the state's bytes."""
    last = self._last_size()
    if not last:
      last = sum(int(np.prod(x.shape)) * x.dtype.itemsize
                 for x in jax.tree.leaves(state) if hasattr(x, 'dtype'))
    return int(last * _SPACE_MARGIN) + 64 * 1024

  def _last_size(self) -> int:
    step = self.latest_step()
    return _dir_bytes(os.path.join(self.directory, str(step))) if step is not None else 0

  def _free_bytes(self) -> int | None:
    try:
      return shutil.disk_usage(self.directory).free
    except OSError:
      return None

  # -- damaged steps ---------------------------------------------------------

  def _reopen(self):
    if self.manager is not None:
      self.manager.close()
      self.manager = ocp.CheckpointManager(self.directory, options=self._options)

  def _set_aside(self, name: str, reason: str, sync: bool = True, move: bool | None = None):
    """A damaged step (or temporary folder) `name`: moved to
    quarantine/<name>-<time>/ (process 0) when repairing (or `move`), else
    skipped; either way, never tried again by this object."""
    label = f'step {name}' if name.isdigit() else f'folder {name}'
    if name.isdigit():
      self._skip.add(int(name))
    if not (self.repair if move is None else move):
      logging.warning('Checkpoint %s is damaged: %s; skipping it (left in place).',
                      label, reason)
      return
    target = None
    if _is_chief():
      stamp = time.strftime('%Y%m%dT%H%M%S')
      target = os.path.join(self.directory, QUARANTINE, f'{name}-{stamp}')
      n = 1
      while os.path.exists(target):
        n += 1
        target = os.path.join(self.directory, QUARANTINE, f'{name}-{stamp}-{n}')
      try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.move(os.path.join(self.directory, name), target)
      except OSError as e:
        logging.warning('Checkpoint %s is damaged: %s; could not move it aside (%s), '
                        'skipping it.', label, reason, e)
        target = None
      else:
        try:
          with open(os.path.join(target, 'QUARANTINED.json'), 'w') as f:
            json.dump({'reason': reason, 'time': stamp, 'host': socket.gethostname(),
                       'pid': os.getpid()}, f)
        except OSError:
          pass   # the move is what matters; the note is a courtesy
        logging.warning('Checkpoint %s is damaged: %s; moved to %s.', label, reason, target)
    if sync:
      _sync('ser_jax_checkpoint_quarantine')
    if target and name.isdigit():
      self._skip.discard(int(name))   # gone: a new save of this step is a new step
      self._reopen()

  def _quarantine_damaged(self):
    """Sets aside every step folder that Orbax would trip over or trust wrongly:
    unreadable metadata JSON, a missing commit marker (an unfinished save), or,
    when repairing, a temporary folder left by an interrupted save (a reader
    beside a training run must not touch the save in progress)."""
    if _is_chief() and os.path.isdir(self.directory):
      for name in sorted(os.listdir(self.directory)):
        path = os.path.join(self.directory, name)
        if not os.path.isdir(path):
          continue
        if _TMP_RE.match(name):
          if self.repair:
            self._set_aside(name, 'left by a save that did not finish', sync=False)
        elif name.isdigit():
          problem = step_problem(path)
          if problem:
            # Orbax reads every step's metadata when it opens: an unreadable
            # one must go even for a reader (a finished step; no save is in it).
            self._set_aside(name, problem, sync=False,
                            move=True if problem.startswith('unreadable') else None)
    _sync('ser_jax_checkpoint_open')


def _transient(e: BaseException) -> bool:
  """An error of the machine or file system rather than of the step's data
  (out of memory, an OS error): raised as it is, never quarantined."""
  code, _ = _os_error(e)
  text = str(e)
  return (code is not None or isinstance(e, MemoryError)
          or any(t in text for t in ('RESOURCE_EXHAUSTED', 'UNAVAILABLE', 'Out of memory',
                                     'out of memory', 'DEADLINE_EXCEEDED')))


def step_problem(step_dir: str) -> str | None:
  """Why a finalised step folder cannot be trusted, or None."""
  items = [d for d in sorted(os.listdir(step_dir))
           if os.path.isdir(os.path.join(step_dir, d))]
  for where in ['.'] + items:
    if not os.path.exists(os.path.join(step_dir, where, COMMIT_MARKER)):
      what = 'the step' if where == '.' else f'its {where!r} item'
      return f'no commit marker in {what}: the save did not finish'
  if 'default' not in items:
    return 'no state item (default/)'
  for meta in ('_CHECKPOINT_METADATA', os.path.join('metrics', 'metrics'),
               os.path.join('default', '_METADATA')):
    path = os.path.join(step_dir, meta)
    if not os.path.exists(path):
      continue
    try:
      with open(path) as f:
        json.load(f)
    except (OSError, ValueError) as e:
      return f'unreadable {meta} ({type(e).__name__}: {_short(e, 120)})'
  return None
