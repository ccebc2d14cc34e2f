"""Point-cloud policies beside state ones, task by task, from two sweeps of the same seed.

    python scripts/pointcloud_vs_state.py --pointcloud=runs/pc512_hide \
        --state=runs/leaderboard --tasks=drawer-open,door-open,button-press-topdown,\
coffee-push,sweep-into [--seed=0] [--json=OUT.json]

Either sweep may be a committed one, written out first with `python -m launch.cells
unpack docs/results/leaderboard/cells.json.gz runs/leaderboard`. For
each task and method (teacher DDIM-10, SDM one step): the honest success (100 episodes
whose initial states both sweeps share when they used the same --honest_seed) with its
Wilson 95 % interval, the papers' protocol (mean of the 5 best 20-episode evaluations), and
for the paired episodes the split of the discordant ones with an exact sign test. The
bottom rows average over the tasks where both sides finished: point-cloud teacher minus
state teacher, and point-cloud SDM minus its teacher (the issue's targets: within 5 points).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxpolicy import report  # noqa: E402  pylint: disable=wrong-import-position
from jaxpolicy import stats  # noqa: E402  pylint: disable=wrong-import-position

METHODS = ("teacher", "sdm")


def cell_dir(root: str, task: str, seed: int, method: str) -> str | None:
  for base in (root, os.path.join(root, "cells")):
    d = os.path.join(base, task, f"s{seed}", method)
    if os.path.exists(os.path.join(d, "cell.json")):
      return d
  return None


def honest_of(cell: dict) -> dict | None:
  """The main policy's honest result (successes per episode) of a read cell."""
  h = cell.get("honest") or {}
  return h.get(cell["policy"])


def side(root: str, task: str, seed: int, method: str) -> dict | None:
  d = cell_dir(root, task, seed, method)
  if d is None:
    return None
  cell = report.read_cell(d, method)
  h = honest_of(cell)
  out = {"papers_top5": cell.get("top5"), "final_20ep": cell.get("final")}
  if h:
    n, k = h["episodes"], int(round(h["success_rate"] * h["episodes"]))
    out.update(
      honest=h["success_rate"],
      episodes=n,
      honest_seed=h.get("seed"),
      wilson95=list(stats.wilson_interval(k, n)),
      successes=h.get("successes"),
    )
  return out


def paired(a: dict | None, b: dict | None) -> dict | None:
  """Discordant episodes of a vs b on shared initial states, with the sign test."""
  if not (a and b and a.get("successes") and b.get("successes")):
    return None
  if a["honest_seed"] != b["honest_seed"] or a["episodes"] != b["episodes"]:
    return None
  a_only = sum(x and not y for x, y in zip(a["successes"], b["successes"]))
  b_only = sum(y and not x for x, y in zip(a["successes"], b["successes"]))
  return {"a_only": a_only, "b_only": b_only, "p": stats.sign_test(a_only, b_only)}


def compare(pc_root: str, state_root: str, tasks, seed: int) -> dict:
  rows = {}
  for t in tasks:
    r = {
      f"{obs}_{m}": side(root, t, seed, m)
      for obs, root in (("pointcloud", pc_root), ("state", state_root))
      for m in METHODS
    }
    r["teacher_pc_vs_state"] = paired(r["pointcloud_teacher"], r["state_teacher"])
    r["sdm_vs_teacher_pc"] = paired(r["pointcloud_sdm"], r["pointcloud_teacher"])
    rows[t] = r

  def mean_diff(a_key, b_key):
    d = [
      rows[t][a_key]["honest"] - rows[t][b_key]["honest"]
      for t in tasks
      if (rows[t][a_key] or {}).get("honest") is not None
      and (rows[t][b_key] or {}).get("honest") is not None
    ]
    return {"mean": sum(d) / len(d) if d else None, "tasks": len(d)}

  return {
    "seed": seed,
    "tasks": rows,
    "teacher_pc_minus_state": mean_diff("pointcloud_teacher", "state_teacher"),
    "sdm_pc_minus_teacher_pc": mean_diff("pointcloud_sdm", "pointcloud_teacher"),
  }


def _cell(s: dict | None) -> str:
  if not s or s.get("honest") is None:
    return "-"
  lo, hi = s["wilson95"]
  top5 = f" ({s['papers_top5']:.2f})" if s.get("papers_top5") is not None else ""
  return f"{s['honest']:.2f} [{lo:.2f}, {hi:.2f}]{top5}"


def _pair(p: dict | None) -> str:
  return "-" if not p else f"{p['a_only']} / {p['b_only']} (p = {p['p']:.2g})"


def markdown(res: dict) -> str:
  lines = [
    "| task | state teacher | point-cloud teacher | pc vs state: pc only / state only |"
    " state SDM | point-cloud SDM | pc SDM vs its teacher: SDM only / teacher only |",
    "|---|---|---|---|---|---|---|",
  ]
  for t, r in res["tasks"].items():
    lines.append(
      f"| {t} | {_cell(r['state_teacher'])} | {_cell(r['pointcloud_teacher'])} | "
      f"{_pair(r['teacher_pc_vs_state'])} | {_cell(r['state_sdm'])} | "
      f"{_cell(r['pointcloud_sdm'])} | {_pair(r['sdm_vs_teacher_pc'])} |"
    )
  for label, key in (
    ("point-cloud teacher - state teacher", "teacher_pc_minus_state"),
    ("point-cloud SDM - its teacher", "sdm_pc_minus_teacher_pc"),
  ):
    d = res[key]
    mean = "-" if d["mean"] is None else f"{100 * d['mean']:+.1f} points"
    lines.append(f"\n{label}, mean over {d['tasks']} tasks: {mean}")
  return "\n".join(lines) + (
    "\n\nHonest success over 100 paired episodes [Wilson 95 %] "
    "(papers' protocol: mean of the 5 best 20-episode evaluations)."
  )


def main():
  p = argparse.ArgumentParser(
    description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
  )
  p.add_argument("--pointcloud", required=True)
  p.add_argument("--state", required=True)
  p.add_argument("--tasks", required=True)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--json", default=None)
  a = p.parse_args()
  res = compare(a.pointcloud, a.state, a.tasks.split(","), a.seed)
  print(markdown(res))
  if a.json:
    for r in res["tasks"].values():  # the per-episode lists stay in the cells
      for s in r.values():
        if isinstance(s, dict):
          s.pop("successes", None)
    with open(a.json, "w") as f:
      json.dump(res, f, indent=1)


if __name__ == "__main__":
  main()
