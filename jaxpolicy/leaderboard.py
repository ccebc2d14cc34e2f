"""The honest protocol of a sweep: final checkpoints on paired episodes, with intervals.

Each finished cell's `cell.json` holds `honest`: its final main policy evaluated on N
episodes whose initial states are shared by every method of the task and seed (and, in the
teacher's cell, the teacher's own DDIM-1 / DDIM-2 from noise). From those:

* per task and seed, success with a Wilson 95 % interval;
* per MetaWorld difficulty group, the mean over (task, seed) cells with a bootstrap 95 %
  interval (resampling the cells);
* paired differences (SDM - teacher, SDM - CD, STEP - teacher, ...) per cell, then per group
  with a bootstrap interval -- the same initial states on both sides, so the difference
  carries no reset noise;
* `summary.json` for both protocols (the papers' "mean of the 5 best" from jaxpolicy.report).

Plain arithmetic on dicts, tested on hand-made cells.
"""
from __future__ import annotations

import os

import numpy as np

from jaxpolicy import methods as methods_lib
from jaxpolicy.envs.registry import group_of
from jaxpolicy.methods.common import baseline_label
from jaxpolicy.runtime import files
from jaxpolicy.stats import bootstrap_mean_interval, wilson_interval

# the paired differences the grid is for: (label, row key a, row key b); a row key is a
# method (its main policy) or a baseline policy's name
PAIRS = (("SDM - teacher", "sdm", "teacher"), ("SDM - CD", "sdm", "cd"),
         ("STEP - teacher", "step", "teacher"),
         ("SDM - teacher DDIM-1", "sdm", "teacher_ddim1_trailing"))
# The SDM paper's Table 1 (MetaWorld v2, point clouds, paper-size networks), per group.
PAPER_ROWS = {"DP3* (paper)": (89.0, 72.7, 38.0, 75.8), "ManiCM* (paper)": (83.6, 55.6, 33.3, 67.0),
              "SDM (paper)": (86.5, 65.8, 35.8, 71.6)}
GROUP_ORDER = ("easy", "medium", "hard", "very_hard")


def _main(method: str, names) -> str | None:
  try:
    return methods_lib.info(method).main_policy_of(names)
  except (KeyError, ValueError):   # no such policy, or a method no longer registered
    return None


def honest_rows(cells: dict) -> list[tuple[str, str, str, str | None]]:
  """Rows of the honest table, (key, label, method, policy): each method's main policy
  (policy None; key = the method; label = its INFO.label), then the untrained baselines
  its cells evaluated (key = the policy's name), methods in registry order."""
  present = {m for (_, _, m) in cells}
  order = [m for m in methods_lib.names() if m in present] + sorted(
      present - set(methods_lib.names()))
  rows = []
  for m in order:
    known = m in methods_lib.names()
    rows.append((m, methods_lib.info(m).label if known else m, m, None))
    extra = set()
    for (_, _, mm), cell in cells.items():
      names = list(cell.get("honest") or {})
      if mm == m and names:
        extra |= set(names) - {_main(m, names)}
    rows += [(p, baseline_label(p), m, p) for p in sorted(extra)]
  return rows


def honest_values(cells: dict) -> dict:
  """{row label: {(task, seed): (successes, episodes)}} from the cells' honest results."""
  out = {}
  for _, label, method, policy in honest_rows(cells):
    vals = {}
    for (task, seed, m), cell in cells.items():
      honest = cell.get("honest") or {}
      h = honest.get(policy or _main(method, list(honest)))
      if m == method and h is not None:
        vals[(task, seed)] = (int(sum(h["successes"])), int(h["episodes"]))
    if vals:
      out[label] = vals
  return out


def group_means(values: dict, seed: int = 0) -> dict:
  """{(task, seed): (k, n)} -> {group or "all": (mean, low, high, n_tasks, n_cells)}."""
  out = {}
  for g in list(GROUP_ORDER) + ["all"]:
    rates = [k / n for (t, _), (k, n) in sorted(values.items()) if g == "all" or
             group_of(t) == g]
    if rates:
      tasks = {t for (t, _) in values if g == "all" or group_of(t) == g}
      out[g] = bootstrap_mean_interval(rates, seed=seed) + (len(tasks), len(rates))
  return out


def paired_differences(cells: dict) -> dict:
  """{pair label: {group: (mean, low, high, n_tasks, n_cells)}} over cells with both sides."""
  values = honest_values(cells)
  out = {}
  label_of = {key: label for key, label, _, _ in honest_rows(cells)}
  for label, a, b in PAIRS:
    va, vb = values.get(label_of.get(a), {}), values.get(label_of.get(b), {})
    both = sorted(set(va) & set(vb))
    if not both:
      continue
    diffs = {c: va[c][0] / va[c][1] - vb[c][0] / vb[c][1] for c in both}
    res = {}
    for g in list(GROUP_ORDER) + ["all"]:
      d = [v for (t, _), v in diffs.items() if g == "all" or group_of(t) == g]
      if d:
        tasks = {t for (t, _) in diffs if g == "all" or group_of(t) == g}
        res[g] = bootstrap_mean_interval(d) + (len(tasks), len(d))
    out[label] = res
  return out


