"""The workdir lock (one run at a time, stale locks taken over) and the check
that a workdir is resumed or evaluated with the config it was trained with."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from configs import cnn2d_bilstm
from configs import selfattn_gender
from ser_jax import workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_HOLD = '''
import sys, time
sys.path.insert(0, {repo!r})
from ser_jax import workdir
with workdir.lock({path!r}):
  print('held', flush=True)
  time.sleep(120)
'''


def _holder(path):
  """A child process that holds the lock of `path` until killed."""
  proc = subprocess.Popen([sys.executable, '-c', _HOLD.format(repo=REPO, path=str(path))],
                          stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == 'held'
  return proc


def test_second_holder_is_refused_with_the_first_ones_identity(tmp_path):
  proc = _holder(tmp_path)
  try:
    with pytest.raises(workdir.WorkdirBusyError) as e:
      with workdir.lock(str(tmp_path)):
        pass
    message = str(e.value)
    assert f'pid {proc.pid}' in message and socket.gethostname() in message
    assert 'started' in message and 'another --workdir' in message
  finally:
    proc.kill()
    proc.wait()


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path, caplog):
  proc = _holder(tmp_path)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  with open(tmp_path / workdir.LOCK_NAME) as f:
    assert json.load(f)['pid'] == proc.pid     # the dead holder's record is still there
  with workdir.lock(str(tmp_path)):
    with open(tmp_path / workdir.LOCK_NAME) as f:
      assert json.load(f)['pid'] == os.getpid()
  assert any('stale lock' in r.getMessage() and str(proc.pid) in r.getMessage()
             for r in caplog.records)
  assert os.path.getsize(tmp_path / workdir.LOCK_NAME) == 0   # released cleanly


def test_lock_is_reentrant_in_one_process_and_released(tmp_path):
  with workdir.lock(str(tmp_path)):
    with workdir.lock(str(tmp_path)):   # a protocol's run inside the protocol's lock
      pass
    other = subprocess.run(   # still held: another process is refused
        [sys.executable, '-c', _HOLD.format(repo=REPO, path=str(tmp_path))],
        capture_output=True, text=True, timeout=60)
    assert other.returncode != 0 and 'WorkdirBusyError' in other.stderr
  proc = _holder(tmp_path)   # released: a new process gets it
  proc.kill()
  proc.wait()


def test_lock_of_another_host_is_respected_while_its_heartbeat_goes_on(tmp_path, caplog,
                                                                      monkeypatch):
  """Where flock does not reach across hosts, a holder on another node is told
  by its heartbeat: refused while the lock file's time moves, taken over once
  it stops (a job requeued after its node died), or when it is old."""
  import threading
  monkeypatch.setattr(workdir, 'HEARTBEAT_SECONDS', 0.4)
  monkeypatch.setattr(workdir, 'STALE_SECONDS', 60)
  path = tmp_path / workdir.LOCK_NAME
  path.write_text(json.dumps({'host': 'other-node', 'pid': 4242, 'started': 'earlier',
                              'command': 'python run.py ...'}))
  stop = threading.Event()

  def beat():
    while not stop.wait(0.05):
      os.utime(path)

  beating = threading.Thread(target=beat)
  beating.start()
  try:
    with pytest.raises(workdir.WorkdirBusyError, match='pid 4242 on other-node'):
      with workdir.lock(str(tmp_path)):
        pass
  finally:
    stop.set()
    beating.join()
  path.write_text(json.dumps({'host': 'other-node', 'pid': 4242, 'started': 'earlier'}))
  with workdir.lock(str(tmp_path)):   # fresh file, but no heartbeat any more
    pass
  old = time.time() - 2 * workdir.STALE_SECONDS
  path.write_text(json.dumps({'host': 'other-node', 'pid': 4343}))
  os.utime(path, (old, old))
  with workdir.lock(str(tmp_path)):   # an old heartbeat: taken over without waiting
    pass
  messages = [r.getMessage() for r in caplog.records]
  assert sum('stale lock' in m and 'other-node' in m for m in messages) == 2


def test_unreadable_config_json_stops_a_resume_unless_allowed(tmp_path):
  (tmp_path / 'config.json').write_text('{"trunc')
  config = selfattn_gender.get_config('tiny')
  with pytest.raises(workdir.ConfigMismatchError, match='unreadable'):
    workdir.check_config(config, str(tmp_path))
  assert workdir.check_config(config, str(tmp_path), allow=['all']) == {}
  assert workdir.check_config(config, str(tmp_path), 'predict') == {}


def _trained(tmp_path, config):
  workdir.write_config(config, str(tmp_path))
  workdir.record_command(str(tmp_path), 'train')
  return str(tmp_path)


def test_changed_fields_are_listed_and_runtime_fields_may_differ(tmp_path):
  path = _trained(tmp_path, selfattn_gender.get_config('tiny'))
  same = selfattn_gender.get_config('tiny')
  same.log_every_steps = 7
  same.eval_every_epochs = 2.0
  same.checkpoint_every_steps = 5
  same.data.data_dir = '/elsewhere'
  assert workdir.check_config(same, path) == {}
  changed = selfattn_gender.get_config('tiny')
  changed.learning_rate = 0.5
  changed.model.lstm_units = 8
  with pytest.raises(workdir.ConfigMismatchError) as e:
    workdir.check_config(changed, path)
  message = str(e.value)
  assert 'learning_rate: trained with 0.001, now 0.5' in message
  assert 'model.lstm_units: trained with 16, now 8' in message
  assert 'It was trained by:' in message
  assert '--allow_config_change=learning_rate,model.lstm_units' in message
  # Named intent: the field itself, its group, or all.
  allowed = workdir.check_config(changed, path, allow=['learning_rate', 'model'])
  assert set(allowed) == {'learning_rate', 'model.lstm_units'}
  assert set(workdir.check_config(changed, path, allow=['all'])) == set(allowed)
  with pytest.raises(workdir.ConfigMismatchError, match='lstm_units'):
    workdir.check_config(changed, path, allow=['learning_rate'])


def test_inference_modes_check_only_what_they_load(tmp_path):
  path = _trained(tmp_path, selfattn_gender.get_config('tiny'))
  trained_longer = selfattn_gender.get_config('tiny')
  trained_longer.learning_rate = 0.5
  trained_longer.num_epochs = 99
  for mode in ('evaluate', 'predict', 'export'):
    assert workdir.check_config(trained_longer, path, mode) == {}
  other_fold = selfattn_gender.get_config('tiny')
  other_fold.protocol.fold = 2
  assert workdir.check_config(other_fold, path, 'predict') == {}
  with pytest.raises(workdir.ConfigMismatchError, match='protocol.fold'):
    workdir.check_config(other_fold, path, 'evaluate')
  other_model = cnn2d_bilstm.get_config('tiny')
  with pytest.raises(workdir.ConfigMismatchError, match='model.name') as e:
    workdir.check_config(other_model, path, 'predict')
  assert 'Use that config to predict' in str(e.value)


def test_speaker_norm_is_checked_by_evaluate_and_predict(tmp_path):
  trained = selfattn_gender.get_config('tiny')
  trained.speaker_norm = True
  path = _trained(tmp_path, trained)
  for mode in ('evaluate', 'predict', 'export'):
    with pytest.raises(workdir.ConfigMismatchError, match='speaker_norm'):
      workdir.check_config(selfattn_gender.get_config('tiny'), path, mode)


def test_workdir_of_an_older_config_still_matches(tmp_path):
  """A config.json written before fields were added (at the value that reproduces
  it) and a union named by a '+' string match today's config."""
  config = cnn2d_bilstm.get_config()
  path = _trained(tmp_path, config)
  with open(os.path.join(path, 'config.json')) as f:
    old = json.load(f)
  for key in ('speaker_norm', 'class_balance', 'mixup_alpha', 'ema_decay'):
    del old[key]
  for key in ('k', 'val_fraction', 'split_seed', 'train', 'test', 'test_speakers',
              'validation_speakers'):
    del old['protocol'][key]
  old['data']['name'] = 'ser_crema_d+ravdess'
  with open(os.path.join(path, 'config.json'), 'w') as f:
    json.dump(old, f)
  for mode in ('train', 'evaluate', 'predict'):
    assert workdir.check_config(config, path, mode) == {}
  changed = cnn2d_bilstm.get_config()
  changed.speaker_norm = True
  with pytest.raises(workdir.ConfigMismatchError, match='speaker_norm'):
    workdir.check_config(changed, path, 'train')


