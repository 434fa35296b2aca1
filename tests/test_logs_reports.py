"""What a person reads: split summaries, progress lines, learning curves."""
import time

import matplotlib
import matplotlib.figure
import numpy as np
import pytest

from ser_jax import input_pipeline
from ser_jax import monitoring
from ser_jax import reports

matplotlib.use('Agg')


def test_describe_counts_speakers_and_padded_clips():
  audio = [np.zeros(n, np.int16) for n in (16000, 48000, 8000, 60000)]
  utts = input_pipeline.Utterances(
      audio, np.asarray([0, 1, 1, 0], np.int32), np.zeros(4, np.int32),
      np.asarray([f'spk{i:03d}' for i in range(4)]), np.asarray(['a', 'b', 'c', 'd']))
  text = input_pipeline.describe({'train': utts}, ('neutral', 'angry'), 48000, 16000)
  assert text == ('train: 4 utterances of 4 speakers; neutral 2, angry 2; 2 shorter than one '
                  '3.00 s segment (zero-padded by 2.25 s on average)')
  # Given the hop: the 3.75 s clip's second segment holds 0.75 s, under half a segment.
  tail = '; 1 longer whose last segment holds under 1.50 s (zero-padded; '
  assert input_pipeline.describe({'train': utts}, ('neutral', 'angry'), 48000, 16000,
                                 48000) == text + tail + (
      "features.last_segment_at_end=True ends it at the file's end)")
  assert input_pipeline.describe({'train': utts}, ('neutral', 'angry'), 48000, 16000, 48000,
                                 last_at_end=True) == text
  assert input_pipeline.describe({'train': utts}, ('neutral', 'angry'), 48000, 16000, 24000,
                                 max_segments=1) == text   # only the first 3 s is kept
  assert 'spk' not in text   # counts, not lists (splits.json has the ids)


def test_progress_line_has_rate_and_eta(monkeypatch):
  now = [100.0]
  monkeypatch.setattr(time, 'time', lambda: now[0])
  p = monitoring.Progress(total_steps=100, start_step=0, steps_per_epoch=10)
  now[0] += 30.0             # the first step compiles
  p.compiled()
  now[0] += 20.0             # 10 more steps in 20 s: 2 s a step, 89 to go
  line = p.line(11, 1.25, 0.5, 64.0)
  assert line == ('step 11/100 (epoch 1.10): loss 1.2500  acc 50.0%  64.0 examples/s  '
                  'ETA 2m58s')
  assert monitoring.format_duration(3 * 3600 + 125) == '3h02m'
  assert monitoring.format_duration(float('nan')) == '?'


def test_learning_curves_mark_the_selected_checkpoint(tmp_path, monkeypatch):
  history = [{'step': 10 * i, 'epoch': float(i), 'train_loss': 1.0 / i, 'val_loss': 1.2 / i,
              'val_uar': 0.1 * i} for i in range(1, 6)]
  drawn = {}
  savefig = matplotlib.figure.Figure.savefig

  def capture(fig, *args, **kwargs):
    drawn['axes'] = fig.axes
    return savefig(fig, *args, **kwargs)

  monkeypatch.setattr(matplotlib.figure.Figure, 'savefig', capture)
  reports.write_learning_curves(str(tmp_path / 'lc.png'), {'': history}, selected={'': 30})
  axes = drawn['axes']
  assert [a.get_ylabel() for a in axes] == ['cross-entropy', 'cross-entropy', 'UAR (%)']
  uar = axes[2].get_lines()
  assert max(uar[0].get_ydata()) == 50.0                      # in %, not 0-1
  star = [l for l in uar if l.get_marker() == '*']
  assert len(star) == 1 and list(star[0].get_ydata()) == [pytest.approx(30.0)]
  labels = [t.get_text() for t in axes[2].get_legend().get_texts()]
  assert labels == ['selected checkpoint']                    # no "run" legend for one run
  assert (tmp_path / 'lc.png').stat().st_size > 0
  reports.write_learning_curves(str(tmp_path / 'none.png'), {'': []})
  assert not (tmp_path / 'none.png').exists()                 # an SVM run: nothing to draw
