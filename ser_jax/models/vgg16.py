"""Gomes et al.'s VGG16 transfer model on 128×128×3 Mel images (`vgg16_transfer`).

The VGG16 convolutional base (Keras `VGG16(include_top=False)`: five blocks
of 3×3 'same' convolutions + ReLU, 64-64 / 128-128 / 256×3 / 512×3 / 512×3
maps, each block ending in a 2×2 max-pool: 128×128 → 4×4×512) → flatten →
dropout 0.5 → dense 8 softmax. 14,714,688 base + 65,544 head parameters.

Pretrained weights: nothing can be downloaded here, so the ImageNet weights
are read from a local Keras file when `pretrained_path` names one (e.g.
`vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5`; the layers
`block1_conv1` … `block5_conv3` are matched by name, each kernel
[3, 3, in, out] and bias [out] copied onto the Flax conv of the same name).
Without it the base starts from random weights and a warning says so.

`freeze_base` (None: frozen iff pretrained weights were loaded) stops the
gradient at the base output, so only the head trains, as in the paper (its
custom 2.8 M-parameter CNN "needs to learn a higher number of parameters"
than the transfer model, so the VGG base was not trained). With a frozen
base, Adam/Nadam/SGD leave the base weights exactly as loaded (their
gradient is zero); AdamW's weight decay would still shrink them.
"""
from __future__ import annotations

import functools
import logging
import os
from typing import Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ser_jax.models import heads
from ser_jax.models import layers

VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def layer_names(blocks: Sequence[Sequence[int]] = VGG16_BLOCKS) -> list[str]:
  """Keras names of the conv layers: block1_conv1, block1_conv2, block2_conv1, ..."""
  return [f'block{b + 1}_conv{c + 1}' for b, block in enumerate(blocks)
          for c in range(len(block))]


def _datasets(group) -> list[np.ndarray]:
  """All arrays under an h5 group, in the order of its `weight_names`
  attribute (Keras 2 layout) or else of their names (nested layouts)."""
  import h5py  # pylint: disable=g-import-not-at-top
  names = group.attrs.get('weight_names')
  if names is not None and len(names):
    return [np.asarray(group[n.decode() if isinstance(n, bytes) else n]) for n in names]
  out = []
  group.visititems(lambda name, obj: out.append((name, np.asarray(obj)))
                   if isinstance(obj, h5py.Dataset) else None)
  return [a for _, a in sorted(out)]


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, mtime: float) -> dict:
  del mtime  # part of the cache key only
  import h5py  # pylint: disable=g-import-not-at-top
  found = {}
  with h5py.File(path, 'r') as f:
    groups = {}

    def visit(name, obj):
      leaf = name.rsplit('/', 1)[-1]
      if isinstance(obj, h5py.Group) and leaf.startswith('block') and '_conv' in leaf:
        groups.setdefault(leaf, obj.name)   # the outermost group of that name
    f.visititems(visit)
    for leaf, name in groups.items():
      arrays = _datasets(f[name])
      kernels = [a for a in arrays if a.ndim == 4]
      biases = [a for a in arrays if a.ndim == 1]
      if len(kernels) != 1 or len(biases) != 1:
        raise ValueError(f'{path}: layer {leaf} holds arrays of shapes '
                         f'{[a.shape for a in arrays]}, expected one 4-D kernel and one bias')
      found[leaf] = {'kernel': kernels[0].astype(np.float32),
                     'bias': biases[0].astype(np.float32)}
  return found


def load_keras_weights(path: str) -> dict:
  """{'block1_conv1': {'kernel': [3, 3, in, out], 'bias': [out]}, ...} from a
  Keras VGG16 h5 file (the `..._notop.h5` weights file, or a whole saved model:
  layer groups are found by name wherever they are in the file)."""
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'VGG16 weights file {path!r} not found')
  weights = _load_cached(os.path.abspath(path), os.path.getmtime(path))
  if not weights:
    raise ValueError(f'{path}: no VGG16 conv layers (block1_conv1 ...) in this h5 file')
  return weights


def _constant(value: np.ndarray, name: str):
  def init(key, shape, dtype=jnp.float32):
    del key
    if tuple(shape) != value.shape:
      raise ValueError(f'pretrained {name} has shape {value.shape}, the model wants '
                       f'{tuple(shape)} (block_features must match the weights file)')
    return jnp.asarray(value, dtype)
  return init


class VGG16Transfer(heads.SERModel):
  block_features: Sequence[Sequence[int]] = VGG16_BLOCKS
  pretrained_path: Optional[str] = None
  freeze_base: Optional[bool] = None        # None: frozen iff pretrained weights are loaded
  dropout: float = 0.5                      # after flatten
  mask_input: bool = True

  @nn.compact
  def __call__(self, feats, mask, gender, train: bool = False):
    x = feats.astype(self.dtype)
    if self.mask_input:
      x = heads.zero_padded_frames(x, mask)
    pretrained = bool(self.pretrained_path)
    if self.is_initializing():
      if pretrained:
        logging.info('VGG16: loading pretrained conv weights from %s', self.pretrained_path)
      else:
        logging.warning(
            'VGG16: no pretrained weights (model.pretrained_path is unset), so the '
            'convolutional base starts from RANDOM weights and is trained from scratch; '
            'nothing can be downloaded here. For transfer learning as in the paper, set '
            '--config.model.pretrained_path=/path/to/'
            'vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 (Keras layout).')
    weights = load_keras_weights(self.pretrained_path) if (
        pretrained and self.is_initializing()) else None
    blocks = tuple(tuple(b) for b in self.block_features)
    names = iter(layer_names(blocks))
    for block in blocks:
      for width in block:
        name = next(names)
        # Random start: He initialisation, which trains a plain ReLU stack this
        # deep (Keras's Glorot default lets the signal fade over 13 layers).
        kw = dict(kernel_init=nn.initializers.variance_scaling(2.0, 'fan_in', 'normal'))
        if weights is not None:
          if name not in weights:
            raise ValueError(f'{self.pretrained_path}: no layer {name}')
          kernel = weights[name]['kernel']
          if kernel.shape[2] != x.shape[-1] and x.shape[-1] == 1:
            kernel = kernel.sum(axis=2, keepdims=True)   # RGB filters on a 1-channel image
          kw = dict(kernel_init=_constant(kernel, f'{name}/kernel'),
                    bias_init=_constant(weights[name]['bias'], f'{name}/bias'))
        x = nn.relu(nn.Conv(width, (3, 3), padding='SAME', dtype=self.dtype, name=name,
                            **kw)(x))
      x = layers.max_pool(x, (2, 2), strides=(2, 2), padding='VALID')
    freeze = pretrained if self.freeze_base is None else self.freeze_base
    if freeze:
      x = jax.lax.stop_gradient(x)
    x = x.reshape(x.shape[0], -1)
    return self.classify(x, gender, train, input_dropout=self.dropout)
