"""robomimic's HDF5 datasets (RoboMimic, MimicGen, LIBERO, Diffusion Policy's robomimic tasks),
read with h5py.

`RobomimicSource(path)`: episodes are the `data/demo_N` groups in the order of N (as
robomimic sorts them), features their `actions`, `rewards`, `dones` and `obs/<key>`; the
`mask/` split is not used. There is no default state: the run names the obs/ keys to
concatenate (data.state_keys). The layout: docs/data.md, "Your data, in the format you keep
it".
"""
from __future__ import annotations

import json
import re

import numpy as np

from jaxpolicy.data.source import Feature, Source
from jaxpolicy.data.storage import DatasetError

PER_DEMO = ("actions", "rewards", "dones")   # besides obs/<key>


def _h5py():
  try:
    import h5py  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DatasetError("reading robomimic datasets needs h5py: pip install "
                       "'jaxpolicy[formats]' (or pip install h5py)") from None
  return h5py


class RobomimicSource(Source):
  format = "robomimic"

  def __init__(self, path: str):
    super().__init__(path)
    h5py = _h5py()
    try:
      self._file = h5py.File(path, "r")
    except OSError as e:
      raise DatasetError(f"cannot open the HDF5 file {path} ({e})") from None
    data = self._file.get("data")
    demos = [k for k in (data.keys() if isinstance(data, h5py.Group) else ())
             if re.fullmatch(r"demo_\d+", k)]
    if not demos:
      raise DatasetError(f"HDF5 file {path} is not robomimic's layout: it has no data/demo_N "
                         f"groups (top level: {', '.join(self._file.keys()) or 'empty'})")
    self.demos = sorted(demos, key=lambda k: int(k.split("_")[1]))
    self._data = data
    self._problems: list[str] = []
    try:
      env = json.loads(data.attrs.get("env_args", "{}"))
    except (TypeError, ValueError):
      env = {}
    self.env_name = env.get("env_name", "")
    self.version = f"hdf5, env {self.env_name}" if self.env_name else "hdf5"
    rate = (env.get("env_kwargs") or {}).get("control_freq")
    self.fps = float(rate) if rate else None
    lengths = []
    for d in self.demos:
      if "actions" not in data[d]:
        raise DatasetError(f"robomimic dataset {path}: data/{d} has no actions")
      n = int(data[d]["actions"].shape[0])
      declared = data[d].attrs.get("num_samples")
      if declared is not None and int(declared) != n and not self._problems:
        self._problems.append(f"data/{d} says num_samples {int(declared)} but holds {n} "
                              f"actions")
      lengths.append(n)
    self.episode_ends = np.cumsum(np.asarray(lengths, np.int64))
    if "total" in data.attrs and int(data.attrs["total"]) != int(self.episode_ends[-1]):
      self._problems.append(f"data says total {int(data.attrs['total'])} samples, its demos "
                            f"hold {int(self.episode_ends[-1])}")
    first = data[self.demos[0]]
    obs = first.get("obs")
    obs_keys = sorted(obs.keys()) if obs is not None else []
    for d in self.demos[1:]:
      keys = sorted(data[d]["obs"].keys()) if "obs" in data[d] else []
      if keys != obs_keys:
        self._problems.append(f"data/{d}/obs has keys {keys}, data/{self.demos[0]}/obs "
                              f"{obs_keys}")
        break
    for k in obs_keys:
      a = obs[k]
      shape = tuple(a.shape[1:])
      camera = len(shape) == 3 and shape[-1] == 3 and a.dtype == np.uint8
      self.features[k] = Feature(k, shape, str(a.dtype), camera)
    for k in PER_DEMO:
      if k in first:
        self.features[k] = Feature(k, tuple(first[k].shape[1:]), str(first[k].dtype))

  def problems(self, videos=False):
    del videos
    return list(self._problems)

  def read(self, name):
    where = name if name in PER_DEMO else f"obs/{name}"
    try:
      return np.concatenate([np.asarray(self._data[d][where][...]) for d in self.demos])
    except KeyError:
      missing = next(d for d in self.demos if where not in self._data[d])
      raise DatasetError(f"robomimic dataset {self.path}: data/{missing} has no {where}") \
          from None

  def canonical(self, name):
    return name[len("obs/"):] if name.startswith("obs/") else name

  def default_state(self, key):
    del key
    low = [f"{n} {tuple(f.shape)}" for n, f in self.features.items()
           if not f.camera and n not in PER_DEMO]
    raise DatasetError(f"robomimic dataset {self.path}: name the obs/ keys that make the "
                       f"policy's state with --config.data.state_keys (e.g. "
                       f"'(\"robot0_eef_pos\", \"robot0_eef_quat\", \"robot0_gripper_qpos\")'); "
                       f"it has {', '.join(low) or 'no low-dimensional obs'}")

  def default_action(self):
    return "actions"

  def short_name(self, name):
    return name[:-len("_image")] if name.endswith("_image") else name
