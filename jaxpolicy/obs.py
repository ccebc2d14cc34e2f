"""Observation kinds: the one place that says what `config.obs` means.

A kind names the per-frame observation keys a policy reads (DP3's naming) and whether they
come from a point-cloud sensor. Datasets store the same arrays under DP3's zarr keys
(`data/state` is the policy's `agent_pos`); `DATASET_KEYS` maps one to the other.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ObsKind:
  name: str                 # the value of config.obs
  keys: tuple[str, ...]     # per-frame observation keys the policy reads
  point_cloud: bool         # needs the point-cloud sensor (collection and evaluation)


KINDS = {
    # MetaWorld's 39-d observation (data/full_state)
    "state": ObsKind("state", ("full_state",), point_cloud=False),
    # the robot's low-dimensional state alone (DP3's data/state: agent_pos), any size
    "lowdim": ObsKind("lowdim", ("agent_pos",), point_cloud=False),
    # DP3: a point cloud per frame (data/point_cloud, any size, xyz or xyzrgb) + agent_pos
    "pointcloud": ObsKind("pointcloud", ("point_cloud", "agent_pos"), point_cloud=True),
}

# policy observation key -> dataset key under data/ (DP3's zarr layout)
DATASET_KEYS = {"agent_pos": "state", "full_state": "full_state", "point_cloud": "point_cloud"}


def kind(name: str) -> ObsKind:
  """The kind called `name`; a ValueError lists the choices."""
  if name not in KINDS:
    raise ValueError(f"obs must be one of {sorted(KINDS)}, got {name!r}")
  return KINDS[name]


def keys(name: str) -> tuple[str, ...]:
  return kind(name).keys


def uses_sensor(config) -> bool:
  """Whether a run of `config` needs the point-cloud sensor."""
  return kind(config.obs).point_cloud
