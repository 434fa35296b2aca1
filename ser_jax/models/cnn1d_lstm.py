"""Ranjan et al.'s 1-D CNN + LSTM on MFCC, zero-crossing rate and chroma (`cnn1d_lstm`).

The paper gives the blocks (1-D convolutions over time → LSTM → dense →
softmax over 8 emotions) but not their sizes (its architecture figure is
lost). We take the widths of the Keras SER recipe for these four corpora that
the paper's features (MFCC + ZCR + chroma_stft) come from, and that Gomes
et al.'s custom CNN follows too: per frame the F·C features are the input
channels; four blocks of Conv1D 5 'same' (256, 256, 128, 64 maps) → ReLU →
max-pool 5 stride 2 'same', dropout 0.2 after the third block; then an LSTM
of 128 units over the pooled frames (its final state at each segment's last
valid frame); dense 32 ReLU → dropout 0.3 → dense 8.

Padded frames are zeroed on input and the LSTM stops at each segment's valid
length, so padding never changes the output.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from ser_jax.models import heads
from ser_jax.models import layers


class CNN1DLSTM(heads.SERModel):
  conv_features: Sequence[int] = (256, 256, 128, 64)
  conv_kernel: int = 5                      # frames
  pool_window: int = 5
  pool_stride: int = 2                      # 'same' pooling after every conv
  block_dropout: float = 0.2
  dropout_after_block: int = 2              # 0-based index of the block followed by dropout
  lstm_units: int = 128
  lstm_layers: int = 1
  hidden_units: Sequence[int] = (32,)
  hidden_dropout: float = 0.3

  @nn.compact
  def __call__(self, feats, mask, gender, train: bool = False):
    b, t = feats.shape[:2]
    x = heads.zero_padded_frames(feats.astype(self.dtype), mask).reshape(b, t, -1)
    lengths = heads.lengths_of(mask)
    for i, width in enumerate(self.conv_features):
      x = nn.relu(nn.Conv(width, (self.conv_kernel,), padding='SAME', dtype=self.dtype,
                          name=f'conv{i}')(x))
      x = layers.max_pool(x, (self.pool_window,), strides=(self.pool_stride,), padding='SAME')
      lengths = heads.strided_lengths(lengths, x.shape[1], self.pool_stride)
      if self.block_dropout and i == self.dropout_after_block:
        x = nn.Dropout(self.block_dropout)(x, deterministic=not train)
    for i in range(self.lstm_layers):
      x, last = layers.LSTM(self.lstm_units, dtype=self.dtype,
                            name=f'lstm{i}' if i else 'lstm')(x, lengths)
    x = last  # final hidden state, after each segment's last valid frame
    return self.classify(x, gender, train)
