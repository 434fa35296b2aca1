"""Resumability and robustness of the loop: SIGKILL/SIGTERM, damaged checkpoints,
a failed save, two processes, gradient accumulation, early stopping (the recipe's
parts are in test_recipe.py)."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import selfattn_gender
from ser_jax import checkpoints
from ser_jax import input_pipeline
from ser_jax import monitoring
from ser_jax import neural_experiment
from ser_jax import sharding
from ser_jax.trainers import neural as train
import test_checkpoints  # tests/ is on sys.path (pytest rootdir import)
import test_layers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCHS = 12  # tiny corpus: 6 steps an epoch; the SIGKILL test stops it at step 30 or so


def tiny_corpus_dir(tmp_path_factory):
  """The tiny synthetic corpus built in a folder of its own (also test_recipe.py's)."""
  path = str(tmp_path_factory.mktemp('tfds'))
  config = selfattn_gender.get_config('tiny')
  config.data.data_dir = path
  input_pipeline.get_builder(config.data)  # prepare once, before any subprocess
  return path


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return tiny_corpus_dir(tmp_path_factory)


def _cmd(workdir, data_dir, *extra):
  return [sys.executable, 'run.py', '--config=configs/selfattn_gender.py:tiny',
          f'--workdir={workdir}', f'--config.data.data_dir={data_dir}',
          f'--config.num_epochs={EPOCHS}', '--config.log_every_steps=50', *extra]


def _steps(workdir):
  d = os.path.join(workdir, 'checkpoints')
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def _start_and_wait_for_checkpoint(cmd, workdir, min_step):
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  deadline = time.time() + 240
  while time.time() < deadline:
    steps = _steps(workdir)
    if steps and steps[-1] >= min_step:
      return proc
    if proc.poll() is not None:
      raise AssertionError('run ended before it could be interrupted:\n' + proc.stderr.read()[-3000:])
    time.sleep(0.05)
  proc.kill()
  raise AssertionError('no checkpoint appeared in time')


def _final_params(workdir):
  ckpt = checkpoints.Checkpoints(os.path.join(workdir, 'checkpoints'), async_save=False,
                                 metric='val_uar', mode='max')
  step = ckpt.latest_step()
  return step, ckpt.manager.restore(step)


def _assert_trees_equal(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope='module')
def straight(data_dir, tmp_path_factory):
  """The workdir of an uninterrupted run: what every resumed run must equal."""
  path = str(tmp_path_factory.mktemp('straight') / 'w')
  subprocess.run(_cmd(path, data_dir), cwd=REPO, check=True, capture_output=True, timeout=600)
  return path


def _results(workdir):
  """results.json without its wall time and count of sittings."""
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  results.pop('wall_seconds')
  results.pop('sittings')
  return results


def test_sigkill_then_resume_equals_uninterrupted(data_dir, straight, tmp_path):
  killed = str(tmp_path / 'killed')
  extra = ['--config.checkpoint_every_steps=5']
  proc = _start_and_wait_for_checkpoint(_cmd(killed, data_dir, *extra), killed, 30)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert _steps(killed)[-1] < EPOCHS * 6, 'the run finished before the kill'
  with open(os.path.join(killed, 'wall_time.json')) as f:
    spent = json.load(f)['seconds_at_step'][str(_steps(killed)[-1])]
  t0 = time.time()
  subprocess.run(_cmd(killed, data_dir, *extra), cwd=REPO, check=True, capture_output=True,
                 timeout=600)
  resumed_sitting = time.time() - t0
  with open(os.path.join(killed, 'results.json')) as f:
    timed = json.load(f)
  # The wall time counts the first sitting up to the resumed checkpoint, and the second.
  assert timed['sittings'] == 2 and 'wall_seconds_this_sitting_only' not in timed
  assert spent < timed['wall_seconds'] <= spent + resumed_sitting
  step_a, state_a = _final_params(straight)
  step_b, state_b = _final_params(killed)
  assert step_a == step_b == EPOCHS * 6
  _assert_trees_equal(state_a, state_b)  # bitwise, on CPU
  with open(os.path.join(straight, 'history.jsonl')) as f:
    hist_a = [json.loads(l) for l in f]
  with open(os.path.join(killed, 'history.jsonl')) as f:
    hist_b = [json.loads(l) for l in f]
  assert [h['val_uar'] for h in hist_a] == [h['val_uar'] for h in hist_b]


@pytest.mark.parametrize('kind', ['arrays', 'metadata', 'commit_marker'])
def test_damaged_latest_checkpoint_is_set_aside_and_the_run_finishes(data_dir, straight,
                                                                     tmp_path, kind):
  """The newest step damaged after the run ended: the re-run moves it to
  quarantine, resumes from the previous one, saves that step again and ends
  with the uninterrupted run's results."""
  workdir = str(tmp_path / 'w')
  shutil.copytree(straight, workdir)
  last = _steps(workdir)[-1]
  os.remove(os.path.join(workdir, 'results.json'))   # as if it died before finishing
  test_checkpoints.damage_step(os.path.join(workdir, 'checkpoints', str(last)), kind)
  proc = subprocess.run(_cmd(workdir, data_dir), cwd=REPO, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f'Checkpoint step {last} is damaged' in proc.stderr
  assert 'Traceback' not in proc.stderr
  moved = os.listdir(os.path.join(workdir, 'checkpoints', checkpoints.QUARANTINE))
  assert [m.split('-')[0] for m in moved] == [str(last)]
  assert _steps(workdir)[-1] == last
  assert _results(workdir) == _results(straight)


def _with_file_size_limit(cmd, kib):
  """`cmd` under a file-size limit: writes past it fail with EFBIG (SIGXFSZ
  ignored), as writes to a full disk fail with ENOSPC."""
  return ['bash', '-c', f'trap "" XFSZ; ulimit -f {kib}; exec "$@"', 'bash', *cmd]


def test_failed_save_ends_with_one_message_and_the_rerun_finishes(data_dir, straight, tmp_path):
  workdir = str(tmp_path / 'w')
  proc = subprocess.run(_with_file_size_limit(_cmd(workdir, data_dir), 48), cwd=REPO,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 4, proc.stderr[-3000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and 'saving checkpoint step 6' in errors[0], proc.stderr[-3000:]
  assert 'file too large' in errors[0] and 're-run the same command' in errors[0]
  assert 'Traceback' not in proc.stderr and 'Event loop is closed' not in proc.stderr
  assert not [n for n in os.listdir(os.path.join(workdir, 'checkpoints'))
              if n != checkpoints.QUARANTINE]      # the partial folder is gone
  proc = subprocess.run(_cmd(workdir, data_dir), cwd=REPO, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert _results(workdir) == _results(straight)


def test_sigterm_saves_and_exits_cleanly(data_dir, tmp_path):
  workdir = str(tmp_path / 'w')
  proc = _start_and_wait_for_checkpoint(_cmd(workdir, data_dir), workdir, 6)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
  assert 'interrupted' in err and 'Traceback' not in err
  stopped = re.search(r'stopped by signal \d+ at step (\d+); checkpoint saved', err)
  assert stopped, err[-3000:]
  saved = _steps(workdir)[-1]
  assert saved == int(stopped.group(1))   # a checkpoint of the step it stopped at
  proc = subprocess.run(_cmd(workdir, data_dir), cwd=REPO, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f'Resumed from checkpoint step {saved}' in proc.stderr


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.exclusive   # two run.py processes at once
def test_two_processes_with_jax_distributed(data_dir, tmp_path):
  workdir = str(tmp_path / 'two')
  port = _free_port()
  env = dict(os.environ, XLA_FLAGS='')
  procs = [subprocess.Popen(
      [sys.executable, 'run.py', '--config=configs/selfattn_gender.py:tiny',
       f'--workdir={workdir}', f'--config.data.data_dir={data_dir}',
       f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2', f'--process_id={i}'],
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-4000:]
  assert 'TEST UAR' in outs[0][0] and 'TEST UAR' not in outs[1][0]  # process 0 reports
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  assert results['test']['num_examples'] > 0
  assert _steps(workdir)[-1] == 12


def _tiny(data_dir, **kw):
  config = selfattn_gender.get_config('tiny')
  config.data.data_dir = data_dir
  for k, v in kw.items():
    config[k] = v
  return config


def test_gradient_accumulation_equals_full_batch(data_dir):
  results, scans = {}, {}
  for k in (1, 2, 4):
    # SGD keeps parameters a linear function of the gradients (Adam's
    # normalisation would amplify float noise on near-zero gradients).
    exp = neural_experiment.build_experiment(_tiny(data_dir, grad_accum_steps=k, optimizer='sgd',
                                       learning_rate=0.1))
    state = neural_experiment.create_train_state(exp, jax.random.key(0))
    state = state.replace(norm=train.compute_norm_stats(exp, exp.segments['train']))
    step = train.make_train_step(exp)
    batches = input_pipeline.train_batches(exp.segments['train'], 8, 0)
    first = sharding.shard_batch(next(input_pipeline.train_batches(exp.segments['train'], 8, 0)),
                                 exp.mesh)
    # k > 1 runs the micro-batches in one more scan, of length k (so the step did split).
    scans[k] = [e.params['length'] for e in
                test_layers.scan_eqns(jax.make_jaxpr(step)(state, first).jaxpr)]
    losses = []
    for _ in range(3):
      state, m = step(state, sharding.shard_batch(next(batches), exp.mesh))
      losses.append(float(m['loss']))
    results[k] = (losses, jax.device_get(state.params))
  for k in (2, 4):
    assert len(scans[k]) == len(scans[1]) + 1 and scans[k].count(k) == scans[1].count(k) + 1
    np.testing.assert_allclose(results[k][0], results[1][0], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 results[k][1], results[1][1])
  with pytest.raises(ValueError, match='grad_accum_steps'):
    train.make_train_step(neural_experiment.build_experiment(_tiny(data_dir, grad_accum_steps=3)))


def test_early_stopping_stops_and_is_resumable(data_dir, tmp_path):
  config = _tiny(data_dir, learning_rate=0.0, num_epochs=6)
  config.early_stopping.metric = 'val_loss'
  config.early_stopping.mode = 'min'
  config.early_stopping.patience = 2
  workdir = str(tmp_path / 'es')
  train.train_and_evaluate(config, workdir)
  history = monitoring.History(os.path.join(workdir, 'history.jsonl')).records
  assert len(history) == 3  # best at the first evaluation, then 2 without improvement
  train.train_and_evaluate(config, workdir)  # re-run: already stopped, no more training
  assert len(monitoring.History(os.path.join(workdir, 'history.jsonl')).records) == 3


def test_early_stopping_rule():
  cfg = {'metric': 'val_loss', 'mode': 'min', 'patience': 2, 'min_delta': 0.01}
  stopper = monitoring.EarlyStopping(cfg)
  assert [stopper.update({'val_loss': v}) for v in (1.0, 0.9, 0.895, 0.95, 0.5, 0.6, 0.6)] == [
      False, False, False, True, False, False, True]
  assert not monitoring.EarlyStopping({'patience': 0}).update({'val_loss': 1.0})
