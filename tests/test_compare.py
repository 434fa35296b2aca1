"""ser_jax.compare: paired per-fold figures and the speaker bootstrap of two workdirs."""
import json
import os

import numpy as np
import pytest

from ser_jax import compare
from ser_jax import metrics

CLASSES = ['neutral', 'happy', 'sad', 'angry']


def _utterances(fold: int, speakers: int = 6, per_class: int = 3):
  """(path, speaker, label) of a fold's validation set: every speaker says every class."""
  return [(f'c/{fold}_{s}_{c}_{i}.wav', f'c:{fold}{s}', c)
          for s in range(speakers) for c in CLASSES for i in range(per_class)]


def _write_run(run: str, utts, predicted):
  os.makedirs(run, exist_ok=True)
  preds = [dict(path=p, speaker=s, label=y, predicted=q, probabilities=[])
           for (p, s, y), q in zip(utts, predicted)]
  y = [CLASSES.index(u[2]) for u in utts]
  rep = metrics.report(y, [CLASSES.index(q) for q in predicted], CLASSES)
  part = dict(classes=CLASSES, uar=rep['uar'], wa=rep['wa'], predictions=preds)
  with open(os.path.join(run, 'results.json'), 'w') as f:
    json.dump(dict(validation=part, test=part), f)
  return rep


def _protocol(root, name: str, accuracy: dict, folds=(0, 1, 2), seeds=(0,)):
  """A protocol workdir whose system gets speaker s of every fold right on the
  utterances with index < accuracy[s] of each class (3 a class), wrong otherwise."""
  reports = {}
  for fold in folds:
    utts = _utterances(fold)
    for seed in seeds:
      pred = []
      for p, s, y in utts:
        k = int(p.split('_')[-1].split('.')[0])
        right = k < accuracy[int(s[-1])]
        pred.append(y if right else CLASSES[(CLASSES.index(y) + 1 + seed) % len(CLASSES)])
      reports[fold, seed] = _write_run(str(root / name / f'fold{fold:02d}_seed{seed}'), utts, pred)
  return str(root / name), reports


def test_fold_figures_equal_the_runs_reports_and_the_difference_is_paired(tmp_path):
  a, rep_a = _protocol(tmp_path, 'a', {s: 1 for s in range(6)})            # 1 of 3 right
  b, rep_b = _protocol(tmp_path, 'b', {s: 2 if s < 3 else 1 for s in range(6)})
  out = compare.compare(a, b, resamples=300)
  for row in out['folds']:
    f = row['fold']
    assert row['uar'] == pytest.approx((rep_a[f, 0]['uar'], rep_b[f, 0]['uar']))
    assert row['wa'] == pytest.approx((rep_a[f, 0]['wa'], rep_b[f, 0]['wa']))
  # B is right on 1.5 of 3 per class and speaker on average, A on 1: +1/6.
  assert out['uar']['diff'] == pytest.approx(1 / 6)
  assert out['wa']['diff'] == pytest.approx(1 / 6)
  lo, hi = out['uar']['interval']
  assert 0 < lo < 1 / 6 < hi      # B is never worse on any speaker, so never below A
  assert out['uar']['not_above'] == 0.0


def test_identical_systems_have_no_spread_and_a_speaker_effect_has_some(tmp_path):
  a, _ = _protocol(tmp_path, 'a', {0: 0, 1: 1, 2: 2, 3: 3, 4: 1, 5: 2})
  out = compare.compare(a, a, resamples=200)
  assert out['uar']['interval'] == (0.0, 0.0) and out['uar']['diff'] == 0.0
  # B better on one speaker and worse on another: the mean moves little, the
  # interval straddles zero.
  b, _ = _protocol(tmp_path, 'b', {0: 3, 1: 1, 2: 2, 3: 0, 4: 1, 5: 2})
  out = compare.compare(a, b, resamples=500)
  lo, hi = out['uar']['interval']
  assert lo < 0 < hi
  assert 0.2 < out['uar']['not_above'] < 0.8


def test_seeds_are_averaged_per_fold_and_only_common_folds_count(tmp_path):
  a, rep_a = _protocol(tmp_path, 'a', {s: 2 for s in range(6)}, seeds=(0, 1))
  b, _ = _protocol(tmp_path, 'b', {s: 2 for s in range(6)}, folds=(1, 2))
  out = compare.compare(a, b, resamples=50)
  assert [r['fold'] for r in out['folds']] == [1, 2]
  assert out['folds'][0]['seeds'] == (2, 1)
  mean_a = np.mean([rep_a[1, s]['uar'] for s in (0, 1)])
  assert out['folds'][0]['uar'][0] == pytest.approx(mean_a)


def test_one_run_against_a_protocol_fold_and_the_cli(tmp_path, capsys):
  a, _ = _protocol(tmp_path, 'a', {s: 1 for s in range(6)}, folds=(0,))
  single = str(tmp_path / 'single')
  utts = _utterances(0)
  _write_run(single, utts, [y for _, _, y in utts])
  assert compare.main([a, single, '--resamples=20']) == 0
  text = capsys.readouterr().out
  assert '| mean | | 33.33 / 100.00 | 66.67 |' in text
  assert 'B not above A in 0.0 %' in text


def test_mismatched_splits_and_missing_runs_are_one_line_errors(tmp_path, capsys):
  a, _ = _protocol(tmp_path, 'a', {s: 1 for s in range(6)}, folds=(0,))
  other = str(tmp_path / 'other' / 'fold00_seed0')
  utts = _utterances(0, speakers=5)
  _write_run(other, utts, [y for _, _, y in utts])
  assert compare.main([a, str(tmp_path / 'other')]) == 2
  assert 'scored different validation utterances (60 and 72' in capsys.readouterr().err
  relabelled = str(tmp_path / 'relabelled' / 'fold00_seed0')
  _write_run(relabelled, _utterances(0), [y for _, _, y in _utterances(0)])
  with open(os.path.join(relabelled, 'results.json')) as f:
    res = json.load(f)
  res['validation']['classes'] = CLASSES[::-1]
  with open(os.path.join(relabelled, 'results.json'), 'w') as f:
    json.dump(res, f)
  assert compare.main([a, str(tmp_path / 'relabelled')]) == 2
  assert 'has classes' in capsys.readouterr().err
  (tmp_path / 'empty').mkdir()
  assert compare.main([a, str(tmp_path / 'empty')]) == 2
  assert 'no finished run' in capsys.readouterr().err
  assert compare.main([a, str(tmp_path / 'nowhere')]) == 2
  assert 'no such folder' in capsys.readouterr().err
