"""A run's working directory: one process trains in it at a time, and it is
resumed or evaluated only with the config it was trained with.

  with workdir.lock(path):          # WorkdirBusyError if another run holds it
    workdir.check_config(config, path, 'train', allow=())
    ...
    workdir.record_command(path, changed)

The lock is `WORKDIR/.lock`: an exclusive `flock` held for the run's lifetime
(the kernel drops it when the holder dies, however it dies), and the holder's
host, pid, start time and command inside it, refreshed every minute. A lock
left by a process that is gone is taken over with a warning. On several hosts
process 0 holds the one lock of the run and tells the others.
"""
from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
import threading
import time

import jax
import numpy as np

LOCK_NAME = '.lock'
COMMANDS_NAME = 'commands.jsonl'
HEARTBEAT_SECONDS = 60
# A holder on another host whose heartbeat is older than this is presumed gone
# (flock may not reach across hosts on some network file systems).
STALE_SECONDS = 5 * HEARTBEAT_SECONDS

# Fields that change how a run is watched, not what it computes: they may
# differ between the run that trained a workdir and one that resumes it.
RUNTIME_FIELDS = ('log_every_steps', 'eval_every_epochs', 'checkpoint_every_steps',
                  'checkpoint_keep', 'data.data_dir', 'feature_cache', 'reference',
                  'protocol.folds', 'seeds')
# What evaluate, predict and export depend on (everything else is training).
_INFERENCE_FIELDS = {
    'evaluate': ('trainer', 'model', 'features', 'data', 'protocol', 'aggregation',
                 'speaker_norm', 'utterance_norm', 'svm.speaker_norm', 'ema_decay'),
    'predict': ('trainer', 'model', 'features', 'data.classes', 'aggregation',
                'speaker_norm', 'utterance_norm', 'svm.speaker_norm', 'ema_decay'),
    'export': ('trainer', 'model', 'features', 'data.classes', 'aggregation',
               'speaker_norm', 'utterance_norm', 'ema_decay'),
}
# Fields added to the configs after workdirs were trained without them, at the value
# that reproduces what those workdirs did: absent in a config.json equals this.
ADDED_FIELDS = {
    'speaker_norm': False, 'utterance_norm': False, 'class_balance': False,
    'mixup_alpha': 0.0, 'ema_decay': 0.0, 'ema_warmup': 10.0,
    'svm.speaker_norm': False, 'svm.augment_before_split': False, 'svm.scaler': 'standard',
    'augment.offline.before_split': False, 'augment.offline.speed_rates': None,
    'features.max_segments': 0, 'features.last_segment_at_end': False,
    'protocol.k': 5, 'protocol.val_fraction': 0.1, 'protocol.fractions': [0.8, 0.1, 0.1],
    'protocol.split_seed': 0, 'protocol.train': [], 'protocol.test': [],
    'protocol.test_speakers': [], 'protocol.validation_speakers': [],
}


class WorkdirBusyError(RuntimeError):
  """Another process is running in this workdir."""


class ConfigMismatchError(ValueError):
  """The config differs from the one the workdir was trained with."""


# ---------------------------------------------------------------------------
# The lock.

def _holder_info() -> dict:
  return {'host': socket.gethostname(), 'pid': os.getpid(),
          'started': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
          'command': shlex.join([os.path.basename(sys.executable)] + sys.argv)}


def _describe(info: dict) -> str:
  return (f'pid {info.get("pid")} on {info.get("host")}, started {info.get("started")}'
          f' ({info.get("command", "?")})')


def _alive_here(pid) -> bool:
  try:
    os.kill(int(pid), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, TypeError, ValueError):
    return True
  return True


def _read_info(fd: int) -> dict:
  os.lseek(fd, 0, os.SEEK_SET)
  raw = os.read(fd, 65536)
  try:
    return json.loads(raw) if raw.strip() else {}
  except ValueError:
    return {'unreadable': raw[:200].decode('utf-8', 'replace')}


