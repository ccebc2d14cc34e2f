"""Video decoding speed of the dataset readers (jaxpolicy/data/video.py), in frames per second.

    python scripts/decode_speed.py [--sizes=96,224] [--frames=1000] [--codecs=libsvtav1,libx264]
                                   [--repeats=3]

For each codec and square frame size it encodes one synthetic clip (a moving spot on a
gradient, LeRobot's encoder settings: yuv420p, a key frame every 2 frames, crf 30), then
times, best of --repeats: decoding it with PyAV into uint8 RGB arrays (what the first run on
a dataset pays), writing the frame cache, and reading the cache (what every later run pays).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import av
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jaxpolicy.data import video  # noqa: E402  pylint: disable=wrong-import-position


def clip(n: int, size: int) -> np.ndarray:
  yy, xx = np.mgrid[:size, :size] / (size - 1)
  out = np.empty((n, size, size, 3), np.uint8)
  for t in range(n):
    cx, cy = 0.5 + 0.35 * np.cos(t / 17), 0.5 + 0.35 * np.sin(t / 11)
    spot = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.02)
    out[t] = np.clip(np.stack([40 + 200 * spot, 255 * xx, 255 * yy], -1), 0, 255)
  return out


def encode(path: str, frames: np.ndarray, codec: str, fps: int = 30) -> None:
  options = {"g": "2", "crf": "30"}
  os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1: errors only
  with av.open(path, "w") as out:
    stream = out.add_stream(codec, rate=fps, options=options)
    stream.pix_fmt = "yuv420p"
    stream.height, stream.width = frames.shape[1:3]
    for f in frames:
      for p in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
        out.mux(p)
    for p in stream.encode():
      out.mux(p)


def best(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
  return min(times)


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--sizes", default="96,224")
  p.add_argument("--frames", type=int, default=1000)
  p.add_argument("--codecs", default="libsvtav1,libx264")
  p.add_argument("--repeats", type=int, default=3)
  a = p.parse_args()
  print(
    f"{'codec':<10} {'size':>5} {'frames':>6} {'MB':>6} {'decode f/s':>11} "
    f"{'decode+write f/s':>16} {'cache read f/s':>15}"
  )
  with tempfile.TemporaryDirectory() as d:
    os.environ["JAXPOLICY_FRAME_CACHE"] = os.path.join(d, "cache")
    for codec in a.codecs.split(","):
      for size in (int(s) for s in a.sizes.split(",")):
        path = os.path.join(d, f"{codec}_{size}.mp4")
        encode(path, clip(a.frames, size), codec)
        dec = best(lambda: video._decode_file(path), a.repeats)  # noqa: B023  pylint: disable=protected-access

        def write_cache():
          for f in (
            os.listdir(os.environ["JAXPOLICY_FRAME_CACHE"])
            if os.path.isdir(os.environ["JAXPOLICY_FRAME_CACHE"])
            else ()
          ):
            os.remove(os.path.join(os.environ["JAXPOLICY_FRAME_CACHE"], f))
          video.decode(path)  # noqa: B023

        write = best(write_cache, a.repeats)
        read = best(lambda: np.asarray(video.decode(path).frames[:]) + 0, a.repeats)  # noqa: B023
        mb = os.path.getsize(path) / 1e6
        print(
          f"{codec:<10} {size:>5} {a.frames:>6} {mb:>6.2f} {a.frames / dec:>11.0f} "
          f"{a.frames / write:>16.0f} {a.frames / read:>15.0f}",
          flush=True,
        )


if __name__ == "__main__":
  main()
