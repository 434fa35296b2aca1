"""monitoring.MetricWriter: TensorBoard scalars (clu's SummaryWriter) from process 0."""
import glob
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
