"""ser_jax.models.layers: the CPU-friendly max-pool, bias add and LSTM equal
the stock flax layers they replace (values and gradients)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ser_jax.models import layers

POOLS = [((3, 130, 40, 5), (2, 2), (2, 2), 'VALID'),     # Sen, Bhushan, VGG: tiling
         ((3, 62, 17, 4), (2, 2), (2, 2), 'VALID'),      # odd sizes: remainder dropped
         ((2, 32, 32, 3), (5, 5), (2, 2), 'SAME'),       # Gomes 5×5 / 2
         ((2, 33, 7), (5,), (2,), 'SAME'),               # Ranjan 1-D, 5 / 2
         ((2, 9, 9, 2), (3, 3), (2, 2), 'VALID'),
         ((2, 11, 3), (2,), (2,), 'SAME')]


@pytest.mark.parametrize('shape,window,strides,padding', POOLS)
def test_max_pool_equals_flax(shape, window, strides, padding):
  x = jnp.asarray(np.random.default_rng(0).standard_normal(shape).astype(np.float32))

  def loss(pool):
    return lambda x: (pool(x) ** 2 * jnp.arange(pool(x).size).reshape(pool(x).shape)).sum()

  stock = lambda x: nn.max_pool(x, window, strides=strides, padding=padding)  # noqa: E731
  ours = lambda x: layers.max_pool(x, window, strides, padding)  # noqa: E731
  np.testing.assert_array_equal(ours(x), stock(x))
  np.testing.assert_allclose(jax.grad(loss(ours))(x), jax.grad(loss(stock))(x),
                             rtol=1e-6, atol=1e-5)


def test_tiled_max_pool_gives_a_tie_to_the_first_maximum_only():
  x = jnp.zeros((1, 2, 2, 1)).at[0, 1, 1, 0].set(-1.0)   # three tied maxima (0)
  g = jax.grad(lambda x: layers.max_pool(x, (2, 2)).sum())(x)
  np.testing.assert_array_equal(np.asarray(g)[0, :, :, 0], [[1, 0], [0, 0]])
  # ... as XLA's select-and-scatter (flax's max_pool) does.
  np.testing.assert_array_equal(g, jax.grad(lambda x: nn.max_pool(x, (2, 2), (2, 2)).sum())(x))


def test_max_pool_rejects_bad_arguments():
  x = jnp.zeros((1, 4, 4, 1))
  with pytest.raises(ValueError, match='spatial axes'):
    layers.max_pool(x, (2,))
  with pytest.raises(ValueError, match='padding'):
    layers.max_pool(x, (2, 2), padding='FULL')
  with pytest.raises(ValueError, match='larger than the input'):
    layers.max_pool(x, (5, 5))


def test_bias_add_gradient():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.standard_normal((4, 5, 6)).astype(np.float32))
  b = jnp.asarray(rng.standard_normal(6).astype(np.float32))
  w = jnp.asarray(rng.standard_normal((4, 5, 6)).astype(np.float32))
  f = lambda add: lambda x, b: (jnp.tanh(add(x, b)) * w).sum()  # noqa: E731
  ours = jax.grad(f(layers.bias_add), argnums=(0, 1))(x, b)
  stock = jax.grad(f(lambda x, b: x + b), argnums=(0, 1))(x, b)
  for a, e in zip(ours, stock):
    np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)


class _FlaxLSTM(nn.Module):
  features: int
  bidirectional: bool

  @nn.compact
  def __call__(self, x, lengths):
    if self.bidirectional:
      (cf, cb), y = nn.Bidirectional(nn.RNN(nn.OptimizedLSTMCell(self.features)),
                                     nn.RNN(nn.OptimizedLSTMCell(self.features)),
                                     return_carry=True)(x, seq_lengths=lengths)
      return y, jnp.concatenate([cf[1], cb[1]], -1)
    c, y = nn.RNN(nn.OptimizedLSTMCell(self.features), return_carry=True)(
        x, seq_lengths=lengths)
    return y, c[1]


def _as_ours(flax_params, bidirectional):
  """flax's per-gate kernels → layers.LSTM's fused [in, 4H] ones (gates i, f, g, o)."""
  out = {}
  for name, cell in zip(('forward', 'backward')[:1 + bidirectional],
                        ('OptimizedLSTMCell_0', 'OptimizedLSTMCell_1')):
    p = flax_params[cell]
    out[f'{name}_input_kernel'] = jnp.concatenate([p['i' + g]['kernel'] for g in 'ifgo'], -1)
    out[f'{name}_recurrent_kernel'] = jnp.concatenate([p['h' + g]['kernel'] for g in 'ifgo'],
                                                      -1)
    out[f'{name}_bias'] = jnp.concatenate([p['h' + g]['bias'] for g in 'ifgo'], -1)
  return out


@pytest.mark.parametrize('bidirectional', [False, True])
def test_lstm_equals_flax_rnn_with_seq_lengths(bidirectional):
  b, t, d, h = 5, 13, 7, 6
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_normal((b, t, d)).astype(np.float32))
  lengths = jnp.asarray([13, 1, 7, 12, 4], jnp.int32)
  ref = _FlaxLSTM(h, bidirectional)
  ref_params = ref.init(jax.random.key(0), x, lengths)['params']
  ours = layers.LSTM(h, bidirectional=bidirectional)
  params = _as_ours(ref_params, bidirectional)
  init = ours.init(jax.random.key(1), x, lengths)['params']
  assert jax.tree.map(jnp.shape, init) == jax.tree.map(jnp.shape, params)
  y_ref, last_ref = ref.apply({'params': ref_params}, x, lengths)
  y, last = ours.apply({'params': params}, x, lengths)
  valid = (np.arange(t)[None, :] < np.asarray(lengths)[:, None])[..., None]
  np.testing.assert_allclose(last, last_ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.where(valid, y, 0), np.where(valid, y_ref, 0),
                             rtol=1e-5, atol=1e-6)

  def loss(fn, p):
    out, fin = fn(p)
    return (jnp.where(valid, out, 0) ** 2).sum() + (fin ** 3).sum()

  g_ref = jax.grad(lambda p, x: loss(lambda q: ref.apply({'params': q}, x, lengths), p),
                   argnums=(0, 1))(ref_params, x)
  g = jax.grad(lambda p, x: loss(lambda q: ours.apply({'params': q}, x, lengths), p),
               argnums=(0, 1))(params, x)
  np.testing.assert_allclose(g[1], g_ref[1], rtol=1e-4, atol=1e-6)
  jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-6),
               g[0], _as_ours(g_ref[0], bidirectional))
  # Padding never changes a sequence's result: cut one short and pad with noise.
  x2 = x.at[1, 1:].set(100.0)
  np.testing.assert_allclose(ours.apply({'params': params}, x2, lengths)[1], last,
                             rtol=1e-6, atol=1e-6)


def scan_eqns(jaxpr):
  """Every scan in a jaxpr, nested ones (jit, custom_vjp, scan bodies) included."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'scan':
      yield eqn
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        inner = getattr(sub, 'jaxpr', sub)
        if hasattr(inner, 'eqns'):
          yield from scan_eqns(inner)


def test_lstm_bfloat16_keeps_state_in_float32():
  x = jnp.ones((2, 4, 3), jnp.bfloat16)
  lstm = layers.LSTM(5, bidirectional=True, dtype=jnp.bfloat16)
  params = lstm.init(jax.random.key(0), x, jnp.array([4, 2]))
  y, last = lstm.apply(params, x, jnp.array([4, 2]))
  assert y.dtype == jnp.bfloat16 and last.shape == (2, 10)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
  # The recurrence itself: every scan's carry (h, c) is float32, forward and backward.
  loss = lambda p: lstm.apply(p, x, jnp.array([4, 2]))[1].astype(jnp.float32).sum()  # noqa: E731
  found = list(scan_eqns(jax.make_jaxpr(jax.grad(loss))(params).jaxpr))
  assert len(found) >= 2   # the forward recurrence and its hand-written gradient
  for eqn in found:
    carry = eqn.outvars[:eqn.params['num_carry']]
    assert carry and all(v.aval.dtype == jnp.float32 for v in carry), eqn
