"""LeRobot datasets (Hugging Face's robot-data format), v2.0 / v2.1 and v3.0, read with pyarrow
and PyAV.

`LeRobotSource(path)` reads `meta/info.json` (version, fps, features, path templates), the
episode index (`meta/episodes.jsonl` in v2.x, `meta/episodes/*.parquet` in v3.0), the parquet
data and the mp4 videos; frame i of an episode is its row with frame_index i, its camera
frame the video frame shown at the row's timestamp. What is read per version, and the
faults: docs/data.md, "Your data, in the format you keep it".
"""
from __future__ import annotations

import glob
import io
import json
import os

import numpy as np

from jaxpolicy.data import video
from jaxpolicy.data.source import Feature, Source
from jaxpolicy.data.storage import DatasetError

VERSIONS = ("v2.0", "v2.1", "v3.0")
BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")
TIMESTAMP_TOLERANCE_S = 1e-4   # consecutive timestamps 1/fps apart within this (as lerobot)


def _pyarrow():
  try:
    import pyarrow  # pylint: disable=g-import-not-at-top
    import pyarrow.parquet  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    raise DatasetError("reading LeRobot datasets needs pyarrow and PyAV: pip install "
                       "'jaxpolicy[formats]' (or pip install pyarrow av)") from None
  return pyarrow


def _to_numpy(column, rows: int, shape: tuple, what: str) -> np.ndarray:
  """A parquet column of scalars or (nested, fixed or variable size) lists -> (rows, *shape)."""
  pa = _pyarrow()
  arr = column.combine_chunks() if hasattr(column, "combine_chunks") else column
  if arr.null_count:
    raise DatasetError(f"{what} has {arr.null_count} missing values")
  while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or \
      pa.types.is_fixed_size_list(arr.type):
    arr = arr.flatten()
  x = arr.to_numpy(zero_copy_only=False)
  per_frame = int(np.prod(shape)) if shape else 1
  if x.size != rows * per_frame:
    raise DatasetError(f"{what} holds {x.size / max(rows, 1):g} values per frame where "
                       f"meta/info.json says shape {list(shape)}")
  return x.reshape((rows,) + tuple(shape))


