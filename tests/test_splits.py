"""Speaker-independent protocols never share a speaker between splits."""
import numpy as np
import pytest

from configs import common
from ser_jax import cli
from ser_jax import input_pipeline
from ser_jax import splits

IEMOCAP_LIKE = {f'Ses0{s}{g}': f'Ses0{s}' for s in range(1, 6) for g in 'FM'}


def _protocol(**kw):
  return common.protocol(**kw)   # the configs' defaults for the fields not given


@pytest.mark.parametrize('fold', range(10))
def test_loso_partner_validates(fold):
  split = splits.speaker_split(IEMOCAP_LIKE, _protocol(name='loso', fold=fold))
  (test,), (val,) = split['test'], split['validation']
  assert IEMOCAP_LIKE[test] == IEMOCAP_LIKE[val] and test != val
  assert len(split['train']) == 8
  assert set(split['train']) | {test, val} == set(IEMOCAP_LIKE)


@pytest.mark.parametrize('fold', range(5))
def test_loso_session(fold):
  split = splits.speaker_split(IEMOCAP_LIKE, _protocol(name='loso_session', fold=fold))
  assert len(split['test']) == 2 and len(split['validation']) == 2 and len(split['train']) == 6
  assert len({IEMOCAP_LIKE[s] for s in split['test']}) == 1
  splits.check_disjoint(split)


def test_every_fold_covers_every_speaker_once_as_test():
  tested = [splits.speaker_split(IEMOCAP_LIKE, _protocol(name='loso', fold=k))['test'][0]
            for k in range(10)]
  assert sorted(tested) == sorted(IEMOCAP_LIKE)


def test_bad_protocols_raise():
  with pytest.raises(ValueError, match='out of range'):
    splits.speaker_split(IEMOCAP_LIKE, _protocol(name='loso', fold=10))
  with pytest.raises(ValueError, match='is not a protocol'):
    splits.speaker_split(IEMOCAP_LIKE, _protocol(name='nope', fold=0))
  with pytest.raises(AssertionError, match='both'):
    splits.speaker_split(IEMOCAP_LIKE, _protocol(
        name='holdout', test_speakers=['Ses01F'], validation_speakers=['Ses01F']))


def _utts(lengths, labels=None):
  n = len(lengths)
  return input_pipeline.Utterances(
      [np.arange(1, k + 1, dtype=np.int16) + 100 * i for i, k in enumerate(lengths)],
      np.asarray(labels if labels is not None else np.arange(n) % 4, np.int32),
      np.zeros(n, np.int32), np.asarray(['a'] * n), np.asarray([f'p{i}' for i in range(n)]))


def test_segment_pads_short_and_covers_long_utterances():
  seg = input_pipeline.segment(_utts([3, 10, 11]), segment_samples=5, hop_samples=5)
  # 3 → 1 padded segment; 10 → 2; 11 → 3 (the last holds one sample).
  np.testing.assert_array_equal(seg.utterance, [0, 1, 1, 2, 2, 2])
  np.testing.assert_array_equal(seg.lengths, [3, 5, 5, 5, 5, 1])
  np.testing.assert_array_equal(seg.audio[0], [1, 2, 3, 0, 0])
  np.testing.assert_array_equal(seg.audio[5], [211, 0, 0, 0, 0])
  np.testing.assert_array_equal(seg.labels, seg.utterances.labels[seg.utterance])


def test_train_batches_deterministic_and_resumable():
  seg = input_pipeline.segment(_utts([4] * 23), 4, 4)
  a = input_pipeline.train_batches(seg, 5, seed=3)
  first = [next(a) for _ in range(9)]
  resumed = input_pipeline.train_batches(seg, 5, seed=3, start_step=6)
  for k in range(6, 9):
    np.testing.assert_array_equal(next(resumed)['audio'], first[k]['audio'])
  # An epoch (4 batches of 5 out of 23) never repeats a segment.
  epoch = np.concatenate([b['audio'][:, 0] for b in first[:4]])
  assert len(set(epoch.tolist())) == 20


def test_eval_batches_cover_everything_once():
  seg = input_pipeline.segment(_utts([4] * 7), 4, 4)
  batches = list(input_pipeline.eval_batches(seg, 4))
  weights = np.concatenate([b['weight'] for b in batches])
  assert weights.sum() == 7 and len(weights) == 8
  # Each segment once, in order (segment i starts with sample 1 + 100 i); the pad last.
  first = np.concatenate([b['audio'][:, 0] for b in batches])
  np.testing.assert_array_equal(first[weights > 0], [1 + 100 * i for i in range(7)])
  assert weights[-1] == 0


def _corpus(n_speakers=12, per_class=6, classes=4):
  labels, speakers = [], []
  for s in range(n_speakers):
    for c in range(classes):
      labels += [c] * per_class
      speakers += [f'spk{s:02d}'] * per_class
  return np.asarray(labels), np.asarray(speakers)


