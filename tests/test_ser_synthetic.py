"""The embedded synthetic corpus: a real TFDS build of `ser_synthetic/tiny`."""
import collections

import librosa
import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders import cli
from tfds_builders import common
from tfds_builders.ser_synthetic import ser_synthetic_dataset_builder as ssb
from tfds_builders.ser_synthetic import synth

SR = common.SAMPLE_RATE
TINY = next(c for c in ssb.Builder.BUILDER_CONFIGS if c.name == 'tiny')
N_SPEAKERS = 2 * TINY.num_sessions


def _build(data_dir):
  builder = ssb.Builder(config='tiny', data_dir=str(data_dir))
  builder.download_and_prepare()
  return builder


def _load(builder):
  ds = builder.as_dataset(split=common.ALL_SPLIT, shuffle_files=False)
  examples = list(tfds.as_numpy(ds))
  for ex in examples:
    for k in ('label', 'speaker', 'session', 'path'):
      ex[k] = ex[k].decode()
  return examples


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
  builder = _build(tmp_path_factory.mktemp('tfds'))
  return builder, _load(builder)


def test_configs():
  names = [c.name for c in ssb.Builder.BUILDER_CONFIGS]
  assert set(names) == {'tiny', 'demo'}
  assert ssb.Builder.DEFAULT_CONFIG_NAME == 'demo'
  assert ssb.Builder.name == 'ser_synthetic'
  demo = next(c for c in ssb.Builder.BUILDER_CONFIGS if c.name == 'demo')
  assert demo.num_sessions == 5 and demo.takes >= 12
  assert synth.EMOTIONS == common.UNIFIED_EMOTIONS


def test_info_and_counts(tiny):
  builder, examples = tiny
  info = builder.info
  assert list(info.splits) == [common.ALL_SPLIT]
  n = N_SPEAKERS * len(common.UNIFIED_EMOTIONS) * TINY.takes
  assert info.splits[common.ALL_SPLIT].num_examples == n == len(examples)
  assert info.features['audio'].np_dtype == np.int16 and str(common.SAMPLE_RATE) in info.features['audio'].doc.desc
  names = info.features['emotion'].names   # the unified set (+ maybe extras)
  assert names[:len(common.UNIFIED_EMOTIONS)] == list(common.UNIFIED_EMOTIONS)
  assert info.supervised_keys == ('audio', 'emotion')
  assert 'take' in info.features


def test_audio_and_durations(tiny):
  _, examples = tiny
  for ex in examples:
    audio = ex['audio']
    assert audio.dtype == np.int16 and audio.ndim == 1
    assert ex['duration'] == pytest.approx(len(audio) / SR, abs=1e-4)
    assert TINY.min_duration - 0.01 <= ex['duration'] <= TINY.max_duration + 0.01
    x = audio.astype(np.float32) / 32768
    rms = np.sqrt(np.mean(x ** 2))
    assert 1e-3 < rms < 0.5, (ex['path'], rms)       # not silent, not noise
    assert np.abs(x[:int(0.05 * SR)]).max() < np.abs(x).max() / 5  # leading pause


def test_speakers_sessions_labels(tiny):
  _, examples = tiny
  speakers = sorted({ex['speaker'] for ex in examples})
  assert speakers == ['S01F', 'S02M', 'S03F', 'S04M'][:N_SPEAKERS]
  by_session = collections.defaultdict(set)
  for ex in examples:
    gender = common.GENDERS[ex['gender']]
    assert ex['speaker'][-1] == gender[0].upper()
    assert ex['session'] == f"Ses{(int(ex['speaker'][1:3]) + 1) // 2:02d}"
    by_session[ex['session']].add((ex['speaker'], gender))
    emotion = common.UNIFIED_EMOTIONS[ex['emotion']]
    assert ex['label'] == emotion
    assert 1 <= ex['take'] <= TINY.takes
    assert ex['path'] == f"{ex['speaker']}/{ex['speaker']}_{emotion}_{ex['take']:02d}.wav"
  assert len(by_session) == TINY.num_sessions
  for members in by_session.values():
    assert sorted(g for _, g in members) == ['female', 'male']
  assert len({ex['path'] for ex in examples}) == len(examples)
  counts = collections.Counter(ex['emotion'] for ex in examples)
  assert sorted(counts) == list(range(len(common.UNIFIED_EMOTIONS)))
  assert set(counts.values()) == {N_SPEAKERS * TINY.takes}


