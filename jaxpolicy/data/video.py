"""Video frames of a dataset, decoded once (PyAV) into a local cache of uint8 arrays.

`decode(path)` returns every frame of a file's first video stream with its presentation
time; a file is decoded on its first use and kept as two .npy files under the frame cache
(`JAXPOLICY_FRAME_CACHE`, default ~/.cache/jaxpolicy/frames; '' turns the cache off), keyed
by the file's real path, size and modification time, so later runs (a student after its
teacher, a resumed run) read arrays instead of decoding. Training reads the frames from the
device-resident dataset and never decodes per step.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os

import numpy as np

from jaxpolicy.data.storage import DatasetError


class VideoError(DatasetError):
  """A video file that cannot be opened or decoded."""


@dataclasses.dataclass(frozen=True)
class Video:
  frames: np.ndarray   # (n, H, W, 3) uint8
  times: np.ndarray    # (n,) float64 seconds from the file's start
  fps: float           # the stream's frame rate


def cache_dir() -> str:
  default = os.path.join(os.path.expanduser("~"), ".cache", "jaxpolicy", "frames")
  return os.environ.get("JAXPOLICY_FRAME_CACHE", default)


def _key(path: str) -> str:
  st = os.stat(path)
  ident = f"{os.path.realpath(path)}|{st.st_size}|{st.st_mtime_ns}"
  return hashlib.sha1(ident.encode()).hexdigest()


def _import_av():
  try:
    import av  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise VideoError("reading a dataset's videos needs PyAV: pip install 'jaxpolicy[formats]' "
                     "(or pip install av)") from None
  return av


def probe_fps(path: str) -> float:
  """The frame rate a file's first video stream declares (no decoding)."""
  av = _import_av()
  try:
    with av.open(path) as container:
      stream = container.streams.video[0]
      rate = stream.average_rate or stream.base_rate or stream.guessed_rate
      return float(rate)
  except (IndexError, av.error.FFmpegError, OSError) as e:
    raise VideoError(f"cannot decode {path} ({_reason(e)})") from None


def _reason(e: Exception) -> str:
  return str(e).splitlines()[0] if str(e) else type(e).__name__


def _decode_file(path: str) -> Video:
  av = _import_av()
  frames, times = [], []
  try:
    with av.open(path) as container:
      if not container.streams.video:
        raise VideoError(f"cannot decode {path} (it holds no video stream)")
      stream = container.streams.video[0]
      stream.thread_type = "AUTO"
      rate = stream.average_rate or stream.base_rate or stream.guessed_rate
      for frame in container.decode(stream):
        frames.append(frame.to_ndarray(format="rgb24"))
        times.append(float(frame.pts * stream.time_base) if frame.pts is not None
                     else len(times) / float(rate))
  except VideoError:
    raise
  except (av.error.FFmpegError, OSError, ValueError) as e:
    raise VideoError(f"cannot decode {path} ({_reason(e)})") from None
  if not frames:
    raise VideoError(f"cannot decode {path} (no frame decoded)")
  return Video(np.stack(frames), np.asarray(times, np.float64), float(rate))


def decode(path: str) -> Video:
  """Every frame of `path` (cached after the first call; see the module docstring)."""
  if not os.path.isfile(path):
    raise VideoError(f"video file {path} is missing")
  root = cache_dir()
  if not root:
    return _decode_file(path)
  base = os.path.join(root, _key(path))
  try:
    frames = np.load(base + ".frames.npy", mmap_mode="r", allow_pickle=False)
    meta = np.load(base + ".times.npy", allow_pickle=False)
    return Video(frames, meta[1:], float(meta[0]))
  except (OSError, ValueError):
    pass
  video = _decode_file(path)
  os.makedirs(root, exist_ok=True)
  for suffix, arr in ((".frames.npy", video.frames),
                      (".times.npy", np.concatenate([[video.fps], video.times]))):
    tmp = f"{base}{suffix}.{os.getpid()}.tmp.npy"
    np.save(tmp, arr, allow_pickle=False)
    os.replace(tmp, base + suffix)   # a reader never sees a half-written file
  return video


def select(video: Video, query_times: np.ndarray, tolerance_s: float, what: str) -> np.ndarray:
  """The frames shown at `query_times` (seconds into the file): the nearest frame, which must
  lie within `tolerance_s`; else a VideoError naming `what` and the first stray time."""
  idx = np.clip(np.searchsorted(video.times, query_times), 1, len(video.times) - 1)
  left, right = video.times[idx - 1], video.times[idx]
  idx = np.where(np.abs(query_times - left) <= np.abs(right - query_times), idx - 1, idx)
  if len(video.times) == 1:
    idx = np.zeros_like(idx)
  off = np.abs(video.times[idx] - query_times)
  bad = np.nonzero(off > tolerance_s)[0]
  if len(bad):
    i = int(bad[0])
    raise VideoError(f"{what}: no video frame at {query_times[i]:.4f} s (nearest "
                     f"{video.times[idx[i]]:.4f} s; {len(bad)} of {len(query_times)} frames "
                     f"off): the video and the parquet timestamps do not line up")
  return video.frames[idx]
