"""Loader-level subset selection and missing-corpus errors, on a dummy IEMOCAP."""
import re

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from ser_jax import input_pipeline
from tfds_builders.iemocap import dummy_data
from tfds_builders.iemocap import iemocap_dataset_builder
from tfds_builders.iemocap import subsets

# The IEMOCAP subsets of SPEC §2 as data configs of the loader.
DATA_CONFIGS = {
    'four_class': dict(exclude_labels=(), where={}),
    'four_class_improvised': dict(exclude_labels=(), where={'improvised': True}),
    'four_class_no_exc': dict(exclude_labels=('exc',), where={}),
    'four_class_no_exc_improvised': dict(exclude_labels=('exc',), where={'improvised': True}),
}


@pytest.fixture(scope='module')
def iemocap_dir(tmp_path_factory):
  manual = tmp_path_factory.mktemp('iemocap_manual')
  dummy_data.write(manual)
  data_dir = tmp_path_factory.mktemp('iemocap_tfds')
  builder = iemocap_dataset_builder.Builder(data_dir=str(data_dir))
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  return str(data_dir), builder


def _data_cfg(data_dir, **kw):
  return ml_collections.ConfigDict({**dict(
      name='iemocap', builder_config='', data_dir=data_dir, split='all',
      classes=subsets.CLASSES, exclude_labels=(), where={}), **kw})


@pytest.mark.parametrize('subset', sorted(DATA_CONFIGS))
def test_loader_subsets_match_the_builders_counts(iemocap_dir, subset):
  data_dir, builder = iemocap_dir
  examples = list(tfds.as_numpy(builder.as_dataset(split='all')))
  expected = subsets.subset_counts(examples)['subsets'][subset]
  utts, speaker_session = input_pipeline.load_corpus(_data_cfg(data_dir, **DATA_CONFIGS[subset]))
  assert len(utts) == expected['total'] > 0
  counts = np.bincount(utts.labels, minlength=4)
  for i, c in enumerate(subsets.CLASSES):
    assert counts[i] == expected['classes'].get(c, 0)
  # Speakers come from the last '_' token of the turn id, with their session.
  assert all(speaker_session[s] == s[:5] for s in speaker_session)


def test_where_on_a_missing_field_is_an_error(iemocap_dir):
  data_dir, _ = iemocap_dir
  with pytest.raises(ValueError, match='does not have'):
    input_pipeline.load_corpus(_data_cfg(data_dir, where={'no_such_field': 1}))


def test_unprepared_corpus_names_the_build_command(tmp_path):
  cfg = _data_cfg(str(tmp_path))
  with pytest.raises(input_pipeline.CorpusNotPreparedError,
                     match=r'tfds build tfds_builders/iemocap --manual_dir=\S+ --data_dir='):
    input_pipeline.load_corpus(cfg)


def test_a_builder_config_the_corpus_lacks_is_said_not_built(tmp_path):
  """IEMOCAP has no 22k config: a union at 22k says so rather than printing a
  `tfds build --config=22k` that could not work; a config typo names the real ones."""
  cfg = _data_cfg(str(tmp_path), name=('iemocap', 'ravdess'), builder_config='22k')
  with pytest.raises(input_pipeline.CorpusNotPreparedError,
                     match=r"'iemocap' has no builder configs, not '22k' \(its audio is stored "
                           r'at 16 kHz only\)') as e:
    input_pipeline.load_corpus(cfg)
  assert 'tfds build' not in str(e.value)
  cfg = _data_cfg(str(tmp_path), name='ravdess', builder_config='22050')
  with pytest.raises(input_pipeline.CorpusNotPreparedError,
                     match=r"'ravdess' has builder configs 16k, 22k \(or any rate as "
                           r"e.g. 44100hz\), not '22050'"):
    input_pipeline.load_corpus(cfg)


