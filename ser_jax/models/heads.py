"""Pieces shared by the model zoo: `SERModel` (the common fields, the optional
gender branch and the classifier head) and frame-length bookkeeping for
padded segments.

The head is called from inside a model's `@nn.compact` method, so the layers
it creates belong to that model and keep flat names (`gender_embedding`,
`gender_dense`, `hidden`, `logits`), whichever model calls it.
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


class SERModel(nn.Module):
  """Base of every model in the zoo: the fields they share and their head.

  A model adds its encoder's fields (overriding these defaults where its
  paper differs) and ends its `@nn.compact __call__` with
  `return self.classify(x, gender, train)`.
  """
  num_classes: int
  use_gender: bool = False                  # Bhushan et al.'s gender branch, on any model
  gender_embed_dim: int = 300
  gender_units: int = 64
  hidden_units: Sequence[int] | int = ()
  hidden_dropout: float = 0.0
  dtype: Any = jnp.float32                  # compute dtype (params stay float32)

  def classify(self, x, gender, train: bool, input_dropout: float = 0.0):
    """Utterance representation [B, D] → float32 logits [B, num_classes].

    x → dropout(input_dropout) → [gender branch concatenated] → for each width
    in hidden_units: dense → ReLU → dropout(hidden_dropout) → dense(num_classes).
    Dense layers are named `hidden`, `hidden1`, ... and `logits` in the
    calling model's scope.
    """
    if input_dropout:
      x = nn.Dropout(input_dropout)(x, deterministic=not train)
    if self.use_gender:
      x = gender_concat(x, gender, embed_dim=self.gender_embed_dim, units=self.gender_units,
                        dtype=self.dtype)
    hidden = self.hidden_units
    if isinstance(hidden, int):
      hidden = (hidden,) if hidden else ()
    for i, width in enumerate(hidden):
      x = nn.relu(nn.Dense(width, dtype=self.dtype, name='hidden' if i == 0 else f'hidden{i}')(x))
      if self.hidden_dropout:
        x = nn.Dropout(self.hidden_dropout)(x, deterministic=not train)
    return nn.Dense(self.num_classes, dtype=self.dtype, name='logits')(x).astype(jnp.float32)


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