def _write_info(fd: int, info: dict):
  data = json.dumps(info).encode() + b'\n'
  os.ftruncate(fd, 0)
  os.pwrite(fd, data, 0)
  os.fsync(fd)


class _Lock:
  """The flock of one workdir, held by this process."""

  def __init__(self, path: str):
    self.path = path
    self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_info(self.fd)
      os.close(self.fd)
      raise WorkdirBusyError(_busy_message(os.path.dirname(path), holder)) from None
    previous = _read_info(self.fd)
    if previous:
      age = time.time() - os.fstat(self.fd).st_mtime
      here = previous.get('host') == socket.gethostname()
      if not here and age < STALE_SECONDS and _heartbeat_goes_on(self.fd, path):
        os.close(self.fd)   # closing drops our flock
        raise WorkdirBusyError(_busy_message(os.path.dirname(path), previous) + (
            f' Its heartbeat (the lock file\'s time) is still refreshed; if that host is '
            f'down, delete {path}.'))
      if here and previous.get('pid') != os.getpid() and _alive_here(previous.get('pid')):
        logging.warning('Lock %s names pid %s, which is alive but does not hold it; '
                        'taking it over.', path, previous.get('pid'))
      else:
        logging.warning('Taking over the stale lock of %s: that process is gone.',
                        _describe(previous))
    self.info = _holder_info()
    _write_info(self.fd, self.info)
    self._stop = threading.Event()
    self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                  name='ser_jax-workdir-lock')
    self._beat.start()

  def _heartbeat(self):
    while not self._stop.wait(HEARTBEAT_SECONDS):
      try:
        os.utime(self.path)
      except OSError:
        pass

  def release(self):
    self._stop.set()
    try:
      os.ftruncate(self.fd, 0)   # an empty lock file: released cleanly
    except OSError:
      pass
    fcntl.flock(self.fd, fcntl.LOCK_UN)
    os.close(self.fd)


def _heartbeat_goes_on(fd: int, path: str) -> bool:
  """Whether the holder on another host still refreshes the lock file. flock
  succeeding proves it gone only where flock reaches across hosts, so the
  file's time is watched for a heartbeat and a half before taking over (a job
  requeued on another node after its holder died)."""
  start = os.fstat(fd).st_mtime
  logging.info('Lock %s names a holder on another host; watching its heartbeat for %.0f s.',
               path, 1.5 * HEARTBEAT_SECONDS)
  deadline = time.time() + 1.5 * HEARTBEAT_SECONDS
  while time.time() < deadline:
    time.sleep(min(1.0, HEARTBEAT_SECONDS / 10))
    try:
      if os.stat(path).st_mtime != start:
        return True
    except OSError:
      return False
  return False


def _busy_message(workdir: str, holder: dict) -> str:
  who = _describe(holder) if holder.get('pid') else 'another process'
  return (f'workdir {workdir} is in use by {who}. Two runs in one workdir would mix their '
          'checkpoints and results: wait for it to finish, stop it, or choose another '
          '--workdir.')


_HELD: dict[str, list] = {}   # realpath → [lock, depth]: re-entrant in one process


@contextlib.contextmanager
def lock(workdir: str):
  """Holds WORKDIR/.lock for the block (process 0 of a multi-host run holds it
  for all processes). Raises WorkdirBusyError at once if another run has it."""
  workdir = os.path.abspath(workdir)
  key = os.path.realpath(workdir)
  if key in _HELD:
    _HELD[key][1] += 1
    try:
      yield
    finally:
      _HELD[key][1] -= 1
    return
  held, error = None, None
  if jax.process_index() == 0:
    try:
      os.makedirs(workdir, exist_ok=True)
      held = _Lock(os.path.join(workdir, LOCK_NAME))
    except Exception as e:  # pylint: disable=broad-except
      error = e   # raised below, after the other hosts have heard of it
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    ok = multihost_utils.broadcast_one_to_all(np.int32(error is None))
    if not ok and error is None:
      error = WorkdirBusyError(f'workdir {workdir} is in use by another run '
                               '(process 0 says which).')
  if error is not None:
    raise error
  _HELD[key] = [held, 1]
  try:
    yield
  finally:
    del _HELD[key]
    if held is not None:
      held.release()


