"""Evaluation: segment posteriors → utterance decisions → metrics and reports."""
from __future__ import annotations

import json
from typing import Callable, Sequence

import jax
import numpy as np

from ser_jax import cli
from ser_jax import input_pipeline
from ser_jax import metrics as metrics_lib
from ser_jax import sharding
from ser_jax import splits as splits_lib
from ser_jax import workdir as workdir_lib


AGGREGATIONS = ('max', 'mean')   # config.aggregation: how segments make an utterance


def aggregate(probs: np.ndarray, utterance: np.ndarray, num_utterances: int,
              method: str = 'max') -> np.ndarray:
  """Utterance posteriors [U, K] from segment posteriors [S, K].

  'max' max-pools each class's posterior over an utterance's segments (the
  headline paper); 'mean' averages them.
  """
  k = probs.shape[1]
  if method == 'max':
    out = np.full((num_utterances, k), -np.inf, probs.dtype)
    np.maximum.at(out, utterance, probs)
  elif method == 'mean':
    out = np.zeros((num_utterances, k), probs.dtype)
    np.add.at(out, utterance, probs)
    out /= np.bincount(utterance, minlength=num_utterances)[:, None]
  else:
    raise cli.UsageError(f'unknown aggregation {method!r}')
  if not np.isfinite(out).all():
    raise ValueError('an utterance has no segment')
  return out


def segment_posteriors(eval_step: Callable, state, seg: input_pipeline.Segments,
                       batch_size: int, mesh) -> np.ndarray:
  """Softmax posteriors [S, K] of every segment, in order."""
  out = []
  for batch in input_pipeline.eval_batches(seg, batch_size):
    weight = batch['weight']
    probs = np.asarray(jax.device_get(eval_step(state, sharding.shard_batch(batch, mesh))))
    out.append(probs[weight > 0])
  return np.concatenate(out, axis=0)


def evaluate_segments(eval_step: Callable, state, seg: input_pipeline.Segments,
                      batch_size: int, mesh, class_names: Sequence[str],
                      aggregation: str = 'max') -> dict:
  """Utterance-level report (UAR, WA, confusion, per class) of one split."""
  probs = segment_posteriors(eval_step, state, seg, batch_size, mesh)
  utt_probs = aggregate(probs, seg.utterance, len(seg.utterances), aggregation)
  # Segment-level cross-entropy (what Keras reports as validation loss).
  return utterance_report(seg.utterances, utt_probs, class_names, aggregation,
                          loss=cross_entropy(probs, seg.labels), num_segments=len(seg))


def cross_entropy(probs: np.ndarray, labels: np.ndarray) -> float:
  """Mean -log p(true class) of posteriors [N, K]."""
  return float(-np.log(np.maximum(probs[np.arange(len(probs)), labels], 1e-12)).mean())


def utterance_report(utts: input_pipeline.Utterances, probs: np.ndarray, class_names,
                     aggregation: str, loss: float, num_segments: int) -> dict:
  """The report of a split from its utterance posteriors [U, K]: metrics
  (`metrics.report`), 'loss', 'aggregation', 'num_segments' and one
  prediction per utterance. Both trainers report through it."""
  pred = probs.argmax(axis=1)
  report = metrics_lib.report(utts.labels, pred, class_names)
  report['loss'] = loss
  report['aggregation'] = aggregation
  report['num_segments'] = int(num_segments)
  corpora = splits_lib.corpus_of(utts.speakers)
  if len(set(corpora)) > 1:   # a union: each corpus's figures beside the pooled ones
    report['per_corpus'] = {}
    for c in sorted(set(corpora)):
      m = corpora == c
      part = metrics_lib.report(utts.labels[m], pred[m], class_names)
      report['per_corpus'][c] = {
          'uar': part['uar'], 'wa': part['wa'], 'num_examples': part['num_examples'],
          'num_speakers': len(set(map(str, utts.speakers[m]))),
          'recall': {k: v['recall'] for k, v in part['per_class'].items() if v['support']}}
  report['predictions'] = [
      {'path': str(p), 'speaker': str(s), 'label': class_names[int(t)],
       'predicted': class_names[int(y)], 'probabilities': [round(float(v), 5) for v in pr]}
      for p, s, t, y, pr in zip(utts.paths, utts.speakers, utts.labels, pred, probs)]
  return report


def format_report(name: str, report: dict, confusion: bool = True) -> str:
  """The figures of one split (UAR, WA, and with `confusion` the row-normalised
  confusion), then each corpus's of a union."""
  classes = report['classes']
  width = max(max(len(c) for c in classes) + 2, 10)
  lines = [f'{name}: UAR {100 * report["uar"]:.2f}%  WA {100 * report["wa"]:.2f}%  '
           f'({report["num_examples"]} utterances, {report["aggregation"]}-pooled segments)']
  if confusion:   # rows: true class; columns: predicted; % of each true class
    lines[0] += '; confusion (% of each true class):'
    lines.append(f'{"true|pred":<{width}}' + ''.join(f'{c[:7]:>8}' for c in classes))
    for c, row in zip(classes, report['confusion_pct']):
      lines.append(f'{c:<{width}}' + ''.join(f'{v:8.1f}' for v in row))
  for c, part in report.get('per_corpus', {}).items():
    lines.append(f'  {c}: UAR {100 * part["uar"]:.2f}%  WA {100 * part["wa"]:.2f}%  '
                 f'({part["num_examples"]} utterances, {part["num_speakers"]} speakers)')
  return '\n'.join(lines)


def write_json(path: str, obj):
  workdir_lib.write_atomic(path, json.dumps(obj, indent=1))