@pytest.mark.parametrize('name', ['stratified_kfold', 'group_kfold'])
def test_kfold_protocols_partition_the_corpus(name):
  labels, speakers = _corpus()
  tests = []
  for fold in range(5):
    split = splits.utterance_split(labels, speakers, _protocol(name=name, fold=fold, k=5))
    everything = np.concatenate(list(split.values()))
    assert sorted(everything) == list(range(len(labels)))  # a partition
    tests.append(split['test'])
    if name == 'group_kfold':
      splits.check_disjoint({k: set(speakers[v]) for k, v in split.items()})
    else:  # stratified: every class in every test fold, in proportion
      counts = np.bincount(labels[split['test']], minlength=4)
      assert counts.max() - counts.min() <= 1
  assert sorted(np.concatenate(tests)) == list(range(len(labels)))  # each utterance tested once
  again = splits.utterance_split(labels, speakers, _protocol(name=name, fold=2, k=5))
  first = splits.utterance_split(labels, speakers, _protocol(name=name, fold=2, k=5))
  for k in again:
    np.testing.assert_array_equal(again[k], first[k])  # deterministic


@pytest.mark.parametrize('name', ['stratified_split', 'group_split'])
def test_80_10_10_protocols(name):
  labels, speakers = _corpus(n_speakers=20)
  split = splits.utterance_split(labels, speakers, _protocol(name=name, fold=0))
  n = len(labels)
  assert abs(len(split['train']) / n - 0.8) < 0.06
  assert abs(len(split['test']) / n - 0.1) < 0.06
  if name == 'group_split':
    splits.check_disjoint({k: set(speakers[v]) for k, v in split.items()})


def test_group_split_with_too_few_speakers():
  labels, speakers = _corpus(n_speakers=2)
  with pytest.raises(ValueError, match='speaker-disjoint'):
    splits.utterance_split(labels, speakers, _protocol(name='group_split', fold=0))


def test_segment_max_segments_keeps_the_first():
  seg = input_pipeline.segment(_utts([3, 10, 11]), segment_samples=5, hop_samples=5,
                               max_segments=1)
  np.testing.assert_array_equal(seg.utterance, [0, 1, 2])
  np.testing.assert_array_equal(seg.audio[2], [201, 202, 203, 204, 205])


def test_segment_last_at_end_keeps_every_segment_of_a_long_utterance_full():
  utts = _utts([3, 10, 11, 13])
  pad = input_pipeline.segment(utts, segment_samples=5, hop_samples=5)
  end = input_pipeline.segment(utts, segment_samples=5, hop_samples=5, last_at_end=True)
  np.testing.assert_array_equal(end.utterance, pad.utterance)   # the same segments a file
  np.testing.assert_array_equal(pad.lengths, [3, 5, 5, 5, 5, 1, 5, 5, 3])
  np.testing.assert_array_equal(end.lengths, [3, 5, 5, 5, 5, 5, 5, 5, 5])
  np.testing.assert_array_equal(end.audio[5], [207, 208, 209, 210, 211])   # 11: ends at its end
  np.testing.assert_array_equal(end.audio[8], [309, 310, 311, 312, 313])
  np.testing.assert_array_equal(end.audio[:5], pad.audio[:5])   # short and exact files alike
  # With overlap, only the last start moves; max_segments keeps the first (full) ones.
  np.testing.assert_array_equal(input_pipeline.segment_starts(13, 4, 5, 3, True), [0, 3, 6, 8])
  np.testing.assert_array_equal(input_pipeline.segment_starts(13, 2, 5, 3, True), [0, 3])
  np.testing.assert_array_equal(input_pipeline.segment_starts(3, 1, 5, 3, True), [0])


def _union(shape=(('ser_crema_d', 30, 6), ('ravdess', 12, 8), ('ser_savee', 4, 14),
                  ('tess', 2, 70))):
  """Speakers of four corpora as in their union: (corpus, speakers, clips each)."""
  labels, speakers = [], []
  for corpus, n, per in shape:
    for s in range(n):
      labels += [j % 6 for j in range(per)]
      speakers += [f'{corpus}:{s:03d}'] * per
  return np.asarray(labels), np.asarray(speakers)


def test_group_kfold_on_a_union_spreads_every_corpus_over_the_folds():
  labels, speakers = _union()
  corpora = splits.corpus_of(speakers)
  tested = {}
  for fold in range(5):
    split = splits.utterance_split(labels, speakers, _protocol(name='group_kfold', fold=fold,
                                                                k=5, val_fraction=0.1))
    splits.check_disjoint({k: set(speakers[v]) for k, v in split.items()})
    assert sorted(np.concatenate(list(split.values()))) == list(range(len(labels)))
    train_corpora = set(corpora[split['train']])
    for name in ('validation', 'test'):   # never a corpus held out that does not train
      assert set(corpora[split[name]]) <= train_corpora, (fold, name)
    for c in ('ser_crema_d', 'ravdess'):  # enough speakers: in every fold's test and validation
      assert c in set(corpora[split['test']]) and c in set(corpora[split['validation']])
    assert 'tess' not in set(corpora[split['validation']])   # 2 speakers: never validates
    for c in set(corpora[split['test']]):
      tested.setdefault(c, []).append(fold)
  # Each of TESS's 2 and SAVEE's 4 speakers is tested in one fold of its own;
  # the corpora with >= k speakers are tested in every fold.
  assert len(tested['tess']) == 2 and len(tested['ser_savee']) == 4
  assert tested['ravdess'] == tested['ser_crema_d'] == [0, 1, 2, 3, 4]