# ---------------------------------------------------------------------------
# The config a workdir was trained with.

def _flatten(d, prefix='') -> dict:
  out = {}
  for k, v in d.items():
    name = f'{prefix}{k}'
    if isinstance(v, dict) and v:
      out.update(_flatten(v, name + '.'))
    else:
      out[name] = v
  return out


def _covered(name: str, fields) -> bool:
  return any(name == f or name.startswith(f + '.') for f in fields)


def write_atomic(path: str, text: str):
  """`text` into `path` through a temporary file beside it and os.replace: a
  reader, or a run killed while writing, sees the old file or the new one, never
  half of one; a failed write removes its temporary file and raises."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + '.tmp'
  try:
    with open(tmp, 'w') as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_config(config, workdir: str):
  """WORKDIR/config.json (process 0): the resolved config, which later runs
  on this workdir are checked against."""
  if jax.process_index() == 0:
    write_atomic(os.path.join(workdir, 'config.json'),
                 config.to_json_best_effort(indent=1, sort_keys=True))


def read_config(workdir: str) -> dict | None:
  """WORKDIR/config.json as a dict; None when absent or unreadable."""
  try:
    with open(os.path.join(workdir, 'config.json')) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def config_changes(config, workdir: str, mode: str = 'train') -> dict:
  """{field: (value in WORKDIR/config.json, value now)} for the fields that
  matter to `mode` ('train' | 'evaluate' | 'predict' | 'export'), run-time
  fields excepted; {} when the workdir has no config.json yet."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return {}
  try:
    with open(path) as f:
      saved = _flatten(json.load(f))
  except (OSError, ValueError) as e:
    if mode == 'train':
      raise ConfigMismatchError(
          f'{path} is unreadable ({type(e).__name__}: {e}), so it cannot tell whether this '
          'config is the one the workdir was trained with; restore it, or pass '
          '--allow_config_change=all to resume and rewrite it') from None
    logging.warning('%s is unreadable (%s); not checking the config against it.', path, e)
    return {}
  now = _flatten(json.loads(config.to_json_best_effort()))
  for flat in (saved, now):   # a union of corpora: '+'-joined string or list, alike
    if isinstance(flat.get('data.name'), str) and '+' in flat['data.name']:
      flat['data.name'] = [n.strip() for n in flat['data.name'].split('+') if n.strip()]
  changes = {}
  for name in sorted(set(saved) | set(now)):
    old, new = saved.get(name, '<absent>'), now.get(name, '<absent>')
    if old == '<absent>' and name in ADDED_FIELDS and new == ADDED_FIELDS[name]:
      continue   # a workdir from before the field existed did just that
    if old == new or _covered(name, RUNTIME_FIELDS):
      continue
    if mode != 'train' and not _covered(name, _INFERENCE_FIELDS[mode]):
      continue
    changes[name] = (old, new)
  return changes


def check_config(config, workdir: str, mode: str = 'train', allow=()) -> dict:
  """Raises ConfigMismatchError listing the fields in which `config` differs
  from the one `workdir` was trained with, except those named in `allow`
  (a field or a group such as 'model'; 'all' allows any). Returns the allowed
  changes."""
  allow = tuple(a.strip() for a in allow if a.strip())
  if 'all' in allow:
    try:
      return config_changes(config, workdir, mode)
    except ConfigMismatchError:   # unreadable config.json, and any change allowed
      return {}
  changes = config_changes(config, workdir, mode)
  refused = {k: v for k, v in changes.items() if not _covered(k, allow)}
  if refused:
    lines = '\n'.join(f'  {k}: trained with {_show(a)}, now {_show(b)}'
                      for k, (a, b) in refused.items())
    first = first_command(workdir)
    trained = f'\nIt was trained by: {first}' if first else ''
    verb = 'resume' if mode == 'train' else mode
    raise ConfigMismatchError(
        f'the config differs from the one {workdir} was trained with '
        f'(its config.json) in {len(refused)} field(s):\n{lines}{trained}\n'
        f'Use that config to {verb} this workdir, another --workdir for a new run, or '
        f'--allow_config_change={",".join(refused)} if the change is intended.')
  return changes