def _run(args, timeout=120):
  return subprocess.run([sys.executable, 'run.py', *args], cwd=REPO, capture_output=True,
                        text=True, timeout=timeout)


def test_run_py_refuses_a_busy_workdir_at_once(tmp_path):
  proc = _holder(tmp_path)
  try:
    t0 = time.time()
    out = _run(['--config=configs/selfattn_gender.py:tiny', f'--workdir={tmp_path}'])
    assert out.returncode == 5, out.stderr[-2000:]
    assert f'is in use by pid {proc.pid}' in out.stderr and 'Traceback' not in out.stderr
    assert not (tmp_path / 'config.json').exists()     # nothing written
    assert time.time() - t0 < 60
  finally:
    proc.kill()
    proc.wait()


def test_run_py_refuses_a_changed_config_on_resume(tmp_path):
  config = selfattn_gender.get_config('tiny')
  _trained(tmp_path, config)
  out = _run(['--config=configs/selfattn_gender.py:tiny', f'--workdir={tmp_path}',
              '--config.learning_rate=0.01'])
  assert out.returncode == 2, out.stderr[-2000:]
  assert 'learning_rate: trained with 0.001, now 0.01' in out.stderr
  assert 'Traceback' not in out.stderr
  lines = (tmp_path / workdir.COMMANDS_NAME).read_text().splitlines()
  assert len(lines) == 1     # the refused command did not join the trail
  out = _run(['--config=configs/selfattn_gender.py:tiny', f'--workdir={tmp_path}',
              '--mode=evaluate', '--config.model.name=cnn2d_bilstm'])
  assert out.returncode == 2 and 'model.name' in out.stderr, out.stderr[-2000:]


