"""`ser_savee`: the Surrey Audio-Visual Expressed Emotion (SAVEE) audio, from --manual_dir.

    tfds build tfds_builders/savee --manual_dir=<folder holding AudioData/ or ALL/>

Named `ser_savee`, not `savee`: TFDS ships its own `savee` (another schema);
registering a second `savee` breaks TFDS's catalog (whichever registers second
raises "already registered"), and both would write `<data_dir>/savee/1.0.0`.
"""
from __future__ import annotations

import pathlib
import re
import sys

import numpy as np
import tensorflow_datasets as tfds

try:
  from tfds_builders import common
except ImportError:  # `tfds build tfds_builders/savee`: the `tfds` console
  # script's sys.path lacks the repository root.
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
  from tfds_builders import common

NATIVE_RATE = 44_100
# Emotion prefixes: 'sa' and 'su' must be tried before the one-letter ones.
EMOTIONS = {'sa': 'sad', 'su': 'surprised', 'a': 'angry', 'd': 'disgust',
            'f': 'fearful', 'h': 'happy', 'n': 'neutral'}
SPEAKERS = ('DC', 'JE', 'JK', 'KL')   # all male
_EMO = '(sa|su|a|d|f|h|n)'
_FLAT = re.compile(rf'([A-Za-z]{{2}})_{_EMO}(\d+)\.wav', re.I)    # ALL/DC_sa01.wav
_NESTED = re.compile(rf'{_EMO}(\d+)\.wav', re.I)                  # AudioData/DC/sa01.wav
_LAYOUT_DIRS = {'audiodata', 'all'} | {s.lower() for s in SPEAKERS}

_DESCRIPTION = f"""\
SAVEE (Surrey Audio-Visual Expressed Emotion), audio: 480 British English
utterances by 4 male speakers (DC, JE, JK, KL), 7 emotions: neutral (30 takes
per speaker) and anger, disgust, fear, happiness, sadness, surprise (15 each).

Accepts the release layout `AudioData/SPK/eNN.wav` and the flat Kaggle layout
`ALL/SPK_eNN.wav` (a recording found in both is kept once); the emotion prefix
is one of a d f h n sa su ('sa'/'su' matched first). Resampled from 44.1 kHz
to 16 kHz (`--config=22k`: 22,050 Hz) mono int16.
Features: audio, emotion (unified: n neutral, h happy, sa sad, a angry,
f fearful, d disgust, su surprised), label (the prefix, e.g. 'sa'), speaker
('DC', 'JE', 'JK', 'KL'), gender (male), session (''), path (relative to
--manual_dir), duration (s), take (the number NN).
One split, `{common.ALL_SPLIT}`, holds every clip. `info.metadata['build']`
records what was skipped or noted, and why.
"""


def parse(rel: str) -> common.Parsed:
  """Metadata of `.../SPK/eNN.wav` or `.../SPK_eNN.wav`."""
  parts = rel.split('/')
  name = parts[-1]
  m = _FLAT.fullmatch(name)
  if m:
    spk, emo, take = m.group(1).upper(), m.group(2).lower(), int(m.group(3))
  else:
    m = _NESTED.fullmatch(name)
    if not m:
      raise common.Unparseable(
          f'{name!r} is neither eNN.wav nor SPK_eNN.wav (e in a d f h n sa su)')
    if len(parts) < 2 or not re.fullmatch('[A-Za-z]{2}', parts[-2]):
      raise common.Unparseable(
          f'{rel!r}: an eNN.wav name outside a speaker folder (DC, JE, JK, KL)')
    spk, emo, take = parts[-2].upper(), m.group(1).lower(), int(m.group(2))
  if spk not in SPEAKERS:
    raise common.Unparseable(
        f'{spk!r} of {rel!r} is not a SAVEE speaker ({", ".join(SPEAKERS)})',
        kind='unknown speaker')
  fields = {'emotion': EMOTIONS[emo], 'label': emo, 'speaker': spk, 'gender': 'male',
            'session': '', 'take': take}
  return common.Parsed(fields, key=(spk, emo, take))


class Builder(common.ManualCorpusMixin, tfds.core.GeneratorBasedBuilder):
  """SAVEE audio: 480 utterances, 4 male speakers, 7 emotions."""

  name = 'ser_savee'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DIR_HINT = '~/corpora/SAVEE'   # what --manual_dir points at, in messages
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Register at http://kahlan.eps.surrey.ac.uk/savee/ (free for research) and
download `AudioData.zip`; unzip it. Pass as --manual_dir the folder that holds
`AudioData/` (with DC/, JE/, JK/, KL/ of a01.wav ... su15.wav), or `AudioData/`
itself. The flat Kaggle copy (`ejlok1/surrey-audiovisual-expressed-emotion-savee`:
`ALL/DC_a01.wav`, ...) works too: pass the folder holding `ALL/`.
"""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=common.base_features(
            sample_rate=self.sample_rate, take=tfds.features.Scalar(dtype=np.int32)),
        supervised_keys=('audio', 'emotion'),
        homepage='http://kahlan.eps.surrey.ac.uk/savee/',
        citation="""@inproceedings{jackson2011savee,
  title={Surrey Audio-Visual Expressed Emotion (SAVEE) database},
  author={Haq, Sanaul and Jackson, Philip J. B.},
  publisher={University of Surrey, Guildford, UK}, year={2011}}""",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = common.check_manual_dir(
        common.manual_dir_of(dl_manager), 'SAVEE',
        'SAVEE audio: AudioData/<DC|JE|JK|KL>/<e><NN>.wav (the release) or '
        'ALL/<SPK>_<e><NN>.wav (the Kaggle copy), e in a d f h n sa su',
        lambda p: bool(common.find_dirs(p, lambda n: n.lower() in _LAYOUT_DIRS,
                                        max_depth=3)))
    log = common.SkipLog(self.name)
    candidates = common.collect(common.list_files(root, log), parse, log)
    if not candidates:
      raise FileNotFoundError(
          f'SAVEE: no usable SAVEE .wav file under {root}.\n' + log.summary(0))
    return {common.ALL_SPLIT: self._generate_examples(candidates, log)}

  def _generate_examples(self, candidates, log):
    yield from common.generate_examples(candidates, log, self.info,
                                        sample_rate=self.sample_rate,
                                        native_rate=NATIVE_RATE)
