"""Datasets in the formats robot data is kept in, read into one shape.

`read_episodes(path, keys, mapping)` returns what `storage.read_episodes` returns for DP3's
zarr, ({dataset key: (N, ...) array}, episode_ends), for whichever format `path` holds:
a DP3-layout zarr (storage.py), a LeRobot folder (v2.x / v3.0, lerobot.py) or a robomimic
HDF5 file (robomimic.py). `Mapping` (config data.state_keys / cameras / action_key) says which
of the dataset's features make the policy's state (concatenated), cameras ("img" for one,
"img_<camera>" for several) and actions; `inspect` summarises a dataset and its faults.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np

from jaxpolicy.data import lerobot, robomimic, storage
from jaxpolicy.data.source import Feature, Source
from jaxpolicy.data.storage import DatasetError

STATE_KEYS = ("state", "full_state")   # dataset keys made by concatenating state features
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclasses.dataclass(frozen=True)
class Mapping:
  """Which features of a dataset the policy reads; empty = the format's defaults."""
  state_keys: tuple[str, ...] = ()
  cameras: tuple[str, ...] = ()
  action_key: str = ""

  @classmethod
  def from_config(cls, data_config) -> Mapping:
    """From config.data; `--config.data.state_keys=a,b` (one string to ml_collections) too."""
    def names(field):
      return tuple(n.strip() for v in data_config.get(field, ()) or () for n in v.split(",")
                   if n.strip())
    return cls(names("state_keys"), names("cameras"), data_config.get("action_key", "") or "")

  def is_default(self) -> bool:
    return self == Mapping()


def _magic(path: str) -> bytes:
  try:
    with open(path, "rb") as f:
      return f.read(8)
  except OSError:
    return b""


def detect(path: str) -> str:
  """"zarr", "lerobot" or "robomimic", by what `path` holds; a DatasetError otherwise."""
  formats = ("a LeRobot dataset folder with meta/info.json, a robomimic HDF5 file with "
             "data/demo_N groups, or a DP3-layout zarr folder with data/ and meta/episode_ends")
  if not os.path.exists(path):
    raise DatasetError(f"no dataset at {path}: data.path must be {formats}")
  if os.path.isdir(path):
    if os.path.isfile(os.path.join(path, "meta", "info.json")):
      return "lerobot"
    if any(os.path.exists(os.path.join(path, f)) for f in (".zgroup", "zarr.json")):
      return "zarr"
  elif _magic(path) == HDF5_MAGIC:
    return "robomimic"
  raise DatasetError(f"{path} is none of the dataset formats jaxpolicy reads: it must be "
                     f"{formats}")


class ZarrSource(Source):
  """DP3's zarr layout (storage.py): data/<key> arrays and meta/episode_ends."""
  format = "zarr"

  def __init__(self, path: str):
    super().__init__(path)
    import zarr  # pylint: disable=g-import-not-at-top
    try:
      root = zarr.open_group(path, mode="r")
      self._data = root["data"]
      self.episode_ends = np.asarray(root["meta"]["episode_ends"][...], np.int64)
      self.version = f"zarr format {root.metadata.zarr_format} (DP3 layout)"
    except Exception as e:  # zarr raises several types for missing/corrupt groups
      raise DatasetError(f"corrupt or incomplete zarr dataset at {path} (need groups data/ and "
                         f"meta/episode_ends: {e})") from e
    for name in sorted(self._data.array_keys()):
      a = self._data[name]
      shape = tuple(a.shape[1:])
      camera = len(shape) == 3 and shape[-1] == 3 and a.dtype == np.uint8
      self.features[name] = Feature(name, shape, str(a.dtype), camera)

  def read(self, name):
    return np.asarray(self._data[name][...])

  def default_state(self, key):
    return (key,)

  def default_action(self):
    return "action"

  def canonical(self, name):
    return name[len("data/"):] if name.startswith("data/") else name

  def short_name(self, name):
    return name[len("img_"):] if name.startswith("img_") else name

  def problems(self, videos=False):
    del videos
    out = []
    ends = self.episode_ends
    if len(ends) == 0 or np.any(np.diff(ends) <= 0) or ends[0] <= 0:
      out.append(f"meta/episode_ends is not increasing from > 0: {ends[:5]}...")
    return out


