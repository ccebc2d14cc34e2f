"""Data parallelism with `jax.sharding`: one mesh axis "data", params replicated, batch sharded.

Every process holds the (small) demonstration dataset and the train state as global arrays
replicated over the mesh, built with `jax.make_array_from_process_local_data`; the batch is
sampled inside the jitted step from the global step's rng and constrained to be sharded
over "data", so each device computes only its share of the global batch and the gradient
all-reduce is inserted by XLA. The config's batch size is the global batch size. The same
code runs on one device, on 8, and across hosts after `jax.distributed.initialize()`.
"""

from __future__ import annotations

import logging as _logging
import os

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

logging = _logging.getLogger("jaxpolicy")


DISTRIBUTED_TIMEOUT_S = 3600


def initialize_distributed(
  multihost: bool, coordinator_address: str = "", num_processes: int = 0, process_id: int = -1
) -> None:
  """`jax.distributed.initialize()` when asked, or automatically on a multi-host TPU pod."""
  auto = bool(os.environ.get("TPU_WORKER_HOSTNAMES", "").count(","))
  if not (multihost or auto):
    return
  kwargs = {}
  if coordinator_address:
    kwargs["coordinator_address"] = coordinator_address
  if num_processes:
    kwargs["num_processes"] = num_processes
  if process_id >= 0:
    kwargs["process_id"] = process_id
  # Peers may start, compile or (process 0 alone) evaluate for many minutes: the other
  # processes wait at start-up and at the shutdown barrier for up to an hour instead of
  # JAX's 5 minutes (a loaded 2-core machine ran past 300 s at shutdown and aborted).
  jax.distributed.initialize(
    **kwargs,
    initialization_timeout=DISTRIBUTED_TIMEOUT_S,
    shutdown_timeout_seconds=DISTRIBUTED_TIMEOUT_S,
  )
  logging.info(
    "jax.distributed: process %d of %d, %d local / %d global devices",
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )


def barrier(name: str, timeout_s: int = DISTRIBUTED_TIMEOUT_S) -> None:
  """Every process waits here for the others at a coordination-service barrier (not a
  device collective, whose Gloo rendezvous gives up after 30 s); no-op in one process.
  `name` must be unique per barrier."""
  if jax.process_count() == 1:
    return
  from orbax.checkpoint import multihost  # pylint: disable=g-import-not-at-top

  multihost.get_barrier_sync_fn()(key=name, timeout_ms=timeout_s * 1000)


def make_mesh(num_devices: int = 0) -> jax.sharding.Mesh:
  """A 1-D ("data",) mesh over the first `num_devices` devices (0 = all)."""
  devices = jax.devices()
  n = num_devices or len(devices)
  if n > len(devices):
    raise ValueError(f"train.num_devices = {n} but JAX sees only {len(devices)} devices")
  return jax.sharding.Mesh(np.asarray(devices[:n]), ("data",))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def data_sharded(mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def put_replicated(tree, mesh):
  """Every array leaf as a global array replicated over the mesh (multi-host safe)."""
  sharding = replicated(mesh)

  def put(x):
    if not isinstance(x, (jax.Array, np.ndarray)):
      return x
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return x
    return jax.make_array_from_process_local_data(sharding, np.asarray(x))

  return jax.tree_util.tree_map(put, tree)


def local_copy(tree):
  """This process's replica of a replicated pytree, as single-device arrays (for
  evaluation on one process without involving the others)."""

  def get(x):
    if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
      return x.addressable_data(0)
    return x

  return jax.tree_util.tree_map(get, tree)


def is_primary() -> bool:
  return jax.process_index() == 0