def test_group_split_on_a_union_holds_out_speakers_of_every_corpus():
  labels, speakers = _union()
  corpora = splits.corpus_of(speakers)
  split = splits.utterance_split(labels, speakers, _protocol(name='group_split', fold=0))
  splits.check_disjoint({k: set(speakers[v]) for k, v in split.items()})
  assert set(corpora[split['test']]) == set(corpora)
  assert set(corpora[split['train']]) == set(corpora)


def test_group_kfold_on_one_corpus_is_unchanged_and_refuses_too_few_speakers():
  from sklearn import model_selection
  labels, speakers = _corpus()
  split = splits.utterance_split(labels, speakers, _protocol(name='group_kfold', fold=3, k=5))
  folds = model_selection.StratifiedGroupKFold(5, shuffle=True, random_state=0)
  _, test = list(folds.split(np.arange(len(labels)), labels, speakers))[3]
  np.testing.assert_array_equal(split['test'], np.sort(test))
  labels, speakers = _corpus(n_speakers=3)
  with pytest.raises(ValueError, match='needs at least 5 speakers'):
    splits.utterance_split(labels, speakers, _protocol(name='group_kfold', fold=0, k=5))


def test_cross_corpus_leaves_one_corpus_out_per_fold():
  labels, speakers = _union()
  corpora = splits.corpus_of(speakers)
  names = sorted(set(corpora))
  speaker_session = {s: s for s in set(speakers)}
  protocol = _protocol(name='cross_corpus', fold=0, val_fraction=0.1)
  assert splits.num_folds(protocol, speaker_session) == len(names) == 4
  for fold, held in enumerate(names):
    protocol.fold = fold
    split = splits.utterance_split(labels, speakers, protocol)
    assert set(corpora[split['test']]) == {held}
    assert len(split['test']) == int((corpora == held).sum())
    assert held not in set(corpora[split['train']]) | set(corpora[split['validation']])
    assert set(corpora[split['train']]) == set(names) - {held}
    # Validation from corpora with >= 3 speakers only, speaker-disjoint from training.
    assert set(corpora[split['validation']]) <= {'ser_crema_d', 'ravdess', 'ser_savee'}
    splits.check_disjoint({k: set(speakers[v]) for k, v in split.items()})
  named = splits.utterance_split(labels, speakers, _protocol(
      name='cross_corpus', fold=0, test=('ser_savee',), train=('ravdess', 'tess')))
  assert set(corpora[named['test']]) == {'ser_savee'}
  assert set(corpora[named['train']]) == {'ravdess', 'tess'}
  with pytest.raises(ValueError, match='not among the corpora'):
    splits.utterance_split(labels, speakers, _protocol(name='cross_corpus', fold=0,
                                                       test=('iemocap',)))
  one_labels, one_speakers = _corpus()
  with pytest.raises(ValueError, match='needs a union'):
    splits.utterance_split(one_labels, one_speakers, _protocol(name='cross_corpus', fold=0))


def test_cross_corpus_keeps_the_classes_both_sides_have():
  # class 7 ('surprised') only in training, class 1 ('calm') only in test
  labels = np.asarray([0, 2, 2, 7, 0, 1, 2])
  index = {'train': np.arange(4), 'validation': np.asarray([3]), 'test': np.arange(4, 7)}
  out = input_pipeline.restrict_to_test_classes(index, labels)
  np.testing.assert_array_equal(out['train'], [0, 1, 2])
  np.testing.assert_array_equal(out['validation'], np.zeros(0, int))
  np.testing.assert_array_equal(out['test'], [4, 6])


def test_num_folds_of_every_protocol_and_an_unknown_one_is_refused():
  speaker_session = {'a': 's1', 'b': 's1', 'c': 's2', 'd': 's2', 'e': 's3', 'f': 's3'}
  want = {'loso': 6, 'loso_session': 3, 'stratified_kfold': 5, 'group_kfold': 5,
          'holdout': 1, 'stratified_split': 1, 'group_split': 1}
  for name, n in want.items():
    assert splits.num_folds(_protocol(name=name, k=5), speaker_session) == n, name
  # A typo is a usage error (run.py prints it as one line), naming the known protocols.
  with pytest.raises(cli.UsageError, match="protocol.name='grouped_kfold' is not a protocol; "
                     'known: loso, '):
    splits.num_folds(_protocol(name='grouped_kfold', k=5), speaker_session)
  with pytest.raises(cli.UsageError, match='is not a protocol'):
    splits.utterance_split(['a', 'b'], ['s', 't'], _protocol(name='grouped_kfold'))
