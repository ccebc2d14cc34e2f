"""The report of benchmarks.realtime: tables, the success-against-latency picture and a
summary, from <out>/rows.jsonl (one row per task, policy, latency, mode, stitching)."""

from __future__ import annotations

import collections
import json
import os

import numpy as np

from jaxpolicy.stats import bootstrap_mean_interval, wilson_interval

POLICIES = (
  ("teacher", "teacher_ddim10"),
  ("teacher", "teacher_ddim1_trailing"),
  ("teacher", "teacher_ddim2_trailing"),
  ("sdm", "sdm_1step"),
  ("cd", "cd_1step"),
  ("step", "step_k2"),
)
LABELS = {
  "teacher_ddim10": "teacher DDIM-10",
  "teacher_ddim1_trailing": "DDIM-1 (noise)",
  "teacher_ddim2_trailing": "DDIM-2 (noise)",
  "sdm_1step": "SDM",
  "cd_1step": "CD",
  "step_k2": "STEP k=2",
}
# the SDM paper's A100 rates (Table 3): DP3 10.39 Hz, SDM 61.75 Hz
PAPER_A100_MS = {"DP3 (A100, SDM paper)": 1000 / 10.39, "SDM (A100, SDM paper)": 1000 / 61.75}


def load(out: str) -> list[dict]:
  with open(os.path.join(out, "rows.jsonl")) as f:
    return [json.loads(line) for line in f]


def best_stitching(rows) -> dict:
  """Per policy, the async stitching with the highest mean success over its rows."""
  by = collections.defaultdict(list)
  for r in rows:
    if r["mode"] == "async":
      by[(r["policy"], r["stitching"])].append(r["success_rate"])
  best = {}
  for (pol, st), v in by.items():
    if pol not in best or np.mean(v) > best[pol][1]:
      best[pol] = (st, float(np.mean(v)))
  return {p: s for p, (s, _) in best.items()}


def curves(rows, mode: str, best: dict) -> dict:
  """{policy: {latency label: (mean, low, high, tasks, latency_ms median)}}: success over
  tasks (each task once) with a bootstrap interval over tasks; no delay counts for both
  modes."""
  cells = collections.defaultdict(dict)
  for r in rows:
    ok = (
      r["mode"] == mode
      and (mode == "sync" or r["stitching"] == best.get(r["policy"]))
      or r["delay_steps"] == 0
      and r["mode"] == "sync"
    )
    if ok:
      cells[(r["policy"], r["latency"])][r["task"]] = (r["success_rate"], r["latency_ms"])
  out = collections.defaultdict(dict)
  for (pol, lat), per_task in cells.items():
    vals = [v for v, _ in per_task.values()]
    m, lo, hi = bootstrap_mean_interval(vals)
    out[pol][lat] = (m, lo, hi, len(vals), float(np.median([ms for _, ms in per_task.values()])))
  return out


def _order(pols):
  return [n for _, n in POLICIES if n in pols]


