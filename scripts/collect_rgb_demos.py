"""Camera demonstrations of a MetaWorld task, written as a DP3-layout zarr with data/img.

    python scripts/collect_rgb_demos.py --task=drawer-open --episodes=10 --out=data/rgb.zarr \
        [--preset=quick] [--length=200]

MetaWorld's scripted expert drives the real MetaWorld (C MuJoCo); each frame records the
camera sensor's frames (`jaxpolicy.envs.camera`, the preset's `config.rgb`), DP3's
`agent_pos` (data/state), MetaWorld's 39-d state (data/full_state) and the expert's action;
only successful episodes are kept. A stand-in until demonstration collection takes the
camera sensor itself; train on the result offline with `--config.data.path=...`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402  pylint: disable=wrong-import-position

import configs  # noqa: E402  pylint: disable=wrong-import-position
from jaxpolicy.data import storage  # noqa: E402  pylint: disable=wrong-import-position
from jaxpolicy.envs import camera  # noqa: E402  pylint: disable=wrong-import-position
from jaxpolicy.envs import metaworld_cpu as mw  # noqa: E402  pylint: disable=wrong-import-position


def collect(task: str, episodes: int, config, length: int = mw.EPISODE_LENGTH, seed: int = 0,
            max_attempts: int | None = None, require_success: bool = True):
  """([{state, full_state, action, <camera keys>}: (length, ...)], timing) of `episodes`
  scripted-expert episodes (successful ones only, unless not `require_success`), frames from
  `config.rgb`'s camera sensor."""
  sensor = camera.make_camera_sensor(config)
  env = mw.make_env(task, seed=1_000_000 + seed)
  expert = mw.expert_policy(task)
  out, attempts, render_s, t0 = [], 0, 0.0, time.perf_counter()
  try:
    while len(out) < episodes:
      attempts += 1
      if attempts > (max_attempts or 3 * episodes):
        raise RuntimeError(f"the {task} expert succeeded in {len(out)} of {attempts - 1} "
                           f"episodes")
      state = mw.reset(env)
      rec = {k: [] for k in ("state", "full_state", "action") + sensor.keys}
      success = False
      for _ in range(length):
        t = time.perf_counter()
        frames = sensor(env)
        render_s += time.perf_counter() - t
        for k, v in frames.items():
          rec[k].append(v)
        rec["state"].append(mw.agent_pos(env))
        rec["full_state"].append(np.asarray(state, np.float32))
        action = mw.expert_action(expert, state)
        rec["action"].append(action)
        state, succ = mw.step(env, action)
        success |= succ
      if success or not require_success:
        out.append({k: np.stack(v) for k, v in rec.items()})
  finally:
    sensor.close()
  frames = attempts * length
  return out, {"wall_s": time.perf_counter() - t0, "render_s": render_s,
               "frames": frames, "render_fps": frames * len(sensor.keys) / max(render_s, 1e-9),
               "attempts": attempts}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--task", default="drawer-open")
  p.add_argument("--episodes", type=int, default=10)
  p.add_argument("--length", type=int, default=mw.EPISODE_LENGTH)
  p.add_argument("--preset", default="quick")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", required=True)
  a = p.parse_args(argv)
  config = configs.load("teacher", a.preset)
  config.obs = "rgb"
  eps, timing = collect(a.task, a.episodes, config, a.length, a.seed)
  spec = camera.camera_spec(config)
  storage.write_episodes(a.out, eps, attrs={"task": a.task, "obs_type": "rgb",
                                            "camera": spec.to_dict(), "seed": a.seed,
                                            "source": "metaworld scripted expert"})
  size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(a.out) for f in fs)
  raw = sum(v.nbytes for e in eps for k, v in e.items() if k.startswith("img"))
  print(f"{a.out}: {len(eps)} episodes, {sum(len(e['action']) for e in eps)} frames, "
        f"{size / 2**20:.2f} MiB on disk (camera frames {raw / 2**20:.1f} MiB raw); "
        f"rendering {timing['render_fps']:.0f} frames/s, {timing['render_s']:.1f} s of "
        f"{timing['wall_s']:.1f} s")


if __name__ == "__main__":
  main()
