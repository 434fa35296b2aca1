"""`ser_crema_d`: CREMA-D audio (all 7,442 clips), from --manual_dir.

    tfds build tfds_builders/crema_d --manual_dir=<CREMA-D repository folder>

Named `ser_crema_d`, not `crema_d`: TFDS ships its own `crema_d` (automatic
download, 7,438 clips, another schema). Registering a second `crema_d` breaks
TFDS's catalog (whichever registers second raises "already registered"), and
both would write `<data_dir>/crema_d/1.0.0`.
"""
from __future__ import annotations

import csv
import os
import pathlib
import re
import sys

import numpy as np
import tensorflow_datasets as tfds

try:
  from tfds_builders import common
except ImportError:  # `tfds build tfds_builders/crema_d`: the `tfds` console
  # script's sys.path lacks the repository root.
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
  from tfds_builders import common

NATIVE_RATE = 16_000
EMOTIONS = {'NEU': 'neutral', 'HAP': 'happy', 'SAD': 'sad', 'ANG': 'angry',
            'FEA': 'fearful', 'DIS': 'disgust'}
SENTENCES = {
    'IEO': "It's eleven o'clock",
    'TIE': "That is exactly what happened",
    'IOM': "I'm on my way to the meeting",
    'IWW': "I wonder what this is about",
    'TAI': "The airplane is almost full",
    'MTI': "Maybe tomorrow it will be cold",
    'IWL': "I would like a new alarm clock",
    'ITH': "I think I have a doctor's appointment",
    'DFA': "Don't forget a jacket",
    'ITS': "I think I've seen this before",
    'TSI': "The surface is slick",
    'WSI': "We'll stop in a couple of minutes",
}
LEVELS = {'LO': 'low', 'MD': 'medium', 'HI': 'high', 'XX': 'unspecified'}
DEMOGRAPHICS = 'VideoDemographics.csv'
_NAME = re.compile(r'(\d{4})_([A-Za-z]{3})_([A-Za-z]{3})_([A-Za-z]{1,2})\.wav', re.I)

_DESCRIPTION = f"""\
CREMA-D (Crowd-sourced Emotional Multimodal Actors Dataset), audio: 7,442
clips of 91 actors (1001-1091; 48 male, 43 female, ages 20-74) saying 12
sentences in 6 emotions (anger, disgust, fear, happy, neutral, sad), the
sentence IEO at low, medium and high intensity and unspecified ('XX') level,
the others at unspecified level.

Every clip of `AudioWAV/` is kept, including the all-zero one and the pairs of
byte-identical clips under different labels (separate corpus entries).
Stored as 16 kHz mono int16 (`--config=22k`: 22,050 Hz).
Features: audio, emotion (unified: NEU neutral,
HAP happy, SAD sad, ANG angry, FEA fearful, DIS disgust), label (the code,
e.g. 'ANG'), speaker (the actor id, e.g. '1001'), gender (from
{DEMOGRAPHICS}), session (''), path (relative to --manual_dir, e.g.
'AudioWAV/1001_DFA_ANG_XX.wav'), duration (s), sentence (code, e.g. 'DFA'),
level ('LO', 'MD', 'HI' or 'XX'), age (int), race, ethnicity (as in the csv).
A clip whose actor has no row in {DEMOGRAPHICS} is skipped and counted.
One split, `{common.ALL_SPLIT}`, holds every clip. `info.metadata['build']`
records what was skipped or noted, and why.
"""


def _find_demographics(root, audio_dirs):
  """VideoDemographics.csv in root, next to an AudioWAV/ or in it."""
  for place in [root] + [d.parent for d in audio_dirs] + list(audio_dirs):
    for child in sorted(place.iterdir()):
      if child.name.lower() == DEMOGRAPHICS.lower() and child.is_file():
        return child
  return None


def read_demographics(path) -> dict[str, dict]:
  """{actor id: {'gender', 'age', 'race', 'ethnicity'}} from VideoDemographics.csv.

  Rows that cannot be used (unknown sex, bad age) map to a string: the reason.
  """
  out = {}
  with open(path, newline='', encoding='utf-8-sig') as f:
    reader = csv.DictReader(f)
    for row in reader:
      row = {(k or '').strip().lower(): (v or '').strip() for k, v in row.items()}
      actor = row.get('actorid', '')
      if not actor:
        continue
      sex = row.get('sex', '').lower()
      if sex not in common.GENDERS:
        out[actor] = f'actor {actor} has Sex {row.get("sex", "")!r} in {DEMOGRAPHICS}'
        continue
      try:
        age = int(float(row.get('age', '')))
      except ValueError:
        age = -1
      out[actor] = {'gender': sex, 'age': age, 'race': row.get('race', ''),
                    'ethnicity': row.get('ethnicity', '')}
  return out