def _show(v) -> str:
  text = json.dumps(v) if not isinstance(v, str) or v == '<absent>' else repr(v)
  return text if len(text) <= 80 else text[:77] + '...'


def record_command(workdir: str, mode: str, changes: dict | None = None):
  """Appends this invocation (time, host, pid, argv, allowed config changes)
  to WORKDIR/commands.jsonl: the trail of every run that wrote the workdir."""
  if jax.process_index() != 0:
    return
  os.makedirs(workdir, exist_ok=True)
  entry = {'time': datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
           'mode': mode, **{k: v for k, v in _holder_info().items() if k != 'started'},
           'cpu': cpu_model(), 'cores': os.cpu_count()}
  if changes:
    entry['config_changes'] = {k: {'before': a, 'after': b} for k, (a, b) in changes.items()}
  with open(os.path.join(workdir, COMMANDS_NAME), 'a') as f:
    f.write(json.dumps(entry) + '\n')


CPUINFO = '/proc/cpuinfo'


def _cpuinfo_field(names: tuple[str, ...], path: str) -> str | None:
  """The value of the first line of `path` whose key is one of `names`."""
  try:
    with open(path) as f:
      for line in f:
        key, sep, value = line.partition(':')
        if sep and key.strip() in names:
          return value.strip()
  except OSError:
    pass
  return None


def cpu_flags(path: str = CPUINFO) -> set[str]:
  """The instruction-set flags the CPU reports (x86 'flags', Arm 'Features');
  empty where there is no such file."""
  return set((_cpuinfo_field(('flags', 'Features'), path) or '').split())


def vector_isa(flags) -> str:
  """The widest vector instruction set in `flags`, with bf16 and AMX where
  present: 'AVX2', 'AVX-512', 'AVX-512 BF16, AMX', 'SVE', 'NEON' or ''. Two
  CPUs of one model name (every 'AMD EPYC' of the project's machines) can
  differ in exactly this, and with it XLA's kernels and a run's speed."""
  flags = set(flags)
  parts = []
  if 'avx512f' in flags:
    parts.append('AVX-512 BF16' if 'avx512_bf16' in flags else 'AVX-512')
  elif 'avx2' in flags:
    parts.append('AVX2')
  elif 'avx' in flags:
    parts.append('AVX')
  elif 'sve' in flags:
    parts.append('SVE')
  elif 'asimd' in flags:
    parts.append('NEON')
  if any(f.startswith('amx') for f in flags):
    parts.append('AMX')
  return ', '.join(parts)


def cpu_model(path: str = CPUINFO) -> str:
  """The CPU's model name with its vector instruction set, e.g. 'AMD EPYC
  (AVX2)' (/proc/cpuinfo; else platform), for the results' machine column and
  the benchmarks' lines."""
  name = _cpuinfo_field(('model name',), path)
  if not name:
    import platform  # pylint: disable=g-import-not-at-top
    name = platform.processor() or platform.machine()
  isa = vector_isa(cpu_flags(path))
  return f'{name} ({isa})' if isa else name


def cpu_bf16_flags(path: str = CPUINFO) -> list[str]:
  """The bf16 and AMX instruction sets /proc/cpuinfo lists (avx512_bf16, amx_bf16, …);
  empty where the CPU has none or there is no such file."""
  return sorted(x for x in cpu_flags(path) if 'bf16' in x or x.startswith('amx'))


def first_command(workdir: str) -> str | None:
  """The command that first trained `workdir` (from commands.jsonl), if known."""
  path = os.path.join(workdir, COMMANDS_NAME)
  try:
    with open(path) as f:
      for line in f:
        entry = json.loads(line)
        if entry.get('mode') == 'train':
          return entry.get('command')
  except (OSError, ValueError):
    pass
  return None
