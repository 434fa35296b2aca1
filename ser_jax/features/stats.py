"""Feature normalisation statistics: masked, mergeable, numerically stable.

Per-(band, channel) mean and std over the valid frames of a data set:
`zero_stats` / `accumulate_stats` per batch, `merge_stats` (Chan et al.'s
parallel update), `finalize_stats`, then `normalize`.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

Array = jax.Array
FeatureStats = dict  # {'mean': f32[n_mels, C], 'std': f32[n_mels, C]}
StatsAccumulator = dict  # {'count': f32[], 'mean': f32[...], 'm2': f32[...]}



def zero_stats(feature_shape) -> StatsAccumulator:
  """Empty accumulator for per-feature stats of shape `feature_shape`
  (e.g. (n_mels, 3))."""
  return {'count': jnp.zeros((), jnp.float32),
          'mean': jnp.zeros(feature_shape, jnp.float32),
          'm2': jnp.zeros(feature_shape, jnp.float32)}


def accumulate_stats(feats: Array, mask: Optional[Array] = None) -> StatsAccumulator:
  """Per-(band, channel) count, mean and M2 (sum of squared deviations)
  over the valid frames of one batch.

  feats `[B, T, ...]`, mask bool `[B, T]` (None = all valid). Two-pass
  within the batch (stable); combine batches with `merge_stats` (Chan et
  al.'s parallel update), not by plain addition.
  """
  feats = jnp.asarray(feats, jnp.float32)
  if mask is None:
    mask = jnp.ones(feats.shape[:2], bool)
  m = mask.astype(jnp.float32).reshape(mask.shape + (1,) * (feats.ndim - 2))
  count = jnp.sum(mask.astype(jnp.float32))
  safe = jnp.maximum(count, 1.0)
  mean = jnp.sum(feats * m, axis=(0, 1)) / safe
  m2 = jnp.sum(jnp.square((feats - mean) * m), axis=(0, 1))
  return {'count': count, 'mean': mean, 'm2': m2}


def merge_stats(a: StatsAccumulator, b: StatsAccumulator) -> StatsAccumulator:
  """Chan's parallel merge of two accumulators (jittable; counts may be 0)."""
  na, nb = a['count'], b['count']
  n = na + nb
  frac = jnp.where(n > 0, nb / jnp.maximum(n, 1.0), 0.0)
  d = b['mean'] - a['mean']
  mean = a['mean'] + d * frac
  m2 = a['m2'] + b['m2'] + jnp.square(d) * na * frac
  return {'count': n, 'mean': mean, 'm2': m2}


def finalize_stats(acc: StatsAccumulator, min_std: float = 1e-5) -> FeatureStats:
  """-> {'mean', 'std'} (population std, floored at `min_std`)."""
  var = acc['m2'] / jnp.maximum(acc['count'], 1.0)
  std = jnp.maximum(jnp.sqrt(jnp.maximum(var, 0.0)), min_std)
  return {'mean': jnp.asarray(acc['mean'], jnp.float32),
          'std': jnp.asarray(std, jnp.float32)}


def normalize(feats: Array, stats: FeatureStats,
              mask: Optional[Array] = None) -> Array:
  """(feats - mean) / std, broadcast over the leading [B, T] axes.

  With a mask `[B, T]`, invalid frames are set to 0 (the normalised mean);
  without one, padded frames keep their (normalised) values.
  """
  out = (feats - stats['mean']) / stats['std']
  if mask is not None:
    m = mask.reshape(mask.shape + (1,) * (feats.ndim - mask.ndim))
    out = jnp.where(m, out, 0.0)
  return out
