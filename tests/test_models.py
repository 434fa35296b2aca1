"""Model shapes, masks and the paper's parameter count."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import selfattn_gender
from ser_jax import models


def _init(model, b=2, t=300, f=40):
  args = (jnp.zeros((b, t, f, 3)), jnp.ones((b, t), bool), jnp.zeros((b,), jnp.int32))
  return jax.eval_shape(lambda: model.init(jax.random.key(0), *args))


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_paper_size_parameter_count():
  # SPEC/issue cross-check: PyTorch and Keras implementations of Model 2 have 9,520,348.
  config = selfattn_gender.get_config()
  model = models.create_model(config.model, num_classes=4)
  assert _count(_init(model)) == 9_520_348


@pytest.mark.parametrize('name', ('selfattn_gender', 'attention_gender'))
def test_output_shapes(name):
  config = selfattn_gender.get_config('tiny')
  cfg = ml_collections.ConfigDict(config.model.to_dict())
  cfg.name = name
  model = models.create_model(cfg, num_classes=5)
  feats = jax.random.normal(jax.random.key(1), (3, 100, 40, 3))
  mask = jnp.arange(100)[None, :] < jnp.array([[100], [60], [7]])
  gender = jnp.array([0, 1, 0])
  params = model.init(jax.random.key(0), feats, mask, gender)
  logits = model.apply(params, feats, mask, gender)
  assert logits.shape == (3, 5) and logits.dtype == jnp.float32
  assert bool(jnp.isfinite(logits).all())


@pytest.mark.parametrize('name', ('selfattn_gender', 'attention_gender'))
def test_padded_frames_do_not_change_the_output(name):
  config = selfattn_gender.get_config('tiny')
  cfg = ml_collections.ConfigDict(config.model.to_dict())
  cfg.name = name
  model = models.create_model(cfg, num_classes=4)
  feats = jax.random.normal(jax.random.key(1), (1, 100, 40, 3))
  mask = jnp.arange(100)[None, :] < 60
  params = model.init(jax.random.key(0), feats, mask, jnp.zeros(1, jnp.int32))
  noisy = feats.at[:, 72:].set(100.0)  # garbage beyond valid frames + conv reach
  a = model.apply(params, feats, mask, jnp.zeros(1, jnp.int32))
  b = model.apply(params, noisy, mask, jnp.zeros(1, jnp.int32))
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_gender_changes_the_output():
  config = selfattn_gender.get_config('tiny')
  model = models.create_model(config.model, num_classes=4)
  feats = jax.random.normal(jax.random.key(1), (2, 100, 40, 3))
  mask = jnp.ones((2, 100), bool)
  params = model.init(jax.random.key(0), feats, mask, jnp.zeros(2, jnp.int32))
  a = model.apply(params, feats, mask, jnp.array([0, 0]))
  b = model.apply(params, feats, mask, jnp.array([1, 1]))
  assert not np.allclose(a, b)


def test_unknown_model_name():
  with pytest.raises(ValueError, match='unknown model'):
    models.create_model(ml_collections.ConfigDict({'name': 'nope'}), 4)
