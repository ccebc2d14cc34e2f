"""Episode storage in zarr with DP3's layout (data/<key> arrays, meta/episode_ends).

`write_episodes(path, episodes, attrs)` writes zarr format 2, which DP3's own tools read,
through a temporary directory renamed into place (an interrupted collection leaves nothing
half-written); `read_episodes(path, keys)` and `read_attrs(path)` read it back, DP3's files
included. The arrays, and how camera frames are chunked and compressed: docs/data.md, "DP3's
zarr layout, as jaxpolicy writes it".
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
