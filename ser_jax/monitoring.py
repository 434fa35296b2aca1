"""What a training loop reports and reacts to: history, early stopping,
TensorBoard, progress, and termination signals. Process 0 writes; others no-op.
"""
from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import signal
import threading
import time

import jax

from ser_jax import cli
from ser_jax import workdir as workdir_lib


def is_chief() -> bool:
  return jax.process_index() == 0


class History:
  """Validation records of a run (`history.jsonl`), one JSON object per evaluation."""

  def __init__(self, path: str):
    self.path = path
    self.records = []
    if os.path.exists(path):
      with open(path) as f:
        self.records = [json.loads(line) for line in f if line.strip()]

  def truncate(self, max_step: int):
    """Forgets evaluations after `max_step` (a run resumed from an older checkpoint)."""
    kept = [r for r in self.records if r['step'] <= max_step]
    if len(kept) != len(self.records):
      logging.info('History: dropping %d evaluation(s) after resumed step %d.',
                   len(self.records) - len(kept), max_step)
      self.records = kept
      self._rewrite()

  def append(self, record: dict):
    self.records.append(record)
    if is_chief():
      with open(self.path, 'a') as f:
        f.write(json.dumps(record) + '\n')

  def _rewrite(self):
    if is_chief():
      workdir_lib.write_atomic(self.path, ''.join(json.dumps(r) + '\n' for r in self.records))


class RunClock:
  """A run's wall time across sittings: WORKDIR/wall_time.json keeps the seconds
  the run had spent when each checkpoint was saved, so a run resumed from step
  s starts counting from what it had spent at s (work lost after the last
  checkpoint is not counted; each sitting's set-up is). `sittings` counts the
  invocations that trained it; `complete` is False for a run resumed from a
  step with no such record (a workdir from before the file existed)."""

  def __init__(self, path: str, started: float, now=time.time):
    self.path, self.started, self._now = path, started, now
    self.base, self.sittings, self.complete = 0.0, 1, True
    self._steps = {}
    if os.path.exists(path):
      try:
        with open(path) as f:
          saved = json.load(f)
        self._steps = {int(k): float(v) for k, v in saved['seconds_at_step'].items()}
        self.sittings = int(saved['sittings']) + 1
      except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        logging.warning('Ignoring unreadable %s (%s): wall time counts this sitting only.',
                        path, e)

  def resume(self, step: int):
    """The run restarts at checkpoint `step` (0: from scratch)."""
    if step == 0:
      self._steps, self.sittings = {}, 1
    elif step in self._steps:
      self.base = self._steps[step]
    else:   # resumed, so at least a second sitting, though its time before is unknown
      self.complete, self.sittings = False, max(self.sittings, 2)
      logging.warning('No wall time recorded for step %d in %s: the run\'s wall time '
                      'will count this sitting only.', step, self.path)
    self._steps = {k: v for k, v in self._steps.items() if k <= step}

  def seconds(self) -> float:
    return self.base + self._now() - self.started

  def mark(self, step: int):
    """Records the seconds spent up to checkpoint `step` (process 0 writes)."""
    self._steps[int(step)] = round(self.seconds(), 1)
    if is_chief():
      workdir_lib.write_atomic(self.path, json.dumps(
          {'sittings': self.sittings,
           'seconds_at_step': {str(k): v for k, v in sorted(self._steps.items())}}))


class EarlyStopping:
  """Stops after `patience` evaluations without improvement of `metric`.

  Config fields: metric ('val_loss', 'val_uar', ...), mode ('min' | 'max'),
  patience (evaluations; 0 disables), min_delta. Its state is a function of
  the history, so a resumed run stops exactly where an uninterrupted one would.
  """

  def __init__(self, cfg, records=()):
    self.metric = cfg.get('metric', 'val_loss') if cfg else 'val_loss'
    self.mode = cfg.get('mode', 'min') if cfg else 'min'
    self.patience = int(cfg.get('patience', 0)) if cfg else 0
    self.min_delta = float(cfg.get('min_delta', 0.0)) if cfg else 0.0
    if self.mode not in ('min', 'max'):
      raise cli.UsageError(f'early_stopping.mode must be min or max, not {self.mode!r}')
    self.best = None
    self.bad = 0
    for r in records:
      self.update(r)

  def update(self, record: dict) -> bool:
    """Feeds one evaluation; True when training should stop."""
    if not self.patience:
      return False
    value = record[self.metric]
    sign = 1.0 if self.mode == 'max' else -1.0
    if self.best is None or sign * (value - self.best) > self.min_delta:
      self.best, self.bad = value, 0
    else:
      self.bad += 1
    return self.bad >= self.patience


