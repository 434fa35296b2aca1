"""Classification metrics of SER papers: UAR, WA, confusion, per-class report.

Pure numpy on integer label arrays; cross-checked against scikit-learn in tests.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
  """Counts [true, predicted], shape (num_classes, num_classes)."""
  y_true = np.asarray(y_true, np.int64)
  y_pred = np.asarray(y_pred, np.int64)
  if y_true.shape != y_pred.shape:
    raise ValueError(f'shape mismatch: {y_true.shape} vs {y_pred.shape}')
  cm = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(cm, (y_true, y_pred), 1)
  return cm


def _safe_div(a, b):
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def report(y_true, y_pred, class_names: Sequence[str]) -> dict:
  """UAR, WA, per-class precision/recall/F1/support and confusion matrices.

  UAR is the mean recall over the classes that occur in `y_true` (as
  scikit-learn's `balanced_accuracy_score`); classes with no support are
  listed with support 0 and excluded from the mean.
  """
  n = len(class_names)
  cm = confusion_matrix(y_true, y_pred, n)
  support = cm.sum(axis=1)
  predicted = cm.sum(axis=0)
  tp = np.diag(cm)
  recall = _safe_div(tp, support)
  precision = _safe_div(tp, predicted)
  f1 = _safe_div(2 * precision * recall, precision + recall)
  present = support > 0
  total = int(support.sum())
  return {
      'num_examples': total,
      'wa': float(tp.sum() / total) if total else float('nan'),
      'uar': float(recall[present].mean()) if present.any() else float('nan'),
      'classes': list(class_names),
      'per_class': {
          name: {'precision': float(precision[i]), 'recall': float(recall[i]),
                 'f1': float(f1[i]), 'support': int(support[i])}
          for i, name in enumerate(class_names)},
      'confusion': cm.tolist(),
      # Row-normalised (% of each true class), as the papers print it.
      'confusion_pct': (100.0 * _safe_div(cm, support[:, None])).round(2).tolist(),
  }