def test_union_of_corpora_keeps_speakers_apart(tmp_path):
  from tfds_builders.ravdess import dummy_data as ravdess_dummy
  from tfds_builders.ravdess import ravdess_dataset_builder
  from tfds_builders.tess import dummy_data as tess_dummy
  from tfds_builders.tess import tess_dataset_builder
  data_dir = str(tmp_path / 'tfds')
  for module, maker, name in ((ravdess_dataset_builder, ravdess_dummy, 'ravdess'),
                              (tess_dataset_builder, tess_dummy, 'tess')):
    manual = tmp_path / name
    maker.make(manual, oddities=False)
    module.Builder(data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual)))
  classes = ('neutral', 'happy', 'sad', 'angry', 'fearful', 'disgust', 'surprised')
  cfg = lambda name: ml_collections.ConfigDict(dict(
      name=name, builder_config='', data_dir=data_dir, split='all', classes=classes,
      exclude_labels=(), where={}))
  single = {n: input_pipeline.load_corpus(cfg(n)) for n in ('ravdess', 'tess')}
  union, speaker_session = input_pipeline.load_corpus(cfg(('ravdess', 'tess')))
  sugar, _ = input_pipeline.load_corpus(cfg('ravdess+tess'))   # the command-line form
  np.testing.assert_array_equal(sugar.paths, union.paths)
  assert len(union) == sum(len(u) for u, _ in single.values())
  assert set(speaker_session) == {f'{n}:{s}' for n, (_, ss) in single.items() for s in ss}
  assert all(p.split('/')[0] in ('ravdess', 'tess') for p in union.paths)
  np.testing.assert_array_equal(
      np.bincount(union.labels, minlength=7),
      sum(np.bincount(u.labels, minlength=7) for u, _ in single.values()))


def test_a_corpus_built_at_22k_is_read_at_its_rate_and_checked(tmp_path):
  """`tfds build --config=22k` stores 22,050 Hz audio; a union takes the config for
  every corpus; a front end at another rate is refused with the flag to pass."""
  from ser_jax import experiment
  from tfds_builders.ravdess import dummy_data as ravdess_dummy
  from tfds_builders.ravdess import ravdess_dataset_builder
  from tfds_builders.tess import dummy_data as tess_dummy
  from tfds_builders.tess import tess_dataset_builder
  data_dir = str(tmp_path / 'tfds')
  download = lambda d: tfds.download.DownloadConfig(manual_dir=str(d))  # noqa: E731
  ravdess_dummy.make(tmp_path / 'ravdess', actors=(5,), oddities=False, seconds=0.5)
  for config in ('16k', '22k'):
    ravdess_dataset_builder.Builder(data_dir=data_dir, config=config).download_and_prepare(
        download_config=download(tmp_path / 'ravdess'))
  tess_dummy.make(tmp_path / 'tess', oddities=False)
  tess_dataset_builder.Builder(data_dir=data_dir).download_and_prepare(   # 16k only
      download_config=download(tmp_path / 'tess'))
  cfg = lambda name, config: ml_collections.ConfigDict(dict(  # noqa: E731
      name=name, builder_config=config, data_dir=data_dir, split='all',
      classes=('neutral', 'happy', 'sad', 'angry'), exclude_labels=(), where={}))
  low, _ = input_pipeline.load_corpus(cfg('ravdess', ''))       # the default: 16k
  high, _ = input_pipeline.load_corpus(cfg('ravdess', '22k'))
  assert (low.sample_rate, high.sample_rate) == (16_000, 22_050)
  np.testing.assert_array_equal(low.paths, high.paths)
  ratio = np.array([len(h) / len(w) for h, w in zip(high.audio, low.audio)])
  np.testing.assert_allclose(ratio, 22_050 / 16_000, rtol=2e-3)
  assert high.take([1, 0]).sample_rate == 22_050
  with pytest.raises(input_pipeline.CorpusNotPreparedError, match='--config=22k'):
    input_pipeline.load_corpus(cfg(('ravdess', 'tess'), '22k'))   # tess has no 22k build
  with pytest.raises(input_pipeline.CorpusNotPreparedError,   # the default rate alone
                     match=r'tfds build tfds_builders/savee --config=16k --manual_dir='):
    input_pipeline.load_corpus(cfg('ser_savee', ''))
  config = ml_collections.ConfigDict(dict(data=cfg('ravdess', '22k'),
                                          features=dict(sample_rate=16_000)))
  with pytest.raises(ValueError, match='features.sample_rate=22050'):
    experiment.load_corpus(config)
  config.features.sample_rate = 22_050
  assert experiment.load_corpus(config)[0].sample_rate == 22_050


