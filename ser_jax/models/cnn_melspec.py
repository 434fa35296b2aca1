"""Gomes et al.'s custom CNN on 128×128 Mel-spectrogram images (`cnn_melspec`).

Four blocks of Conv2D 5×5 stride 1 'same' + ReLU (256, 256, 128, 64 maps),
each followed by max-pooling over 5×5 clusters (stride 2, 'same': 128 → 64 →
32 → 16 → 8); two dropouts of 0.3 (after the third block and after the
hidden dense layer); flatten → dense 32 ReLU → dropout → dense 8 softmax.
On the paper's 128×128×3 images this is 2,813,672 trainable parameters,
exactly the paper's count, which fixes the details its lost figure showed
(the 5×5/2 pooling, the 32-unit dense layer, no batch normalisation).

The image is [B, T (time), F (Mel), C]; frames outside the mask (the image
of a clip shorter than offset + duration) are zeroed, i.e. set to the
training mean, unless `mask_input=False` (then the padded frames are seen as
the silence the front end made of them, as in the paper's images).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from ser_jax.models import heads
from ser_jax.models import layers


class CNNMelSpec(heads.SERModel):
  conv_features: Sequence[int] = (256, 256, 128, 64)
  conv_kernel: Sequence[int] = (5, 5)
  pool_window: Sequence[int] = (5, 5)
  pool_stride: Sequence[int] = (2, 2)
  block_dropout: float = 0.3
  dropout_after_block: int = 2              # 0-based index of the block followed by dropout
  hidden_units: Sequence[int] = (32,)
  hidden_dropout: float = 0.3
  mask_input: bool = True

  @nn.compact
  def __call__(self, feats, mask, gender, train: bool = False):
    x = feats.astype(self.dtype)
    if self.mask_input:
      x = heads.zero_padded_frames(x, mask)
    for i, width in enumerate(self.conv_features):
      x = nn.relu(nn.Conv(width, tuple(self.conv_kernel), padding='SAME', dtype=self.dtype,
                          name=f'conv{i}')(x))
      x = layers.max_pool(x, tuple(self.pool_window), strides=tuple(self.pool_stride),
                      padding='SAME')
      if self.block_dropout and i == self.dropout_after_block:
        x = nn.Dropout(self.block_dropout)(x, deterministic=not train)
    x = x.reshape(x.shape[0], -1)
    return self.classify(x, gender, train)
