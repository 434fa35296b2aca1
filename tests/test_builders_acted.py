"""TFDS builders of the acted corpora: RAVDESS, CREMA-D, TESS and SAVEE.

Each corpus is written at test time in its real layout(s), oddities included,
by the builder's `dummy_data.make`, built into a temporary data_dir and read
back; every skip must be counted with its reason, every kept oddity noted.
"""
import collections
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import soxr
import tensorflow_datasets as tfds

from tfds_builders import cli
from tfds_builders import common
from tfds_builders.crema_d import crema_d_dataset_builder as crema_d_b
from tfds_builders.crema_d import dummy_data as crema_d_dummy
from tfds_builders.ravdess import dummy_data as ravdess_dummy
from tfds_builders.ravdess import ravdess_dataset_builder as ravdess_b
from tfds_builders.savee import dummy_data as savee_dummy
from tfds_builders.savee import savee_dataset_builder as savee_b
from tfds_builders.tess import dummy_data as tess_dummy
from tfds_builders.tess import tess_dataset_builder as tess_b

REPO = pathlib.Path(__file__).resolve().parents[1]
SR = common.SAMPLE_RATE
BUILD = common.BUILD_METADATA_KEY


def _build(module, manual_dir, data_dir):
  builder = module.Builder(data_dir=str(data_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  examples = {}
  for ex in tfds.as_numpy(builder.as_dataset(split=common.ALL_SPLIT, shuffle_files=False)):
    ex = {k: v.decode() if isinstance(v, bytes) else v for k, v in ex.items()}
    ex['emotion'] = common.EMOTION_NAMES[ex['emotion']]
    ex['gender'] = common.GENDERS[ex['gender']]
    examples[ex['path']] = ex
  return builder, examples


def _corpus(tmp_path_factory, module, maker, **kw):
  manual = tmp_path_factory.mktemp('manual')
  expect = maker.make(manual, **kw)
  builder, examples = _build(module, manual, tmp_path_factory.mktemp('data'))
  return builder, examples, expect, manual


def _check_common(builder, examples, expect, native_rate):
  """Counts, schema, audio, durations, skips: what every corpus shares."""
  info = builder.info
  assert list(info.splits) == [common.ALL_SPLIT]
  assert info.splits[common.ALL_SPLIT].num_examples == len(expect['examples'])
  assert set(examples) == set(expect['examples'])
  assert info.features['audio'].np_dtype == np.int16 and str(common.SAMPLE_RATE) in info.features['audio'].doc.desc
  assert info.features['emotion'].names == list(common.EMOTION_NAMES)
  assert info.supervised_keys == ('audio', 'emotion')
  for rel, ex in examples.items():
    want = expect['examples'][rel]
    audio = ex['audio']
    assert audio.dtype == np.int16 and audio.ndim == 1, rel
    rate = want.get('rate', native_rate)
    assert abs(len(audio) - want['frames'] * SR / rate) <= 1, rel
    assert ex['duration'] == pytest.approx(len(audio) / SR, abs=1e-5)
    assert ex['session'] == want.get('session', ''), rel   # the acted corpora have none
    assert ex['emotion'] in common.UNIFIED_EMOTIONS
    if rel not in expect.get('silent', ()):
      assert np.abs(audio).max() > 1000, rel
  # Every file not kept is skipped with its reason, and counted.
  build = info.metadata[BUILD]
  skipped = dict(build['skipped_files'])
  assert set(skipped) == set(expect['skipped'])
  for rel, key in expect['skipped'].items():
    assert skipped[rel].startswith(key), (rel, skipped[rel])
  counts = collections.Counter(r.split(':')[0] for r in skipped.values())
  assert build['skipped'] == dict(counts)
  assert build['examples'] == len(examples)
  return build


def _noted(build, what):
  return sorted(p for p, w in build['noted_files'] if w.startswith(what))


def _downmixed(path, rate):
  x, r = sf.read(path, dtype='float32', always_2d=True)
  assert r == rate
  y = soxr.resample(x.mean(axis=1), rate, SR, quality='HQ')
  return np.round(np.clip(y, -1, 32767 / 32768) * 32768).astype(np.int16)


# ---------------------------------------------------------------------------
# RAVDESS

@pytest.fixture(scope='module')
def ravdess(tmp_path_factory):
  return _corpus(tmp_path_factory, ravdess_b, ravdess_dummy, layout='flat')


def test_ravdess(ravdess):
  builder, examples, expect, manual = ravdess
  assert builder.name == 'ravdess'
  build = _check_common(builder, examples, expect, ravdess_b.NATIVE_RATE)
  for rel, ex in examples.items():
    want = expect['examples'][rel]
    emotion = ravdess_b.EMOTIONS[want['emotion']]
    assert ex['label'] == ex['emotion'] == emotion
    assert ex['actor'] == want['actor'] and ex['speaker'] == f"{want['actor']:02d}"
    assert ex['gender'] == ('male' if want['actor'] % 2 else 'female')
    assert ex['intensity'] == ravdess_b.INTENSITIES[want['intensity']]
    assert ex['statement'] == ravdess_b.STATEMENTS[want['statement']]
    assert ex['repetition'] == want['repetition']
    assert rel.startswith(f"Actor_{want['actor']:02d}/")
  assert {ex['speaker'] for ex in examples.values()} == {'01', '02'}
  assert set(ex['emotion'] for ex in examples.values()) == set(common.UNIFIED_EMOTIONS)
  # Kept oddities: silent (all zeros), stereo, 44.1 kHz, AIFF under .wav.
  (silent,) = expect['silent']
  assert not examples[silent]['audio'].any()
  assert _noted(build, 'all zeros') == [silent]
  assert _noted(build, '2-channel') == sorted(expect['stereo'])
  assert _noted(build, 'at 44100 Hz') == expect['resampled']
  assert _noted(build, 'AIFF') == expect['aiff']
  stereo = expect['stereo'][0]
  np.testing.assert_allclose(examples[stereo]['audio'],
                             _downmixed(manual / stereo, ravdess_b.NATIVE_RATE), atol=1)
  assert build['skipped'] == {'empty file (0 bytes)': 1, 'undecodable': 1,
                              'not audio-only speech': 2, 'unparseable name': 3,
                              'macOS metadata file': 1}
  assert build['ignored'] == {'.txt': 1}
  assert 'skipped 2: not audio-only speech' in build['summary']


def test_ravdess_nested_layout(tmp_path_factory):
  builder, examples, expect, _ = _corpus(
      tmp_path_factory, ravdess_b, ravdess_dummy, layout='nested', actors=(3, 4),
      oddities=False)
  _check_common(builder, examples, expect, ravdess_b.NATIVE_RATE)
  assert all(p.startswith('Audio_Speech_Actors_01-24/Actor_0') for p in examples)
  assert {ex['speaker']: ex['gender'] for ex in examples.values()} == {
      '03': 'male', '04': 'female'}


def test_ravdess_kaggle_copy_read_once(tmp_path):
  """The Kaggle copy holds Actor_NN/ and audio_speech_actors_01-24/Actor_NN/."""
  expect = ravdess_dummy.make(tmp_path, layout='both', oddities=False)
  log = common.SkipLog('ravdess')
  cands = common.collect(common.list_files(tmp_path, log), ravdess_b.parse, log)
  assert sorted(c.rel for c in cands) == sorted(expect['examples'])
  assert log.reasons == {'duplicate recording': len(expect['examples'])}


def test_ravdess_full_actor_names():
  names = ravdess_dummy.full_actor(7)
  assert len(names) == len(set(names)) == 60
  fields = [ravdess_b.parse(f'Actor_07/{n}').fields for n in names]
  assert collections.Counter(f['emotion'] for f in fields) == {
      e: 4 if e == 'neutral' else 8 for e in common.UNIFIED_EMOTIONS}
  assert not any(f['emotion'] == 'neutral' and f['intensity'] == 'strong' for f in fields)


# ---------------------------------------------------------------------------
# CREMA-D

@pytest.fixture(scope='module')
def crema_d(tmp_path_factory):
  return _corpus(tmp_path_factory, crema_d_b, crema_d_dummy)


def test_crema_d(crema_d):
  builder, examples, expect, _ = crema_d
  assert builder.name == 'ser_crema_d'
  build = _check_common(builder, examples, expect, crema_d_b.NATIVE_RATE)
  for rel, ex in examples.items():
    want = expect['examples'][rel]
    age, sex, race, eth = expect['actors'][want['speaker']]
    assert ex['speaker'] == want['speaker']
    assert ex['label'] == want['label']
    assert ex['emotion'] == crema_d_b.EMOTIONS[want['label']]
    assert ex['gender'] == sex and ex['age'] == age
    assert ex['race'] == race and ex['ethnicity'] == eth
    assert ex['sentence'] == want['sentence'] and ex['level'] == want['level']
  assert {ex['gender'] for ex in examples.values()} == {'male', 'female'}
  assert {ex['emotion'] for ex in examples.values()} == {
      'neutral', 'happy', 'sad', 'angry', 'fearful', 'disgust'}
  (silent,) = expect['silent']
  assert not examples[silent]['audio'].any()
  assert _noted(build, 'all zeros') == [silent]
  # Byte-identical clips under different labels: both kept.
  ((a, b),) = expect['identical']
  np.testing.assert_array_equal(examples[a]['audio'], examples[b]['audio'])
  assert examples[a]['label'] != examples[b]['label']
  assert build['skipped'] == {'no demographics row': 2, 'empty file (0 bytes)': 1,
                              'git-lfs pointer, not audio': 1, 'unparseable name': 4}
  reason = dict(build['skipped_files'])['AudioWAV/1092_DFA_ANG_XX.wav']
  assert '1092' in reason and 'VideoDemographics.csv' in reason


def test_crema_d_demographics_csv(tmp_path):
  (tmp_path / 'd.csv').write_text(
      '\ufeff"ActorID","Age","Sex","Race","Ethnicity"\n"1001","51","Male","Caucasian",'
      '"Not Hispanic"\n1002, 21 ,Female,Asian,Not Hispanic\n1003,30,Unknown,Asian,x\n')
  d = crema_d_b.read_demographics(tmp_path / 'd.csv')
  assert d['1001'] == {'gender': 'male', 'age': 51, 'race': 'Caucasian',
                       'ethnicity': 'Not Hispanic'}
  assert d['1002']['gender'] == 'female' and d['1002']['age'] == 21
  parse = crema_d_b.make_parse(d)
  with pytest.raises(common.Unparseable, match='Unknown') as e:
    parse('AudioWAV/1003_DFA_ANG_XX.wav')
  assert e.value.kind == 'no demographics row'
  assert parse('AudioWAV/1002_ieo_hap_hi.wav').fields['label'] == 'HAP'


# ---------------------------------------------------------------------------
# TESS

@pytest.fixture(scope='module')
def tess(tmp_path_factory):
  return _corpus(tmp_path_factory, tess_b, tess_dummy, layout='kaggle')


def test_tess_kaggle_nested(tess):
  builder, examples, expect, manual = tess
  assert builder.name == 'tess'
  build = _check_common(builder, examples, expect, tess_b.NATIVE_RATE)
  nest = f'{tess_dummy.KAGGLE}/{tess_dummy.KAGGLE}/'
  assert all(p.startswith(nest) for p in examples)
  for rel, ex in examples.items():
    want = expect['examples'][rel]
    assert ex['speaker'] == want['speaker'] and ex['word'] == want['word']
    assert ex['label'] == want['label'] and ex['emotion'] == tess_b.EMOTIONS[want['label']]
    assert ex['gender'] == 'female'
    assert ex['age'] == {'OAF': 64, 'YAF': 26}[ex['speaker']]
  assert {ex['emotion'] for ex in examples.values()} == set(common.UNIFIED_EMOTIONS) - {'calm'}
  ps = [ex for ex in examples.values() if ex['label'] == 'ps']
  assert ps and all(ex['emotion'] == 'surprised' for ex in ps)
  # Label from the file name, not the folder; 'OA_' read as OAF.
  odd = nest + 'YAF_sad/YAF_bean_angry.wav'
  assert examples[odd]['label'] == 'angry'
  assert sorted(expect['notes']) == sorted(
      _noted(build, 'labelled') + _noted(build, 'named with speaker prefix'))
  (oa,) = [p for p in examples if '/OA_' in p]
  assert examples[oa]['speaker'] == 'OAF'
  assert _noted(build, 'AIFF') == expect['aiff']
  assert _noted(build, 'at 22050 Hz') == expect['resampled']
  assert _noted(build, '2-channel') == expect['stereo']
  (stereo,) = expect['stereo']
  np.testing.assert_allclose(examples[stereo]['audio'],
                             _downmixed(manual / stereo, tess_b.NATIVE_RATE), atol=1)
  assert build['skipped'] == {'empty file (0 bytes)': 1, 'unparseable name': 4}


def test_tess_layouts_read_once(tmp_path):
  for layout in ('plain', 'kaggle_both'):
    root = tmp_path / layout
    expect = tess_dummy.make(root, layout=layout, words=('back',), oddities=False)
    log = common.SkipLog('tess')
    cands = common.collect(common.list_files(root, log), tess_b.parse, log)
    assert sorted(c.rel for c in cands) == sorted(expect['examples'])
    assert len(cands) == 14
    assert log.total == len(expect['skipped'])


# ---------------------------------------------------------------------------
# SAVEE

@pytest.fixture(scope='module')
def savee(tmp_path_factory):
  return _corpus(tmp_path_factory, savee_b, savee_dummy, layout='AudioData')


def _check_savee(examples, expect):
  for rel, ex in examples.items():
    want = expect['examples'][rel]
    assert ex['speaker'] == want['speaker'] and ex['take'] == want['take']
    assert ex['label'] == want['label'] and ex['emotion'] == savee_b.EMOTIONS[want['label']]
    assert ex['gender'] == 'male'
  labels = collections.Counter(ex['label'] for ex in examples.values())
  assert set(labels) == set(savee_dummy.PREFIXES)
  assert labels['n'] == 2 * labels['a']
  assert {ex['emotion'] for ex in examples.values()} == set(common.UNIFIED_EMOTIONS) - {'calm'}
  assert {ex['speaker'] for ex in examples.values()} == set(savee_b.SPEAKERS)


def test_savee_audiodata(savee):
  builder, examples, expect, manual = savee
  assert builder.name == 'ser_savee'
  build = _check_common(builder, examples, expect, savee_b.NATIVE_RATE)
  _check_savee(examples, expect)
  assert examples['AudioData/DC/sa01.wav']['label'] == 'sa'
  assert examples['AudioData/DC/su02.wav']['emotion'] == 'surprised'
  assert _noted(build, '2-channel') == expect['stereo']
  assert build['skipped'] == {'empty file (0 bytes)': 1, 'unparseable name': 4,
                              'unknown speaker': 1}


def test_savee_flat_all(tmp_path_factory):
  builder, examples, expect, _ = _corpus(
      tmp_path_factory, savee_b, savee_dummy, layout='ALL', speakers=('JE', 'KL'),
      takes=1)
  _check_common(builder, examples, expect, savee_b.NATIVE_RATE)
  assert all(p.startswith('ALL/') for p in examples)
  assert examples['ALL/JE_sa01.wav']['label'] == 'sa'
  assert examples['ALL/KL_su01.wav']['emotion'] == 'surprised'


def test_savee_both_layouts_read_once(tmp_path):
  expect = savee_dummy.make(tmp_path, layout='both', takes=1, oddities=False)
  log = common.SkipLog('savee')
  cands = common.collect(common.list_files(tmp_path, log), savee_b.parse, log)
  assert sorted(c.rel for c in cands) == sorted(expect['examples'])
  assert log.reasons == {'duplicate recording': len(expect['examples'])}


def test_savee_prefixes():
  for name, emo, take in [('sa03.wav', 'sa', 3), ('su15.wav', 'su', 15),
                          ('a01.wav', 'a', 1), ('n30.wav', 'n', 30)]:
    f = savee_b.parse(f'AudioData/JK/{name}').fields
    assert (f['label'], f['take'], f['speaker']) == (emo, take, 'JK')
    f = savee_b.parse(f'ALL/JK_{name}').fields
    assert (f['label'], f['take'], f['speaker']) == (emo, take, 'JK')
  for bad in ['AudioData/JK/s01.wav', 'AudioData/JK/sx01.wav', 'AudioData/JK/e01.wav']:
    with pytest.raises(common.Unparseable):
      savee_b.parse(bad)


# ---------------------------------------------------------------------------
# --manual_dir errors, names, the CLI

@pytest.mark.parametrize('module,what', [
    (ravdess_b, 'Actor_01'), (crema_d_b, 'AudioWAV'), (tess_b, 'OAF_angry'),
    (savee_b, 'AudioData')])
def test_wrong_manual_dir_fails_at_once(tmp_path, module, what):
  def prepare(manual_dir):
    b = module.Builder(data_dir=str(tmp_path / 'data'))
    b.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))

  with pytest.raises(FileNotFoundError, match='does not exist') as e:
    prepare(str(tmp_path / 'missing'))
  assert what in str(e.value) and '--manual_dir' in str(e.value)
  wrong = tmp_path / 'wrong'
  (wrong / 'some_folder').mkdir(parents=True)
  (wrong / 'some_folder' / 'x.wav').write_bytes(b'')
  with pytest.raises(FileNotFoundError, match='does not look like') as e:
    prepare(str(wrong))
  assert what in str(e.value)
  with pytest.raises(FileNotFoundError, match='no --manual_dir was given') as e:
    prepare(None)   # no --manual_dir at all
  assert what in str(e.value)
  assert not (tmp_path / 'data' / module.Builder.name).exists()   # nothing left behind