def open_source(path: str) -> Source:
  fmt = detect(path)
  if fmt == "lerobot":
    return lerobot.LeRobotSource(path)
  if fmt == "robomimic":
    return robomimic.RobomimicSource(path)
  return ZarrSource(path)


def _cameras(source: Source, mapping: Mapping) -> list[str]:
  """The camera features the run reads: mapping.cameras (full or short names) or all."""
  available = source.cameras()
  if not mapping.cameras:
    return available
  by_short = {source.short_name(c): c for c in available}
  chosen = []
  for c in mapping.cameras:
    name = source.canonical(c)
    if name in available:
      chosen.append(name)
    elif c in by_short:
      chosen.append(by_short[c])
    else:
      raise DatasetError(f"{source.where()} has no camera {c!r} (data.cameras); its cameras "
                         f"are {', '.join(available) or 'none'}")
  return chosen


def image_keys(source: Source, mapping: Mapping) -> dict[str, str]:
  """{dataset key: camera feature}: "img" for one camera, "img_<short name>" for several."""
  cams = _cameras(source, mapping)
  if len(cams) == 1:
    return {"img": cams[0]}
  return {f"img_{source.short_name(c)}": c for c in cams}


def resolve(source: Source, keys, mapping: Mapping) -> dict[str, tuple[str, ...]]:
  """{dataset key: the features it is read from}, every feature checked to exist."""
  plan = {}
  for key in keys:
    if key == "action":
      names, field = (source.canonical(mapping.action_key) if mapping.action_key
                      else source.default_action(),), "data.action_key"
    elif key in STATE_KEYS:
      names = tuple(source.canonical(k) for k in mapping.state_keys) or \
          source.default_state(key)
      field = "data.state_keys"
    elif key == "img" or key.startswith("img_"):
      cams = image_keys(source, mapping)
      if key == "img" and key not in cams:
        raise DatasetError(f"{source.where()} has {len(cams)} cameras "
                           f"({', '.join(cams.values()) or 'none'}) where the run reads one: "
                           f"name it with --config.data.cameras")
      if key not in cams:
        raise DatasetError(f"{source.where()} has no camera for {key!r}; the run's cameras "
                           f"give {', '.join(cams) or 'none'} (data.cameras)")
      names, field = (cams[key],), "data.cameras"
    else:
      names, field = (source.canonical(key),), f"the observation {key!r}"
    for n in names:
      if n not in source.features:
        raise source.missing(n, field)
    plan[key] = names
  return plan


def check_finite(source: Source, name: str, x: np.ndarray) -> None:
  if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.integer):
    return
  bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
  if bad.any():
    step = int(np.argmax(bad))
    episode = int(np.searchsorted(source.episode_ends, step, side="right"))
    raise DatasetError(f"{source.where()}: feature {name} has NaN or inf at step {step} "
                       f"(episode {episode}, {int(bad.sum())} steps in all); clean or drop "
                       f"those episodes")


def read_episodes(path: str, keys, mapping: Mapping | None = None):
  """({dataset key: (N, ...) array}, episode_ends) from any format; see the module doc.

  State keys concatenate their features (each flattened per frame) in the order named.
  """
  mapping = mapping or Mapping()
  fmt = detect(path)
  if fmt == "zarr" and mapping.is_default():
    return storage.read_episodes(path, tuple(keys))   # DP3's layout, as it always was
  source = open_source(path)
  for problem in source.problems():
    raise DatasetError(f"{source.where()}: {problem}")
  plan = resolve(source, keys, mapping)
  n = int(source.episode_ends[-1])
  out = {}
  for key, names in plan.items():
    parts = []
    for name in names:
      x = source.read(name)
      if len(x) != n:
        raise DatasetError(f"{source.where()}: feature {name} has {len(x)} frames, the "
                           f"episodes {n} (inconsistent lengths)")
      check_finite(source, name, x)
      parts.append(x)
    if key in STATE_KEYS or key == "action":
      parts = [np.asarray(p).reshape(n, -1) for p in parts]
      out[key] = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    else:
      out[key] = np.asarray(parts[0])
  return out, source.episode_ends


