"""Model registry: config name → Flax module.

A new model is one file in this package plus one line in `_REGISTRY`.
Models know nothing of data or training: they map normalised features
`[B, T, F, C]`, a frame mask `[B, T]` and gender ids `[B]` to logits.
"""
from __future__ import annotations

import functools

import jax.numpy as jnp

from ser_jax import cli
from ser_jax.models import cnn1d_lstm
from ser_jax.models import cnn2d_bilstm
from ser_jax.models import cnn_melspec
from ser_jax.models import crnn
from ser_jax.models import vgg16

_REGISTRY = {
    'selfattn_gender': functools.partial(crnn.ConvBiLSTMAttention, pooling='self_attention'),
    'attention_gender': functools.partial(crnn.ConvBiLSTMAttention, pooling='additive'),
    'cnn1d_lstm': cnn1d_lstm.CNN1DLSTM,            # Ranjan et al.
    'cnn2d_bilstm': cnn2d_bilstm.CNN2DBiLSTM,      # Sen et al.
    'cnn_melspec': cnn_melspec.CNNMelSpec,         # Gomes et al., custom CNN
    'vgg16_transfer': vgg16.VGG16Transfer,         # Gomes et al., VGG16 transfer
}


def names():
  return sorted(_REGISTRY)


def create_model(model_cfg, num_classes: int):
  """Instantiates `model_cfg.name` with the other fields as arguments."""
  cfg = dict(model_cfg)
  name = cfg.pop('name')
  if name not in _REGISTRY:
    raise cli.UsageError(f'unknown model {name!r}; known: {names()}')
  cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
  if isinstance(cfg.get('dtype'), str):
    cfg['dtype'] = jnp.dtype(cfg['dtype'])
  return _REGISTRY[name](num_classes=num_classes, **cfg)