def test_any_rate_is_built_on_request_and_read_at_it(tmp_path):
  """A rate name (`8000hz`) is a builder config made on the fly, as `tfds build
  --config='{"name": "8000hz", "sample_rate": 8000}'` makes it (the JSON the
  not-prepared error prints); it is read at its rate. Names that are neither
  registered nor a rate, and corpora without configs, are refused."""
  import json
  from tfds_builders import common
  from tfds_builders.ravdess import dummy_data as ravdess_dummy
  from tfds_builders.ravdess import ravdess_dataset_builder
  data_dir = str(tmp_path / 'tfds')
  cfg = lambda name, config: ml_collections.ConfigDict(dict(  # noqa: E731
      name=name, builder_config=config, data_dir=data_dir, split='all',
      classes=('neutral', 'happy', 'sad', 'angry'), exclude_labels=(), where={}))
  with pytest.raises(input_pipeline.CorpusNotPreparedError) as e:
    input_pipeline.load_corpus(cfg('ravdess', '8000hz'))
  arg = re.search(r"--config='(\{[^']*\})'", str(e.value))
  assert arg, str(e.value)
  config = ravdess_dataset_builder.Builder.builder_config_cls(**json.loads(arg[1]))  # as tfds build
  assert (config.name, config.sample_rate) == ('8000hz', 8000)
  ravdess_dummy.make(tmp_path / 'ravdess', actors=(5,), oddities=False, seconds=0.5)
  for c in ('16k', config):
    ravdess_dataset_builder.Builder(data_dir=data_dir, config=c).download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / 'ravdess')))
  low, _ = input_pipeline.load_corpus(cfg('ravdess', '8000hz'))
  ref, _ = input_pipeline.load_corpus(cfg('ravdess', '16k'))
  assert (low.sample_rate, ref.sample_rate) == (8000, 16000)
  np.testing.assert_array_equal(low.paths, ref.paths)
  np.testing.assert_allclose([len(a) / len(b) for a, b in zip(low.audio, ref.audio)], 0.5,
                             rtol=2e-3)
  with pytest.raises(input_pipeline.CorpusNotPreparedError,
                     match=r"has builder configs 16k, 22k \(or any rate as e.g. 44100hz\), "
                           r"not '44k'"):
    input_pipeline.load_corpus(cfg('ravdess', '44k'))
  with pytest.raises(input_pipeline.CorpusNotPreparedError, match="'iemocap' has no builder"):
    input_pipeline.load_corpus(cfg(('iemocap', 'ravdess'), '8000hz'))
  assert common.rate_config('100hz') is None and common.rate_config('22k') is None
  assert common.config_arg('22k') == '22k'


@pytest.mark.parametrize('rate,channels,subtype', [(16000, 1, 'PCM_16'), (44100, 2, 'FLOAT'),
                                                   (48000, 1, 'PCM_24')])
def test_predict_decodes_a_file_as_the_builders_do(tmp_path, rate, channels, subtype):
  import soundfile as sf
  from ser_jax import predict
  from tfds_builders import common
  rng = np.random.default_rng(rate)
  audio = rng.uniform(-1.05, 1.05, (rate // 2, channels)).astype(np.float32)
  audio[:5] = 1.0          # full scale, where the int16 rounding differs most
  path = str(tmp_path / 'x.wav')
  sf.write(path, audio, rate, subtype=subtype)
  built, _ = common.read_audio(path, 16000)
  np.testing.assert_array_equal(predict.load_audio(path, 16000), built)
