"""`ser_synthetic`: the embedded default corpus, synthesised at build time.

    tfds build tfds_builders/ser_synthetic                # demo (default)
    tfds build tfds_builders/ser_synthetic --config=tiny  # for tests
"""
from __future__ import annotations

import dataclasses
import pathlib
import sys

import numpy as np
import tensorflow_datasets as tfds

try:
  from tfds_builders import common
except ImportError:  # `tfds build tfds_builders/ser_synthetic` run by the
  # `tfds` console script, whose sys.path lacks the repository root.
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
  from tfds_builders import common
from tfds_builders.ser_synthetic import synth

assert synth.EMOTIONS == tuple(common.UNIFIED_EMOTIONS)
assert synth.SAMPLE_RATE == common.SAMPLE_RATE

_DESCRIPTION = """\
A small acted-emotion speech corpus synthesised on the fly, so that the whole
ser_jax pipeline (build, train, evaluate, predict) runs with no corpus at hand.
Nothing is downloaded and nothing is read from `--manual_dir`.

Layout (like IEMOCAP): sessions of two speakers each, one female and one male
(speakers `S01F`, `S02M`, ... ; sessions `Ses01`, ...).  Every speaker utters
every one of the 8 unified emotions (neutral calm happy sad angry fearful
disgust surprised) `takes` times; take t reads nonsense sentence t mod 8, so
the text carries no emotion information.  Clips are 16 kHz mono int16.

Synthesis (numpy, `synth.py`): a source-filter model.  A Rosenberg glottal
pulse train at a time-varying f0 with jitter and shimmer, breathy aspiration
noise and a variable open quotient drives a cascade of formant resonators
(F1-F5, vowel targets with transitions, scaled by the speaker's vocal-tract
length) with an adjustable spectral tilt; syllables have consonant onsets
(fricative noise, stop closures and bursts, nasals, approximants), words and
phrases are separated by pauses.  Speakers differ in f0 (male about 100-130 Hz,
female about 180-240 Hz), vocal-tract length, rate, voice quality and recording
level.  Emotions act relative to the speaker's baseline on pitch level, range and
contour shape (falling, flat, rising, rise-fall), speaking rate and pauses,
loudness and stress, spectral tilt and tenseness vs breathiness, jitter,
shimmer and tremor.  Each utterance draws its parameters at random around the
emotion means (with a shared arousal latent) and each speaker has its own
expressiveness and idiosyncrasies, so classes overlap partly (calm/neutral,
happy/surprised, fearful/sad): learnable from log-Mel features, not trivially.
Generation is deterministic: an utterance depends only on (config seed,
speaker, emotion, take).

Features: audio, emotion (unified), label (= emotion name), speaker, gender,
session, path (`S01F/S01F_angry_03.wav`), duration (s), take (1-based).
One split, `{split}`, holds every clip: speaker-independent folds are chosen
from the speaker/session metadata.
""".format(split=common.ALL_SPLIT)


@dataclasses.dataclass(eq=False)
class SerSyntheticConfig(tfds.core.BuilderConfig):
  """Size of the synthetic corpus."""
  num_sessions: int = 5        # two speakers (F, M) per session
  takes: int = 12              # utterances per speaker and emotion
  min_duration: float = 1.5    # clip length range (s)
  max_duration: float = 4.5
  variability: float = 1.0     # scales the within-class spread
  seed: int = 0


class Builder(tfds.core.GeneratorBasedBuilder):
  """Synthetic acted-emotion speech: 8 emotions, IEMOCAP-like sessions."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [
      SerSyntheticConfig(
          name='demo',
          description='10 speakers in 5 sessions, 8 emotions x 12 takes, '
                      '1.5-4.5 s clips (960 clips, about 47 min).',
          num_sessions=5, takes=12, min_duration=1.5, max_duration=4.5),
      SerSyntheticConfig(
          name='tiny',
          description='4 speakers in 2 sessions, 8 emotions x 3 takes, '
                      '1-2 s clips (96 clips), for tests.',
          num_sessions=2, takes=3, min_duration=1.0, max_duration=2.0),
  ]
  DEFAULT_CONFIG_NAME = 'demo'

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=_DESCRIPTION,
        features=common.base_features(take=tfds.features.Scalar(dtype=np.int32)),
        supervised_keys=('audio', 'emotion'),
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # nothing to download
    return {common.ALL_SPLIT: self._generate_examples()}

  def _generate_examples(self):
    cfg = self.builder_config
    speakers = synth.make_speakers(cfg.num_sessions, cfg.seed)
    sentences = synth.make_sentences(8, cfg.seed)
    for spk in speakers:
      for e, emotion in enumerate(synth.EMOTIONS):
        for take in range(1, cfg.takes + 1):
          y = synth.synthesize(
              spk, e, take, seed=cfg.seed, sentences=sentences,
              min_duration=cfg.min_duration, max_duration=cfg.max_duration,
              variability=cfg.variability)
          audio = np.round(y * 32767.0).astype(np.int16)
          path = f'{spk.name}/{spk.name}_{emotion}_{take:02d}.wav'
          yield path, {
              'audio': audio,
              'emotion': emotion,
              'label': emotion,
              'speaker': spk.name,
              'gender': spk.gender,
              'session': spk.session,
              'path': path,
              'duration': np.float32(len(audio) / synth.SAMPLE_RATE),
              'take': take,
          }