def test_crema_d_without_demographics_fails_at_once(tmp_path):
  (tmp_path / 'AudioWAV').mkdir()
  common.write_audio(tmp_path / 'AudioWAV' / '1001_DFA_ANG_XX.wav',
                     common.dummy_signal(0.2, 16000, 0), 16000)
  b = crema_d_b.Builder(data_dir=str(tmp_path / 'data'))
  with pytest.raises(FileNotFoundError, match='VideoDemographics.csv'):
    b.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path)))


def test_only_unusable_files_fails_at_once(tmp_path):
  (tmp_path / 'Actor_01').mkdir()
  (tmp_path / 'Actor_01' / 'readme.wav').write_bytes(b'x')
  b = ravdess_b.Builder(data_dir=str(tmp_path / 'data'))
  with pytest.raises(FileNotFoundError, match='no usable') as e:
    b.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path)))
  assert 'unparseable name' in str(e.value)


def test_names_do_not_clash_with_tfds_catalog():
  """Ours and TFDS's crema_d/savee coexist, in either import order."""
  script = textwrap.dedent('''
      import sys, tempfile
      import tensorflow_datasets as tfds
      if sys.argv[1] == 'tfds_first':
        assert tfds.builder_cls('crema_d').__module__.startswith('tensorflow_datasets')
      import tfds_builders.crema_d.crema_d_dataset_builder as c
      import tfds_builders.savee.savee_dataset_builder as s
      import tfds_builders.ravdess.ravdess_dataset_builder as r
      import tfds_builders.tess.tess_dataset_builder as t
      d = tempfile.mkdtemp()
      assert tfds.builder_cls('mnist').__name__ == 'MNIST'
      assert tfds.builder_cls('crema_d').__name__ == 'CremaD'
      assert tfds.builder_cls('savee').__module__.startswith('tensorflow_datasets')
      for name, mod in [('ser_crema_d', c), ('ser_savee', s), ('ravdess', r), ('tess', t)]:
        b = tfds.builder(name, data_dir=d)
        assert type(b) is mod.Builder, (name, type(b))
        assert b.info.features['audio'].np_dtype.__name__ == 'int16' and '16000' in b.info.features['audio'].doc.desc
      print('ok')
      ''')
  env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL='2')
  for order in ('ours_first', 'tfds_first'):
    proc = subprocess.run([sys.executable, '-c', script, order], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and 'ok' in proc.stdout, proc.stderr[-3000:]
    assert 'already registered' not in proc.stderr


def test_cli_build_ravdess(tmp_path):
  """`tfds build tfds_builders/ravdess --manual_dir=...` from the repo root."""
  manual = tmp_path / 'manual'
  expect = ravdess_dummy.make(manual, layout='nested', actors=(5,), oddities=False)
  (manual / 'Audio_Speech_Actors_01-24' / 'Actor_05' / 'empty.wav').write_bytes(b'')
  proc = cli.run_build('ravdess', '--config=16k', f'--manual_dir={manual}',
                       f'--data_dir={tmp_path / "data"}', timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = proc.stdout + proc.stderr
  assert 'build summary' in out and 'skipped 1: unparseable name' in out
  builder = tfds.builder_from_directory(str(tmp_path / 'data' / 'ravdess' / '16k' / '1.0.0'))
  assert builder.info.splits[common.ALL_SPLIT].num_examples == len(expect['examples'])
  assert builder.info.metadata[BUILD]['skipped'] == {'unparseable name': 1}
  ex = next(iter(tfds.as_numpy(builder.as_dataset(split=common.ALL_SPLIT))))
  assert ex['audio'].dtype == np.int16 and ex['speaker'] == b'05'


def test_cli_wrong_manual_dir_is_one_paragraph(tmp_path):
  """A user's typo in --manual_dir: the expected layout, no traceback, no empty
  dataset folder left in the data dir."""
  data = tmp_path / 'data'
  proc = cli.run_build('ravdess', f'--manual_dir={tmp_path / "typo"}', f'--data_dir={data}',
                       timeout=300)
  assert proc.returncode == 1
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('error: RAVDESS: ') and 'Actor_01' in last, last
  assert 'typo does not exist' in last
  assert not (data / 'ravdess').exists() and not (data / 'downloads').exists()
