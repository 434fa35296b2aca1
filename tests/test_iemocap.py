"""The IEMOCAP builder: label parsing, subset counts, and real TFDS builds of a
dummy corpus in the real layout (written at test time, with every oddity)."""
import collections
import json
import math
import pathlib

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders import cli
from tfds_builders import common
from tfds_builders.iemocap import check_counts
from tfds_builders.iemocap import dummy_data
from tfds_builders.iemocap import iemocap_dataset_builder as ib
from tfds_builders.iemocap import labels
from tfds_builders.iemocap import subsets

SR = common.SAMPLE_RATE


def _build(manual_dir, data_dir):
  builder = ib.Builder(data_dir=str(data_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  return builder


def _load(builder):
  ds = builder.as_dataset(split=common.ALL_SPLIT, shuffle_files=False)
  out = {}
  for ex in tfds.as_numpy(ds):
    for k in ('label', 'speaker', 'session', 'path', 'utterance', 'dialog'):
      ex[k] = ex[k].decode()
    out[ex['utterance']] = ex
  return out


@pytest.fixture(scope='module')
def manual(tmp_path_factory):
  return dummy_data.write(tmp_path_factory.mktemp('iemocap_manual'))


@pytest.fixture(scope='module')
def built(manual, tmp_path_factory):
  # manual_dir = the parent of IEMOCAP_full_release/
  builder = _build(manual['root'].parent, tmp_path_factory.mktemp('tfds'))
  return builder, _load(builder)


# ---------------------------------------------------------------------------
# Parsing.

def test_utterance_ids():
  p = labels.parse_utterance_id('Ses01F_impro01_M003')   # the MALE speaker
  assert p == dict(session='Ses01', dialog='Ses01F_impro01', speaker='Ses01M',
                   gender='male', improvised=True)
  p = labels.parse_utterance_id('Ses03M_impro05a_F001')
  assert (p['dialog'], p['speaker'], p['gender'], p['improvised']) == (
      'Ses03M_impro05a', 'Ses03F', 'female', True)
  p = labels.parse_utterance_id('Ses05M_script01_1b_M012')
  assert (p['session'], p['dialog'], p['speaker'], p['improvised']) == (
      'Ses05', 'Ses05M_script01_1b', 'Ses05M', False)
  p = labels.parse_utterance_id('Ses02F_script02_2_F018')
  assert (p['speaker'], p['gender'], p['improvised']) == ('Ses02F', 'female', False)
  for bad in ('Ses01F_impro01', 'Ses01F_impro01_X003', 'foo_bar_M001',
              'Ses01F_meeting01_M003'):
    with pytest.raises(labels.BadUtteranceId):
      labels.parse_utterance_id(bad)


def test_parse_label_text_whitespace_and_annotators():
  text = ('% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\r\n\r\n'
          '[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]\r\n'
          'C-E2:\tNeutral;\t()\r\n'
          'A-E3:\tval 3; act 2; dom  2;\t([1, 2, 3] odd comment)\r\n\r\n'
          '  [ 10.01 -  11.3925 ]   Ses01F_impro01_M003  EXC [3.5,4.0 ,  2.25]   \r\n'
          '[12.0000 - 13.5000] Ses01F_impro01_F001 xxx\n'
          '[14.0 - ]\tSes01F_impro01_F002\tneu\t[2.5, 2.5, 2.5]\n'
          '[15.0 - 16.0]\tSes01F_impro01_Q002\tneu\t[2.5, 2.5, 2.5]\n'
          '\ufeff[17.0 - 18.0]\tSes01F_impro01_M004\tsad\t[1.0, 2.0, 3.0]')
  turns, problems = labels.parse_label_text(text, 'x.txt')
  assert [t.utterance for t in turns] == [
      'Ses01F_impro01_F000', 'Ses01F_impro01_M003', 'Ses01F_impro01_F001',
      'Ses01F_impro01_M004']
  t0, t1, t2, t3 = turns
  assert (t0.start, t0.end, t0.label, t0.emotion) == (6.2901, 8.2357, 'neu', 'neutral')
  assert (t0.valence, t0.activation, t0.dominance) == (2.5, 2.5, 2.5)
  assert (t1.label, t1.emotion, t1.speaker, t1.gender) == ('exc', 'happy', 'Ses01M', 'male')
  assert (t1.valence, t1.activation, t1.dominance) == (3.5, 4.0, 2.25)
  assert t2.label == 'xxx' and t2.emotion == 'other' and math.isnan(t2.valence)
  assert t3.line == 11 and t3.dialog_type == 'impro'
  assert [(p.line, p.reason.split(':')[0]) for p in problems] == [
      (9, 'unparseable label line'), (10, 'bad utterance id')]


def test_emotion_mapping():
  assert {k: labels.EMOTION_OF[k] for k in labels.LABELS} == {
      'neu': 'neutral', 'hap': 'happy', 'exc': 'happy', 'ang': 'angry', 'sad': 'sad',
      'fru': 'other', 'sur': 'surprised', 'fea': 'fearful', 'dis': 'disgust',
      'oth': 'other', 'xxx': 'other'}
  assert set(labels.EMOTION_OF.values()) <= set(common.EMOTION_NAMES)


def test_find_corpus_root(manual, tmp_path):
  root = manual['root']
  assert labels.find_corpus_root(root) == root
  assert labels.find_corpus_root(root.parent) == root
  assert labels.find_corpus_root(tmp_path) is None
  assert labels.find_corpus_root(tmp_path / 'nope') is None
  assert labels.find_corpus_root(root / 'Session1' / 'dialog') is None


def test_scan_corpus(manual):
  corpus = labels.scan_corpus(manual['root'])
  assert corpus.sessions == ['Session1', 'Session3', 'Session5']
  assert sorted(t.utterance for t in corpus.turns) == sorted(
      e['utterance'] for e in manual['turns'])
  assert [corpus.rel(w) for w in corpus.unlabelled_wavs] == [dummy_data.UNLABELLED_WAV]
  assert [p.reason for p in corpus.problems] == ['unparseable label line']
  assert corpus.non_dialog_files == ['Session1/dialog/EmoEvaluation/notes.txt']
  assert corpus.ignored_hidden == 6        # ._ label files and ._ wavs
  assert not corpus.duplicates


# ---------------------------------------------------------------------------
# Subset counts.

def test_subset_counts_by_hand(manual):
  counts = subsets.subset_counts(
      dict(label=e['label'], session=e['session'], improvised=e['improvised'])
      for e in manual['turns'])
  assert counts['labelled_turns'] == 25 and counts['improvised_turns'] == 16
  assert counts['sessions'] == {'Ses01': 11, 'Ses03': 7, 'Ses05': 7}
  s = counts['subsets']
  assert s['four_class']['total'] == 19
  assert s['four_class']['classes'] == {'neutral': 6, 'happy': 6, 'sad': 4, 'angry': 3}
  assert s['four_class']['sessions'] == {'Ses01': 6, 'Ses03': 6, 'Ses05': 7}
  assert s['four_class']['session_classes']['Ses05'] == {
      'neutral': 2, 'happy': 2, 'sad': 2, 'angry': 1}
  assert s['four_class_improvised']['total'] == 13
  assert s['four_class_improvised']['classes'] == {
      'neutral': 4, 'happy': 5, 'sad': 2, 'angry': 2}
  assert s['four_class_no_exc']['total'] == 16
  assert s['four_class_no_exc']['classes']['happy'] == 3
  assert s['four_class_no_exc_improvised']['total'] == 11
  assert not subsets.is_full_corpus(counts)
  assert subsets.select('exc', False) == 'happy'
  assert subsets.select(b'exc', True, 'four_class_no_exc') is None
  assert subsets.select('sad', False, 'four_class_improvised') is None
  assert subsets.select('fru', True) is None
  assert 'four_class_improvised' in subsets.format_counts(counts)


# A label matrix with the published margins (sessions x neu, happy, sad, ang).
_PUBLISHED_TABLE = {
    'Ses01': (384, 278, 194, 229), 'Ses02': (362, 327, 197, 137),
    'Ses03': (320, 286, 305, 240), 'Ses04': (258, 303, 143, 327),
    'Ses05': (384, 442, 245, 170),
}


def _full_corpus_turns(delta_sad_ses05=0):
  """10,039 labelled turns with the published 4-class counts."""
  turns = []
  for s, (neu, happy, sad, ang) in _PUBLISHED_TABLE.items():
    sad += delta_sad_ses05 if s == 'Ses05' else 0
    for label, n in (('neu', neu), ('hap', happy // 2), ('exc', happy - happy // 2),
                     ('sad', sad), ('ang', ang)):
      turns += [dict(label=label, session=s, improvised=i % 2 == 0) for i in range(n)]
  other = 10_039 - len(turns)
  turns += [dict(label=('fru', 'xxx', 'sur')[i % 3], session=f'Ses0{i % 5 + 1}',
                 improvised=False) for i in range(other)]
  return turns


def test_published_figures_check():
  counts = subsets.subset_counts(_full_corpus_turns())
  assert counts['labelled_turns'] == 10_039 and subsets.is_full_corpus(counts)
  assert subsets.published_mismatches(counts) == []
  subsets.assert_published(counts)
  bad = subsets.subset_counts(_full_corpus_turns(delta_sad_ses05=-1))
  diffs = subsets.published_mismatches(bad)
  assert any('5530' in d for d in diffs) and any('Ses05' in d for d in diffs)
  assert any('sad: 1083, published 1084' in d for d in diffs)
  with pytest.raises(AssertionError, match='published'):
    subsets.assert_published(bad)


def _write_full_label_files(root, turns_table):
  """Label files (no wavs) for the full-size check of the builder."""
  for sess, rows in turns_table.items():
    emo = root / f'Session{int(sess[3:])}' / 'dialog' / 'EmoEvaluation'
    emo.mkdir(parents=True, exist_ok=True)
    (root / f'Session{int(sess[3:])}' / 'sentences' / 'wav').mkdir(parents=True)
    by_dialog = collections.defaultdict(list)
    for i, (label, improvised) in enumerate(rows):
      dialog = f'{sess}F_{"impro" if improvised else "script"}0{i % 7 + 1}'
      by_dialog[dialog].append(
          f'[{i}.0 - {i}.5]\t{dialog}_{"FM"[i % 2]}{i:04d}\t{label}\t[2.5, 2.5, 2.5]\n'
          'C-E2:\tNeutral;\t()\n\n')
    for dialog, lines in by_dialog.items():
      (emo / f'{dialog}.txt').write_text(''.join(lines))


def test_builder_checks_published_counts_on_full_corpus(tmp_path):
  """With 10,039 labelled turns in 5 sessions the builder asserts 5,531."""
  for name, delta, ok in (('good', 0, True), ('bad', -1, False)):
    table = collections.defaultdict(list)
    for t in _full_corpus_turns(delta):
      table[t['session']].append((t['label'], t['improvised']))
    root = tmp_path / name / 'IEMOCAP_full_release'
    _write_full_label_files(root, table)
    # One wav, so that the good build writes one example and skips the rest.
    first = labels.scan_corpus(root).turns[0]
    wav = root / 'Session1' / 'sentences' / 'wav' / first.dialog / f'{first.utterance}.wav'
    dummy_data.write_wav(wav, 'ok', 0.1, 1)
    if ok:
      builder = _build(root, tmp_path / name / 'data')
      assert builder.info.splits[common.ALL_SPLIT].num_examples == 1
      meta = builder.info.metadata
      assert subsets.published_mismatches(meta['label_file_counts']) == []
      assert meta['build']['skipped'] == {'missing wav': 10_038}
      assert 'differs from the published counts' in meta['build']['summary']
    else:
      with pytest.raises(AssertionError, match='sad: 1083, published 1084'):
        _build(root, tmp_path / name / 'data')


# ---------------------------------------------------------------------------
# The build of the dummy corpus.

def test_info_and_counts(built, manual):
  builder, examples = built
  info = builder.info
  assert builder.name == 'iemocap'
  assert list(info.splits) == [common.ALL_SPLIT]
  assert info.splits[common.ALL_SPLIT].num_examples == len(manual['kept']) == 22
  assert set(examples) == {e['utterance'] for e in manual['kept']}
  assert info.features['audio'].np_dtype == np.int16 and str(common.SAMPLE_RATE) in info.features['audio'].doc.desc
  assert info.features['emotion'].names == list(common.EMOTION_NAMES)
  for k in ('utterance', 'dialog', 'improvised', 'start_time', 'end_time', 'valence',
            'activation', 'dominance', 'label', 'speaker', 'gender', 'session', 'path',
            'duration'):
    assert k in info.features, k


def test_fields_match_the_corpus(built, manual):
  _, examples = built
  names = common.EMOTION_NAMES
  for e in manual['kept']:
    ex = examples[e['utterance']]
    assert ex['label'] == e['label']
    assert names[ex['emotion']] == labels.EMOTION_OF[e['label']]
    assert ex['speaker'] == e['speaker'] and ex['session'] == e['session']
    assert common.GENDERS[ex['gender']] == e['gender']
    assert ex['dialog'] == e['dialog'] and bool(ex['improvised']) == e['improvised']
    assert ex['path'] == e['path']
    assert ex['start_time'] == pytest.approx(e['start'], abs=1e-4)
    assert ex['end_time'] == pytest.approx(e['end'], abs=1e-4)
    for k, v in zip(('valence', 'activation', 'dominance'), e['vad']):
      assert (math.isnan(ex[k]) and math.isnan(v)) or ex[k] == pytest.approx(v, abs=1e-4)
    audio = ex['audio']
    assert audio.dtype == np.int16 and audio.ndim == 1
    assert ex['duration'] == pytest.approx(len(audio) / SR, abs=1e-6)
    assert ex['duration'] == pytest.approx(e['seconds'], abs=2e-3), e['utterance']
    if e['kind'] == 'silent':
      assert not audio.any()
    else:
      assert np.abs(audio).max() > 5000, e['utterance']


def test_speakers_genders_sessions(built):
  _, examples = built
  ex = examples['Ses01F_impro01_M003']   # dialog says F, the turn is the man's
  assert ex['speaker'] == 'Ses01M' and common.GENDERS[ex['gender']] == 'male'
  assert ex['label'] == 'ang' and common.EMOTION_NAMES[ex['emotion']] == 'angry'
  speakers = collections.defaultdict(set)
  for ex in examples.values():
    speakers[ex['session']].add((ex['speaker'], common.GENDERS[ex['gender']]))
  assert speakers == {
      s: {(s + 'F', 'female'), (s + 'M', 'male')} for s in ('Ses01', 'Ses03', 'Ses05')}
  ex = examples['Ses05M_script01_1b_F001']
  assert (ex['dialog'], ex['improvised'], ex['speaker']) == (
      'Ses05M_script01_1b', False, 'Ses05F')
  assert examples['Ses03M_impro05a_M000']['improvised']
  assert common.EMOTION_NAMES[examples['Ses03M_impro05a_F001']['emotion']] == 'happy'
  assert examples['Ses03M_impro05a_F001']['label'] == 'exc'   # merge selectable
  assert common.EMOTION_NAMES[examples['Ses01F_impro01_M001']['emotion']] == 'other'


def test_audio_oddities(built, manual):
  _, examples = built
  by_kind = {e['kind']: e for e in manual['kept']}

  def original(kind, rate=SR):
    e = by_kind[kind]
    return examples[e['utterance']]['audio'] / 32768, dummy_data.tone(
        e['seconds'], rate, e['seed'])

  got, y = original('stereo')          # channels y and 0.5 y, averaged
  np.testing.assert_allclose(got, 0.75 * y, atol=3 / 32768)
  got, y = original('aiff')            # AIFF data under a .wav name
  np.testing.assert_allclose(got, y, atol=2 / 32768)
  got, y = original('ok')
  np.testing.assert_allclose(got, y, atol=2 / 32768)
  got, _ = original('rate')            # 44.1 kHz, resampled
  e = by_kind['rate']
  assert abs(len(got) - round(e['seconds'] * SR)) <= 1
  y16 = dummy_data.tone(e['seconds'], SR, e['seed'])[:len(got)]
  assert np.corrcoef(got[:len(y16)], y16)[0, 1] > 0.95
  assert not examples[by_kind['silent']['utterance']]['audio'].any()


def test_skips_and_notes(built):
  builder, _ = built
  build = builder.info.metadata['build']
  assert build['skipped'] == dummy_data.EXPECTED_SKIPS
  assert build['examples'] == 22
  notes = ' | '.join(build['notes'])
  for what in ('silent', '2-channel', 'AIFF', '44100 Hz', 'NaN'):
    assert what in notes, (what, notes)
  assert sum(build['notes'].values()) == 5
  summary = build['summary']
  assert '22 examples written, 5 files skipped' in summary
  assert 'four_class' in summary and '5531' in summary
  if 'skipped_files' in build:
    reasons = dict(build['skipped_files'])
    assert reasons[dummy_data.UNLABELLED_WAV] == 'wav without label line'


def test_metadata_counts_persist(built, manual):
  builder, _ = built
  meta = builder.info.metadata
  expect_all = subsets.subset_counts(
      dict(label=e['label'], session=e['session'], improvised=e['improvised'])
      for e in manual['turns'])
  expect_kept = subsets.subset_counts(
      dict(label=e['label'], session=e['session'], improvised=e['improvised'])
      for e in manual['kept'])
  assert meta['label_file_counts'] == expect_all
  assert meta['subset_counts'] == expect_kept
  assert expect_kept['subsets']['four_class']['classes'] == {
      'neutral': 5, 'happy': 6, 'sad': 3, 'angry': 3}
  # metadata.json next to the data, and reloaded with the builder.
  stored = json.loads((pathlib.Path(builder.data_dir) / 'metadata.json').read_text())
  assert stored['subset_counts'] == expect_kept
  again = ib.Builder(data_dir=str(pathlib.Path(builder.data_dir).parents[1]))
  assert again.is_prepared() and again.info.metadata['subset_counts'] == expect_kept


def test_subsets_selectable_from_fields(built):
  """What the loader filters on: raw label (+ exc or not), improvised."""
  builder, examples = built
  counts = subsets.subset_counts(examples.values())
  assert counts == builder.info.metadata['subset_counts']
  four = {u for u, ex in examples.items()
          if common.EMOTION_NAMES[ex['emotion']] in subsets.CLASSES}
  assert len(four) == counts['subsets']['four_class']['total'] == 17
  impro = {u for u in four if examples[u]['improvised']}
  assert len(impro) == counts['subsets']['four_class_improvised']['total'] == 12
  no_exc = {u for u in four if examples[u]['label'] != 'exc'}
  assert len(no_exc) == counts['subsets']['four_class_no_exc']['total'] == 14


def test_check_counts_script(built, manual, capsys):
  builder, _ = built
  data_dir = str(pathlib.Path(builder.data_dir).parents[1])
  assert check_counts.main([f'--data_dir={data_dir}']) == 0
  out = capsys.readouterr().out
  assert 'four_class_improvised' in out and 'Not the full corpus' in out
  assert check_counts.main([f'--manual_dir={manual["root"]}']) == 0
  assert '25 labelled turns' in capsys.readouterr().out


def test_manual_dir_is_the_corpus_root(manual, tmp_path):
  builder = _build(manual['root'], tmp_path)     # IEMOCAP_full_release/ itself
  assert builder.info.splits[common.ALL_SPLIT].num_examples == 22


def test_wrong_manual_dir(tmp_path):
  (tmp_path / 'wrong' / 'Session1').mkdir(parents=True)
  (tmp_path / 'wrong' / 'readme.txt').write_text('hello')
  for d in (tmp_path / 'missing', tmp_path / 'wrong'):
    with pytest.raises(FileNotFoundError) as e:
      _build(d, tmp_path / 'data')
    msg = str(e.value)
    assert str(d) in msg and 'IEMOCAP_full_release' in msg
    assert 'dialog/EmoEvaluation' in msg and 'sentences/wav' in msg


# ---------------------------------------------------------------------------
# TFDS's own conformance checks, and the real CLI.

try:  # tfds.testing needs `dill`, which requirements.txt may not pull in
  from tensorflow_datasets.testing import dataset_builder_testing as _dbt
except ImportError as _e:  # pragma: no cover
  _dbt, _DBT_MISSING = None, f'tfds.testing unavailable: {_e}'

if _dbt is not None:

  class IemocapBuilderTest(_dbt.DatasetBuilderTestCase):
    """TFDS's conformance checks (registration, build, reload, key sanity)."""
    DATASET_CLASS = ib.Builder
    SPLITS = {common.ALL_SPLIT: 22}
    SKIP_CHECKSUMS = True

    @classmethod
    def setUpClass(cls):
      import tempfile  # pylint: disable=g-import-not-at-top
      cls._dummy = tempfile.TemporaryDirectory()
      cls.EXAMPLE_DIR = str(dummy_data.write(cls._dummy.name)['root'])
      super().setUpClass()

    @classmethod
    def tearDownClass(cls):
      super().tearDownClass()
      cls._dummy.cleanup()

else:

  @pytest.mark.skip(reason=_DBT_MISSING)
  def test_tfds_dataset_builder_test_case():
    pass


def test_cli_build(manual, tmp_path):
  """`tfds build tfds_builders/iemocap --manual_dir=... --data_dir=...` from the repo."""
  proc = cli.run_build('iemocap', f'--manual_dir={manual["root"].parent}',
                       f'--data_dir={tmp_path}', timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  log = proc.stdout + proc.stderr
  assert 'build summary' in log and '5 files skipped' in log
  assert 'wav without label line' in log and 'four_class_improvised' in log
  data = tmp_path / 'iemocap' / str(ib.Builder.VERSION)
  builder = tfds.builder_from_directory(str(data))
  assert builder.info.splits[common.ALL_SPLIT].num_examples == 22
  meta = json.loads((data / 'metadata.json').read_text())
  assert meta['subset_counts']['subsets']['four_class']['total'] == 17
