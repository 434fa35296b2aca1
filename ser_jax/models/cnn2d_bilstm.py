"""Sen et al.'s 2-D CNN + BiLSTM on 40 MFCC (`cnn2d_bilstm`).

Input (130, 40, 1) MFCC "image" (3 s): conv 32 3×3 'valid' ReLU → max-pool
2×2 → conv 64 3×3 'valid' ReLU → max-pool 2×2 → dropout 0.3 → reshape to a
sequence (T', F'·64) → BiLSTM 128 per direction (final states of both
directions, Keras `Bidirectional(LSTM(128))`) → dense 128 ReLU → dense 8.
At (130, 40, 1) and 8 classes: 709,128 parameters (the issue's reading).

Padded frames are zeroed on input, and the BiLSTM scans only the valid
frames of each segment (`seq_lengths`), so padding never changes the output.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from ser_jax.models import heads
from ser_jax.models import layers


class CNN2DBiLSTM(heads.SERModel):
  conv_features: Sequence[int] = (32, 64)
  conv_kernel: Sequence[int] = (3, 3)       # (time, coefficient)
  conv_padding: str = 'VALID'
  pool: Sequence[int] = (2, 2)              # after every conv
  dropout: float = 0.3                      # after the conv blocks
  lstm_units: int = 128                     # per direction
  hidden_units: Sequence[int] = (128,)

  @nn.compact
  def __call__(self, feats, mask, gender, train: bool = False):
    x = heads.zero_padded_frames(feats.astype(self.dtype), mask)
    lengths = heads.lengths_of(mask)
    pool = tuple(self.pool)
    for i, width in enumerate(self.conv_features):
      x = nn.relu(nn.Conv(width, tuple(self.conv_kernel), padding=self.conv_padding,
                          dtype=self.dtype, name=f'conv{i}')(x))
      lengths = heads.strided_lengths(lengths, x.shape[1])
      x = layers.max_pool(x, pool, strides=pool, padding='VALID')
      lengths = heads.strided_lengths(lengths, x.shape[1], pool[0])
    if self.dropout:
      x = nn.Dropout(self.dropout)(x, deterministic=not train)
    b, t = x.shape[:2]
    x = x.reshape(b, t, -1)
    # Final hidden state of both directions (Keras Bidirectional(LSTM(128))).
    _, x = layers.LSTM(self.lstm_units, bidirectional=True, dtype=self.dtype,
                       name='bilstm')(x, lengths)
    return self.classify(x, gender, train)
