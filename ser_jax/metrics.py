"""Classification metrics of SER papers: UAR, WA, confusion, per-class report.

Computed with scikit-learn (`sklearn.metrics`) on integer label arrays.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn import metrics as skm


def _labels(y_true, y_pred, num_classes: int):
  y_true = np.asarray(y_true, np.int64)
  y_pred = np.asarray(y_pred, np.int64)
  if y_true.shape != y_pred.shape:
    raise ValueError(f'shape mismatch: {y_true.shape} vs {y_pred.shape}')
  y_true, y_pred = y_true.ravel(), y_pred.ravel()
  for name, y in (('y_true', y_true), ('y_pred', y_pred)):
    if y.size and (y.min() < 0 or y.max() >= num_classes):
      # scikit-learn would silently drop labels outside `labels=range(K)`.
      raise ValueError(f'{name} has labels outside [0, {num_classes}): '
                       f'{sorted(set(y[(y < 0) | (y >= num_classes)].tolist()))}')
  return y_true, y_pred


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
  """Counts [true, predicted], shape (num_classes, num_classes)."""
  y_true, y_pred = _labels(y_true, y_pred, num_classes)
  if not y_true.size:
    return np.zeros((num_classes, num_classes), np.int64)
  return skm.confusion_matrix(y_true, y_pred, labels=range(num_classes)).astype(np.int64)


def report(y_true, y_pred, class_names: Sequence[str]) -> dict:
  """UAR, WA, per-class precision/recall/F1/support and confusion matrices.

  UAR is the mean recall over the classes that occur in `y_true` (as
  scikit-learn's `balanced_accuracy_score`); classes with no support are
  listed with support 0 and excluded from the mean.
  """
  n = len(class_names)
  y_true, y_pred = _labels(y_true, y_pred, n)
  cm = confusion_matrix(y_true, y_pred, n)
  support = cm.sum(axis=1)
  present = np.flatnonzero(support > 0)
  total = int(y_true.size)
  if total:
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=range(n), zero_division=0)
    wa = float(skm.accuracy_score(y_true, y_pred))
    # recall_score over the present labels = balanced_accuracy_score, without
    # its warning when y_pred holds a class y_true lacks.
    uar = float(skm.recall_score(y_true, y_pred, labels=present, average='macro',
                                 zero_division=0))
    confusion_pct = 100.0 * skm.confusion_matrix(y_true, y_pred, labels=range(n),
                                                 normalize='true')
  else:
    precision = recall = f1 = np.zeros(n)
    wa = uar = float('nan')
    confusion_pct = np.zeros((n, n))
  return {
      'num_examples': total,
      'wa': wa,
      'uar': uar,
      'classes': list(class_names),
      'per_class': {
          name: {'precision': float(precision[i]), 'recall': float(recall[i]),
                 'f1': float(f1[i]), 'support': int(support[i])}
          for i, name in enumerate(class_names)},
      'confusion': cm.tolist(),
      # Row-normalised (% of each true class), as the papers print it.
      'confusion_pct': confusion_pct.round(2).tolist(),
  }
