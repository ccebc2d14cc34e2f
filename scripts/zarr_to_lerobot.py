"""A DP3-layout zarr (MetaWorld demonstrations, or your own) -> a LeRobot dataset folder.

    python scripts/zarr_to_lerobot.py data/metaworld_drawer-open_state_10ep.zarr \
        data/drawer-open_lerobot [--version=v2.1|v3.0] [--fps=80] [--vcodec=libsvtav1]

Features, LeRobot's names: observation.state <- data/state (DP3's agent_pos),
observation.environment_state <- data/full_state (MetaWorld's 39-d observation), action <-
data/action, observation.images.<camera> <- data/img (--camera names it, default corner2) or
data/img_<camera>, as mp4 with LeRobot's default encoder settings (AV1 via SVT-AV1, yuv420p,
a key frame every 2 frames, crf 30). Point clouds have no LeRobot feature and are left out.
The task is the zarr's `task` attribute. fps defaults to 80, MetaWorld's control rate (as
lerobot's MetaWorld environment). The folder is written next to its destination and renamed
into place, so an interrupted conversion leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr

FEATURES = (
  ("observation.state", "state"),
  ("observation.environment_state", "full_state"),
  ("action", "action"),
)
V21_DATA = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V21_VIDEO = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
V30_DATA = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V30_VIDEO = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
CHUNK_SIZE = 1000


def read_zarr(path: str, camera: str):
  """({LeRobot feature: (N, ...) array}, episode_ends, task) of a DP3-layout zarr."""
  root = zarr.open_group(path, mode="r")
  data = root["data"]
  keys = set(data.array_keys())
  out = {name: np.asarray(data[key][...], np.float32) for name, key in FEATURES if key in keys}
  if "action" not in out:
    raise SystemExit(f"error: {path} has no data/action")
  for key in sorted(keys):
    if key == "img" or key.startswith("img_"):
      cam = camera if key == "img" else key[len("img_") :]
      out[f"observation.images.{cam}"] = np.asarray(data[key][...], np.uint8)
  ends = np.asarray(root["meta"]["episode_ends"][...], np.int64)
  return out, ends, str(root.attrs.get("task", "task"))


def write_mp4(path: str, frames: np.ndarray, fps: int, vcodec: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  options = {"g": "2", "crf": "30"}
  os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only
  with av.open(path, "w") as out:
    stream = out.add_stream(vcodec, rate=fps, options=options)
    stream.pix_fmt = "yuv420p"
    stream.height, stream.width = frames.shape[1:3]
    for f in frames:
      for packet in stream.encode(
        av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
      ):
        out.mux(packet)
    for packet in stream.encode():
      out.mux(packet)


def _stats(x: np.ndarray) -> dict:
  x = np.asarray(x, np.float64)
  axes = (0, 1, 2) if x.ndim == 4 else 0  # images: per channel, as lerobot
  scale = 255.0 if x.ndim == 4 else 1.0
  s = {
    "min": x.min(axes) / scale,
    "max": x.max(axes) / scale,
    "mean": x.mean(axes) / scale,
    "std": x.std(axes) / scale,
  }
  s = {k: (v.reshape(3, 1, 1) if x.ndim == 4 else v).tolist() for k, v in s.items()}
  s["count"] = [len(x)]
  return s


def _info(version, arrays, ends, fps, vcodec, cams) -> dict:
  features = {}
  for name, x in arrays.items():
    if x.ndim == 4:
      h, w = x.shape[1:3]
      features[name] = {
        "dtype": "video",
        "shape": [h, w, 3],
        "names": ["height", "width", "channels"],
        "info": {
          "video.height": h,
          "video.width": w,
          "video.codec": "av1" if vcodec == "libsvtav1" else vcodec,
          "video.pix_fmt": "yuv420p",
          "video.is_depth_map": False,
          "video.fps": fps,
          "video.channels": 3,
          "has_audio": False,
        },
      }
    else:
      features[name] = {"dtype": "float32", "shape": [x.shape[1]], "names": None}
  for k, t in (
    ("timestamp", "float32"),
    ("frame_index", "int64"),
    ("episode_index", "int64"),
    ("index", "int64"),
    ("task_index", "int64"),
  ):
    features[k] = {"dtype": t, "shape": [1], "names": None}
  info = {
    "codebase_version": version,
    "robot_type": "sawyer",
    "total_episodes": len(ends),
    "total_frames": int(ends[-1]),
    "total_tasks": 1,
    "chunks_size": CHUNK_SIZE,
    "fps": fps,
    "splits": {"train": f"0:{len(ends)}"},
    "features": features,
  }
  if version == "v2.1":
    info.update(
      total_videos=len(ends) * len(cams),
      total_chunks=(len(ends) - 1) // CHUNK_SIZE + 1,
      data_path=V21_DATA,
      video_path=V21_VIDEO if cams else None,
    )
  else:
    for f in features.values():
      if f["dtype"] != "video":
        f["fps"] = fps
    info.update(
      data_files_size_in_mb=100,
      video_files_size_in_mb=200,
      data_path=V30_DATA,
      video_path=V30_VIDEO if cams else None,
    )
  return info


def _table(arrays, s, e, episode, first_index, fps) -> pa.Table:
  n = e - s
  cols = {}
  for name, x in arrays.items():
    if x.ndim == 2:
      cols[name] = pa.FixedSizeListArray.from_arrays(pa.array(x[s:e].ravel()), x.shape[1])
  cols.update(
    timestamp=pa.array((np.arange(n) / fps).astype(np.float32)),
    frame_index=pa.array(np.arange(n, dtype=np.int64)),
    episode_index=pa.array(np.full(n, episode, np.int64)),
    index=pa.array(np.arange(first_index, first_index + n, dtype=np.int64)),
    task_index=pa.array(np.zeros(n, np.int64)),
  )
  return pa.table(cols)


def convert(
  src: str,
  dst: str,
  version: str = "v2.1",
  fps: int = 80,
  vcodec: str = "libsvtav1",
  camera: str = "corner2",
) -> str:
  arrays, ends, task = read_zarr(src, camera)
  cams = [k for k, x in arrays.items() if x.ndim == 4]
  tmp = dst.rstrip("/") + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(os.path.join(tmp, "meta"))
  starts = np.concatenate([[0], ends[:-1]])
  episodes = [
    {"episode_index": i, "tasks": [task], "length": int(e - s)}
    for i, (s, e) in enumerate(zip(starts, ends))
  ]
  ep_stats = [{k: _stats(x[s:e]) for k, x in arrays.items()} for s, e in zip(starts, ends)]
  if version == "v2.1":
    for i, (s, e) in enumerate(zip(starts, ends)):
      chunk = i // CHUNK_SIZE
      rel = V21_DATA.format(episode_chunk=chunk, episode_index=i)
      os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
      pq.write_table(_table(arrays, s, e, i, int(s), fps), os.path.join(tmp, rel))
      for cam in cams:
        write_mp4(
          os.path.join(tmp, V21_VIDEO.format(episode_chunk=chunk, video_key=cam, episode_index=i)),
          arrays[cam][s:e],
          fps,
          vcodec,
        )
    with open(os.path.join(tmp, "meta", "episodes.jsonl"), "w") as f:
      f.writelines(json.dumps(ep) + "\n" for ep in episodes)
    with open(os.path.join(tmp, "meta", "episodes_stats.jsonl"), "w") as f:
      f.writelines(
        json.dumps({"episode_index": i, "stats": st}) + "\n" for i, st in enumerate(ep_stats)
      )
    with open(os.path.join(tmp, "meta", "tasks.jsonl"), "w") as f:
      f.write(json.dumps({"task_index": 0, "task": task}) + "\n")
  elif version == "v3.0":  # one data file and one video per camera: small datasets
    full = os.path.join(tmp, V30_DATA.format(chunk_index=0, file_index=0))
    os.makedirs(os.path.dirname(full))
    pq.write_table(
      pa.concat_tables(
        [_table(arrays, s, e, i, int(s), fps) for i, (s, e) in enumerate(zip(starts, ends))]
      ),
      full,
    )
    for cam in cams:
      write_mp4(
        os.path.join(tmp, V30_VIDEO.format(video_key=cam, chunk_index=0, file_index=0)),
        arrays[cam],
        fps,
        vcodec,
      )
    for ep, s, e, st in zip(episodes, starts, ends, ep_stats):
      ep.update(
        {
          "data/chunk_index": 0,
          "data/file_index": 0,
          "dataset_from_index": int(s),
          "dataset_to_index": int(e),
        }
      )
      for cam in cams:
        ep.update(
          {
            f"videos/{cam}/chunk_index": 0,
            f"videos/{cam}/file_index": 0,
            f"videos/{cam}/from_timestamp": float(s) / fps,
            f"videos/{cam}/to_timestamp": float(e) / fps,
          }
        )
      ep.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
      for name, feature in st.items():
        for k, v in feature.items():
          ep[f"stats/{name}/{k}"] = v
    full = os.path.join(tmp, "meta", "episodes", "chunk-000", "file-000.parquet")
    os.makedirs(os.path.dirname(full))
    pq.write_table(pa.Table.from_pylist(episodes), full)
    pq.write_table(
      pa.table({"task_index": pa.array([0], pa.int64()), "task": pa.array([task])}),
      os.path.join(tmp, "meta", "tasks.parquet"),
    )
  else:
    raise SystemExit(f"error: --version must be v2.1 or v3.0, got {version!r}")
  with open(os.path.join(tmp, "meta", "stats.json"), "w") as f:
    json.dump({k: _stats(x) for k, x in arrays.items()}, f)
  with open(os.path.join(tmp, "meta", "info.json"), "w") as f:
    json.dump(_info(version, arrays, ends, fps, vcodec, cams), f, indent=4)
  if os.path.exists(dst):
    shutil.rmtree(dst)
  os.replace(tmp, dst)
  return dst


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("src", help="a DP3-layout zarr")
  p.add_argument("dst", help="the LeRobot folder to write")
  p.add_argument("--version", default="v2.1", choices=("v2.1", "v3.0"))
  p.add_argument("--fps", type=int, default=80)
  p.add_argument("--vcodec", default="libsvtav1", help="libsvtav1 (LeRobot's default), libx264")
  p.add_argument("--camera", default="corner2", help="the camera data/img was rendered from")
  a = p.parse_args()
  print(convert(a.src, a.dst, a.version, a.fps, a.vcodec, a.camera))


if __name__ == "__main__":
  main()
