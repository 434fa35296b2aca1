"""UAR, WA, confusion and per-class report against scikit-learn."""
import numpy as np
import pytest
from sklearn import metrics as skm

from ser_jax import evaluate
from ser_jax import metrics

CLASSES = ('neutral', 'happy', 'sad', 'angry')


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_report_matches_sklearn(seed):
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 4, 200)
  p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 4, 200))
  r = metrics.report(y, p, CLASSES)
  assert r['uar'] == pytest.approx(skm.balanced_accuracy_score(y, p))
  assert r['wa'] == pytest.approx(skm.accuracy_score(y, p))
  np.testing.assert_array_equal(r['confusion'], skm.confusion_matrix(y, p, labels=range(4)))
  prec, rec, f1, sup = skm.precision_recall_fscore_support(y, p, labels=range(4), zero_division=0)
  for i, c in enumerate(CLASSES):
    assert r['per_class'][c]['precision'] == pytest.approx(prec[i])
    assert r['per_class'][c]['recall'] == pytest.approx(rec[i])
    assert r['per_class'][c]['f1'] == pytest.approx(f1[i])
    assert r['per_class'][c]['support'] == sup[i]
  np.testing.assert_allclose(np.asarray(r['confusion_pct']).sum(1), 100, atol=0.05)


# sklearn warns when a prediction names a class absent from the labels: that case is this test's point.
@pytest.mark.filterwarnings('ignore:y_pred contains classes not in y_true')
def test_uar_ignores_absent_classes_like_sklearn():
  y = np.array([0, 0, 1, 1, 1])
  p = np.array([0, 1, 1, 1, 3])
  r = metrics.report(y, p, CLASSES)
  assert r['uar'] == pytest.approx(skm.balanced_accuracy_score(y, p))
  assert r['per_class']['sad']['support'] == 0


def test_uar_differs_from_wa_on_imbalance():
  y = np.array([0] * 9 + [1])
  p = np.zeros(10, int)
  r = metrics.report(y, p, CLASSES[:2])
  assert r['wa'] == pytest.approx(0.9) and r['uar'] == pytest.approx(0.5)


def test_empty_and_out_of_range_labels():
  r = metrics.report(np.zeros(0, int), np.zeros(0, int), CLASSES)
  assert r['num_examples'] == 0 and np.isnan(r['wa']) and np.isnan(r['uar'])
  assert r['confusion'] == [[0] * 4] * 4 and r['per_class']['sad']['support'] == 0
  with pytest.raises(ValueError):
    metrics.report([0, 4], [0, 1], CLASSES)   # scikit-learn would drop label 4
  with pytest.raises(ValueError):
    metrics.report([0, 1], [0], CLASSES)


def test_aggregate_max_and_mean():
  probs = np.array([[0.6, 0.4], [0.1, 0.9], [0.7, 0.3]], np.float32)
  utt = np.array([0, 0, 1])
  np.testing.assert_allclose(evaluate.aggregate(probs, utt, 2, 'max'), [[0.6, 0.9], [0.7, 0.3]])
  np.testing.assert_allclose(evaluate.aggregate(probs, utt, 2, 'mean'), [[0.35, 0.65], [0.7, 0.3]])
  with pytest.raises(ValueError):
    evaluate.aggregate(probs, utt, 3, 'max')  # utterance 2 has no segment
