"""MJX observation and success vs MetaWorld's own, on identical states, per task.

    python scripts/check_mjx_states.py --tasks=stick-push,hammer [--out=FILE.json]
    python scripts/check_mjx_states.py --tasks=all

For each task, records MetaWorld states along a scripted-expert episode (150 steps, seed 3)
and a noisy one (60 steps, seed 4, action noise 0.5), loads every state into MJX
(`MJXEnv.observe_state`) and compares the 39-d observation with MetaWorld's `_get_obs`
(max abs error) and the success flag with `evaluate_state` (fraction equal). tests/test_mjx.py
runs the same comparison for three tasks in CI; this covers the rest (minutes per task on a
CPU: one compile each).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def check(task: str) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from jaxpolicy.envs.mjx.env import MJXEnv  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs.mjx.experts import record_metaworld  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs.mjx.resets import ResetBank  # pylint: disable=g-import-not-at-top
  parts = [record_metaworld(task, seed=3, steps=150), record_metaworld(task, seed=4, steps=60,
                                                                        noise=0.5)]
  rows = ResetBank(**{k: np.concatenate([getattr(p[0], k) for p in parts])
                      for k in ResetBank.__dataclass_fields__})
  prev, obs, succ = (np.concatenate([p[i] for p in parts]) for i in (1, 2, 3))
  env = MJXEnv(task, resets=rows.take(np.arange(1)))
  t0 = time.perf_counter()
  o, s = jax.jit(jax.vmap(env.observe_state))(rows, prev)
  o, s = np.asarray(o), np.asarray(s)
  differ = np.nonzero(s != succ)[0]
  return {"task": task, "states": int(len(succ)), "metaworld_successes": int(succ.sum()),
          "obs_max_abs_err": float(np.abs(o - obs).max()),
          "success_agree": float(np.mean(s == succ)), "differing_states": differ.tolist(),
          "seconds": round(time.perf_counter() - t0, 1)}


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--tasks", default="stick-push", help="comma-separated tasks, or 'all'")
  p.add_argument("--out", default=None, help="also write the rows as JSON")
  args = p.parse_args()
  os.environ.setdefault("MUJOCO_GL", "egl")
  from launch.common import set_mjx_cpu_flag  # pylint: disable=g-import-not-at-top
  set_mjx_cpu_flag()
  from jaxpolicy.envs.registry import TASKS, check_task  # pylint: disable=g-import-not-at-top
  tasks = list(TASKS) if args.tasks == "all" else [check_task(t) for t in args.tasks.split(",")]
  rows = []
  for task in tasks:
    r = check(task)
    rows.append(r)
    print(f"{task:<26} states {r['states']:>4}  obs max err {r['obs_max_abs_err']:.1e}  "
          f"success agree {r['success_agree']:.4f}  differing {r['differing_states'][:10]}",
          flush=True)
    if args.out:
      with open(args.out, "w") as f:
        json.dump(rows, f, indent=2)


if __name__ == "__main__":
  main()