def make_parse(demographics: dict):
  """The name parser, closed over the actors' demographics."""

  def parse(rel: str) -> common.Parsed:
    name = rel.rsplit('/', 1)[-1]
    m = _NAME.fullmatch(name)
    if not m:
      raise common.Unparseable(f'{name!r} is not AAAA_SSS_EEE_LL.wav')
    actor, sentence, emo, level = m.group(1), *(g.upper() for g in m.groups()[1:])
    if emo not in EMOTIONS:
      raise common.Unparseable(f'unknown emotion {emo!r} in {name!r}')
    if sentence not in SENTENCES:
      raise common.Unparseable(f'unknown sentence {sentence!r} in {name!r}')
    if level not in LEVELS:
      raise common.Unparseable(f'unknown level {level!r} in {name!r}')
    demo = demographics.get(actor)
    if not isinstance(demo, dict):
      raise common.Unparseable(
          demo or f'actor {actor} has no row in {DEMOGRAPHICS}', kind='no demographics row')
    fields = {
        'emotion': EMOTIONS[emo], 'label': emo, 'speaker': actor,
        'gender': demo['gender'], 'session': '', 'sentence': sentence,
        'level': level, 'age': demo['age'], 'race': demo['race'],
        'ethnicity': demo['ethnicity'],
    }
    return common.Parsed(fields, key=name.upper())

  return parse


class Builder(common.ManualCorpusMixin, tfds.core.GeneratorBasedBuilder):
  """CREMA-D audio: 7,442 clips, 91 actors, 6 emotions."""

  name = 'ser_crema_d'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DIR_HINT = '~/corpora/CREMA-D'   # what --manual_dir points at, in messages
  MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Clone https://github.com/CheyneyComputerScience/CREMA-D (Open Database
License; the audio is stored with git-lfs: `git lfs install` first, or
`git lfs pull` after cloning, else AudioWAV/ holds LFS pointers, not audio).
Pass as --manual_dir the repository folder, which holds `AudioWAV/`
(AAAA_SSS_EEE_LL.wav) and `{DEMOGRAPHICS}` (ActorID, Age, Sex, Race,
Ethnicity). A copy with only AudioWAV/ (e.g. from Kaggle) needs
{DEMOGRAPHICS} from the repository placed next to AudioWAV/.
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=common.base_features(
            sample_rate=self.sample_rate,
            sentence=tfds.features.Text(),
            level=tfds.features.Text(),
            age=tfds.features.Scalar(dtype=np.int32),
            race=tfds.features.Text(),
            ethnicity=tfds.features.Text(),
        ),
        supervised_keys=('audio', 'emotion'),
        homepage='https://github.com/CheyneyComputerScience/CREMA-D',
        citation="""@article{cao2014crema,
  title={{CREMA-D}: Crowd-sourced emotional multimodal actors dataset},
  author={Cao, Houwei and Cooper, David G and Keutmann, Michael K and Gur, Ruben C and Nenkova, Ani and Verma, Ragini},
  journal={IEEE Transactions on Affective Computing}, volume={5}, number={4},
  pages={377--390}, year={2014}}""",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    is_audio_dir = lambda n: n.lower() == 'audiowav'
    root = common.check_manual_dir(
        common.manual_dir_of(dl_manager), 'CREMA-D',
        f'the CREMA-D repository: AudioWAV/ (AAAA_SSS_EEE_LL.wav files) and {DEMOGRAPHICS}',
        lambda p: bool(common.find_dirs(p, is_audio_dir, max_depth=2)))
    audio_dirs = common.find_dirs(root, is_audio_dir, max_depth=2)
    csv_path = _find_demographics(root, audio_dirs)
    if csv_path is None:
      raise FileNotFoundError(
          f'CREMA-D: no {DEMOGRAPHICS} under --manual_dir {root} (looked next to '
          f'{", ".join(str(d) for d in audio_dirs)}): genders come from it. Take it '
          'from https://github.com/CheyneyComputerScience/CREMA-D and put it next '
          'to AudioWAV/.')
    demographics = read_demographics(csv_path)
    log = common.SkipLog(self.name)
    files = []
    for d in audio_dirs:
      prefix = os.path.relpath(d, root).replace(os.sep, '/')
      files += [(full, rel if prefix == '.' else f'{prefix}/{rel}')
                for full, rel in common.list_files(d, log)]
    candidates = common.collect(files, make_parse(demographics), log)
    if not candidates:
      raise FileNotFoundError(
          f'CREMA-D: no usable AAAA_SSS_EEE_LL.wav file in {audio_dirs}.\n' + log.summary(0))
    return {common.ALL_SPLIT: self._generate_examples(candidates, log)}

  def _generate_examples(self, candidates, log):
    yield from common.generate_examples(candidates, log, self.info,
                                        sample_rate=self.sample_rate,
                                        native_rate=NATIVE_RATE)
