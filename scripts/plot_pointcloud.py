"""Writes a PNG of one observed point cloud, to check the sensor by eye.

    python scripts/plot_pointcloud.py --task=drawer-open --steps=40 --out=/tmp/pc.png

Resets the real MetaWorld task (seeded), runs its scripted expert for `--steps` steps,
observes the point cloud with the sensor of `configs/common.py` (preset `--preset`), and
draws it from three sides (top, front, side) and in 3-D, with the end-effector and
finger-tip positions (`agent_pos`), the object position and the goal from MetaWorld's
state marked, and the crop box outlined. Points are coloured by height.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top


def observe_state(task: str, seed: int, steps: int, sensor):
  """(point cloud, 39-d state, agent_pos) after `steps` expert steps from a seeded reset."""
  from jaxpolicy import suites  # pylint: disable=g-import-not-at-top

  suite = suites.suite_of(suites.check_task(task))
  env, expert = suite.make_env(task, seed), suite.make_expert(task)
  expert.reset(seed)
  obs = env.reset()
  for _ in range(steps):
    obs, _ = env.step(expert(obs))
  obs = dict(obs, **sensor(env))
  return obs["point_cloud"], obs["full_state"], obs["agent_pos"]


def plot(points, state, agent_pos, crop_low, crop_high, title, out):
  """Four panels: top (x-y), front (x-z), side (y-z) and a 3-D view."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  marks = {
    "hand (agent_pos[0:3])": (agent_pos[0:3], "red", "D"),
    "fingers (agent_pos[3:9])": (np.stack([agent_pos[3:6], agent_pos[6:9]]), "orange", "^"),
    "object (state[4:7])": (state[4:7], "blue", "o"),
    "goal (state[36:39])": (state[36:39], "green", "s"),
  }
  fig = plt.figure(figsize=(16, 4.6))
  views = [("top: x-y", 0, 1), ("front: x-z", 0, 2), ("side: y-z", 1, 2)]
  lo, hi = np.asarray(crop_low), np.asarray(crop_high)
  for k, (name, a, b) in enumerate(views):
    ax = fig.add_subplot(1, 4, k + 1)
    ax.scatter(points[:, a], points[:, b], c=points[:, 2], s=4, cmap="viridis")
    ax.add_patch(
      plt.Rectangle((lo[a], lo[b]), hi[a] - lo[a], hi[b] - lo[b], fill=False, ls="--", color="gray")
    )
    for label, (p, color, marker) in marks.items():
      p = np.atleast_2d(p)
      ax.scatter(
        p[:, a],
        p[:, b],
        facecolors="none",
        edgecolors=color,
        marker=marker,
        s=160,
        linewidths=1.5,
        label=label,
      )
    ax.set_xlabel("xyz"[a])
    ax.set_ylabel("xyz"[b])
    ax.set_title(name)
    ax.set_aspect("equal")
  ax = fig.add_subplot(1, 4, 4, projection="3d")
  ax.scatter(points[:, 0], points[:, 1], points[:, 2], c=points[:, 2], s=3, cmap="viridis")
  for p, color, marker in marks.values():
    p = np.atleast_2d(p)
    ax.scatter(
      p[:, 0],
      p[:, 1],
      p[:, 2],
      facecolors="none",
      edgecolors=color,
      marker=marker,
      s=120,
      linewidths=1.5,
    )
  ax.set_xlabel("x")
  ax.set_ylabel("y")
  ax.set_zlabel("z")
  ax.view_init(elev=25, azim=-60)
  ax.set_box_aspect(tuple(hi - lo))
  fig.axes[0].legend(loc="upper left", fontsize=7, bbox_to_anchor=(0.0, -0.15), ncol=2)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(out, dpi=110)
  plt.close(fig)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--task", default="drawer-open")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--steps", type=int, default=40, help="expert steps before observing")
  p.add_argument("--preset", default="quick")
  p.add_argument("--geoms", default=None, help="override config.pointcloud.geoms")
  p.add_argument(
    "--num_points", type=int, default=None, help="override config.pointcloud.num_points"
  )
  p.add_argument("--out", default="pointcloud.png")
  args = p.parse_args(argv)
  from configs import common  # pylint: disable=g-import-not-at-top
  from jaxpolicy import validate  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs import pointcloud  # pylint: disable=g-import-not-at-top

  config = common.base_config(common.parse_arg(args.preset))
  config.task = args.task
  validate.resolve(config)  # the task's suite: its camera and crop box
  if args.geoms:
    config.pointcloud.geoms = args.geoms
  if args.num_points:
    config.pointcloud.num_points = args.num_points
  sensor = pointcloud.make_sensor(config)
  points, state, agent_pos = observe_state(args.task, args.seed, args.steps, sensor)
  spec = sensor.spec
  title = (
    f"{args.task} seed {args.seed} after {args.steps} expert steps: {len(points)} points "
    f"({spec.geoms} geoms, camera {spec.camera} at {spec.camera_pos or 'model pos'}, "
    f"{spec.image_size[0]}x{spec.image_size[1]} depth)"
  )
  plot(points, state, agent_pos, spec.crop_low, spec.crop_high, title, args.out)
  print(args.out)


if __name__ == "__main__":
  main()