def _stats(x: np.ndarray) -> dict:
  x = np.asarray(x)
  if x.dtype == bool:
    x = x.astype(np.uint8)
  if not np.issubdtype(x.dtype, np.number) or x.size == 0:
    return {}
  flat = x.reshape(len(x), -1).astype(np.float64)
  finite = np.isfinite(flat)
  out = {"min": float(np.min(flat, where=finite, initial=np.inf)),
         "max": float(np.max(flat, where=finite, initial=-np.inf)),
         "mean": float(flat[finite].mean()) if finite.any() else float("nan")}
  if flat.shape[1] <= 16:   # per dimension, for vectors short enough to read
    out["dims"] = {"min": np.nanmin(np.where(finite, flat, np.nan), 0).tolist(),
                   "max": np.nanmax(np.where(finite, flat, np.nan), 0).tolist(),
                   "mean": np.nanmean(np.where(finite, flat, np.nan), 0).tolist()}
  bad = int((~finite).any(axis=1).sum())
  if bad:
    out["non_finite_steps"] = bad
  return out


def inspect(path: str, mapping: Mapping | None = None, read: bool = True) -> dict:
  """What a dataset holds and what the trainer would see: format, version, episodes, frames,
  fps, features (shape, dtype, min / max / mean), the default key mapping, every fault
  found. `read=False` skips reading the data (no statistics, no decoding)."""
  mapping = mapping or Mapping()
  out = {"path": path, "faults": []}
  try:
    source = open_source(path)
  except DatasetError as e:
    out["faults"].append(str(e))
    return out
  ends = source.episode_ends
  out.update(format=source.format, version=source.version, fps=source.fps,
             episodes=int(len(ends)), frames=int(ends[-1]) if len(ends) else 0,
             episode_length={"min": int(np.diff(ends, prepend=0).min()),
                             "max": int(np.diff(ends, prepend=0).max())} if len(ends) else {})
  out["faults"] += source.problems(videos=not read)   # reading checks the videos anyway
  features = {}
  for name, f in source.features.items():
    row = {"shape": list(f.shape), "dtype": f.dtype, "camera": f.camera}
    if read:
      try:
        x = source.read(name)
        row["shape"] = list(x.shape[1:])
        row.update(_stats(x))
        if row.get("non_finite_steps"):
          out["faults"].append(f"feature {name} has NaN or inf in {row['non_finite_steps']} "
                               f"steps")
        if len(ends) and len(x) != ends[-1]:
          out["faults"].append(f"feature {name} has {len(x)} frames, the episodes {ends[-1]}")
      except DatasetError as e:
        out["faults"].append(str(e))
    features[name] = row
  out["features"] = features
  plan = {}   # by the policy's key: agent_pos (obs lowdim / pointcloud), full_state (state)
  for key, label in (("state", "agent_pos"), ("full_state", "full_state"), ("action", "action")):
    try:
      plan[label] = list(resolve(source, (key,), mapping)[key])
    except DatasetError as e:
      plan[label] = f"not mapped: {e}"
  if isinstance(plan["agent_pos"], str) and plan["agent_pos"] == plan["full_state"]:
    plan["agent_pos / full_state"] = plan.pop("agent_pos")
    plan.pop("full_state")
  try:
    plan.update({k: [v] for k, v in image_keys(source, mapping).items()})
  except DatasetError as e:
    plan["cameras"] = f"not mapped: {e}"
  out["mapping"] = plan
  return out