_WRITE_ERRORS = ((errno.ENOSPC, 'No space left on device'), (errno.EROFS, 'Read-only file system'),
                 (errno.EDQUOT, 'Disk quota exceeded'), (errno.EIO, 'Input/output error'))


@contextlib.contextmanager
def os_errors(path: str):
  """Re-raises TensorFlow's file errors (a full disk flushing TensorBoard
  events) as the OSError they are, so callers handle one kind."""
  try:
    yield
  except OSError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    for code, text in _WRITE_ERRORS:
      if text in str(e):
        raise OSError(code, os.strerror(code), path) from e
    raise


class MetricWriter:
  """TensorBoard scalars from process 0 (`WORKDIR/tensorboard`), with clu's
  `metric_writers.SummaryWriter`; other processes write nothing. (Not
  `create_default_writer`: its LoggingWriter would log every scalar again
  beside the progress lines, and its asynchronous writes would raise a full
  disk's error in a thread instead of through `os_errors` here.)"""

  def __init__(self, logdir: str):
    self._writer = None
    self.logdir = logdir
    if is_chief():
      # Imported here: it imports TensorFlow (heavy), which only process 0 needs.
      from clu import metric_writers  # pylint: disable=g-import-not-at-top
      with os_errors(logdir):
        self._writer = metric_writers.SummaryWriter(logdir)

  def scalars(self, step: int, values: dict):
    """Writes the finite values of `values` (None, NaN and Inf are skipped)."""
    if self._writer is not None:
      finite = {k: float(v) for k, v in values.items()
                if v is not None and math.isfinite(float(v))}
      if finite:
        with os_errors(self.logdir):
          self._writer.write_scalars(int(step), finite)

  def flush(self):
    if self._writer is not None:
      with os_errors(self.logdir):
        self._writer.flush()

  def close(self):
    if self._writer is not None:
      writer, self._writer = self._writer, None
      with os_errors(self.logdir):
        writer.close()


def format_duration(seconds: float) -> str:
  """1h02m, 3m05s, 42s; '?' when unknown."""
  if not math.isfinite(seconds) or seconds < 0:
    return '?'
  seconds = int(round(seconds))
  if seconds >= 3600:
    return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
  if seconds >= 60:
    return f'{seconds // 60}m{seconds % 60:02d}s'
  return f'{seconds}s'


class Progress:
  """The training loop's progress lines: step, epoch, loss, accuracy, rate and
  ETA (from the wall time per step since the first step, which compiles;
  evaluations and checkpoints included)."""

  def __init__(self, total_steps: int, start_step: int, steps_per_epoch: int):
    self.total, self.per_epoch = total_steps, steps_per_epoch
    self.compiling = True
    self._t, self._step0 = time.time(), start_step

  def compiled(self):
    """Called once the first step has run (its time is mostly compilation)."""
    logging.info('Train step compiled and run once in %.1fs; steps %d to %d (epochs of %d) '
                 'to go.', time.time() - self._t, self._step0 + 1, self.total, self.per_epoch)
    self.compiling = False
    self._t, self._step0 = time.time(), self._step0 + 1

  def eta(self, step: int) -> float:
    done = step - self._step0
    return (time.time() - self._t) / done * (self.total - step) if done > 0 else math.nan

  def line(self, step: int, loss: float, accuracy: float, rate: float) -> str:
    return (f'step {step}/{self.total} (epoch {step / self.per_epoch:.2f}): loss {loss:.4f}  '
            f'acc {100 * accuracy:.1f}%  {rate:.1f} examples/s  ETA {format_duration(self.eta(step))}')


def progress_bar(total: int, initial: int):
  """A tqdm bar with rate and ETA on an interactive terminal of process 0 (else off)."""
  import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm.tqdm(total=total, initial=initial, unit='step', dynamic_ncols=True,
                   disable=None if is_chief() else True, leave=False)


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or Inf loss."""


class TrainingInterrupted(Exception):
  """SIGTERM/SIGINT arrived (`TerminationSignals`); a checkpoint of the current step was saved."""

  def __init__(self, signum: int, step: int):
    super().__init__(f'stopped by signal {signum} at step {step}; checkpoint saved, '
                     're-run the same command to resume')
    self.signum, self.step = signum, step


class TerminationSignals:
  """Catches SIGTERM/SIGINT so that the loop can save and stop cleanly."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received = None
    self._previous = {}

  def _handler(self, signum, frame):
    del frame
    if self.received is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # a second Ctrl-C stops at once
    self.received = signum
    logging.warning('Received %s: saving a checkpoint and stopping after this step.',
                    signal.Signals(signum).name)

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for s in self.SIGNALS:
        self._previous[s] = signal.signal(s, self._handler)
    return self

  def __exit__(self, *exc):
    for s, h in self._previous.items():
      signal.signal(s, h)
    return False
