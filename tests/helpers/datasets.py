"""Small datasets written the way their own tools write them, for the readers' tests: LeRobot
v2.1 and v3.0 folders (pyarrow parquet, PyAV mp4 with LeRobot's default AV1 encoder settings,
the meta/ files lerobot writes), robomimic HDF5 (h5py). None of this uses jaxpolicy.

The data: a made-up 6-joint arm steering towards a per-episode goal; its camera sees a smooth
image whose bright spot follows two joints and whose band sweeps across with time, so every
frame differs from its neighbours by more than the codec's error. `pusht_episodes` records
Push-T-like data in gym-pusht itself.
"""

from __future__ import annotations

import io
import json
import os

import av
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

A, S, E = 6, 6, 10  # action, state and environment-state sizes


def robot_episodes(
  episodes: int = 6, length: int = 12, seed: int = 0, image: int = 0, cameras=("top",)
) -> list[dict]:
  """[{"state", "env_state", "action", "camera:<name>"...}] per episode; `image` > 0 adds
  uint8 (length, image, image, 3) frames per camera."""
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(episodes):
    goal, q = rng.uniform(-1, 1, A), rng.uniform(-1, 1, A)
    obj = rng.uniform(-1, 1, E)
    states, acts, envs = [], [], []
    for _ in range(length):
      target = q + 0.3 * (goal - q)
      states.append(q.copy())
      acts.append(target)
      envs.append(np.concatenate([obj[: E - A], goal])[:E] + 0.01 * rng.standard_normal(E))
      q = target
    ep = {
      "state": np.asarray(states, np.float32),
      "env_state": np.asarray(envs, np.float32),
      "action": np.asarray(acts, np.float32),
    }
    if image:
      yy, xx = np.mgrid[:image, :image] / (image - 1)
      for c, name in enumerate(cameras):
        frames = []
        for t, s in enumerate(ep["state"]):
          cx, cy = 0.5 + 0.35 * s[0], 0.5 + 0.35 * s[1 + c % 2]
          spot = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.05)
          band = np.exp(-((xx - (0.05 + 0.9 * t / length)) ** 2) / 0.004)  # sweeps in time
          frames.append(np.stack([40 + 180 * spot, 60 + 120 * band, 200 - 150 * yy], -1))
        ep[f"camera:{name}"] = np.clip(np.asarray(frames), 0, 255).astype(np.uint8)
    out.append(ep)
  return out


def pusht_episodes(episodes: int = 4, length: int = 20, seed: int = 0) -> list[dict]:
  """Push-T-like demonstrations recorded in gym-pusht itself (its own environment, not
  jaxpolicy's): a controller that steers the agent at the T's centre with noise. Keys as
  robot_episodes: "state" = agent_pos (2), "env_state" = the T's keypoints (16), "action" =
  the target position (2) -- what LeRobot's pusht_keypoints dataset holds."""
  os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
  from gym_pusht.envs.pusht import PushTEnv  # pylint: disable=g-import-not-at-top

  env = PushTEnv(obs_type="environment_state_agent_pos")
  rng = np.random.default_rng(seed)
  out = []
  for e in range(episodes):
    obs, _ = env.reset(seed=10_000 + seed * 1000 + e)
    rec = {"state": [], "env_state": [], "action": []}
    for _ in range(length):
      centre = obs["environment_state"].reshape(8, 2).mean(0)
      action = obs["agent_pos"] + 0.4 * (centre - obs["agent_pos"]) + rng.normal(0, 5, 2)
      rec["state"].append(obs["agent_pos"])
      rec["env_state"].append(obs["environment_state"])
      rec["action"].append(action)
      obs = env.step(action)[0]
    out.append({k: np.asarray(v, np.float32) for k, v in rec.items()})
  return out


