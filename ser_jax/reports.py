"""Paper-style reports: per-fold tables, confusion matrices, per-class scores,
learning curves and a summary.md, written into a workdir."""
from __future__ import annotations

import csv
import os
from typing import Mapping, Sequence

import numpy as np

from ser_jax import metrics as metrics_lib


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def write_confusion(path_stem: str, confusion: Sequence[Sequence[int]],
                    class_names: Sequence[str], title: str = ''):
  """Row-normalised confusion (%) as CSV and PNG (counts in the CSV's second table)."""
  cm = np.asarray(confusion, np.int64)
  pct = 100.0 * cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
  with open(path_stem + '.csv', 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['true \\ predicted (% of true class)', *class_names])
    for name, row in zip(class_names, pct):
      w.writerow([name, *[f'{v:.2f}' for v in row]])
    w.writerow([])
    w.writerow(['true \\ predicted (counts)', *class_names])
    for name, row in zip(class_names, cm):
      w.writerow([name, *row.tolist()])
  plt = _plt()
  n = len(class_names)
  fig, ax = plt.subplots(figsize=(1.2 * n + 2, 1.1 * n + 1.5))
  im = ax.imshow(pct, cmap='Blues', vmin=0, vmax=100)
  ax.set_xticks(range(n), class_names, rotation=45, ha='right')
  ax.set_yticks(range(n), class_names)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  for i in range(n):
    for j in range(n):
      ax.text(j, i, f'{pct[i, j]:.1f}', ha='center', va='center',
              color='white' if pct[i, j] > 55 else 'black', fontsize=9)
  fig.colorbar(im, ax=ax, label='% of true class')
  ax.set_title(title or 'confusion matrix (row-normalised %)')
  fig.tight_layout()
  fig.savefig(path_stem + '.png', dpi=120)
  plt.close(fig)


def write_per_class(path: str, report: Mapping):
  with open(path, 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['class', 'precision', 'recall', 'f1', 'support'])
    for name in report['classes']:
      r = report['per_class'][name]
      w.writerow([name, f'{r["precision"]:.4f}', f'{r["recall"]:.4f}', f'{r["f1"]:.4f}',
                  r['support']])
    w.writerow(['UAR', '', f'{report["uar"]:.4f}', '', report['num_examples']])
    w.writerow(['WA', '', f'{report["wa"]:.4f}', '', report['num_examples']])


def write_learning_curves(path: str, histories: Mapping[str, Sequence[Mapping]]):
  """Training loss, validation loss and validation UAR against epochs, one line per run."""
  plt = _plt()
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  for name, records in histories.items():
    if not records:
      continue
    epochs = [r['epoch'] for r in records]
    for ax, key in zip(axes, ('train_loss', 'val_loss', 'val_uar')):
      values = [r.get(key) for r in records]
      if any(v is not None for v in values):
        ax.plot(epochs, values, marker='.', label=name, alpha=0.8)
  for ax, title in zip(axes, ('training loss', 'validation loss (segments)',
                              'validation UAR (utterances)')):
    ax.set_xlabel('epoch')
    ax.set_title(title)
    ax.grid(alpha=0.3)
  if len(histories) <= 12:
    axes[-1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_run_reports(workdir: str, results: Mapping, history: Sequence[Mapping]):
  """Reports of one run: confusion CSV/PNG and per-class CSV of each split, learning curves."""
  for split in ('validation', 'test'):
    if split in results:
      r = results[split]
      write_confusion(os.path.join(workdir, f'confusion_{split}'), r['confusion'],
                      r['classes'], f'{split}: UAR {100 * r["uar"]:.2f}%  WA {100 * r["wa"]:.2f}%')
      write_per_class(os.path.join(workdir, f'per_class_{split}.csv'), r)
  write_learning_curves(os.path.join(workdir, 'learning_curves.png'), {'run': list(history)})


def mean_std(values) -> tuple[float, float]:
  v = np.asarray(values, np.float64)
  return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def pooled_report(run_results: Sequence[Mapping], split: str = 'test') -> dict:
  """Per-class scores and confusion over the pooled test utterances of all runs."""
  classes = run_results[0][split]['classes']
  y_true, y_pred = [], []
  for r in run_results:
    for p in r[split]['predictions']:
      y_true.append(classes.index(p['label']))
      y_pred.append(classes.index(p['predicted']))
  return metrics_lib.report(np.asarray(y_true), np.asarray(y_pred), classes)


def fold_table(rows: Sequence[Mapping]) -> str:
  """Markdown table like table 1 of the headline paper (WA and UAR per fold)."""
  lines = ['| fold | test speakers | runs (seeds) | test WA % | test UAR % | val UAR % |',
           '|---|---|---|---|---|---|']
  for r in rows:
    lines.append(f'| {r["fold"]} | {r["test_speakers"]} | {r["runs"]} | '
                 f'{r["wa_mean"]:.2f} ± {r["wa_std"]:.2f} | {r["uar_mean"]:.2f} ± {r["uar_std"]:.2f} | '
                 f'{r["val_uar_mean"]:.2f} |')
  return '\n'.join(lines)
