"""Episode storage in zarr with DP3's layout.

    data/action      (N, A)        float32
    data/state       (N, 9)        DP3's agent_pos
    data/full_state  (N, 39)       MetaWorld's observation
    data/point_cloud (N, P, 3|6)   optional
    data/img         (N, H, W, 3)  uint8, optional (one camera; data/img_<camera> for several)
    meta/episode_ends (E,)         int64, cumulative

Written as zarr format 2 so DP3's own tools (zarr 2.x) read our files; files written by
DP3 load here directly. Writes go to a temporary directory that is renamed into place,
so an interrupted collection never leaves a half-written dataset behind. Camera frames are
stored uint8 in chunks of a few frames (`IMAGE_CHUNK_BYTES`), compressed with Blosc/zstd.
"""
from __future__ import annotations

import os
import shutil

import numcodecs
import numpy as np
import zarr

from jaxpolicy import obs as obs_lib

IMAGE_CHUNK_BYTES = 256 << 10     # camera frames: as many frames per chunk as fit in this
IMAGE_CODEC = dict(cname="zstd", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)

class DatasetError(ValueError):
  pass


def write_episodes(path: str, episodes: list[dict], attrs: dict | None = None) -> None:
  """episodes: list of {key: (L, ...) array} with the same keys; keys include 'action'."""
  if not episodes:
    raise DatasetError(f"no episodes to write to {path}")
  keys = sorted(episodes[0])
  tmp = path.rstrip("/") + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  root = zarr.open_group(tmp, mode="w", zarr_format=2)
  data = root.create_group("data")
  for k in keys:
    arr = np.concatenate([np.asarray(e[k]) for e in episodes], axis=0)
    extra = {}
    if obs_lib.is_image_key(k):   # a few frames per chunk, compressed
      frames = max(1, IMAGE_CHUNK_BYTES // max(1, arr[:1].nbytes))
      chunks = (min(len(arr), frames),) + arr.shape[1:]
      extra["compressors"] = numcodecs.Blosc(**IMAGE_CODEC)
    else:
      chunks = (min(len(arr), 1000),) + arr.shape[1:]
    data.create_array(k, shape=arr.shape, dtype=arr.dtype, chunks=chunks, **extra)[...] = arr
  ends = np.cumsum([len(e["action"]) for e in episodes]).astype(np.int64)
  meta = root.create_group("meta")
  meta.create_array("episode_ends", shape=ends.shape, dtype=ends.dtype)[...] = ends
  root.attrs.update(attrs or {})
  if os.path.exists(path):
    shutil.rmtree(path)
  os.replace(tmp, path)


def read_episodes(path: str, keys: tuple[str, ...]) -> tuple[dict, np.ndarray]:
  """Loads data/<key> for each key plus meta/episode_ends, checking the layout.

  Raises DatasetError naming the problem and the fix.
  """
  fix = f"Delete {path} and collect it again (python -m launch.collect --task=...)."
  if not os.path.isdir(path):
    raise DatasetError(f"no dataset at {path}. Collect it with python -m launch.collect.")
  try:
    root = zarr.open_group(path, mode="r")
    data, meta = root["data"], root["meta"]
    ends = np.asarray(meta["episode_ends"][...], np.int64)
  except Exception as e:  # zarr raises several types for missing/corrupt groups
    raise DatasetError(f"corrupt or incomplete dataset at {path} "
                       f"(need groups data/ and meta/episode_ends: {e}). {fix}") from e
  present = set(data.array_keys())
  missing = [k for k in keys if k not in present]
  if missing:
    raise DatasetError(f"dataset {path} lacks data/{', data/'.join(missing)} "
                       f"(has {sorted(present)}). {fix}")
  if len(ends) == 0 or np.any(np.diff(ends) <= 0) or ends[0] <= 0:
    raise DatasetError(f"dataset {path} has invalid meta/episode_ends {ends[:5]}... {fix}")
  out = {}
  for k in keys:
    try:
      out[k] = np.asarray(data[k][...])
    except Exception as e:
      raise DatasetError(f"cannot read data/{k} of {path}: {e}. {fix}") from e
    if len(out[k]) != ends[-1]:
      raise DatasetError(f"dataset {path}: data/{k} has {len(out[k])} steps but "
                         f"meta/episode_ends ends at {ends[-1]} (inconsistent lengths). {fix}")
  return out, ends


def read_attrs(path: str) -> dict:
  return dict(zarr.open_group(path, mode="r").attrs)
