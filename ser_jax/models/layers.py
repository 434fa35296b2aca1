"""Layers whose stock forms XLA:CPU runs badly in a training step.

`max_pool` has `flax.linen.max_pool`'s values with a cheaper gradient: JAX's
gradient of `lax.reduce_window` max builds four int32 index arrays the size of
the input and a scatter (~25 % of the cnn2d_bilstm step on CPU before this
module; see benchmarks/train_step.py --profile). Tiling windows (2×2 stride 2)
get a custom VJP with the stock rule (the first maximum of a window takes the
gradient); overlapping windows are maxima of strided slices, whose gradient
shares a tie equally (a valid subgradient too; ties between positive
activations have probability zero, and ties at ReLU's zero carry no gradient
further back).

`LSTM` is flax's `OptimizedLSTMCell` under `nn.Bidirectional(nn.RNN(...))`
with the input projection taken out of the time loop, both directions
advanced in one loop and a hand-written backward recurrence (see its
docstring); `bias_add` is an addition whose bias gradient is a matmul.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def max_pool(x, window: Sequence[int], strides: Sequence[int] | None = None,
             padding: str = 'VALID'):
  """Max pooling over the spatial axes of `x` [B, *spatial, C].

  `padding` is 'VALID' or 'SAME' (padded with -inf, as flax and Keras do).
  The result is the element-wise maximum of the window's strided slices
  (faster on CPU than reducing a reshape, forward and backward); tiling
  windows crop the remainder ('VALID') and use a custom gradient.
  """
  window = tuple(int(w) for w in window)
  strides = tuple(int(s) for s in (strides or window))
  spatial = x.shape[1:-1]
  if len(window) != len(spatial) or len(strides) != len(spatial):
    raise ValueError(f'max_pool: window {window} / strides {strides} do not match the '
                     f'{len(spatial)} spatial axes of an input of shape {x.shape}')
  padding = padding.upper()
  if padding not in ('VALID', 'SAME'):
    raise ValueError(f"max_pool: padding must be 'VALID' or 'SAME', got {padding!r}")
  if padding == 'SAME':
    pads = jax.lax.padtype_to_pads(spatial, window, strides, 'SAME')
    if any(lo or hi for lo, hi in pads):
      neg = jnp.array(-jnp.inf if jnp.issubdtype(x.dtype, jnp.floating)
                      else jnp.iinfo(x.dtype).min, x.dtype)
      x = jax.lax.pad(x, neg, [(0, 0, 0)] + [(lo, hi, 0) for lo, hi in pads] + [(0, 0, 0)])
      spatial = x.shape[1:-1]
  out = [(n - w) // s + 1 for n, w, s in zip(spatial, window, strides)]
  if any(o < 1 for o in out):
    raise ValueError(f'max_pool: window {window} is larger than the input {spatial}')
  if window == strides:
    # Tiling windows (2×2 stride 2): crop the remainder, pool with a custom
    # gradient (below).
    x = x[(slice(None),) + tuple(slice(0, o * w) for o, w in zip(out, window))]
    return _tiled_max_pool(x, window)
  # Overlapping windows. Small ones: one fused pass over all offsets; larger
  # ones (5×5): separable, a max over a box being the max over each axis in
  # turn (10 slices instead of 25). Both measured faster with gradients.
  groups = ([tuple(range(len(window)))] if int(np.prod(window)) <= 4
            else [(a,) for a in range(len(window))])
  for axes in groups:
    sub_window = tuple(window[a] for a in axes)
    x = _max_of_slices(x, axes, sub_window, tuple(strides[a] for a in axes),
                       tuple(out[a] for a in axes))
  return x


def _window_slices(x, axes, window, strides, out):
  """The strided slice of x for every offset of the window over `axes`, in order."""
  for offset in np.ndindex(*window):
    idx = [slice(None)] * x.ndim
    for a, o, s, n in zip(axes, offset, strides, out):
      idx[a + 1] = slice(o, o + s * (n - 1) + 1, s)
    yield x[tuple(idx)]


def _max_of_slices(x, axes, window, strides, out):
  result = None
  for piece in _window_slices(x, axes, window, strides, out):
    result = piece if result is None else jnp.maximum(result, piece)
  return result


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _tiled_max_pool(x, window):
  """Max over windows that tile x exactly (its spatial sizes are multiples)."""
  out = tuple(n // w for n, w in zip(x.shape[1:-1], window))
  return _max_of_slices(x, tuple(range(len(window))), window, window, out)


def _tiled_max_pool_fwd(x, window):
  y = _tiled_max_pool(x, window)
  return y, (x, y)


def _tiled_max_pool_bwd(window, residuals, g):
  # The whole gradient goes to the first maximum of each window (the rule of
  # XLA's select-and-scatter, TF and Keras), computed once per window offset
  # and interleaved back with a reshape instead of summing padded copies.
  x, y = residuals
  nd = len(window)
  taken = jnp.zeros(y.shape, bool)
  parts = []
  for piece in _window_slices(x, tuple(range(nd)), window, window, y.shape[1:-1]):
    hit = (piece == y) & ~taken
    taken = taken | hit
    parts.append(jnp.where(hit, g, jnp.zeros_like(g)))
  dx = jnp.stack(parts, axis=-1).reshape(y.shape + tuple(window))  # [B, *out, C, *window]
  perm = [0] + [p for i in range(nd) for p in (1 + i, 2 + nd + i)] + [1 + nd]
  return (jnp.transpose(dx, perm).reshape(x.shape),)


_tiled_max_pool.defvjp(_tiled_max_pool_fwd, _tiled_max_pool_bwd)


@jax.custom_vjp
def bias_add(x, bias):
  """x + bias over the last axis, whose bias gradient is a matmul.

  XLA:CPU reduces a [N…, C] gradient over every axis but the last with a slow
  column reduction (1.5 ms for the 31×2×32×512 LSTM pre-activations, 0.07 ms
  as a ones-vector product).
  """
  return x + bias.astype(x.dtype)


def _bias_add_fwd(x, bias):
  return bias_add(x, bias), bias


def _bias_add_bwd(bias, g):
  c = g.shape[-1]
  db = jnp.einsum('n,nc->c', jnp.ones((g.size // c,), g.dtype), g.reshape(-1, c),
                  preferred_element_type=jnp.float32)
  return g, db.astype(bias.dtype)


bias_add.defvjp(_bias_add_fwd, _bias_add_bwd)


def _lstm_forward(proj, valid, w_rec):
  """The recurrence; also returns what the backward pass needs."""
  n, b, h = w_rec.shape[0], proj.shape[2], w_rec.shape[1]

  def step(carry, inp):
    c, hid = carry
    z_in, ok = inp
    z = z_in + jnp.einsum('nbh,nhg->nbg', hid.astype(w_rec.dtype), w_rec,
                          preferred_element_type=jnp.float32)
    zi, zf, zg, zo = jnp.split(z, 4, axis=-1)
    i, f, g, o = jax.nn.sigmoid(zi), jax.nn.sigmoid(zf), jnp.tanh(zg), jax.nn.sigmoid(zo)
    new_c = f * c + i * g
    tanh_c = jnp.tanh(new_c)
    new_h = o * tanh_c
    c_next = jnp.where(ok, new_c, c)
    h_next = jnp.where(ok, new_h, hid)
    return (c_next, h_next), (h_next, (hid, c, jnp.concatenate([i, f, g, o], -1), tanh_c))

  zeros = jnp.zeros((n, b, h), jnp.float32)
  (_, last), (ys, saved) = jax.lax.scan(step, (zeros, zeros), (proj, valid))
  return last, ys, saved


@jax.custom_vjp
def lstm_recurrence(proj, valid, w_rec):
  """LSTM states over time from input pre-activations.

  proj [T, N, B, 4H] float32 (input projection + bias, gates i, f, g, o),
  valid [T, N, B, 1] bool (False: the step leaves the state unchanged),
  w_rec [N, H, 4H] → (final h [N, B, H], h of every step [T, N, B, H]).

  Its gradient is written out rather than left to scan's autodiff: the
  backward loop only propagates (dh, dc) with one [N, B, 4H] × [N, 4H, H]
  product per step and emits the gate gradients; the recurrent-kernel
  gradient is then one large product over all steps, where autodiff would
  accumulate a [N, H, 4H] outer product in every iteration.
  """
  last, ys, _ = _lstm_forward(proj, valid, w_rec)
  return last, ys


def _lstm_recurrence_fwd(proj, valid, w_rec):
  last, ys, saved = _lstm_forward(proj, valid, w_rec)
  return (last, ys), (valid, w_rec, saved)


def _lstm_recurrence_bwd(residuals, cotangents):
  valid, w_rec, (h_prev, c_prev, gates, tanh_c) = residuals
  d_last, d_ys = cotangents
  w_t = jnp.swapaxes(w_rec, 1, 2)                                   # [N, 4H, H]

  def step(carry, inp):
    dh, dc = carry
    d_y, ok, c0, gate, tc = inp
    dh = dh + d_y
    i, f, g, o = jnp.split(gate, 4, axis=-1)
    d_c_new = dc + dh * o * (1.0 - tc * tc)
    dz = jnp.concatenate([d_c_new * g * i * (1.0 - i),           # input gate
                          d_c_new * c0 * f * (1.0 - f),          # forget gate
                          d_c_new * i * (1.0 - g * g),           # cell candidate
                          dh * tc * o * (1.0 - o)], axis=-1)     # output gate
    dz = jnp.where(ok, dz, 0.0)
    dh_prev = jnp.einsum('nbg,ngh->nbh', dz.astype(w_rec.dtype), w_t,
                         preferred_element_type=jnp.float32)
    dh = jnp.where(ok, dh_prev, dh)
    dc = jnp.where(ok, d_c_new * f, dc)
    return (dh, dc), dz

  zeros = jnp.zeros_like(d_last)
  _, dz = jax.lax.scan(step, (d_last.astype(jnp.float32), zeros),
                       (d_ys.astype(jnp.float32), valid, c_prev, gates, tanh_c), reverse=True)
  d_w = jnp.einsum('tnbh,tnbg->nhg', h_prev.astype(w_rec.dtype), dz.astype(w_rec.dtype),
                   preferred_element_type=jnp.float32).astype(w_rec.dtype)
  return dz, None, d_w


lstm_recurrence.defvjp(_lstm_recurrence_fwd, _lstm_recurrence_bwd)


def _per_gate(init):
  """An initialiser for a [in, 4·H] gate kernel: four independent [in, H] blocks.

  The same distributions as flax's (Optimized)LSTMCell, which keeps one
  kernel per gate (lecun-normal input kernels, orthogonal recurrent ones).
  """
  def gate_init(key, shape, dtype=jnp.float32):
    fan_in, width = shape
    keys = jax.random.split(key, 4)
    return jnp.concatenate([init(k, (fan_in, width // 4), dtype) for k in keys], axis=-1)
  return gate_init


class LSTM(nn.Module):
  """A (bi)directional LSTM over padded sequences, built for speed on CPU.

  Same cell as flax's `OptimizedLSTMCell` (gates i, f, g, o; sigmoid/tanh;
  no input bias, recurrent bias; lecun-normal input and orthogonal recurrent
  kernels per gate; zero initial state) and the same padding semantics as
  `nn.Bidirectional(nn.RNN(...))` with `seq_lengths`: each direction sees
  only the valid frames, the backward one starting at the last valid frame,
  and the final state is the state after the last valid frame. What differs
  is the schedule: the input projection of every frame and direction is one
  large matmul before the time loop, and both directions advance in the same
  loop iteration (one batched [2, B, H] × [2, H, 4H] matmul per frame), so
  the sequential part is only the recurrent product. Gate pre-activations
  and the cell state are float32 whatever the compute dtype.

  Returns (outputs [B, T, N·H] for N directions, concatenated as in
  `nn.Bidirectional`; final hidden state [B, N·H]). Outputs at padded frames
  are not meaningful (the forward one holds its last valid state, the
  backward one zeros): mask them downstream, as for `nn.RNN`.
  """
  features: int
  bidirectional: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, lengths):
    b, t, d = x.shape
    h = self.features
    names = ('forward', 'backward') if self.bidirectional else ('forward',)
    lengths = lengths.astype(jnp.int32)
    w_in, w_rec, bias = [], [], []
    for name in names:
      w_in.append(self.param(f'{name}_input_kernel', _per_gate(nn.initializers.lecun_normal()),
                             (d, 4 * h)))
      w_rec.append(self.param(f'{name}_recurrent_kernel',
                              _per_gate(nn.initializers.orthogonal()), (h, 4 * h)))
      bias.append(self.param(f'{name}_bias', nn.initializers.zeros_init(), (4 * h,)))
    n = len(names)
    w_in = jnp.concatenate(w_in, axis=-1).astype(self.dtype)   # [D, N·4H]
    w_rec = jnp.stack(w_rec).astype(self.dtype)                # [N, H, 4H]
    bias = jnp.concatenate(bias)                               # [N·4H] float32
    # Input projections of every frame and direction in one matmul, then
    # time-major [T, N, B, 4H] for the scan; the backward direction reads the
    # frames in reverse and starts (from the zero state) at each segment's
    # last valid frame: its leading padded steps leave the state at zero.
    proj = bias_add(jnp.einsum('btd,dg->tbg', x.astype(self.dtype), w_in,
                               preferred_element_type=jnp.float32), bias)
    proj = jnp.transpose(proj.reshape(t, b, n, 4 * h), (0, 2, 1, 3))
    steps = jnp.arange(t)
    valid = [steps[:, None] < lengths[None, :]]                  # [T, B]
    if self.bidirectional:
      proj = jnp.concatenate([proj[:, :1], proj[::-1, 1:]], axis=1)
      valid.append((t - 1 - steps)[:, None] < lengths[None, :])
    valid = jnp.stack(valid, axis=1)[..., None]                  # [T, N, B, 1]

    last, ys = lstm_recurrence(proj, valid, w_rec)
    outputs = [ys[:, 0]] + ([ys[::-1, 1]] if self.bidirectional else [])  # [T, B, H]
    outputs = jnp.transpose(jnp.concatenate(outputs, axis=-1), (1, 0, 2)).astype(self.dtype)
    return (outputs,
            jnp.concatenate(list(last), axis=-1).astype(self.dtype))
