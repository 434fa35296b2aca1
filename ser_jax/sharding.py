"""The one sharding helper: a data-parallel device mesh and batch placement.

Parameters and optimiser state are replicated; the batch is split along the
'data' mesh axis over all devices (of all processes).
"""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = 'data'


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh):
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f'batch size {batch_size} is not a multiple of the {n} devices '
                     'of the mesh; choose a multiple (global batch semantics)')


def shard_batch(batch, mesh: Mesh):
  """Places a host batch (this process's rows) on the mesh, split over 'data'."""
  sharding = batch_sharded(mesh)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, replicated(mesh))
