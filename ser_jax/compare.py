"""Two finished runs or protocols side by side, with how much the speakers alone move them.

  python -m ser_jax.compare RUNS_A RUNS_B [--split=validation] [--resamples=2000] [--seed=0]

For each fold that both workdirs finished (a single run is fold 0), the UAR and
WA of A and of B on the same utterances of `--split` (validation by default:
choices are made there; the test split is for reading a result once), their
difference B − A, and the mean over the folds, which is how docs/results.md's
rules decide. A fold with several seeds counts each system's mean over its seeds.

Then a paired bootstrap over speakers: each resample draws every fold's
speakers with replacement (the unit that speaker-independent evaluation
samples), scores A and B on the same draw, and takes the mean over the folds of
B − A. It prints the 95 % interval of that difference and the share of
resamples in which B is not above A. The interval counts the sampling of
speakers only; training seeds move a run as well (docs/results.md, rows 27–28),
so a difference inside it is not one the evaluation can see, and one outside it
may still be a seed's luck.

UAR is the mean recall over the classes present in the draw, as
`ser_jax.metrics.report`; the fold figures equal the runs' results.json. The
resamples are scored from per-speaker counts with one matrix product each
(hand-written: scikit-learn would take one call per resample and fold).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

import numpy as np

from ser_jax import protocols


class CompareError(ValueError):
  """A comparison that cannot be made (said in one line to the user)."""


def _runs(workdir: str) -> dict[int, list[str]]:
  """{fold: [run folders]} of a protocol workdir, or {0: [workdir]} for one run."""
  found = protocols.finished_runs(workdir)
  if found:
    out: dict[int, list[str]] = {}
    for _, sub, fold, _ in found:
      out.setdefault(fold, []).append(sub)
    return out
  if os.path.exists(os.path.join(workdir, 'results.json')):
    return {0: [workdir]}
  raise CompareError(f'{workdir}: no finished run (results.json, or fold folders with one)')


def _predictions(run: str, split: str) -> tuple[list[str], dict[str, tuple]]:
  """(classes, {path: (speaker, label, predicted)}) of one run's `split`."""
  path = os.path.join(run, 'results.json')
  with open(path) as f:
    part = json.load(f).get(split)
  if not part or 'predictions' not in part:
    raise CompareError(f'{path}: no {split} predictions')
  return list(part['classes']), {p['path']: (p['speaker'], p['label'], p['predicted'])
                                 for p in part['predictions']}


