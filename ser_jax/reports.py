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


def write_learning_curves(path: str, histories: Mapping[str, Sequence[Mapping]],
                          selected: Mapping[str, int | None] | None = None):
  """Training loss, validation loss and validation UAR (%) against epochs, one
  line per run (a legend when there are several), the selected checkpoint of
  each run (`selected`: run name → step) marked. Nothing is written without
  any evaluation (an SVM run)."""
  histories = {k: list(v) for k, v in histories.items() if v}
  if not histories:
    return
  selected = selected or {}
  plt = _plt()
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  panels = (('train_loss', 'training loss', 'cross-entropy', 1.0),
            ('val_loss', 'validation loss (segments)', 'cross-entropy', 1.0),
            ('val_uar', 'validation UAR (utterances)', 'UAR (%)', 100.0))
  for name, records in histories.items():
    epochs = [r['epoch'] for r in records]
    pick = next((r for r in records if r['step'] == selected.get(name)), None)
    for ax, (key, _, _, scale) in zip(axes, panels):
      values = [None if r.get(key) is None else scale * r[key] for r in records]
      if all(v is None for v in values):
        continue
      line, = ax.plot(epochs, values, marker='.', label=name or None, alpha=0.8)
      if pick is not None and pick.get(key) is not None:
        ax.plot([pick['epoch']], [scale * pick[key]], marker='*', markersize=14,
                color=line.get_color(), markeredgecolor='black', linestyle='none',
                label='selected checkpoint' if len(histories) == 1 else None)
  for ax, (_, title, ylabel, _) in zip(axes, panels):
    ax.set_xlabel('epoch')
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
  if selected and len(histories) > 1:
    axes[-1].set_title(axes[-1].get_title() + ' (★ selected checkpoints)')
  if 1 < len(histories) <= 12 or (len(histories) == 1 and selected):
    axes[-1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_split_reports(outdir: str, split: str, report: Mapping, suffix: str = ''):
  """confusion_<split><suffix>.{csv,png} and per_class_<split><suffix>.csv."""
  os.makedirs(outdir, exist_ok=True)
  write_confusion(os.path.join(outdir, f'confusion_{split}{suffix}'), report['confusion'],
                  report['classes'],
                  f'{split}: UAR {100 * report["uar"]:.2f}%  WA {100 * report["wa"]:.2f}%')
  write_per_class(os.path.join(outdir, f'per_class_{split}{suffix}.csv'), report)


def write_run_reports(workdir: str, results: Mapping, history: Sequence[Mapping]):
  """Reports of one run: confusion CSV/PNG and per-class CSV of each split, learning
  curves with the evaluated checkpoint marked."""
  for split in ('validation', 'test'):
    if split in results:
      write_split_reports(workdir, split, results[split])
  write_learning_curves(os.path.join(workdir, 'learning_curves.png'), {'': list(history)},
                        selected={'': results.get('checkpoint_step')})


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
