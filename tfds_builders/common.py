"""Shared pieces of every corpus builder: label sets and the feature schema.

Builders import nothing from `ser_jax`; `ser_jax` reads label names back from
`ds_info.features`, so these lists are the single source of truth.
"""
from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

SAMPLE_RATE = 16_000

# SPEC §3: the unified emotion set, in RAVDESS order.
UNIFIED_EMOTIONS = (
    'neutral', 'calm', 'happy', 'sad', 'angry', 'fearful', 'disgust', 'surprised')
# Gender ids follow the headline paper: 1 for male, 0 for female.
GENDERS = ('female', 'male')

# One split holding the whole corpus; speaker/session metadata travels with
# every example and the input pipeline selects folds (see README). ('all' is
# TFDS's reserved name for the union of a builder's splits, which is what the
# input pipeline reads.)
ALL_SPLIT = 'corpus'


def base_features(**corpus_fields) -> tfds.features.FeaturesDict:
  """The schema every builder shares, plus corpus-specific fields."""
  return tfds.features.FeaturesDict({
      'audio': tfds.features.Audio(
          shape=(None,), dtype=np.int16, sample_rate=SAMPLE_RATE),
      'emotion': tfds.features.ClassLabel(names=list(UNIFIED_EMOTIONS)),
      'label': tfds.features.Text(),        # the corpus's own label
      'speaker': tfds.features.Text(),
      'gender': tfds.features.ClassLabel(names=list(GENDERS)),
      'session': tfds.features.Text(),      # recording session ('' if none)
      'path': tfds.features.Text(),         # relative path in the corpus
      'duration': tfds.features.Scalar(dtype=np.float32),  # seconds
      **corpus_fields,
  })