class LeRobotSource(Source):
  format = "lerobot"

  def __init__(self, path: str):
    super().__init__(path)
    pa = _pyarrow()
    info = self._json("meta/info.json")
    version = str(info.get("codebase_version", ""))
    if version not in VERSIONS:
      hint = ("convert it with lerobot's own conversion scripts first"
              if version < "v2.0" else "it is newer than this reader")
      raise DatasetError(f"LeRobot dataset {path}: unknown format version {version!r} in "
                         f"meta/info.json (this reader knows {', '.join(VERSIONS)}); {hint}")
    self.version, self.info = version, info
    if not isinstance(info.get("features"), dict) or not info.get("fps"):
      raise DatasetError(f"LeRobot dataset {path}: meta/info.json lacks 'features' or 'fps'")
    self.fps = float(info["fps"])
    self._problems: list[str] = []
    self.episodes = self._load_episodes()
    if not self.episodes:
      raise DatasetError(f"LeRobot dataset {path} has no episodes")
    self._parts, self._tables = [], {}   # per episode (data file, its rows in frame order)
    image_cols = [k for k, f in info["features"].items() if f.get("dtype") == "image"]
    for ep in self.episodes:
      rel = self._data_file(ep)
      if rel not in self._tables:
        full = os.path.join(path, rel)
        if not os.path.isfile(full):
          raise DatasetError(f"LeRobot dataset {path} lacks {rel} (episode "
                             f"{ep['episode_index']})")
        schema = pa.parquet.read_schema(full)
        cols = [c for c in schema.names if c not in image_cols]
        self._tables[rel] = pa.parquet.read_table(full, columns=cols)
      table = self._tables[rel]
      if "episode_index" not in table.column_names:
        raise DatasetError(f"LeRobot dataset {path}: {rel} has no episode_index column")
      rows = np.nonzero(table["episode_index"].to_numpy() == ep["episode_index"])[0]
      if "frame_index" in table.column_names:
        rows = rows[np.argsort(table["frame_index"].to_numpy()[rows], kind="stable")]
      self._parts.append((rel, rows))
    lengths = np.asarray([len(r) for _, r in self._parts], np.int64)
    short = np.nonzero(lengths == 0)[0]
    if len(short):
      raise DatasetError(f"LeRobot dataset {path}: episode "
                         f"{self.episodes[short[0]]['episode_index']} has no rows in "
                         f"{self._parts[short[0]][0]}")
    self.episode_ends = np.cumsum(lengths)
    self._timestamps = self._column("timestamp").astype(np.float64).ravel() \
        if "timestamp" in info["features"] else None
    for name, f in info["features"].items():
      dtype = f.get("dtype", "")
      camera = dtype in ("video", "image") and not (f.get("info") or {}).get(
          "video.is_depth_map", False)
      self.features[name] = Feature(name, self._shape(f), dtype, camera)
    self._check_metadata(lengths)

  # --- metadata -----------------------------------------------------------------------------

  def _json(self, rel: str):
    try:
      with open(os.path.join(self.path, rel)) as f:
        return json.load(f)
    except (OSError, ValueError) as e:
      raise DatasetError(f"LeRobot dataset {self.path}: cannot read {rel} ({e})") from None

  def _load_episodes(self) -> list[dict]:
    if self.version.startswith("v2"):
      rel = "meta/episodes.jsonl"
      try:
        with open(os.path.join(self.path, rel)) as f:
          eps = [json.loads(line) for line in f if line.strip()]
      except (OSError, ValueError) as e:
        raise DatasetError(f"LeRobot dataset {self.path}: cannot read {rel} ({e})") from None
    else:
      pa = _pyarrow()
      files = sorted(glob.glob(os.path.join(self.path, "meta", "episodes", "chunk-*",
                                            "file-*.parquet")))
      if not files:
        raise DatasetError(f"LeRobot dataset {self.path} (v3.0) has no "
                           f"meta/episodes/chunk-*/file-*.parquet")
      eps = []
      for f in files:
        cols = [c for c in pa.parquet.read_schema(f).names if not c.startswith("stats/")]
        eps += pa.parquet.read_table(f, columns=cols).to_pylist()
    return sorted(eps, key=lambda e: e["episode_index"])

  def _data_file(self, ep: dict) -> str:
    template = self.info.get("data_path", "")
    try:
      if self.version.startswith("v2"):
        chunk = ep["episode_index"] // int(self.info.get("chunks_size", 1000))
        return template.format(episode_chunk=chunk, episode_index=ep["episode_index"])
      return template.format(chunk_index=ep["data/chunk_index"],
                             file_index=ep["data/file_index"])
    except (KeyError, ValueError, IndexError) as e:
      raise DatasetError(f"LeRobot dataset {self.path}: cannot place episode "
                         f"{ep.get('episode_index')} with data_path {template!r} ({e})") from None

  def _video_file(self, ep: dict, key: str) -> str:
    template = self.info.get("video_path") or ""
    try:
      if self.version.startswith("v2"):
        chunk = ep["episode_index"] // int(self.info.get("chunks_size", 1000))
        return template.format(episode_chunk=chunk, video_key=key,
                               episode_index=ep["episode_index"])
      return template.format(video_key=key, chunk_index=ep[f"videos/{key}/chunk_index"],
                             file_index=ep[f"videos/{key}/file_index"])
    except (KeyError, ValueError, IndexError) as e:
      raise DatasetError(f"LeRobot dataset {self.path}: cannot place episode "
                         f"{ep.get('episode_index')}'s {key} video with video_path "
                         f"{template!r} ({e})") from None

  @staticmethod
  def _shape(f: dict) -> tuple:
    shape = tuple(int(s) for s in f.get("shape", ()))
    if f.get("dtype") in ("video", "image"):
      vi = f.get("info") or {}
      if "video.height" in vi and "video.width" in vi:
        return (int(vi["video.height"]), int(vi["video.width"]), 3)
      names = f.get("names") or []
      if len(shape) == 3 and (shape[0] == 3 and shape[-1] != 3 or
                              (names and str(names[0]).startswith("channel"))):
        return shape[1:] + shape[:1]   # (C, H, W) -> (H, W, C)
    return shape

  def _check_metadata(self, lengths: np.ndarray) -> None:
    info, p = self.info, self._problems
    if "total_episodes" in info and int(info["total_episodes"]) != len(self.episodes):
      p.append(f"meta/info.json says total_episodes {info['total_episodes']}, the episode "
               f"metadata lists {len(self.episodes)}")
    if "total_frames" in info and int(info["total_frames"]) != int(lengths.sum()):
      p.append(f"meta/info.json says total_frames {info['total_frames']}, the parquet files "
               f"hold {int(lengths.sum())}")
    for ep, n in zip(self.episodes, lengths):
      if "length" in ep and int(ep["length"]) != int(n):
        p.append(f"frame-count mismatch: episode {ep['episode_index']} has length "
                 f"{ep['length']} in its metadata but {n} rows in {self._data_file(ep)}")
        break
    if self._timestamps is not None:
      starts = np.concatenate([[0], self.episode_ends[:-1]])
      for ep, s, e in zip(self.episodes, starts, self.episode_ends):
        gaps = np.diff(self._timestamps[s:e])
        off = np.nonzero(np.abs(gaps - 1.0 / self.fps) > TIMESTAMP_TOLERANCE_S)[0]
        if len(off):
          i = int(off[0])
          p.append(f"episode {ep['episode_index']}'s timestamps are not 1/fps = "
                   f"{1 / self.fps:.4g} s apart at frame {i + 1} (gap {gaps[i]:.4g} s): the "
                   f"parquet data does not run at meta/info.json's {self.fps:g} fps")
          break

  # --- Source -------------------------------------------------------------------------------

  def problems(self, videos: bool = False) -> list[str]:
    out = list(self._problems)
    if videos:
      for name in self.cameras():
        if self.features[name].dtype != "video":
          continue
        for ep in self.episodes:
          rel = self._video_file(ep, name)
          try:
            fps = video.probe_fps(os.path.join(self.path, rel))
          except DatasetError as e:
            out.append(str(e))
            break
          if abs(fps - self.fps) > 1e-3 * self.fps:
            out.append(self._fps_mismatch(rel, fps))
            break
    return out

  def _fps_mismatch(self, rel: str, fps: float) -> str:
    return (f"fps mismatch between parquet and video: meta/info.json says {self.fps:g} fps, "
            f"{rel} runs at {fps:g} fps; re-encode the video at the dataset's rate")

  def default_state(self, key):
    return ("observation.environment_state",) if key == "full_state" else (
        "observation.state",)

  def default_action(self):
    return "action"

  def short_name(self, name):
    for prefix in ("observation.images.", "observation."):
      if name.startswith(prefix):
        return name[len(prefix):]
    return name

  def _column(self, name: str) -> np.ndarray:
    f = self.info["features"].get(name, {})
    shape = tuple(int(s) for s in f.get("shape", (1,)))
    out = []
    for rel, rows in self._parts:
      table = self._tables[rel]
      if name not in table.column_names:
        raise DatasetError(f"LeRobot dataset {self.path}: {rel} has no column {name!r}, which "
                           f"meta/info.json lists")
      out.append(_to_numpy(table[name].take(rows), len(rows), shape,
                           f"LeRobot dataset {self.path}: {name} in {rel}"))
    return np.concatenate(out)

  def read(self, name):
    dtype = self.features[name].dtype
    if dtype == "video":
      return self._read_video(name)
    if dtype == "image":
      return self._read_images(name)
    return self._column(name)

  def _episode_times(self, e: int) -> np.ndarray:
    s = 0 if e == 0 else int(self.episode_ends[e - 1])
    n = int(self.episode_ends[e]) - s
    if self._timestamps is None:
      return np.arange(n) / self.fps
    return self._timestamps[s:s + n]

  def _read_video(self, name: str) -> np.ndarray:
    tol = 0.25 / self.fps
    current, clip, out = None, None, []
    for e, ep in enumerate(self.episodes):
      rel = self._video_file(ep, name)
      if rel != current:       # v3.0 files hold many episodes: decode each file once
        clip, current = video.decode(os.path.join(self.path, rel)), rel
      if abs(clip.fps - self.fps) > 1e-3 * self.fps:
        raise DatasetError(f"LeRobot dataset {self.path}: {self._fps_mismatch(rel, clip.fps)}")
      start = float(ep.get(f"videos/{name}/from_timestamp", 0.0) or 0.0)
      end = float(ep.get(f"videos/{name}/to_timestamp", np.inf) or np.inf)
      times = self._episode_times(e)
      in_segment = int(np.sum((clip.times >= start - tol) & (clip.times < end - tol)))
      if in_segment != len(times):
        raise DatasetError(f"LeRobot dataset {self.path}: frame-count mismatch between parquet "
                           f"and video: episode {ep['episode_index']} has {len(times)} frames "
                           f"in the parquet data but {in_segment} in {rel}")
      out.append(video.select(clip, start + times, tol,
                              f"LeRobot dataset {self.path}: {rel}, episode "
                              f"{ep['episode_index']}"))
    return np.concatenate(out)

  def _read_images(self, name: str) -> np.ndarray:
    pa = _pyarrow()
    from PIL import Image  # pylint: disable=g-import-not-at-top
    frames, tables = [], {}
    for rel, rows in self._parts:
      if rel not in tables:
        tables = {rel: pa.parquet.read_table(os.path.join(self.path, rel), columns=[name])}
      for item in tables[rel][name].take(rows).to_pylist():
        data = (item or {}).get("bytes")
        if data is None:
          raise DatasetError(f"LeRobot dataset {self.path}: an image of {name} in {rel} has no "
                             f"embedded bytes")
        try:
          frames.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
        except OSError as e:
          raise DatasetError(f"LeRobot dataset {self.path}: cannot decode an image of {name} "
                             f"in {rel} ({e})") from None
    return np.stack(frames)
