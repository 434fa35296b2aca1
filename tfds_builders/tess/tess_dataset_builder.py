"""`tess`: the Toronto emotional speech set (TESS), from --manual_dir.

    tfds build tfds_builders/tess --manual_dir=<folder holding OAF_angry/ ... YAF_sad/>
"""
from __future__ import annotations

import pathlib
import re
import sys

import numpy as np
import tensorflow_datasets as tfds

try:
  from tfds_builders import common
except ImportError:  # `tfds build tfds_builders/tess`: the `tfds` console
  # script's sys.path lacks the repository root.
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
  from tfds_builders import common

NATIVE_RATE = 24_414
EMOTIONS = {'neutral': 'neutral', 'happy': 'happy', 'sad': 'sad', 'angry': 'angry',
            'fear': 'fearful', 'disgust': 'disgust', 'ps': 'surprised'}
SPEAKERS = {'oa': ('OAF', 64), 'ya': ('YAF', 26)}   # both female
_SPEAKER_DIR = re.compile(r'(oa|ya)f?_.+', re.I)

_DESCRIPTION = f"""\
TESS (Toronto emotional speech set): 2,800 clips, two female speakers (OAF,
aged 64, and YAF, aged 26) saying "Say the word ..." for 200 target words in 7
emotions (anger, disgust, fear, happiness, pleasant surprise, sadness,
neutral).

The label comes from the FILE name `SPK_word_emo.wav` (emo: angry disgust fear
happy neutral ps sad), not from the folder, whose names vary in case and
spelling (`OAF_Fear`, `YAF_pleasant_surprised`, ...); the speaker prefix is
matched case-insensitively on its first two letters (`OA_...` is OAF). Any
folder layout is accepted (the Kaggle copy nests the folders once more in
`TESS Toronto emotional speech set data/`); a recording found twice is kept
once. Files are read by content (not all are RIFF WAVE) and resampled from
their own rate (usually 24,414 Hz) to 16 kHz (`--config=22k`: 22,050 Hz) mono int16.
Features: audio, emotion (unified: fear fearful, ps surprised, others the
same), label (the file's emo, e.g. 'ps'), speaker ('OAF'/'YAF'), gender
(female), session (''), path (relative to --manual_dir), duration (s), word
(the target word, lower case), age (64/26).
One split, `{common.ALL_SPLIT}`, holds every clip. `info.metadata['build']`
records what was skipped or noted, and why.
"""


def _folder_emotion(folder: str) -> str | None:
  """The emotion a speaker-emotion folder name means, or None."""
  m = _SPEAKER_DIR.fullmatch(folder)
  if not m:
    return None
  rest = folder.split('_', 1)[1].lower()
  if rest.startswith('pleasant') or 'surprise' in rest:
    return 'ps'
  return rest if rest in EMOTIONS else None


def parse(rel: str) -> common.Parsed:
  """Metadata of one file from its name `SPK_word_emo.wav`."""
  parts = rel.split('/')
  stem = parts[-1][:-4]
  tokens = stem.split('_')
  if len(tokens) < 3 or not all(tokens):
    raise common.Unparseable(f'{parts[-1]!r} is not SPK_word_emo.wav')
  spk, word, emo = tokens[0], '_'.join(tokens[1:-1]).lower(), tokens[-1].lower()
  if spk[:2].lower() not in SPEAKERS:
    raise common.Unparseable(f'unknown speaker prefix {spk!r} in {parts[-1]!r} '
                             '(expected OAF or YAF)')
  if emo not in EMOTIONS:
    raise common.Unparseable(f'unknown emotion {emo!r} in {parts[-1]!r} '
                             f'(expected one of {", ".join(EMOTIONS)})')
  speaker, age = SPEAKERS[spk[:2].lower()]
  notes = []
  if spk != speaker:
    notes.append(f'named with speaker prefix {spk!r} (read as {speaker})')
  folder = _folder_emotion(parts[-2]) if len(parts) > 1 else None
  if folder is not None and folder != emo:
    notes.append(f'labelled {emo!r} by name but in a {folder!r} folder (name used)')
  fields = {'emotion': EMOTIONS[emo], 'label': emo, 'speaker': speaker,
            'gender': 'female', 'session': '', 'word': word, 'age': age}
  return common.Parsed(fields, key=(speaker, word, emo), notes=tuple(notes))


class Builder(common.ManualCorpusMixin, tfds.core.GeneratorBasedBuilder):
  """TESS: 2,800 clips, 2 female speakers, 7 emotions."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DIR_HINT = '~/corpora/TESS'   # what --manual_dir points at, in messages
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Download TESS from the University of Toronto Dataverse,
https://doi.org/10.5683/SP2/E8H2MF (CC BY-NC-ND 4.0; one archive per
speaker-emotion folder), or the Kaggle copy `ejlok1/toronto-emotional-speech-set-tess`.
Pass as --manual_dir the folder that holds the 14 speaker-emotion folders
(`OAF_angry/`, ..., `YAF_sad/`) or any folder above them (the Kaggle copy's
`TESS Toronto emotional speech set data/` nesting is fine). Files are
`OAF_word_emo.wav` / `YAF_word_emo.wav`.
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=common.base_features(
            sample_rate=self.sample_rate,
            word=tfds.features.Text(),
            age=tfds.features.Scalar(dtype=np.int32),
        ),
        supervised_keys=('audio', 'emotion'),
        homepage='https://doi.org/10.5683/SP2/E8H2MF',
        citation="""@data{SP2/E8H2MF_2020,
  author={Pichora-Fuller, M. Kathleen and Dupuis, Kate},
  publisher={Borealis}, title={{Toronto emotional speech set (TESS)}},
  year={2020}, doi={10.5683/SP2/E8H2MF}}""",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = common.check_manual_dir(
        common.manual_dir_of(dl_manager), 'TESS',
        'the TESS speaker-emotion folders OAF_angry/ ... YAF_sad/ (at most a few '
        'folders down, e.g. under "TESS Toronto emotional speech set data/") '
        'holding SPK_word_emo.wav files',
        lambda p: bool(common.find_dirs(p, _SPEAKER_DIR.fullmatch, max_depth=3)))
    log = common.SkipLog(self.name)
    candidates = common.collect(common.list_files(root, log), parse, log)
    if not candidates:
      raise FileNotFoundError(
          f'TESS: no usable SPK_word_emo.wav file under {root}.\n' + log.summary(0))
    return {common.ALL_SPLIT: self._generate_examples(candidates, log)}

  def _generate_examples(self, candidates, log):
    yield from common.generate_examples(candidates, log, self.info,
                                        sample_rate=self.sample_rate,
                                        native_rate=NATIVE_RATE)