def write_mp4(path: str, frames: np.ndarray, fps: int, codec: str = "libsvtav1") -> None:
  """LeRobot's default video settings: libsvtav1, yuv420p, a key frame every 2 frames, crf 30."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  options = {"g": "2", "crf": "30"}
  if codec == "libsvtav1":
    options["preset"] = "12"  # the fastest: tests
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only
  with av.open(path, "w") as out:
    stream = out.add_stream(codec, rate=fps, options=options)
    stream.pix_fmt = "yuv420p"
    stream.height, stream.width = frames.shape[1:3]
    for f in frames:
      for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
        out.mux(packet)
    for packet in stream.encode():
      out.mux(packet)


def _features(eps, fps, video: bool, image_dtype: str, v3: bool) -> dict:
  s, e, a = (eps[0][k].shape[1] for k in ("state", "env_state", "action"))
  feats = {
    "observation.state": {
      "dtype": "float32",
      "shape": [s],
      "names": [f"joint_{i}" for i in range(s)],
    },
    "observation.environment_state": {"dtype": "float32", "shape": [e], "names": None},
    "action": {"dtype": "float32", "shape": [a], "names": [f"joint_{i}" for i in range(a)]},
  }
  for k in eps[0]:
    if k.startswith("camera:"):
      h, w = eps[0][k].shape[1:3]
      f = {"dtype": image_dtype, "shape": [h, w, 3], "names": ["height", "width", "channels"]}
      if image_dtype == "video":
        f["info"] = {
          "video.height": h,
          "video.width": w,
          "video.codec": "av1",
          "video.pix_fmt": "yuv420p",
          "video.is_depth_map": False,
          "video.fps": fps,
          "video.channels": 3,
          "has_audio": False,
        }
      feats["observation.images." + k.split(":", 1)[1]] = f
  for k, t in (
    ("timestamp", "float32"),
    ("frame_index", "int64"),
    ("episode_index", "int64"),
    ("index", "int64"),
    ("task_index", "int64"),
  ):
    feats[k] = {"dtype": t, "shape": [1], "names": None}
  if v3:
    for f in feats.values():
      if f["dtype"] != "video":
        f["fps"] = fps
  del video
  return feats


def _png(frame: np.ndarray) -> bytes:
  from PIL import Image  # pylint: disable=g-import-not-at-top

  buf = io.BytesIO()
  Image.fromarray(frame).save(buf, format="PNG")
  return buf.getvalue()


def _frame_table(
  ep: dict, e: int, first_index: int, fps: int, fixed_lists: bool, image_dtype: str
) -> pa.Table:
  n = len(ep["action"])

  def vec(x):
    flat = pa.array(np.asarray(x, np.float32).ravel())
    if fixed_lists:  # datasets' Sequence(length=n): a fixed-size list
      return pa.FixedSizeListArray.from_arrays(flat, x.shape[1])
    offsets = pa.array(np.arange(0, x.size + 1, x.shape[1], dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, flat)

  cols = {
    "observation.state": vec(ep["state"]),
    "observation.environment_state": vec(ep["env_state"]),
    "action": vec(ep["action"]),
  }
  if image_dtype == "image":
    for k, frames in ep.items():
      if k.startswith("camera:"):
        cols["observation.images." + k.split(":", 1)[1]] = pa.array(
          [{"bytes": _png(f), "path": None} for f in frames],
          pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
        )
  cols.update(
    timestamp=pa.array((np.arange(n) / fps).astype(np.float32)),
    frame_index=pa.array(np.arange(n, dtype=np.int64)),
    episode_index=pa.array(np.full(n, e, np.int64)),
    index=pa.array(np.arange(first_index, first_index + n, dtype=np.int64)),
    task_index=pa.array(np.zeros(n, np.int64)),
  )
  return pa.table(cols)


def _stats(x: np.ndarray) -> dict:
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  return {
    "min": x.min(0).tolist(),
    "max": x.max(0).tolist(),
    "mean": x.mean(0).tolist(),
    "std": x.std(0).tolist(),
    "count": [len(x)],
  }


def write_lerobot_v21(
  path: str,
  eps: list[dict],
  fps: int = 10,
  image_dtype: str = "video",
  codec: str = "libsvtav1",
  chunks_size: int = 1000,
) -> str:
  """A LeRobot v2.1 folder: one parquet per episode (variable-size lists, as older `datasets`
  wrote them), one mp4 per episode and camera, meta/*.jsonl."""
  cams = [k.split(":", 1)[1] for k in eps[0] if k.startswith("camera:")]
  video = bool(cams) and image_dtype == "video"
  info = {
    "codebase_version": "v2.1",
    "robot_type": "toy_arm",
    "total_episodes": len(eps),
    "total_frames": sum(len(e["action"]) for e in eps),
    "total_tasks": 1,
    "total_videos": len(eps) * len(cams) if video else 0,
    "total_chunks": (len(eps) - 1) // chunks_size + 1,
    "chunks_size": chunks_size,
    "fps": fps,
    "splits": {"train": f"0:{len(eps)}"},
    "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
    "video_path": ("videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4")
    if video
    else None,
    "features": _features(eps, fps, video, image_dtype, v3=False),
  }
  os.makedirs(os.path.join(path, "meta"), exist_ok=True)
  index = 0
  with (
    open(os.path.join(path, "meta", "episodes.jsonl"), "w") as fe,
    open(os.path.join(path, "meta", "episodes_stats.jsonl"), "w") as fs,
  ):
    for e, ep in enumerate(eps):
      chunk = e // chunks_size
      rel = info["data_path"].format(episode_chunk=chunk, episode_index=e)
      os.makedirs(os.path.dirname(os.path.join(path, rel)), exist_ok=True)
      pq.write_table(_frame_table(ep, e, index, fps, False, image_dtype), os.path.join(path, rel))
      index += len(ep["action"])
      if video:
        for cam in cams:
          key = "observation.images." + cam
          write_mp4(
            os.path.join(
              path, info["video_path"].format(episode_chunk=chunk, video_key=key, episode_index=e)
            ),
            ep["camera:" + cam],
            fps,
            codec,
          )
      fe.write(
        json.dumps({"episode_index": e, "tasks": ["reach the goal"], "length": len(ep["action"])})
        + "\n"
      )
      fs.write(
        json.dumps(
          {
            "episode_index": e,
            "stats": {"observation.state": _stats(ep["state"]), "action": _stats(ep["action"])},
          }
        )
        + "\n"
      )
  with open(os.path.join(path, "meta", "tasks.jsonl"), "w") as f:
    f.write(json.dumps({"task_index": 0, "task": "reach the goal"}) + "\n")
  with open(os.path.join(path, "meta", "info.json"), "w") as f:
    json.dump(info, f, indent=4)
  return path


def _next(chunk: int, file: int, chunks_size: int):
  """lerobot's update_chunk_file_indices: a chunk holds chunks_size files."""
  return (chunk + 1, 0) if file == chunks_size - 1 else (chunk, file + 1)


def write_lerobot_v30(
  path: str,
  eps: list[dict],
  fps: int = 10,
  episodes_per_file: int = 3,
  episodes_per_video: int = 4,
  chunks_size: int = 2,
  codec: str = "libsvtav1",
) -> str:
  """A LeRobot v3.0 folder: episodes concatenated into chunked parquet and mp4 files (fixed-size
  lists, as `datasets` writes them now), per-episode metadata in meta/episodes/ parquet with
  from/to timestamps into the videos, meta/tasks.parquet, meta/stats.json. A small
  chunks_size makes the files roll over into chunk-001."""
  cams = [k.split(":", 1)[1] for k in eps[0] if k.startswith("camera:")]
  data_path = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
  video_path = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
  meta = [
    {"episode_index": e, "tasks": ["reach the goal"], "length": len(ep["action"])}
    for e, ep in enumerate(eps)
  ]
  chunk = file = index = 0
  for start in range(0, len(eps), episodes_per_file):
    group = range(start, min(start + episodes_per_file, len(eps)))
    tables = []
    for e in group:
      tables.append(_frame_table(eps[e], e, index, fps, True, "video"))
      meta[e].update(
        {
          "data/chunk_index": chunk,
          "data/file_index": file,
          "dataset_from_index": index,
          "dataset_to_index": index + len(eps[e]["action"]),
        }
      )
      index += len(eps[e]["action"])
    full = os.path.join(path, data_path.format(chunk_index=chunk, file_index=file))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    pq.write_table(pa.concat_tables(tables), full)
    chunk, file = _next(chunk, file, chunks_size)
  for cam in cams:
    key = "observation.images." + cam
    chunk = file = 0
    for start in range(0, len(eps), episodes_per_video):
      group = range(start, min(start + episodes_per_video, len(eps)))
      t = 0.0
      for e in group:
        n = len(eps[e]["action"])
        meta[e].update(
          {
            f"videos/{key}/chunk_index": chunk,
            f"videos/{key}/file_index": file,
            f"videos/{key}/from_timestamp": t,
            f"videos/{key}/to_timestamp": t + n / fps,
          }
        )
        t += n / fps
      write_mp4(
        os.path.join(path, video_path.format(video_key=key, chunk_index=chunk, file_index=file)),
        np.concatenate([eps[e]["camera:" + cam] for e in group]),
        fps,
        codec,
      )
      chunk, file = _next(chunk, file, chunks_size)
  for e, ep in enumerate(eps):
    meta[e].update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
    for k, v in _stats(ep["action"]).items():
      meta[e][f"stats/action/{k}"] = v
  full = os.path.join(path, "meta", "episodes", "chunk-000", "file-000.parquet")
  os.makedirs(os.path.dirname(full), exist_ok=True)
  pq.write_table(pa.Table.from_pylist(meta), full)
  pq.write_table(
    pa.table({"task_index": pa.array([0], pa.int64()), "task": pa.array(["reach the goal"])}),
    os.path.join(path, "meta", "tasks.parquet"),
  )
  with open(os.path.join(path, "meta", "stats.json"), "w") as f:
    json.dump({"action": _stats(np.concatenate([e["action"] for e in eps]))}, f)
  info = {
    "codebase_version": "v3.0",
    "robot_type": "toy_arm",
    "total_episodes": len(eps),
    "total_frames": index,
    "total_tasks": 1,
    "chunks_size": chunks_size,
    "data_files_size_in_mb": 100,
    "video_files_size_in_mb": 200,
    "fps": fps,
    "splits": {"train": f"0:{len(eps)}"},
    "data_path": data_path,
    "video_path": video_path if cams else None,
    "features": _features(eps, fps, bool(cams), "video", v3=True),
  }
  with open(os.path.join(path, "meta", "info.json"), "w") as f:
    json.dump(info, f, indent=4)
  return path


def write_robomimic(path: str, eps: list[dict], image: bool = False) -> str:
  """robomimic's layout: data/demo_N/{obs/<key>, actions, rewards, dones}, num_samples,
  data attrs total and env_args, mask/train and mask/valid. The arm's state is split into
  robosuite-style keys: robot0_eef_pos (3), robot0_eef_quat (the other 3 + a constant 1),
  robot0_gripper_qpos (2 of the environment state)."""
  with h5py.File(path, "w") as f:
    data = f.create_group("data")
    total = 0
    for i, ep in enumerate(eps):
      d = data.create_group(f"demo_{i}")
      n = len(ep["action"])
      obs = d.create_group("obs")
      obs["robot0_eef_pos"] = ep["state"][:, :3]
      obs["robot0_eef_quat"] = np.concatenate([ep["state"][:, 3:], np.ones((n, 1), np.float32)], 1)
      obs["robot0_gripper_qpos"] = ep["env_state"][:, :2]
      obs["object"] = ep["env_state"]
      if image:
        obs["agentview_image"] = ep["camera:top"]
      d["actions"] = ep["action"]
      d["rewards"] = np.zeros(n, np.float64)
      d["dones"] = np.zeros(n, np.int64)
      d.attrs["num_samples"] = n
      total += n
    data.attrs["total"] = total
    data.attrs["env_args"] = json.dumps(
      {"env_name": "ToyArm", "type": 1, "env_kwargs": {"control_freq": 20}}
    )
    mask = f.create_group("mask")
    names = [f"demo_{i}".encode() for i in range(len(eps))]
    mask["train"] = np.asarray(names[:-1])
    mask["valid"] = np.asarray(names[-1:])
  return path