def table(rows) -> str:
  best = best_stitching(rows)
  tasks = sorted({r["task"] for r in rows})
  lats = sorted({r["latency"] for r in rows if r["latency"] not in ("own", "paper")}, key=float)
  lines = [
    f"Success % over {len(tasks)} tasks ({', '.join(tasks)}), each task once, "
    f"{rows[0]['episodes']} episodes per point with initial states shared by every "
    f"policy and latency; [bootstrap 95 % interval over tasks]. Horizon "
    f"{rows[0]['horizon']}, {rows[0]['n_action_steps']} executed per chunk.",
    "",
  ]
  for mode in ("sync", "async"):
    c = curves(rows, mode, best)
    head = ["policy"] + [f"{x} ms" for x in lats] + ["own latency", "paper-size latency"]
    lines += [
      f"### {mode}"
      + (
        " (best stitching per policy: "
        + ", ".join(f"{LABELS.get(p, p)} {s}" for p, s in sorted(best.items()))
        + ")"
        if mode == "async"
        else " (hold while computing)"
      ),
      "",
      "| " + " | ".join(head) + " |",
      "|" + "---|" * len(head),
    ]
    for pol in _order(c):
      row = [LABELS.get(pol, pol)]
      for lat in lats + ["own", "paper"]:
        v = c[pol].get(lat)
        row.append(
          "-"
          if v is None
          else f"{100 * v[0]:.0f} [{100 * v[1]:.0f}, {100 * v[2]:.0f}]"
          + (f" at {v[4]:.1f} ms" if lat in ("own", "paper") else "")
        )
      lines.append("| " + " | ".join(row) + " |")
    lines.append("")
  lines += [
    "### Every stitching (async, mean success % over tasks)",
    "",
    "| policy | stitching | " + " | ".join(f"{x} ms" for x in lats) + " |",
    "|---|---|" + "---|" * len(lats),
  ]
  by = collections.defaultdict(dict)
  for r in rows:
    if r["mode"] == "async":
      by[(r["policy"], r["stitching"])].setdefault(r["latency"], []).append(r["success_rate"])
  for pol, st in sorted(by, key=lambda k: (_order([p for p, _ in by]).index(k[0]), k[1])):
    cells = [f"{100 * np.mean(by[(pol, st)][x]):.0f}" if x in by[(pol, st)] else "-" for x in lats]
    lines.append(f"| {LABELS.get(pol, pol)} | {st} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def per_task_wilson(rows) -> list[dict]:
  out = []
  for r in rows:
    k = int(sum(r["successes"]))
    lo, hi = wilson_interval(k, r["episodes"])
    out.append(
      {
        k2: r[k2]
        for k2 in (
          "task",
          "policy",
          "latency",
          "latency_ms",
          "delay_steps",
          "mode",
          "stitching",
          "success_rate",
        )
      }
      | {"wilson_low": lo, "wilson_high": hi}
    )
  return out


def plot(rows, path: str) -> str:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  best = best_stitching(rows)
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
  for ax, mode in zip(axes, ("sync", "async")):
    c = curves(rows, mode, best)
    for pol in _order(c):
      pts = sorted(
        (v[4], v[0], v[1], v[2]) for lat, v in c[pol].items() if lat not in ("own", "paper")
      )
      x = np.maximum([p[0] for p in pts], 3.0)  # 0 ms drawn at the axis' left end
      (line,) = ax.plot(x, [100 * p[1] for p in pts], marker="o", ms=4, label=LABELS.get(pol, pol))
      ax.fill_between(
        x, [100 * p[2] for p in pts], [100 * p[3] for p in pts], color=line.get_color(), alpha=0.12
      )
      for lat, marker in (("own", "*"), ("paper", "P")):
        if lat in c[pol]:
          v = c[pol][lat]
          ax.plot(
            [max(v[4], 3.0)],
            [100 * v[0]],
            marker=marker,
            ms=11,
            color=line.get_color(),
            mec="k",
            ls="none",
          )
    for name, ms in PAPER_A100_MS.items():
      ax.axvline(ms, color="0.5", ls=":", lw=1)
      ax.text(ms, 101, name.split(" (")[0] + "\nA100", fontsize=7, ha="center", va="bottom")
    ax.set_xscale("log")
    ax.set_xlabel("policy latency (ms, log; 0 drawn at 3)")
    ax.set_title(
      f"{mode}" + (" (best stitching)" if mode == "async" else " (hold while computing)"), pad=22
    )
    ax.grid(alpha=0.3)
    ax.set_ylim(-3, 100)
  axes[0].set_ylabel("success % (mean over tasks)")
  axes[1].legend(fontsize=8, loc="upper right")
  fig.text(
    0.5,
    0.005,
    "stars: each policy at its own batch-1 latency on this CPU; crosses: "
    "at its paper-size network's latency; dotted: the SDM paper's A100 latencies",
    ha="center",
    fontsize=8,
  )
  fig.tight_layout(rect=(0, 0.04, 1, 1))
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def write(out: str) -> str:
  rows = load(out)
  with open(os.path.join(out, "table.md"), "w") as f:
    f.write(table(rows))
  plot(rows, os.path.join(out, "success_vs_latency.png"))
  summary = {
    "rows": len(rows),
    "tasks": sorted({r["task"] for r in rows}),
    "best_stitching": best_stitching(rows),
    "wall_s": round(sum(r["wall_s"] for r in rows), 1),
    "cpu_s": round(sum(r["cpu_s"] for r in rows), 1),
    "points": per_task_wilson(rows),
  }
  with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
  return os.path.join(out, "table.md")