def _counts(preds: dict[str, tuple], paths: list[str], speakers: list[str],
            classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
  """(correct, total), each [speakers, classes]: utterances of each speaker and
  true class, and how many of them were predicted right."""
  s_index = {s: i for i, s in enumerate(speakers)}
  c_index = {c: i for i, c in enumerate(classes)}
  correct = np.zeros((len(speakers), len(classes)))
  total = np.zeros_like(correct)
  for p in paths:
    speaker, label, predicted = preds[p]
    total[s_index[speaker], c_index[label]] += 1
    correct[s_index[speaker], c_index[label]] += label == predicted
  return correct, total


def scores(weights: np.ndarray, correct: np.ndarray, total: np.ndarray):
  """UAR and WA, each [resamples], of speaker weights [resamples, speakers]
  (1 each: the run's own figures; bootstrap counts: a resample's)."""
  right, n = weights @ correct, weights @ total              # [resamples, classes]
  with np.errstate(invalid='ignore', divide='ignore'):
    recall = np.where(n > 0, right / n, np.nan)
  return np.nanmean(recall, axis=1), right.sum(1) / n.sum(1)


def _fold(runs_a: list[str], runs_b: list[str], split: str, fold: int):
  """Speakers and each run's (correct, total) counts of one fold."""
  loaded = [[_predictions(r, split) for r in runs] for runs in (runs_a, runs_b)]
  classes, reference = loaded[0][0]
  for (cls, preds), run in zip((x for side in loaded for x in side), runs_a + runs_b):
    if cls != classes:
      raise CompareError(f'fold {fold}: {run} has classes {cls}, {runs_a[0]} has {classes}')
    if preds.keys() != reference.keys():
      raise CompareError(
          f'fold {fold}: {run} and {runs_a[0]} scored different {split} utterances '
          f'({len(preds)} and {len(reference)}; another split_seed, protocol or corpus?)')
  paths = sorted(reference)
  speakers = sorted({reference[p][0] for p in paths})
  counts = [[_counts(preds, paths, speakers, classes) for _, preds in side] for side in loaded]
  return speakers, counts


def compare(workdir_a: str, workdir_b: str, split: str = 'validation',
            resamples: int = 2000, seed: int = 0) -> dict:
  """Per-fold and mean UAR/WA of A and B on `split`, and the speaker bootstrap of
  the mean difference B − A (see the module docstring). Figures are fractions."""
  runs_a, runs_b = _runs(workdir_a), _runs(workdir_b)
  folds = sorted(runs_a.keys() & runs_b.keys())
  if not folds:
    raise CompareError(f'no fold finished in both: {workdir_a} has {sorted(runs_a)}, '
                       f'{workdir_b} has {sorted(runs_b)}')
  rng = np.random.default_rng(seed)
  rows, boot = [], {'uar': np.zeros(resamples), 'wa': np.zeros(resamples)}
  for fold in folds:
    speakers, counts = _fold(runs_a[fold], runs_b[fold], split, fold)
    n = len(speakers)
    draws = np.stack([np.ones(n)] + [np.bincount(rng.integers(0, n, n), minlength=n)
                                     for _ in range(resamples)])
    side = []
    for runs in counts:   # A, then B: the mean over seeds of each seed's figures
      per_seed = [scores(draws, correct, total) for correct, total in runs]
      side.append([np.mean([s[k] for s in per_seed], axis=0) for k in (0, 1)])
    (uar_a, wa_a), (uar_b, wa_b) = side
    rows.append(dict(fold=fold, speakers=n, seeds=(len(runs_a[fold]), len(runs_b[fold])),
                     uar=(uar_a[0], uar_b[0]), wa=(wa_a[0], wa_b[0])))
    boot['uar'] += (uar_b[1:] - uar_a[1:]) / len(folds)
    boot['wa'] += (wa_b[1:] - wa_a[1:]) / len(folds)
  out = {'split': split, 'folds': rows, 'resamples': resamples, 'seed': seed}
  for key in ('uar', 'wa'):
    a, b = (float(np.mean([r[key][i] for r in rows])) for i in (0, 1))
    out[key] = dict(a=a, b=b, diff=b - a,
                    interval=tuple(float(q) for q in np.percentile(boot[key], [2.5, 97.5])),
                    not_above=float(np.mean(boot[key] <= 0)))
  return out


def render(result: dict, name_a: str, name_b: str) -> str:
  pct = lambda x: f'{100 * x:.2f}'  # noqa: E731
  split = result['split']
  lines = [f'A = {name_a}', f'B = {name_b}', '',
           f'| fold | speakers | {split} UAR % A / B | B − A | {split} WA % A / B | B − A |',
           '|---|---|---|---|---|---|']
  for r in result['folds']:
    seeds = '' if r['seeds'] == (1, 1) else f' ({r["seeds"][0]} / {r["seeds"][1]} seeds)'
    lines.append(f'| {r["fold"]}{seeds} | {r["speakers"]} | '
                 f'{pct(r["uar"][0])} / {pct(r["uar"][1])} | {pct(r["uar"][1] - r["uar"][0])} | '
                 f'{pct(r["wa"][0])} / {pct(r["wa"][1])} | {pct(r["wa"][1] - r["wa"][0])} |')
  u, w = result['uar'], result['wa']
  lines.append(f'| mean | | {pct(u["a"])} / {pct(u["b"])} | {pct(u["diff"])} | '
               f'{pct(w["a"])} / {pct(w["b"])} | {pct(w["diff"])} |')
  lines.append('')
  for key, m in (('UAR', u), ('WA', w)):
    lo, hi = m['interval']
    lines.append(
        f'Mean {split} {key} difference B − A: {pct(m["diff"])} points; 95 % of '
        f'{result["resamples"]} speaker resamples (seed {result["seed"]}) within '
        f'[{pct(lo)}, {pct(hi)}]; B not above A in {100 * m["not_above"]:.1f} % of them.')
  lines.append('The interval counts the sampling of speakers only, not training seeds.')
  return '\n'.join(lines)


def main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m ser_jax.compare', description=__doc__.split('\n')[0])
  parser.add_argument('workdir_a')
  parser.add_argument('workdir_b')
  parser.add_argument('--split', default='validation', choices=('validation', 'test'))
  parser.add_argument('--resamples', type=int, default=2000)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  if args.resamples < 1:
    parser.error('--resamples must be at least 1')
  for w in (args.workdir_a, args.workdir_b):
    if not os.path.isdir(w):
      print(f'error: no such folder: {w}', file=sys.stderr)
      return 2
  try:
    result = compare(args.workdir_a, args.workdir_b, args.split, args.resamples, args.seed)
  except (CompareError, OSError, KeyError, json.JSONDecodeError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(render(result, args.workdir_a, args.workdir_b))
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