def failures(cells: dict, grid: dict | None) -> list[str]:
  """Planned cells that did not finish, and teachers below 10 % (kept, with the reason)."""
  out = []
  planned = {tuple(c) for c in (grid or {}).get("cells", [])}
  missing: dict = {}
  for task, seed, method in sorted(planned - set(cells)):
    missing.setdefault((task, seed), []).append(method)
  for (task, seed), methods in sorted(missing.items()):
    out.append(f"{task} seed {seed} {', '.join(methods)}: not finished")
  for (task, seed, method), cell in sorted(cells.items()):
    if method != "teacher":
      continue
    honest = cell.get("honest") or {}
    h = honest.get(_main(method, list(honest)))
    rate = h["success_rate"] if h else cell.get("final")
    if rate is not None and rate < 0.1:
      out.append(f"{task} seed {seed}: teacher {100 * rate:.0f} % (< 10 %): its students "
                 f"cannot be judged against it")
  return out


def _ci(v):
  """mean [interval]; a single cell has no interval over cells."""
  m, lo, hi = v[:3]
  if len(v) > 4 and v[4] < 2:
    return f"{100 * m:.1f} [one cell]"
  return f"{100 * m:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def markdown(cells: dict, grid: dict | None = None) -> str:
  """The honest-protocol sections of the report (empty when no cell has honest results)."""
  values = honest_values(cells)
  if not values:
    return ""
  episodes = sorted({n for v in values.values() for (_, n) in v.values()})
  present = [g for g in GROUP_ORDER if any(group_of(t) == g for v in values.values()
                                           for (t, _) in v)]
  names = {"easy": "Easy", "medium": "Medium", "hard": "Hard", "very_hard": "Very hard"}
  lines = ["## Honest protocol: final checkpoint, paired episodes", "",
           f"Every policy's final checkpoint on {'/'.join(map(str, episodes))} episodes whose "
           "initial states are shared by all methods of a task and seed. Success in %, mean "
           "over (task, seed) cells of each group, [bootstrap 95 % interval over those "
           "cells]. The teacher's DDIM-1/2 rows run the trained teacher from noise in 1 or 2 "
           "steps, no distillation. The paper rows are the SDM paper's Table 1 (MetaWorld "
           "v2, point clouds, paper-size networks), not comparable in setting; shown for "
           "scale only.", "",
           "| Method | " + " | ".join(f"{names[g]}" for g in present) + " | Average |",
           "|---|" + "---|" * (len(present) + 1)]
  for label, vals in values.items():
    gm = group_means(vals)
    row = [label] + [_ci(gm[g]) + f" (n={gm[g][4]})" if g in gm else "-" for g in present]
    row.append(_ci(gm["all"]) + f" (n={gm['all'][4]})")
    lines.append("| " + " | ".join(row) + " |")
  for label, nums in PAPER_ROWS.items():
    by_group = dict(zip(GROUP_ORDER, nums))
    lines.append(f"| {label} | " + " | ".join(f"{by_group[g]:.1f}" for g in present) + " | - |")
  diffs = paired_differences(cells)
  if diffs:
    lines += ["", "## Paired differences (honest protocol)", "",
              "Per (task, seed) cell the difference of success rates on the same initial "
              "states, in points; mean per group [bootstrap 95 % interval over cells]. An "
              "interval that contains 0 shows no difference at this sample size.", "",
              "| Difference | " + " | ".join(names[g] for g in present) + " | All |",
              "|---|" + "---|" * (len(present) + 1)]
    for label, res in diffs.items():
      row = [label] + [_ci(res[g]) if g in res else "-" for g in present]
      row.append(_ci(res["all"]) if "all" in res else "-")
      lines.append("| " + " | ".join(row) + " |")
  lines += ["", "## Per task (honest protocol, success % [Wilson 95 %], seeds pooled)", "",
            "| Task | Group | " + " | ".join(values) + " |", "|---|---|" + "---|" * len(values)]
  tasks = sorted({t for v in values.values() for (t, _) in v},
                 key=lambda t: (GROUP_ORDER.index(group_of(t)), t))
  for t in tasks:
    row = [t, names[group_of(t)]]
    for vals in values.values():
      ks = [(k, n) for (tt, _), (k, n) in vals.items() if tt == t]
      if ks:
        k, n = sum(x for x, _ in ks), sum(y for _, y in ks)
        lo, hi = wilson_interval(k, n)
        row.append(f"{100 * k / n:.0f} [{100 * lo:.0f}, {100 * hi:.0f}]")
      else:
        row.append("-")
    lines.append("| " + " | ".join(row) + " |")
  fails = failures(cells, grid)
  lines += ["", "## Failures and unfinished cells", ""]
  lines += [f"* {f}" for f in fails] if fails else ["None."]
  return "\n".join(lines) + "\n"


