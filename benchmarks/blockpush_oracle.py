"""blockpush's scripted oracle in C MuJoCo and in MJX: p1, p2 and mode frequencies over the
same episodes, and a picture of one episode per mode.

    python -m benchmarks.blockpush_oracle --episodes=100 --out=docs/results/blockpush_oracle

Episode i starts from the CPU evaluator's initial state for --seed and the oracle's mode is
drawn from the same episode seed on both sides (logic.oracle_choice). Writes oracle.json
(both backends' rates, mode counts, wall times) and modes.png (the pusher's and blocks'
paths of the first CPU episode of each mode, top view).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time

from launch.common import set_mjx_cpu_flag


def run_cpu(seeds, episode_length: int) -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxpolicy.suites.blockpush import env as env_lib  # pylint: disable=g-import-not-at-top

  env, oracle = env_lib.BlockPushEnv(0), env_lib.Oracle()
  rows, paths = [], {}
  t0 = time.time()
  for s in seeds:
    obs = env.reset(seed=s)
    oracle.reset(s)
    path, first = [obs["full_state"]], -1
    for t in range(episode_length):
      obs, success = env.step(oracle(obs))
      path.append(obs["full_state"])
      if success:
        first = t
        break
    info = env.episode_info()
    rows.append(
      {
        "p2": first >= 0,
        "p1": info["p1"],
        "mode": info["mode"],
        "first": first,
        "chosen": "b%dt%d" % oracle_choice(s),
      }
    )
    paths.setdefault(info["mode"], np.stack(path))
  return {"rows": rows, "wall_s": time.time() - t0, "paths": paths}


def oracle_choice(seed):
  from jaxpolicy.suites.blockpush.logic import oracle_choice as choice  # pylint: disable=g-import-not-at-top

  return choice(seed)


def run_mjx(seed: int, episodes: int, episode_length: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs.suite import episode_seeds  # pylint: disable=g-import-not-at-top
  from jaxpolicy.suites.blockpush import logic, mjx_env  # pylint: disable=g-import-not-at-top

  env = mjx_env.make_env()
  qpos = env.evaluation_states(seed, episodes)
  choice = np.asarray([logic.oracle_choice(s) for s in episode_seeds(seed, episodes)])
  fn = jax.jit(mjx_env.oracle_rollout(env, episode_length))
  t0 = time.time()
  compiled = fn.lower(qpos, choice[:, 0], choice[:, 1]).compile()
  compile_s = time.time() - t0
  t0 = time.time()
  p2, p1, mode, first = jax.device_get(compiled(qpos, choice[:, 0], choice[:, 1]))
  rows = [
    {"p2": bool(a), "p1": bool(b), "mode": logic.MODES[int(m)], "first": int(f)}
    for a, b, m, f in zip(p2, p1, mode, first)
  ]
  return {"rows": rows, "wall_s": time.time() - t0, "compile_s": compile_s}


def summary(rows) -> dict:
  n = len(rows)
  return {
    "episodes": n,
    "p1": sum(r["p1"] for r in rows) / n,
    "p2": sum(r["p2"] for r in rows) / n,
    "mode_counts": dict(sorted(collections.Counter(r["mode"] for r in rows).items())),
  }


def plot_modes(paths: dict, out: str) -> str:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from jaxpolicy.suites.blockpush import logic, scene  # pylint: disable=g-import-not-at-top

  modes = [m for m in logic.MODES if m in paths]
  fig, axes = plt.subplots(1, len(modes), figsize=(3.2 * len(modes), 3.4), squeeze=False)
  for ax, m in zip(axes[0], modes):
    p = paths[m]
    for (x, y), c in zip(scene.TARGETS, ("tab:green", "gold")):
      ax.add_patch(plt.Circle((x, y), scene.TARGET_RADIUS, color=c, alpha=0.35))
    ax.plot(p[:, 0], p[:, 1], color="0.2", lw=1, label="pusher")
    ax.plot(p[:, 2], p[:, 3], color="tab:red", lw=2, label="block 0")
    ax.plot(p[:, 6], p[:, 7], color="tab:blue", lw=2, label="block 1")
    for i, c in ((2, "tab:red"), (6, "tab:blue")):
      ax.plot(p[0, i], p[0, i + 1], "s", color=c, ms=7, mfc="none")
      ax.plot(p[-1, i], p[-1, i + 1], "s", color=c, ms=7)
    ax.set_title(f"mode {m} ({len(p) - 1} steps)")
    ax.set_xlim(-0.3, 0.3)
    ax.set_ylim(-0.3, 0.25)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=7, loc="lower left")
  fig.suptitle("blockpush oracle: one episode per mode (open squares: start; targets: discs)")
  fig.tight_layout()
  fig.savefig(out, dpi=100)
  plt.close(fig)
  return out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--episodes", type=int, default=100)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--episode_length", type=int, default=200)
  p.add_argument("--backends", default="cpu,mjx")
  p.add_argument("--out", default="blockpush_oracle")
  args = p.parse_args(argv)
  os.environ.setdefault("MUJOCO_GL", "egl")
  backends = args.backends.split(",")
  if "mjx" in backends:
    set_mjx_cpu_flag()
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs.suite import episode_seeds  # pylint: disable=g-import-not-at-top

  os.makedirs(args.out, exist_ok=True)
  result = {"environment": common.environment(), "args": vars(args)}
  if "cpu" in backends:
    cpu = run_cpu(episode_seeds(args.seed, args.episodes), args.episode_length)
    result["cpu"] = dict(
      summary(cpu["rows"]),
      wall_s=round(cpu["wall_s"], 1),
      chosen_counts=dict(sorted(collections.Counter(r["chosen"] for r in cpu["rows"]).items())),
    )
    result["picture"] = plot_modes(cpu["paths"], os.path.join(args.out, "modes.png"))
  if "mjx" in backends:
    mjx = run_mjx(args.seed, args.episodes, args.episode_length)
    result["mjx"] = dict(
      summary(mjx["rows"]), wall_s=round(mjx["wall_s"], 1), compile_s=round(mjx["compile_s"], 1)
    )
    if "cpu" in backends:
      same = sum(a["mode"] == b["mode"] for a, b in zip(cpu["rows"], mjx["rows"]))
      result["same_mode_cpu_mjx"] = same / args.episodes
  for b in ("cpu", "mjx"):
    if b in result:
      r = result[b]
      print(f"{b}: p1 {r['p1']:.2f}  p2 {r['p2']:.2f}  modes {r['mode_counts']}  ({r['wall_s']} s)")
  with open(os.path.join(args.out, "oracle.json"), "w") as f:
    json.dump(result, f, indent=2)
  return result


if __name__ == "__main__":
  main()
