"""The attention CNN-BiLSTM family (Chen et al. ACRNN; Bhushan et al. Models 1-2).

Conv 5×3 (first layer 128 maps) → max-pool 2×2 → conv layers of 256 maps →
linear 768 → BiLSTM (a scan over time, padded frames masked) → attention
pooling over time → [gender embedding → dense] concatenated → dense → logits.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ser_jax import cli
from ser_jax.models import heads
from ser_jax.models import layers


def _masked_mean(x, mask):
  """Mean of x [B, T, D] over the valid frames of mask [B, T]."""
  m = mask[..., None].astype(x.dtype)
  return (x * m).sum(axis=1) / jnp.maximum(m.sum(axis=1), 1)


def _pool_mask(mask, window: int):
  """A pooled frame is valid if any of its input frames was (VALID pooling)."""
  b, t = mask.shape
  t_out = t // window
  return mask[:, :t_out * window].reshape(b, t_out, window).any(axis=-1)


class SelfAttention(nn.Module):
  """Scaled dot-product self-attention over time, padded keys masked.

  Q, K, V are dense projections of width `dim` split over `heads`; with one
  head and no output projection this is the paper's single-head layer.
  """
  dim: int = 256
  heads: int = 1
  activation: str = 'relu'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask):
    if self.dim % self.heads:
      raise cli.UsageError(f'attention dim {self.dim} not divisible by {self.heads} heads')
    b, t, _ = x.shape
    d = self.dim // self.heads
    q, k, v = (nn.Dense(self.dim, dtype=self.dtype, name=n)(x).reshape(b, t, self.heads, d)
               for n in ('query', 'key', 'value'))
    scores = jnp.einsum('bqhd,bkhd->bhqk', q, k) / jnp.sqrt(d).astype(q.dtype)
    scores = jnp.where(mask[:, None, None, :], scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores.astype(jnp.float32), axis=-1).astype(v.dtype)
    out = jnp.einsum('bhqk,bkhd->bqhd', weights, v).reshape(b, t, self.dim)
    if self.heads > 1:
      out = nn.Dense(self.dim, dtype=self.dtype, name='out')(out)
    return getattr(jax.nn, self.activation)(out) if self.activation else out


class AdditiveAttentionPool(nn.Module):
  """Bahdanau-style attention pooling: softmax_t(vᵀ tanh(W h_t + b)) · h."""
  dim: int = 256
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask):
    e = nn.Dense(1, use_bias=False, dtype=self.dtype, name='score')(
        jnp.tanh(nn.Dense(self.dim, dtype=self.dtype, name='proj')(x)))[..., 0]
    e = jnp.where(mask, e.astype(jnp.float32), jnp.finfo(jnp.float32).min)
    alpha = jax.nn.softmax(e, axis=-1).astype(x.dtype)
    return jnp.einsum('bt,btd->bd', alpha, x)


class ConvBiLSTMAttention(heads.SERModel):
  """Bhushan et al. Model 2 (`pooling='self_attention'`) and Model 1 ('additive')."""
  conv_features: Sequence[int] = (128, 256, 256, 256, 256, 256)
  conv_kernel: Sequence[int] = (5, 3)       # (time, frequency)
  pool: Sequence[int] = (2, 2)              # after the first conv only
  linear_units: int = 768
  lstm_units: int = 128                     # per direction
  pooling: str = 'self_attention'
  attention_dim: int = 256
  attention_heads: int = 1
  attention_activation: str = 'relu'
  use_gender: bool = True
  hidden_units: int = 64

  @nn.compact
  def __call__(self, feats, mask, gender, train: bool = False):
    """feats [B, T, F, C] → logits [B, num_classes] (float32)."""
    x = feats.astype(self.dtype)
    for i, width in enumerate(self.conv_features):
      x = nn.relu(nn.Conv(width, tuple(self.conv_kernel), padding='SAME',
                          dtype=self.dtype, name=f'conv{i}')(x))
      if i == 0:
        x = layers.max_pool(x, tuple(self.pool), strides=tuple(self.pool), padding='VALID')
        mask = _pool_mask(mask, self.pool[0])
    b, t = x.shape[:2]
    x = nn.Dense(self.linear_units, dtype=self.dtype, name='linear')(x.reshape(b, t, -1))
    lengths = jnp.maximum(mask.sum(axis=1), 1).astype(jnp.int32)
    x, _ = layers.LSTM(self.lstm_units, bidirectional=True, dtype=self.dtype,
                       name='bilstm')(x, lengths)
    if self.pooling == 'self_attention':
      x = SelfAttention(self.attention_dim, self.attention_heads,
                        self.attention_activation, dtype=self.dtype, name='attention')(x, mask)
      x = _masked_mean(x, mask)              # global average pooling over time
    elif self.pooling == 'additive':
      x = AdditiveAttentionPool(self.attention_dim, dtype=self.dtype, name='attention')(x, mask)
    else:
      raise cli.UsageError(f'unknown pooling {self.pooling!r}')
    return self.classify(x, gender, train)
