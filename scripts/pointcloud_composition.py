"""What the point-cloud sensor's points land on, per task and crop option (issue: point clouds
at the papers' setting).

    python scripts/pointcloud_composition.py --tasks=drawer-open,coffee-push \
        --preset=paper --frames=10 --out=benchmarks/results/pointcloud_composition

For each task, the seeded real-MetaWorld task runs its scripted expert for one episode; at
`--frames` evenly spaced steps the sensor of `configs/common.py` (preset `--preset`: paper is
DP3's 512 points from a 128x128 depth image) observes the scene under each crop option, and
every sampled point is labelled with what it hit (MuJoCo's segmentation render of the same
frame): `table` (the table body), `scene` (floor, walls), `arm` (the Sawyer below the
wrist), `gripper` (the wrist flange, hand, claws, pads and finger-tip sites), `object`
(every other body: the task's objects) and `goal` (MetaWorld's goal marker). It also counts
the points within 10 cm of the hand and of the object (MetaWorld's state positions).

Crop options (world frame, metres; x and y bounds and the top are the same):
* `dp3`: the floor of the box 1 cm below z = 0, so the table is in view, as DP3's crop keeps
  it (the presets' default);
* `table_cut`: the floor 5 mm above z = 0, which cuts the table plane away where the table
  top is at z = 0;
* `table_hidden`: the `dp3` box with `config.pointcloud.table="hide"`: the sensor leaves the
  table body's geoms out, whatever their height.

Writes <out>/composition.json, <out>/composition.md and <out>/clouds_<task>.png (one frame
of the first task per crop option, points coloured by label, three views).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # pylint: disable=g-import-not-at-top

# the crop box's floor (z, metres) and config.pointcloud.table
CROPS = {"dp3": (-0.01, "keep"), "table_cut": (0.005, "keep"), "table_hidden": (-0.01, "hide")}
LABELS = ("table", "scene", "arm", "gripper", "object", "goal")
COLOURS = {"table": "#bbbbbb", "scene": "#8c564b", "arm": "#1f77b4", "gripper": "#d62728",
           "object": "#2ca02c", "goal": "#ff7f0e"}


def body_labels(model) -> np.ndarray:
  """(nbody,) label index of every body of a MetaWorld model."""
  import mujoco  # pylint: disable=g-import-not-at-top
  name = lambda b: mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) or ""
  gripper_root = model.body("right_hand").id

  def under(b, root):
    while b != 0:
      if b == root:
        return True
      b = model.body_parentid[b]
    return False

  out = np.zeros(model.nbody, np.int32)
  for b in range(model.nbody):
    root = name(model.body_rootid[b])
    if b == 0 or root in ("RetainingWall",):
      lab = "scene"
    elif root == "tablelink":
      lab = "table"
    elif root == "base":
      lab = "gripper" if under(b, gripper_root) else "arm"
    else:
      lab = "object"
    out[b] = LABELS.index(lab)
  return out


def point_labels(model, objtype, objid) -> np.ndarray:
  """(P,) label index of each point from its segmentation (type, id)."""
  import mujoco  # pylint: disable=g-import-not-at-top
  bodies = body_labels(model)
  out = np.full(len(objid), LABELS.index("scene"), np.int32)
  geom = objtype == int(mujoco.mjtObj.mjOBJ_GEOM)
  out[geom] = bodies[model.geom_bodyid[objid[geom]]]
  for i in np.nonzero(objtype == int(mujoco.mjtObj.mjOBJ_SITE))[0]:
    site = model.site(int(objid[i]))
    out[i] = LABELS.index("goal") if site.name == "goal" else bodies[model.site_bodyid[site.id]]
  return out


def observe_episode(task, seed, frames, sensors, episode_length):
  """{crop: [(points, labels, hand, object)]} over `frames` steps of one expert episode."""
  from jaxpolicy.envs import metaworld_cpu as mw  # pylint: disable=g-import-not-at-top
  env = mw.make_env(task, seed=seed)
  expert = mw.expert_policy(task)
  state = mw.reset(env)
  at = set(np.linspace(0, episode_length - 1, frames).astype(int).tolist())
  out = {c: [] for c in sensors}
  raw = getattr(env, "unwrapped", env)
  for t in range(episode_length):
    if t in at:
      hand, obj = np.asarray(state[0:3]), np.asarray(state[4:7])
      for crop, sensor in sensors.items():
        pts, _, otype, oid = sensor.labelled_cloud(raw.model, raw.data)
        out[crop].append((pts, point_labels(raw.model, otype, oid), hand, obj))
    state, _ = mw.step(env, mw.expert_action(expert, state))
  return out


def summarise(frames) -> dict:
  counts = np.array([[np.sum(lab == i) for i in range(len(LABELS))] for _, lab, _, _ in frames])
  near = lambda p, c: np.sum(np.linalg.norm(p - c, axis=1) < 0.10)
  return {"points": int(len(frames[0][0])), "frames": len(frames),
          "mean_points": {l: float(counts[:, i].mean()) for i, l in enumerate(LABELS)},
          "near_hand_10cm": float(np.mean([near(p, h) for p, _, h, _ in frames])),
          "near_object_10cm": float(np.mean([near(p, o) for p, _, _, o in frames]))}


def plot(task, frames_by_crop, crop_boxes, out):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  crops = list(frames_by_crop)
  fig, axes = plt.subplots(len(crops), 3, figsize=(15, 4.4 * len(crops)), squeeze=False)
  for r, crop in enumerate(crops):
    frames = frames_by_crop[crop]
    pts, lab, hand, obj = frames[len(frames) // 2]
    for c, (name, a, b) in enumerate([("top: x-y", 0, 1), ("front: x-z", 0, 2),
                                       ("side: y-z", 1, 2)]):
      ax = axes[r][c]
      for i, l in enumerate(LABELS):
        sel = lab == i
        if sel.any():
          ax.scatter(pts[sel, a], pts[sel, b], s=5, c=COLOURS[l], label=f"{l} ({sel.sum()})")
      ax.scatter([hand[a]], [hand[b]], marker="D", s=120, facecolors="none", edgecolors="k",
                 label="hand (state)")
      ax.scatter([obj[a]], [obj[b]], marker="o", s=120, facecolors="none", edgecolors="m",
                 label="object (state)")
      lo, hi = crop_boxes[crop]
      ax.add_patch(plt.Rectangle((lo[a], lo[b]), hi[a] - lo[a], hi[b] - lo[b], fill=False,
                                 ls="--", color="gray"))
      ax.set_title(f"{crop}: {name}")
      ax.set_xlabel("xyz"[a])
      ax.set_ylabel("xyz"[b])
      ax.set_aspect("equal")
    axes[r][0].legend(fontsize=7, loc="upper left")
  fig.suptitle(f"{task}: one {len(pts)}-point cloud per crop option (mid-episode expert "
               "frame), points coloured by what they hit")
  fig.tight_layout()
  fig.savefig(out, dpi=100)
  plt.close(fig)


def markdown(results, meta) -> str:
  lines = [f"# What the point cloud's points land on ({meta['points']} points, "
           f"{meta['image_size']}x{meta['image_size']} depth)", "",
           f"`{meta['command']}` ({meta['date']}, {meta['frames']} expert frames per task, seed "
           f"{meta['seed']}). Mean points per frame:", "",
           "| task | crop | " + " | ".join(LABELS) + " | within 10 cm of hand | of object |",
           "|---|---|" + "---|" * (len(LABELS) + 2)]
  for task, by_crop in results.items():
    for crop, s in by_crop.items():
      m = s["mean_points"]
      lines.append(f"| {task} | {crop} | " + " | ".join(f"{m[l]:.1f}" for l in LABELS) +
                   f" | {s['near_hand_10cm']:.1f} | {s['near_object_10cm']:.1f} |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--tasks", default="drawer-open,coffee-push")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--preset", default="paper")
  p.add_argument("--frames", type=int, default=10)
  p.add_argument("--episode_length", type=int, default=200)
  p.add_argument("--crops", default=",".join(CROPS))
  p.add_argument("--out", default="pointcloud_composition")
  args = p.parse_args(argv)
  from configs import common  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs import pointcloud  # pylint: disable=g-import-not-at-top
  config = common.base_config(common.parse_arg(args.preset))
  sensors, boxes = {}, {}
  for crop in args.crops.split(","):
    if crop not in CROPS:
      raise SystemExit(f"unknown crop {crop!r}; choose from {sorted(CROPS)}")
    c = config.copy_and_resolve_references()
    low = list(c.pointcloud.crop_low)
    low[2], c.pointcloud.table = CROPS[crop]
    c.pointcloud.crop_low = tuple(low)
    sensors[crop] = pointcloud.make_sensor(c)
    boxes[crop] = (np.asarray(c.pointcloud.crop_low), np.asarray(c.pointcloud.crop_high))
  os.makedirs(args.out, exist_ok=True)
  results = {}
  t0 = time.time()
  for k, task in enumerate(args.tasks.split(",")):
    frames = observe_episode(task, args.seed, args.frames, sensors, args.episode_length)
    results[task] = {crop: summarise(f) for crop, f in frames.items()}
    if k == 0:
      plot(task, frames, boxes, os.path.join(args.out, f"clouds_{task}.png"))
    print(f"{task}: " + "; ".join(
        f"{crop} " + " ".join(f"{l} {v:.0f}" for l, v in s["mean_points"].items())
        for crop, s in results[task].items()), flush=True)
  meta = {"command": "python scripts/pointcloud_composition.py " + " ".join(argv or sys.argv[1:]),
          "date": time.strftime("%Y-%m-%d"), "points": config.pointcloud.num_points,
          "image_size": config.pointcloud.image_size, "frames": args.frames,
          "seed": args.seed, "crops": {c: [b[0].tolist(), b[1].tolist()] for c, b in boxes.items()},
          "wall_s": round(time.time() - t0, 1)}
  with open(os.path.join(args.out, "composition.json"), "w") as f:
    json.dump({"meta": meta, "results": results}, f, indent=2)
  with open(os.path.join(args.out, "composition.md"), "w") as f:
    f.write(markdown(results, meta))
  for s in sensors.values():
    s.close()
  print(os.path.join(args.out, "composition.md"))


if __name__ == "__main__":
  main()
