"""`ravdess`: the RAVDESS speech recordings (audio-only), from --manual_dir.

    tfds build tfds_builders/ravdess --manual_dir=<folder holding Actor_01 ... Actor_24>
"""
from __future__ import annotations

import pathlib
import re
import sys

import numpy as np
import tensorflow_datasets as tfds

try:
  from tfds_builders import common
except ImportError:  # `tfds build tfds_builders/ravdess`: the `tfds` console
  # script's sys.path lacks the repository root.
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
  from tfds_builders import common

NATIVE_RATE = 48_000
# File name fields (RAVDESS README): modality-channel-emotion-intensity-
# statement-repetition-actor, two digits each.
EMOTIONS = {1: 'neutral', 2: 'calm', 3: 'happy', 4: 'sad', 5: 'angry',
            6: 'fearful', 7: 'disgust', 8: 'surprised'}
INTENSITIES = {1: 'normal', 2: 'strong'}
STATEMENTS = {1: 'Kids are talking by the door', 2: 'Dogs are sitting by the door'}
MODALITIES = {1: 'full-AV', 2: 'video-only', 3: 'audio-only'}
CHANNELS = {1: 'speech', 2: 'song'}
_NAME = re.compile(r'(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav', re.I)
_ACTOR_DIR = re.compile(r'actor_\d\d', re.I)

_DESCRIPTION = f"""\
RAVDESS (Ryerson Audio-Visual Database of Emotional Speech and Song), the
audio-only speech part: 24 actors (odd = male, even = female) x 60 files =
1,440 clips of two statements in 8 emotions (neutral, calm, happy, sad, angry,
fearful, disgust, surprised), normal and strong intensity (no strong neutral),
two repetitions each.

Stored as 16 kHz (`--config=22k`: 22,050 Hz) mono int16 (from 48 kHz 16-bit, some
stereo: down-mixed).
Features: audio, emotion (unified = RAVDESS's own names), label (RAVDESS
emotion name), speaker ('01'..'24', the actor number), gender, session (''),
path (relative to --manual_dir), duration (s), actor (int), intensity
('normal'/'strong'), statement (the sentence text), repetition (1/2).
Only files with modality 03 (audio-only) and vocal channel 01 (speech) are
examples; song or video files found under --manual_dir are skipped and counted.
Copies of a recording found twice (e.g. the Kaggle copy holds both Actor_NN/
and audio_speech_actors_01-24/Actor_NN/) are kept once.
One split, `{common.ALL_SPLIT}`, holds every clip. `info.metadata['build']`
records what was skipped or noted, and why.
"""


def parse(rel: str) -> common.Parsed:
  """Metadata of one file from its name `MM-VV-EE-II-SS-RR-AA.wav`."""
  name = rel.rsplit('/', 1)[-1]
  m = _NAME.fullmatch(name)
  if not m:
    raise common.Unparseable(
        f'{name!r} is not MM-VV-EE-II-SS-RR-AA.wav (seven two-digit fields)')
  modality, channel, emo, intensity, statement, repetition, actor = map(int, m.groups())
  if modality != 3 or channel != 1:
    what = f'{MODALITIES.get(modality, "unknown")} {CHANNELS.get(channel, "unknown")}'
    raise common.Unparseable(
        f'not an audio-only speech file (modality {modality:02d}, vocal channel '
        f'{channel:02d} = {what}; only 03-01 are used)',
        kind='not audio-only speech')
  if emo not in EMOTIONS:
    raise common.Unparseable(f'unknown emotion code {emo:02d} in {name!r}')
  if intensity not in INTENSITIES:
    raise common.Unparseable(f'unknown intensity code {intensity:02d} in {name!r}')
  if statement not in STATEMENTS:
    raise common.Unparseable(f'unknown statement code {statement:02d} in {name!r}')
  if not 1 <= actor <= 99:
    raise common.Unparseable(f'actor {actor:02d} in {name!r}')
  notes = []
  folder = rel.split('/')[-2] if '/' in rel else ''
  if _ACTOR_DIR.fullmatch(folder) and int(folder[-2:]) != actor:
    notes.append(f'in folder {folder} but named for actor {actor:02d} (name used)')
  fields = {
      'emotion': EMOTIONS[emo],
      'label': EMOTIONS[emo],
      'speaker': f'{actor:02d}',
      'gender': 'male' if actor % 2 else 'female',
      'session': '',
      'actor': actor,
      'intensity': INTENSITIES[intensity],
      'statement': STATEMENTS[statement],
      'repetition': repetition,
  }
  return common.Parsed(fields, key=name.lower(), notes=tuple(notes))


class Builder(common.ManualCorpusMixin, tfds.core.GeneratorBasedBuilder):
  """RAVDESS speech, audio-only: 1,440 clips, 24 actors, 8 emotions."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DIR_HINT = '~/corpora/RAVDESS'   # what --manual_dir points at, in messages
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download `Audio_Speech_Actors_01-24.zip` (208 MB) from Zenodo,
https://zenodo.org/records/1188976 (CC BY-NC-SA 4.0), and unzip it. Pass as
--manual_dir the folder that holds `Actor_01/ ... Actor_24/` or the
`Audio_Speech_Actors_01-24/` folder above them (either works; so does the
Kaggle copy `uwrfkaggler/ravdess-emotional-speech-audio`, whose duplicate
folder is read once). Files are `Actor_NN/03-01-EE-II-SS-RR-NN.wav`.
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=common.base_features(
            sample_rate=self.sample_rate,
            actor=tfds.features.Scalar(dtype=np.int32),
            intensity=tfds.features.Text(),
            statement=tfds.features.Text(),
            repetition=tfds.features.Scalar(dtype=np.int32),
        ),
        supervised_keys=('audio', 'emotion'),
        homepage='https://zenodo.org/records/1188976',
        citation="""@article{livingstone2018ravdess,
  title={The Ryerson Audio-Visual Database of Emotional Speech and Song (RAVDESS)},
  author={Livingstone, Steven R. and Russo, Frank A.},
  journal={PLoS ONE}, volume={13}, number={5}, pages={e0196391}, year={2018}}""",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = common.check_manual_dir(
        common.manual_dir_of(dl_manager), 'RAVDESS',
        'the RAVDESS speech actors: Actor_01/ ... Actor_24/ (possibly under '
        'Audio_Speech_Actors_01-24/) holding 03-01-EE-II-SS-RR-NN.wav files',
        lambda p: bool(common.find_dirs(p, _ACTOR_DIR.fullmatch, max_depth=3)))
    log = common.SkipLog(self.name)
    candidates = common.collect(common.list_files(root, log), parse, log)
    if not candidates:
      raise FileNotFoundError(
          f'RAVDESS: no usable 03-01-EE-II-SS-RR-NN.wav file under {root}.\n'
          + log.summary(0))
    return {common.ALL_SPLIT: self._generate_examples(candidates, log)}

  def _generate_examples(self, candidates, log):
    yield from common.generate_examples(candidates, log, self.info,
                                        sample_rate=self.sample_rate,
                                        native_rate=NATIVE_RATE)
