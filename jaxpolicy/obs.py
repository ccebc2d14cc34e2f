"""Observation kinds: the one place that says what `config.obs` means.

A kind names the per-frame observation keys a policy reads (DP3's naming) and whether they
come from a sensor. Datasets store the same arrays under DP3's zarr keys (`data/state` is the
policy's `agent_pos`; `dataset_key`). The `rgb` kind's keys depend on the config
(`keys_of(config)`): one camera is Diffusion Policy's `img`, several are `img_<camera>`;
its frames are uint8 (H, W, 3), never min/max-normalised (the encoder scales them).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ObsKind:
  name: str  # the value of config.obs
  keys: tuple[str, ...]  # per-frame observation keys the policy reads (rgb: one camera)
  point_cloud: bool  # needs the point-cloud sensor (collection and evaluation)
  images: bool = False  # camera frames (the camera sensor, jaxpolicy.envs.camera)


KINDS = {
  # MetaWorld's 39-d observation (data/full_state)
  "state": ObsKind("state", ("full_state",), point_cloud=False),
  # the robot's low-dimensional state alone (DP3's data/state: agent_pos), any size
  "lowdim": ObsKind("lowdim", ("agent_pos",), point_cloud=False),
  # DP3: a point cloud per frame (data/point_cloud, any size, xyz or xyzrgb) + agent_pos
  "pointcloud": ObsKind("pointcloud", ("point_cloud", "agent_pos"), point_cloud=True),
  # Diffusion Policy's image policies: uint8 frames of config.rgb.cameras + agent_pos
  "rgb": ObsKind("rgb", ("img", "agent_pos"), point_cloud=False, images=True),
}

# policy observation key -> dataset key under data/ (DP3's zarr layout); camera keys are
# their own dataset keys (data/img, data/img_<camera>)
DATASET_KEYS = {"agent_pos": "state", "full_state": "full_state", "point_cloud": "point_cloud"}

IMAGE_KEY = "img"


def kind(name: str) -> ObsKind:
  """The kind called `name`; a ValueError lists the choices."""
  if name not in KINDS:
    raise ValueError(f"obs must be one of {sorted(KINDS)}, got {name!r}")
  return KINDS[name]


def keys(name: str) -> tuple[str, ...]:
  """The keys of a kind whose keys do not depend on the config (rgb: one camera's)."""
  return kind(name).keys


def camera_keys(cameras) -> tuple[str, ...]:
  """Policy (= dataset) keys of `cameras`: "img" for one camera, "img_<camera>" for each of
  several."""
  cameras = tuple(cameras)
  if len(cameras) == 1:
    return (IMAGE_KEY,)
  return tuple(f"{IMAGE_KEY}_{c}" for c in cameras)


def keys_of(config) -> tuple[str, ...]:
  """The per-frame observation keys a run of `config` reads (the rgb kind: its cameras')."""
  k = kind(config.obs)
  if k.images:
    return camera_keys(config.rgb.cameras) + ("agent_pos",)
  return k.keys


def is_image_key(key: str) -> bool:
  return key == IMAGE_KEY or key.startswith(IMAGE_KEY + "_")


def dataset_key(key: str) -> str:
  """The dataset key under data/ of a policy observation key."""
  return key if is_image_key(key) else DATASET_KEYS.get(key, key)


def uses_sensor(config) -> bool:
  """Whether a run of `config` needs the point-cloud sensor."""
  return kind(config.obs).point_cloud


def uses_camera(config) -> bool:
  """Whether a run of `config` needs the camera sensor (jaxpolicy.envs.camera)."""
  return kind(config.obs).images


def check_mjx(obs: str) -> None:
  """Raises a one-line ValueError when policies of observation kind `obs` cannot be
  evaluated in MJX (MJX has no rasteriser: camera frames exist on the CPU renderer only)."""
  if kind(obs).images:
    raise ValueError(
      f"obs={obs!r} policies cannot be evaluated in MJX: MJX has no rasteriser "
      f"for camera frames; set --config.eval.backend=cpu"
    )
