"""The one sharding helper: a data-parallel device mesh and batch placement.

Parameters and optimiser state are replicated; the batch is split along the
'data' mesh axis over all devices (of all processes).
"""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ser_jax import cli

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
  if batch_size < 1:
    raise cli.UsageError(f'batch size {batch_size}: must be at least 1')
  if batch_size % n:
    raise cli.UsageError(f'batch size {batch_size} is not a multiple of the {n} devices '
                         'of the mesh; choose a multiple (global batch semantics)')


def process_rows(n: int) -> slice:
  """The rows of a global batch of n that this process feeds (contiguous, in
  mesh order: a mesh of `jax.devices()` lists each process's devices together)."""
  count, index = jax.process_count(), jax.process_index()
  if n % count:
    raise ValueError(f'global batch {n} is not a multiple of the {count} processes')
  per = n // count
  return slice(index * per, (index + 1) * per)


def shard_batch(batch, mesh: Mesh):
  """Places a global host batch on the mesh, split over 'data'.

  Every process holds the same global batch (a pure function of seed and
  step) and contributes only its own rows, so several hosts feed one global
  batch without exchanging data.
  """
  sharding = batch_sharded(mesh)

  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_process_local_data(sharding, x[process_rows(len(x))], x.shape)

  return jax.tree.map(put, batch)


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None, auto: bool = False) -> bool:
  """`jax.distributed.initialize` when several processes are configured.

  Explicit arguments win; else JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
  JAX_PROCESS_ID from the environment; `auto` lets JAX detect a cluster
  (SLURM, Open MPI, TPU pods). Returns whether it initialised.
  """
  import os  # pylint: disable=g-import-not-at-top
  coordinator_address = coordinator_address or os.environ.get('JAX_COORDINATOR_ADDRESS')
  if num_processes is None and os.environ.get('JAX_NUM_PROCESSES'):
    num_processes = int(os.environ['JAX_NUM_PROCESSES'])
  if process_id is None and os.environ.get('JAX_PROCESS_ID'):
    process_id = int(os.environ['JAX_PROCESS_ID'])
  if coordinator_address or (num_processes or 1) > 1:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
    return True
  if auto:
    jax.distributed.initialize()
    return True
  return False

