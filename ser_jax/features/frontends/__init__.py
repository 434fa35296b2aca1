"""Front-end registry: `make_frontend(cfg)` for `cfg.name`, frame counts,
defaults, and CPU chunking of big batches.

Each front end is a module of this package with the interface of `base`
(NAME, DEFAULTS, prepare, compute, num_frames); the registry only dispatches
on `cfg.name`, nothing here knows about a particular front end.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import ml_collections

from ser_jax import cli
from ser_jax.features.frontends import base
from ser_jax.features.frontends import logmel_deltas
from ser_jax.features.frontends import mel_image
from ser_jax.features.frontends import mfcc
from ser_jax.features.frontends import mfcc_zcr_chroma

Array = jax.Array
Frontend = Callable[[Array, Optional[Array]], Tuple[Array, Array]]

_MODULES = {m.NAME: m for m in (logmel_deltas, mfcc, mfcc_zcr_chroma, mel_image)}


def _module(name: str) -> ModuleType:
  if name not in _MODULES:
    raise cli.UsageError(f'unknown frontend {name!r}; known: {sorted(_MODULES)}')
  return _MODULES[name]


def frontend_defaults(name: str) -> dict:
  """The fields (with defaults) that front end `name` reads from its config."""
  return dict(_module(name).DEFAULTS)


def _prepared(module: ModuleType, cfg) -> dict:
  return module.prepare(base.freeze(cfg, module.DEFAULTS))


def num_frames(num_samples: int, cfg) -> int:
  """Frames T that `make_frontend(cfg)` produces for waveforms of `num_samples`
  samples: cfg.num_frames if set, else the frames centred inside the
  waveform, ceil(num_samples / hop_length) (`base.frame_count`); mel_image:
  always image_frames."""
  module = _module(base.config_name(cfg))
  return module.num_frames(int(num_samples), base.freeze(cfg, module.DEFAULTS))


def with_num_frames(cfg, num_samples: int) -> ml_collections.ConfigDict:
  """A copy of feature config `cfg` (dict or ConfigDict) as a ConfigDict, its
  num_frames filled with `num_frames(num_samples, cfg)` when unset (None or
  missing), so the config states the T its front end gives a segment of
  `num_samples` samples (3 s at hop 160: 300)."""
  out = ml_collections.ConfigDict(
      cfg.to_dict() if isinstance(cfg, ml_collections.ConfigDict) else dict(cfg))
  if out.get('num_frames') is None:
    out.num_frames = num_frames(num_samples, cfg)
  return out


def _chunk_batches() -> bool:
  """Whether to cut big batches into cpu_chunk pieces: on a single CPU
  device only (not on accelerators, and not when the batch may be sharded
  over several devices, where a reshape of the batch axis would reshard)."""
  return jax.default_backend() == 'cpu' and jax.device_count() == 1


def _chunked(compute: Callable, x: Array, lengths: Optional[Array], p: dict,
             chunk: int) -> Tuple[Array, Array]:
  """`compute` over `[B, N]` in sequential chunks of `chunk` examples
  (`lax.map`; the batch is zero-padded to a multiple of chunk first)."""
  x = jnp.asarray(x, jnp.float32)
  b, n = x.shape
  nc = -(-b // chunk)
  pad = nc * chunk - b
  if pad:
    x = jnp.pad(x, ((0, pad), (0, 0)))
  xs = x.reshape(nc, chunk, n)
  if lengths is None:
    feats, mask = jax.lax.map(lambda a: compute(a, None, p), xs)
  else:
    ln = jnp.asarray(lengths, jnp.int32)
    if pad:
      ln = jnp.pad(ln, (0, pad))
    feats, mask = jax.lax.map(lambda a: compute(a[0], a[1], p),
                              (xs, ln.reshape(nc, chunk)))
  feats = feats.reshape((nc * chunk,) + feats.shape[2:])[:b]
  mask = mask.reshape((nc * chunk,) + mask.shape[2:])[:b]
  return feats, mask


def _make(module: ModuleType, cfg) -> Frontend:
  """`make_frontend` for the front end of `module`."""
  p = _prepared(module, cfg)
  chunk = p.get('cpu_chunk')

  def fn(x, lengths=None):
    b = jnp.shape(x)[0] if jnp.ndim(x) == 2 else None
    if chunk and isinstance(b, int) and b > int(chunk) and _chunk_batches():
      return _chunked(module.compute, x, lengths, p, int(chunk))
    return module.compute(x, lengths, p)

  fn.config = dict(p)
  return fn


# name -> factory(cfg) -> fn(x [B, N], lengths [B] | None) -> (feats, mask)
FRONTENDS: dict = {name: functools.partial(_make, m) for name, m in _MODULES.items()}


def make_frontend(cfg) -> Frontend:
  """Returns `fn(x, lengths) -> (feats, mask)` for `cfg.name` (default
  'logmel_deltas'); the config is captured statically, so `jax.jit(fn)`.
  `fn.config` is the config it uses (its front end's fields only).

  x: float32 `[B, N]` waveforms (zero-padded past each length); lengths:
  int `[B]` or None. feats f32 `[B, T, F, C]` (T = `num_frames(N, cfg)`),
  mask bool `[B, T]`.

  cfg.cpu_chunk (default 8; 0/None: off): on a single CPU device, a batch
  larger than this is computed in sequential chunks of cpu_chunk examples
  (`lax.map`), which keeps the frames and spectra in cache: ~3x the
  throughput at batch 40. Same values; ignored on accelerators and with
  several devices.
  """
  return _make(_module(base.config_name(cfg)), cfg)


def unchunked(name: str) -> Callable[..., Tuple[Array, Array]]:
  """`fn(x, lengths, cfg) -> (feats, mask)`: front end `name` on any config
  (whatever its cfg.name), without CPU chunking."""
  module = _module(name)

  def stack(x: Array, lengths: Optional[Array], cfg) -> Tuple[Array, Array]:
    return module.compute(x, lengths, _prepared(module, cfg))

  stack.__doc__ = (f"Front end '{name}' (`{module.__name__}`, whose docstring "
                   'describes it) on config cfg, without CPU chunking; x `[B, N]`, '
                   'lengths `[B]` or None.')
  stack.__name__ = stack.__qualname__ = name
  return stack
