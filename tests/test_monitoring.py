"""monitoring.MetricWriter: TensorBoard scalars (clu's SummaryWriter) from process 0."""
import glob
import json
import math

import numpy as np

from ser_jax import monitoring


def _events(logdir):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (heavy)
  out = []
  for path in sorted(glob.glob(f'{logdir}/events*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for v in event.summary.value:
        out.append((event.step, v.tag, float(tf.make_ndarray(v.tensor)),
                    v.metadata.plugin_data.plugin_name))
  return out


def test_writes_finite_scalars_only(tmp_path):
  writer = monitoring.MetricWriter(str(tmp_path))
  writer.scalars(1, {'train/loss': 0.5, 'val/uar': None, 'val/loss': math.nan,
                     'train/learning_rate': np.float32(2.5)})
  writer.scalars(2, {'train/loss': np.float64(0.25), 'val/wa': math.inf})
  writer.scalars(3, {'val/uar': None})   # nothing to write
  writer.flush()
  writer.close()
  writer.close()   # a second close is a no-op
  assert _events(str(tmp_path)) == [(1, 'train/loss', 0.5, 'scalars'),
                                    (1, 'train/learning_rate', 2.5, 'scalars'),
                                    (2, 'train/loss', 0.25, 'scalars')]


def test_other_processes_write_nothing(tmp_path, monkeypatch):
  monkeypatch.setattr(monitoring, 'is_chief', lambda: False)
  writer = monitoring.MetricWriter(str(tmp_path / 'tb'))
  writer.scalars(1, {'train/loss': 0.5})
  writer.flush()
  writer.close()
  assert not (tmp_path / 'tb').exists()


def test_run_clock_counts_every_sitting_from_the_resumed_step(tmp_path):
  path = str(tmp_path / 'wall_time.json')
  now = [1000.0]
  clock = lambda path, started: monitoring.RunClock(path, started, now=lambda: now[0])
  first = clock(path, started=now[0])
  first.resume(0)
  now[0] += 60
  first.mark(10)
  now[0] += 60
  first.mark(20)
  now[0] += 30          # killed 30 s after step 20's checkpoint: lost work
  second = clock(path, started=now[0])
  second.resume(10)     # step 20's checkpoint was damaged: resumed from step 10
  now[0] += 45
  assert second.seconds() == 60 + 45
  assert (second.sittings, second.complete) == (2, True)
  second.mark(20)
  with open(path) as f:
    assert json.load(f) == {'sittings': 2, 'seconds_at_step': {'10': 60.0, '20': 105.0}}
  third = clock(path, started=now[0])
  third.resume(0)       # every checkpoint lost: a fresh run, whatever the file says
  assert (third.seconds(), third.sittings) == (0.0, 1)


def test_run_clock_without_a_record_for_the_step_counts_this_sitting_only(tmp_path):
  path = tmp_path / 'wall_time.json'
  path.write_text('{not json')
  clock = monitoring.RunClock(str(path), started=0.0)
  clock.resume(30)
  assert not clock.complete and clock.base == 0.0
  assert clock.sittings == 2   # resumed: not the first sitting, whatever the file lost