def test_keys_unique_and_deterministic(tiny, tmp_path):
  _, first = tiny
  builder = ssb.Builder(config='tiny', data_dir=str(tmp_path))
  gen = builder._generate_examples()
  keys = [k for k, _ in gen]
  assert len(set(keys)) == len(keys) == len(first)
  builder.download_and_prepare()
  second = {ex['path']: ex['audio'] for ex in _load(builder)}
  for ex in first:
    np.testing.assert_array_equal(ex['audio'], second[ex['path']])


def test_utterance_independent_of_generation_order(tiny):
  _, examples = tiny
  ex = next(e for e in examples if e['path'] == 'S02M/S02M_fearful_02.wav')
  speakers = synth.make_speakers(TINY.num_sessions, TINY.seed)
  sentences = synth.make_sentences(8, TINY.seed)
  kw = dict(seed=TINY.seed, sentences=sentences, min_duration=TINY.min_duration,
            max_duration=TINY.max_duration)
  synth.synthesize(speakers[3], 7, 1, **kw)  # something else first
  y = synth.synthesize(speakers[1], common.UNIFIED_EMOTIONS.index('fearful'), 2, **kw)
  np.testing.assert_array_equal(np.round(y * 32767).astype(np.int16), ex['audio'])


def _measure(audio):
  """(active level dB, median f0 Hz, spectral centroid Hz) of one clip."""
  x = audio.astype(np.float32) / 32768
  frame, hop = 1024, 160
  rms = librosa.feature.rms(y=x, frame_length=frame, hop_length=hop)[0]
  active = rms > rms.max() * 0.1
  level = 10 * np.log10(np.mean(rms[active] ** 2))
  f0 = librosa.yin(x, fmin=60, fmax=600, sr=SR, frame_length=frame,
                   hop_length=hop)[:len(rms)]
  centroid = librosa.feature.spectral_centroid(
      y=x, sr=SR, n_fft=frame, hop_length=hop)[0][:len(rms)]
  return level, np.median(f0[active]), np.mean(centroid[active])


def test_emotions_differ_in_intended_direction(tiny):
  _, examples = tiny
  stats = collections.defaultdict(list)   # emotion -> [(level, semitones, centroid)]
  per = {(ex['speaker'], common.UNIFIED_EMOTIONS[ex['emotion']]): [] for ex in examples}
  for ex in examples:
    per[ex['speaker'], common.UNIFIED_EMOTIONS[ex['emotion']]].append(_measure(ex['audio']))
  for (speaker, emotion), ms in per.items():
    base_f0 = np.median([m[1] for m in per[speaker, 'neutral']])
    for level, f0, centroid in ms:   # pitch relative to the speaker's neutral
      stats[emotion].append((level, 12 * np.log2(f0 / base_f0), centroid))
  mean = {e: np.mean(v, axis=0) for e, v in stats.items()}
  level, pitch, centroid = ({e: m[i] for e, m in mean.items()} for i in range(3))
  # Loudness: angry > neutral > sad, angry by clear margins.
  assert level['angry'] > level['neutral'] + 4
  assert level['neutral'] > level['sad'] and level['angry'] > level['sad'] + 6
  assert level['happy'] > level['calm'] and level['surprised'] > level['sad']
  # Pitch relative to the speaker: high-arousal emotions above, sad below.
  high = np.mean([pitch[e] for e in ('angry', 'happy', 'fearful', 'surprised')])
  low = np.mean([pitch[e] for e in ('neutral', 'calm', 'sad', 'disgust')])
  assert high > low + 2.0
  assert pitch['surprised'] > pitch['neutral'] + 2
  assert pitch['happy'] > pitch['sad'] + 1
  # Voice quality: tense angry speech is brighter than lax sad speech.
  assert centroid['angry'] > centroid['neutral'] > centroid['sad']
  # Gender: female voices well above male ones.
  f0_by_gender = collections.defaultdict(list)
  for (speaker, emotion), ms in per.items():
    if emotion == 'neutral':
      f0_by_gender[speaker[-1]] += [m[1] for m in ms]
  assert np.median(f0_by_gender['F']) > 1.4 * np.median(f0_by_gender['M'])


def test_cli_build(tmp_path):
  """`tfds build tfds_builders/ser_synthetic --config=tiny` from the repo root."""
  proc = cli.run_build('ser_synthetic', '--config=tiny', f'--data_dir={tmp_path}', timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  builder = tfds.builder_from_directory(
      str(tmp_path / 'ser_synthetic' / 'tiny' / str(ssb.Builder.VERSION)))
  n = N_SPEAKERS * len(common.UNIFIED_EMOTIONS) * TINY.takes
  assert builder.info.splits[common.ALL_SPLIT].num_examples == n
  ex = next(iter(tfds.as_numpy(builder.as_dataset(split=common.ALL_SPLIT))))
  assert ex['audio'].dtype == np.int16 and ex['audio'].size > SR