def test_write_atomic_leaves_the_old_file_whole_when_the_write_fails(tmp_path, monkeypatch):
  path = str(tmp_path / 'new' / 'results.json')   # its folder is made
  workdir.write_atomic(path, '{"a": 1}')
  assert open(path).read() == '{"a": 1}' and os.listdir(tmp_path / 'new') == ['results.json']

  def fail(src, dst):
    raise OSError(28, 'No space left on device')
  monkeypatch.setattr(os, 'replace', fail)
  with pytest.raises(OSError):
    workdir.write_atomic(path, '{"a": 2, "b": "half of it')
  assert open(path).read() == '{"a": 1}' and os.listdir(tmp_path / 'new') == ['results.json']


_CPUINFO = '''processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse2 avx {extra} fma
'''


@pytest.mark.parametrize('extra,isa,bf16', [
    ('avx2', 'AVX2', []),
    ('avx2 avx512f', 'AVX-512', []),
    ('avx2 avx512f avx512_bf16', 'AVX-512 BF16', ['avx512_bf16']),
    ('avx2 avx512f avx512_bf16 amx_bf16 amx_tile', 'AVX-512 BF16, AMX',
     ['amx_bf16', 'amx_tile', 'avx512_bf16']),
])
def test_cpu_model_names_the_vector_instruction_set(tmp_path, extra, isa, bf16):
  # Two 'AMD EPYC' machines of this project differ in AVX-512 and in speed:
  # the machine column and the benchmarks must tell them apart.
  path = tmp_path / 'cpuinfo'
  path.write_text(_CPUINFO.format(extra=extra))
  assert workdir.cpu_model(str(path)) == f'AMD EPYC ({isa})'
  assert workdir.cpu_bf16_flags(str(path)) == bf16


def test_cpu_model_without_cpuinfo_falls_back_to_platform(tmp_path):
  name = workdir.cpu_model(str(tmp_path / 'missing'))
  assert name and '(' not in name and workdir.cpu_bf16_flags(str(tmp_path / 'missing')) == []


def test_vector_isa_on_arm():
  assert workdir.vector_isa({'fp', 'asimd'}) == 'NEON'
  assert workdir.vector_isa({'fp', 'asimd', 'sve'}) == 'SVE'
  assert workdir.vector_isa(set()) == ''
