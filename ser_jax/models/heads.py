"""Pieces shared by the model zoo: the optional gender branch, the classifier
head, and frame-length bookkeeping for padded segments.

The helpers are plain functions called from inside a module's `@nn.compact`
method, so the layers they create belong to that module and keep flat names
(`gender_embedding`, `gender_dense`, `hidden`, `logits`), whichever model
calls them.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp


def gender_concat(x, gender, *, embed_dim: int, units: int, dtype: Any = jnp.float32):
  """[x, relu(Dense(units)(Embed(2, embed_dim)(gender)))] on the last axis.

  Bhushan et al.'s gender input: embedding (0 female, 1 male) → dense → ReLU,
  concatenated with the utterance representation before the classifier.
  """
  g = nn.Embed(2, embed_dim, name='gender_embedding')(gender)
  g = nn.relu(nn.Dense(units, dtype=dtype, name='gender_dense')(g))
  return jnp.concatenate([x, g.astype(x.dtype)], axis=-1)


def classifier(x, gender, num_classes: int, *, use_gender: bool = False,
               gender_embed_dim: int = 300, gender_units: int = 64,
               hidden_units: Sequence[int] | int = (), input_dropout: float = 0.0,
               hidden_dropout: float = 0.0, train: bool = False, dtype: Any = jnp.float32):
  """Utterance representation [B, D] → float32 logits [B, num_classes].

  x → dropout(input_dropout) → [gender branch concatenated] → for each width
  in hidden_units: dense → ReLU → dropout(hidden_dropout) → dense(num_classes).
  Dense layers are named `hidden`, `hidden1`, ... and `logits`.
  """
  if input_dropout:
    x = nn.Dropout(input_dropout)(x, deterministic=not train)
  if use_gender:
    x = gender_concat(x, gender, embed_dim=gender_embed_dim, units=gender_units, dtype=dtype)
  if isinstance(hidden_units, int):
    hidden_units = (hidden_units,) if hidden_units else ()
  for i, width in enumerate(hidden_units):
    x = nn.relu(nn.Dense(width, dtype=dtype, name='hidden' if i == 0 else f'hidden{i}')(x))
    if hidden_dropout:
      x = nn.Dropout(hidden_dropout)(x, deterministic=not train)
  return nn.Dense(num_classes, dtype=dtype, name='logits')(x).astype(jnp.float32)


# ---------------------------------------------------------------------------
# Valid-frame bookkeeping. Masks are prefixes (the input pipeline zero-pads
# the tail of a segment), so a mask is carried as per-example lengths.

def lengths_of(mask):
  """Valid frames [B] (int32) of a prefix mask [B, T]."""
  return mask.sum(axis=1).astype(jnp.int32)


def zero_padded_frames(x, mask):
  """x [B, T, ...] with the frames outside the mask set to 0 (the training
  mean after normalisation), so whatever the padding holds cannot leak."""
  m = mask.reshape(mask.shape + (1,) * (x.ndim - 2)).astype(x.dtype)
  return x * m


def strided_lengths(lengths, t_out: int, stride: int = 1):
  """Valid output frames of a conv or pool along time: output frame t is
  valid iff input frame t * stride is (the first input a VALID window reads,
  about the centre of a SAME one), i.e. ceil(length / stride), in [1, t_out]."""
  return jnp.clip(-(-lengths // stride), 1, t_out).astype(jnp.int32)