def summary(cells: dict, grid: dict | None, papers_agg: dict) -> dict:
  """summary.json: per protocol, method and group: mean, interval, tasks, cells; the grid's
  finished-cell count; CPU-hours."""
  values = honest_values(cells)
  honest = {label: {g: dict(zip(("mean", "low", "high", "n_tasks", "n_cells"), v))
                    for g, v in group_means(vals).items()} for label, vals in values.items()}
  papers = {f"{m}": {g: {"mean": v[0], "std_over_seeds": v[1]} for (g, mm), v in
                     papers_agg["group"].items() if mm == m}
            for m in sorted({mm for (_, mm) in papers_agg["group"]})}
  planned = len({tuple(c) for c in (grid or {}).get("cells", [])} | set(cells))
  cpu = sum(c.get("cpu_s") or 0.0 for c in cells.values())
  wall = sum(c.get("wall_s") or 0.0 for c in cells.values())
  return {"protocols": {"papers_top5": papers, "honest": honest},
          "paired_differences": {k: {g: dict(zip(("mean", "low", "high", "n_tasks", "n_cells"),
                                                 v)) for g, v in res.items()}
                                 for k, res in paired_differences(cells).items()},
          "finished_cells": len(cells), "planned_cells": planned,
          "cpu_hours": cpu / 3600, "wall_hours": wall / 3600,
          "failures": failures(cells, grid)}


def write_summary(root: str, cells: dict, grid: dict | None, papers_agg: dict) -> str:
  return files.write_json(os.path.join(root, "summary.json"), summary(cells, grid, papers_agg))


def plot_success_vs_hz(cells: dict, path: str, baseline_hz: dict | None = None) -> str:
  """Honest success (mean over cells) vs batch-1 Hz per method, one panel per group; the
  untrained baselines too where `baseline_hz` ({policy: Hz}) has theirs."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top,unused-import
  values = honest_values(cells)
  baseline_hz = baseline_hz or {}
  rows = [(label, method, policy) for _, label, method, policy in honest_rows(cells)
          if policy is None or policy in baseline_hz]
  markers = {m: (methods_lib.info(m).style[1] if m in methods_lib.names() else "x")
             for _, m, _ in rows}
  groups = [g for g in GROUP_ORDER if any(group_of(t) == g for (t, _, _) in cells)] + ["all"]
  fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.4), squeeze=False)
  for ax, g in zip(axes[0], groups):
    for label, method, policy in rows:
      if label not in values:
        continue
      gm = group_means(values[label]).get(g)
      if policy is None:
        hz = [c.get("hz_b1") for (t, _, m), c in cells.items() if m == method and
              (g == "all" or group_of(t) == g) and c.get("hz_b1")]
      else:
        hz = [baseline_hz[policy]]
      if gm is None or not hz:
        continue
      x, (m, lo, hi) = float(np.median(hz)), gm[:3]
      ax.errorbar([x], [100 * m], yerr=[[100 * (m - lo)], [100 * (hi - m)]],
                  marker=markers[method], markerfacecolor="none" if policy is None else None,
                  capsize=3, label=label)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_title(g.replace("_", " ").capitalize() if g != "all" else "All tasks")
    ax.set_xlabel("policy Hz at batch 1 (log)")
    ax.set_ylabel("success % (honest)")
    ax.set_ylim(-5, 105)
    ax.grid(alpha=0.3)
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False)
  fig.tight_layout(rect=(0, 0, 1, 0.88))
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def plot_task_bars(cells: dict, path: str) -> str:
  """Per-task honest success with Wilson intervals, one bar per method."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  values = honest_values(cells)
  tasks = sorted({t for v in values.values() for (t, _) in v},
                 key=lambda t: (GROUP_ORDER.index(group_of(t)), t))
  labels = list(values)
  width = 0.8 / max(len(labels), 1)
  fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(tasks) + 2), 3.8))
  for i, label in enumerate(labels):
    xs, ys, lo_err, hi_err = [], [], [], []
    for j, t in enumerate(tasks):
      ks = [(k, n) for (tt, _), (k, n) in values[label].items() if tt == t]
      if not ks:
        continue
      k, n = sum(x for x, _ in ks), sum(y for _, y in ks)
      lo, hi = wilson_interval(k, n)
      xs.append(j + (i - (len(labels) - 1) / 2) * width)
      ys.append(100 * k / n)
      lo_err.append(100 * (k / n - lo))
      hi_err.append(100 * (hi - k / n))
    ax.bar(xs, ys, width, yerr=[lo_err, hi_err], capsize=2, label=label)
  ax.set_xticks(range(len(tasks)))
  ax.set_xticklabels(tasks, rotation=60, ha="right", fontsize=8)
  ax.set_ylabel("success % (honest, Wilson 95 %)")
  ax.set_ylim(0, 105)
  ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, 1.22), frameon=False)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path

