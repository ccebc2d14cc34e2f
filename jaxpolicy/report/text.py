"""What a report says: the papers' tables, the honest protocol's tables and its
plain-words reading, summary.json, cells.csv, and report.md with its pictures."""

from __future__ import annotations

import collections
import json
import os

import numpy as np

from jaxpolicy import methods as methods_lib
from jaxpolicy import suites
from jaxpolicy.report import plots
from jaxpolicy.report.groups import (
  GROUP_LABELS,
  PAPER_GROUPS,
  PAPER_NFE,
  PAPER_ROWS,
  _main,
  _ordered,
  group_order,
  group_size,
)
from jaxpolicy.report.load import apply_latency, load_failures, load_sweep
from jaxpolicy.report.latency import ROUNDS
from jaxpolicy.report.stats import (
  PAPERS_METRICS,
  WINDOW_METRIC,
  aggregate,
  complete_cells,
  failures,
  group_means,
  honest_values,
  mean_std,
  paired_differences,
  paper_average,
  papers_intervals,
  per_task_intervals,
  protocol_gap,
  task_tests,
  with_common_window,
)
from jaxpolicy.runtime import files
from jaxpolicy.suites import group_of


def paper_rows(present, nfe: bool = False) -> list[str]:
  """The SDM paper's Table 1 rows as Markdown table rows over the groups `present` (with an
  NFE column if `nfe`; their Average: the 50-task weighting, shown only when all four groups
  are)."""
  if not present or not set(present) <= set(PAPER_GROUPS):
    return []
  rows = []
  for label, nums in PAPER_ROWS.items():
    by_group = dict(zip(PAPER_GROUPS, nums))
    avg = f"{paper_average(nums):.1f}" if tuple(present) == PAPER_GROUPS else "-"
    rows.append(
      f"| {label} | "
      + (f"{PAPER_NFE[label]} | " if nfe else "")
      + " | ".join(f"{by_group[g]:.1f}" for g in present)
      + f" | {avg} |"
    )
  return rows


def _signed(x) -> str:
  """A fraction as signed points, one decimal, never "-0.0"."""
  return f"{round(100 * x, 1) + 0.0:+.1f}"


def _points(v) -> str:
  m, lo, hi = v[:3]
  return f"{_signed(m)} points [{_signed(lo)}, {_signed(hi)}]"


# Fewer tasks (the bootstrap's resampled unit) than this get no verdict from their
# interval: a percentile interval of n values undercovers at small n (of 2 values it is just
# [min, max]; with no true difference it excluded 0 in ~48 % of simulated draws at n = 2,
# ~22 % at 4, ~10 % at 6-9).
MIN_TASKS_FOR_VERDICT = 8


def _verdict(v) -> str:
  """One paired difference in words: shown, or not at this sample size."""
  m, lo, hi, n_tasks, n_cells = v
  where = f"over {n_tasks} tasks ({n_cells} task-seeds)"
  if n_tasks < MIN_TASKS_FOR_VERDICT:
    return (
      f"{100 * m:+.1f} points {where}: too few tasks for a claim either way "
      f"(a verdict needs {MIN_TASKS_FOR_VERDICT})."
    )
  if lo <= 0 <= hi:
    bound = 100 * max(-lo, hi)
    return (
      f"{_points(v)} {where}. No difference shown; at this sample a gap "
      f"beyond about {bound:.1f} points either way is unlikely."
    )
  side = "higher" if m > 0 else "lower"
  return (
    f"{_points(v)} {where}. The interval excludes 0: the first is "
    f"{side}, by {abs(100 * m):.1f} points on average."
  )


def reading(
  cells: dict, grid: dict | None = None, latency: dict | None = None, failed: dict | None = None
) -> str:
  """A short plain-words reading of the honest tables, written from the numbers: what the
  paired differences show and do not, how the papers' protocol reads against the honest
  one, speed beside success, and what the grid does not cover."""
  values = honest_values(cells)
  if not values:
    return ""
  names = GROUP_LABELS
  planned = len({tuple(c) for c in (grid or {}).get("cells", [])} | set(cells))
  task_seeds = {(t, s) for (t, s, _) in cells}
  per_group = {g: len({t for (t, _) in task_seeds if group_of(t) == g}) for g in group_order()}
  suites_run = {suites.suite_of(t).name for (t, _) in task_seeds}
  shown = [g for g in group_order() if any(g in suites.get(n).groups for n in suites_run)]
  seeds = sorted({s for (_, s) in task_seeds})
  episodes = sorted({n for v in values.values() for (_, n) in v.values()})
  honest_n = "/".join(map(str, episodes))
  eval_n = "/".join(map(str, sorted({e for c in cells.values() for e in c.get("episodes") or []})))
  n_failed = len({k for k in (failed or {}) if k not in cells})
  lines = [
    "## Reading",
    "",
    f"* **Coverage.** {len(cells)} of {planned} cells finished, {len(task_seeds)} "
    f"task-seeds, seeds {seeds}; tasks per group: "
    + ", ".join(f"{names[g]} {per_group[g]}/{group_size(g)}" for g in shown)
    + "."
    + (f" {n_failed} failed (see Failures)." if n_failed else "")
    + (" Groups or seeds not yet run make no claim." if len(cells) < planned else ""),
  ]
  lines += _provenance(cells)
  diffs = paired_differences(cells)
  for label, res in diffs.items():
    if "all" in res:
      lines.append(f"* **{label}** (paired, same initial states): " + _verdict(res["all"]))
  eligible = [
    (label, g, v)
    for label, res in diffs.items()
    for g, v in res.items()
    if g != "all" and v[3] >= MIN_TASKS_FOR_VERDICT
  ]
  apart = [
    f"{label}, {names[g]}: {_points(v)}" for label, g, v in eligible if not v[1] <= 0 <= v[2]
  ]
  if apart:
    lines.append(
      f"* **Per group, intervals that exclude 0** (groups of at least "
      f"{MIN_TASKS_FOR_VERDICT} tasks): {'; '.join(apart)}. Were there no "
      f"true differences, about {0.05 * len(eligible):.1f} of these "
      f"{len(eligible)} intervals would exclude 0 by chance: read them as leads, "
      "not findings."
    )
  gap = protocol_gap(cells)
  if gap:
    windowed = any(WINDOW_METRIC in c for c in cells.values())
    n_evals = sorted(
      {
        c["window_evals"] if windowed and "window_evals" in c else len(c["curve"])
        for c in cells.values()
        if c.get("curve")
      }
    )
    count = (
      f" ({n_evals[0]}-{n_evals[-1]} per cell)"
      if len(n_evals) > 1
      else f" ({n_evals[0]} per cell)"
      if n_evals
      else ""
    )
    count = (
      " in the common window of the papers' table" + count
      if windowed
      else " during training" + count
    )
    backends = sorted({b for c in cells.values() for b in c.get("backends") or []})
    sim = (
      "; the evaluations during training ran on "
      + " and ".join(backends)
      + ", the honest ones on the CPU simulator, so this part includes the simulators' "
      "difference"
      if backends and backends != ["cpu"]
      else ""
    )

    def per(name):
      return "; ".join(f"{m} {_points(r['all'])}" for m, r in gap[name].items() if "all" in r)

    lines.append(
      "* **The papers' protocol against the honest one** (positive: the papers' reads "
      f"higher; per task-seed, averaged per task, then over tasks). The mean of the (up "
      f"to) 5 best {eval_n}-episode evaluations"
      f"{count} minus the final checkpoint's success on {honest_n} paired "
      "episodes: "
      f"{per('top5_minus_honest')}. It has two parts. Picking the best checkpoints after "
      f"the fact (5 best minus the final evaluation, same {eval_n} episodes): "
      f"{per('top5_minus_final')}. The {eval_n} evaluation episodes against the honest ones "
      f"(same final checkpoint{sim}): {per('final_minus_honest')}. Every evaluation during "
      f"training reuses one set of {eval_n} initial states, so its luck or bad luck is "
      f"shared by all of a cell's evaluations; the honest table, on {honest_n} other states, "
      "is what a user of the final policy gets."
    )
  if latency and latency.get("policies"):
    hz = {p: r["hz_b1"] for p, r in latency["policies"].items()}
    teacher = hz.get("teacher_ddim10")
    if teacher:
      others = ", ".join(
        f"`{p}` {h:.0f} Hz ({h / teacher:.1f}x)"
        for p, h in sorted(hz.items(), key=lambda kv: -kv[1])
        if p != "teacher_ddim10"
      )
      where = ", ".join(str(latency[k]) for k in ("machine", "date") if latency.get(k))
      lines.append(
        "* **Speed** (batch 1, measured apart from training"
        + (f": {where}" if where else "")
        + "): the teacher's DDIM-10 "
        f"runs at {teacher:.0f} Hz; {others}. Success above says whether the "
        "speed costs anything."
      )
  fails = [f for f in failures(cells, grid) if f.endswith("cannot be judged against it")]
  if fails:
    lines.append(
      f"* **Teachers below 10 %**: {len(fails)} task-seeds; kept in every mean, "
      "their students cannot be judged against them."
    )
  lines += _per_task_reading(cells, honest_n)
  preset = (grid or {}).get("preset", "?")
  obs = ((grid or {}).get("overrides") or {}).get("obs", "state")
  lines.append(
    f"* **What it does not show.** These are {preset}-preset networks on {obs} "
    "observations in MetaWorld v3. The paper rows are MetaWorld v2, point clouds and "
    "paper-size networks: compare the gaps between methods, not the levels. One task's "
    "result rests on its own few seeds and states; group means and paired differences "
    "over tasks are the evidence for a method."
  )
  return "\n".join(lines) + "\n"


def _per_task_reading(cells: dict, honest_n: str) -> list:
  """The per-task intervals' width and what the exact paired tests over the shared initial
  states find, with the tests that survive Benjamini-Hochberg's and Holm's corrections."""
  intervals = per_task_intervals(cells)
  if not intervals:
    return []
  half = 100 * max((v[2] - v[1]) / 2 for per in intervals.values() for v in per.values())
  tests = task_tests(cells)
  line = (
    f"* **Per task.** {honest_n} episodes per seed, on initial states its seeds share, "
    f"leave a 95 % interval of up to about +-{half:.0f} points (the per-task table)"
  )
  if len(intervals) < 2:
    return [line + "."]
  if not tests["m"]:
    return [line + "; no two policies differ on any episode."]
  a = tests["alpha"]
  bh = [x for x in tests["tests"] if x["bh"] < a]
  holm_kept = [x for x in tests["tests"] if x["holm"] < a]

  def listed(xs):
    by_task = collections.defaultdict(list)
    for x in xs:
      by_task[x["task"]].append(x)

    def one(x):  # the policy that succeeds more often first
      (hi, k_hi), (lo, k_lo) = sorted(
        ((x["a"], x["a_only"]), (x["b"], x["b_only"])), key=lambda kv: -kv[1]
      )
      return f"{hi} over {lo} ({k_hi} vs {k_lo})"

    return "; ".join(f"{t}: " + ", ".join(one(x) for x in v) for t, v in by_task.items())

  line += (
    f". Exact paired tests (McNemar's, a two-sided sign test on the episodes where "
    "one policy succeeds and the other fails, each seed paired on its own states, "
    f"the seeds pooled), for every pair of the honest table's rows, reach p < {a:g} "
    f"in {tests['below']} of the {tests['m']} task-pair tests with such episodes, in "
    f"{tests['tasks_below']} of {tests['tasks']} tasks, where {tests['expected']:.1f} "
    f"would by chance (the exact tests' attainable level; {tests['nominal']:.1f} at a "
    f"nominal {100 * a:g} %). Corrected for the {tests['m']} tests by "
    f"Benjamini-Hochberg (false discovery rate {100 * a:g} %), "
    + (
      f"{len(bh)} survive, in {len({x['task'] for x in bh})} "
      f"task{'s' * (len({x['task'] for x in bh}) != 1)} ({listed(bh)} discordant "
      "episodes)"
      if bh
      else "none survives"
    )
    + "; by Holm (family-wise error), "
    + (f"{len(holm_kept)} ({listed(holm_kept)})" if holm_kept else "none")
    + (
      ". So not every per-task difference of a few points is noise: read one as a "
      "lead to test on more states and seeds, not as a finding or as nothing"
      if bh
      else ". No single task's difference survives: read a per-task gap as a lead at most"
    )
    + " (the paired tests section lists the tests)."
  )
  return [line]


def _provenance(cells: dict) -> list:
  """A line on the hosts and code versions the cells were trained with (cells written
  before those fields existed lack them): a grid run over sessions mixes them, and differs
  with them at least by float rounding."""
  hosts = collections.Counter(c["host"] for c in cells.values() if c.get("host"))
  codes = collections.Counter(c["code"] for c in cells.values() if c.get("code"))
  if not hosts and not codes:
    return []
  counted = lambda counter: ", ".join(f"{k} ({n})" for k, n in counter.most_common())
  unrecorded = sum(1 for c in cells.values() if not c.get("host"))
  return [
    f"* **Provenance** (cells per host and per code version): {counted(hosts)}; code "
    f"{counted(codes)}" + (f"; {unrecorded} cells predate the record" if unrecorded else "") + "."
  ]


def _ci(v, signed: bool = False):
  """mean [interval] in % (`signed`: points of a difference, with their sign); a single task
  has no interval (the bootstrap resamples tasks)."""
  fmt = _signed if signed else (lambda x: f"{100 * x:.1f}")
  m, lo, hi = v[:3]
  if len(v) > 3 and v[3] < 2:
    return f"{fmt(m)} [one task]"
  return f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]"


def summary(cells: dict, grid: dict | None, papers_agg: dict, failed: dict | None = None) -> dict:
  """summary.json: per protocol, method and group: mean, interval, tasks, cells; the grid's
  finished-cell count; CPU-hours."""
  values = honest_values(cells)
  honest = {
    label: {
      g: dict(zip(("mean", "low", "high", "n_tasks", "n_cells"), v))
      for g, v in group_means(vals).items()
    }
    for label, vals in values.items()
  }
  keys = ("mean", "low", "high", "n_tasks", "n_cells")
  papers = {
    f"{m}": {
      g: {"mean": v[0], "std_over_seeds": v[1]}  # NaN -> None below
      for (g, mm), v in papers_agg["group"].items()
      if mm == m
    }
    for m in sorted({mm for (_, mm) in papers_agg["group"]})
  }
  intervals = papers_intervals(cells)
  for m, groups in intervals.get("top5", {}).items():  # bootstrap over tasks
    for g, v in groups.items():
      papers.setdefault(m, {}).setdefault(g, {}).update(dict(zip(keys, v)))
  planned = len({tuple(c) for c in (grid or {}).get("cells", [])} | set(cells))
  cpu = sum(c.get("cpu_s") or 0.0 for c in cells.values())
  wall = sum(c.get("wall_s") or 0.0 for c in cells.values())
  return _finite(
    {
      "protocols": {
        "papers_top5": papers,
        "honest": honest,
        **{
          f"papers_{k}": {
            m: {g: dict(zip(keys, v)) for g, v in res.items()} for m, res in per.items()
          }
          for k, per in intervals.items()
          if k != "top5"
        },
      },
      "paired_differences": {
        k: {g: dict(zip(("mean", "low", "high", "n_tasks", "n_cells"), v)) for g, v in res.items()}
        for k, res in paired_differences(cells).items()
      },
      "protocol_gaps": {
        gap: {
          m: {
            g: dict(zip(("mean", "low", "high", "n_tasks", "n_cells"), v)) for g, v in res.items()
          }
          for m, res in per.items()
        }
        for gap, per in protocol_gap(cells).items()
      },
      "per_task_tests": _tests_summary(cells),
      "finished_cells": len(cells),
      "planned_cells": planned,
      "cpu_hours": cpu / 3600,
      "wall_hours": wall / 3600,
      "failed_cells": len({k for k in (failed or {}) if k not in cells}),
      "failures": failures(cells, grid, failed),
    }
  )


def _tests_summary(cells: dict) -> dict:
  """summary.json's account of the per-task exact paired tests (task_tests): the counts, and
  the tests below alpha with their adjusted p-values."""
  tests = task_tests(cells)
  keep = ("m", "alpha", "below", "tasks_below", "tasks", "expected", "nominal")
  return {
    **{k: tests[k] for k in keep},
    "test": "McNemar exact (two-sided sign test on discordant episodes), seeds pooled, "
    "every pair of honest rows per task",
    "below_alpha": [x for x in tests["tests"] if x["p"] < tests["alpha"]],
  }


def _finite(obj):
  """NaN / inf -> None throughout (strict JSON has no NaN)."""
  if isinstance(obj, dict):
    return {k: _finite(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_finite(v) for v in obj]
  if isinstance(obj, float) and not np.isfinite(obj):
    return None
  return obj


def write_summary(
  root: str, cells: dict, grid: dict | None, papers_agg: dict, failed: dict | None = None
) -> str:
  return files.write_json(
    os.path.join(root, "summary.json"), summary(cells, grid, papers_agg, failed)
  )


CSV_COLUMNS = (
  "task",
  "group",
  "seed",
  "method",
  "policy",
  "honest_success",
  "honest_episodes",
  "top5",
  WINDOW_METRIC,
  "final",
  "mean_all",
  "nfe",
  "hz_b1",
  "cpu_s",
  "wall_s",
)


def write_cells_csv(root: str, cells: dict) -> str:
  """<root>/cells.csv: one row per finished cell's policy (main policy and the untrained
  baselines its cell evaluated), for analyses of one's own; the papers' protocol and the
  cell's cost on the main policy's row only."""
  import csv  # pylint: disable=g-import-not-at-top

  path = os.path.join(root, "cells.csv")
  with open(path + ".tmp", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(CSV_COLUMNS)
    for (task, seed, method), cell in sorted(cells.items()):
      honest = cell.get("honest") or {}
      main = cell.get("policy") or _main(method, list(honest))
      for policy in [main] + sorted(set(honest) - {main}):
        h = honest.get(policy) or {}
        row = {
          "task": task,
          "group": group_of(task),
          "seed": seed,
          "method": method,
          "policy": policy,
          "honest_success": h.get("success_rate"),
          "honest_episodes": h.get("episodes"),
          "nfe": h.get("nfe", cell.get("nfe")),
        }
        if policy == main:
          row.update(
            {
              k: cell.get(k)
              for k in ("top5", WINDOW_METRIC, "final", "mean_all", "hz_b1", "cpu_s", "wall_s")
            }
          )
        w.writerow(["" if row.get(c) is None else row[c] for c in CSV_COLUMNS])
  os.replace(path + ".tmp", path)
  return path


def honest_markdown(cells: dict, grid: dict | None = None, failed: dict | None = None) -> str:
  """The honest-protocol sections of the report (empty when no cell has honest results)."""
  values = honest_values(cells)
  if not values:
    return ""
  episodes = sorted({n for v in values.values() for (_, n) in v.values()})
  present = [
    g for g in group_order() if any(group_of(t) == g for v in values.values() for (t, _) in v)
  ]
  names = GROUP_LABELS
  lines = [
    "## Honest protocol: final checkpoint, paired episodes",
    "",
    f"Every policy's final checkpoint on {'/'.join(map(str, episodes))} episodes whose "
    "initial states are shared by all methods of a task and seed. Success in %, mean "
    "over each group's tasks (a task's seeds averaged first, so every task counts "
    "once), [bootstrap 95 % interval resampling tasks] (tasks / task-seeds). The "
    "teacher's DDIM-1/2 rows run the trained teacher from noise in 1 or 2 steps, no "
    "distillation. The paper rows are the SDM paper's Table 1 (MetaWorld "
    "v2, point clouds, paper-size networks, the papers' protocol), not comparable in "
    "setting; shown for scale only (their Average, once all four groups are here: "
    "the group means weighted by task counts, our arithmetic).",
    "",
    "| Method | " + " | ".join(f"{names[g]}" for g in present) + " | Average |",
    "|---|" + "---|" * (len(present) + 1),
  ]
  for label, vals in values.items():
    gm = group_means(vals)
    row = [label] + [
      _ci(gm[g]) + f" ({gm[g][3]} / {gm[g][4]})" if g in gm else "-" for g in present
    ]
    row.append(_ci(gm["all"]) + f" ({gm['all'][3]} / {gm['all'][4]})")
    lines.append("| " + " | ".join(row) + " |")
  lines += paper_rows(present)
  diffs = paired_differences(cells)
  if diffs:
    lines += [
      "",
      "## Paired differences (honest protocol)",
      "",
      "Per (task, seed) cell the difference of success rates on the same initial "
      "states, in points; per task the mean over its seeds, per group the mean over "
      "tasks [bootstrap 95 % interval resampling tasks]. An "
      "interval that contains 0 shows no difference at this sample size.",
      "",
      "| Difference | " + " | ".join(names[g] for g in present) + " | All |",
      "|---|" + "---|" * (len(present) + 1),
    ]
    for label, res in diffs.items():
      row = [label] + [_ci(res[g], signed=True) if g in res else "-" for g in present]
      row.append(_ci(res["all"], signed=True) if "all" in res else "-")
      lines.append("| " + " | ".join(row) + " |")
  intervals = per_task_intervals(cells)
  seeds = sorted({len({s for (tt, s) in v if tt == t}) for v in values.values() for (t, _) in v})
  lines += [
    "",
    "## Per task (honest protocol, success % [95 % interval], seeds pooled)",
    "",
    f"A task's success over its seeds. Every seed of a task runs the same "
    f"{'/'.join(map(str, episodes))} initial states, so its seeds' episodes are not "
    "independent draws: the interval is Wilson's at the effective number of "
    "episodes, from the spread over states of each state's success averaged over the "
    "seeds (Kish's design effect: as few as one seed's episodes where the seeds agree "
    "on every state, as many as all where they are independent)"
    + (
      "; a task run on one seed has the plain Wilson interval of its episodes" if 1 in seeds else ""
    )
    + "; a task whose policy succeeded on every episode, or on none, has that of "
    "one seed's (no spread to tell the seeds' agreement from). The policies' own "
    "seed-to-seed spread is not in it.",
    "",
    "| Task | Group | " + " | ".join(values) + " |",
    "|---|---|" + "---|" * len(values),
  ]
  tasks = sorted(
    {t for v in values.values() for (t, _) in v},
    key=lambda t: (group_order().index(group_of(t)), t),
  )
  for t in tasks:
    row = [t, names[group_of(t)]]
    for label in values:
      if t in intervals.get(label, {}):
        p, lo, hi = intervals[label][t][:3]
        row.append(f"{100 * p:.0f} [{100 * lo:.0f}, {100 * hi:.0f}]")
      else:
        row.append("-")
    lines.append("| " + " | ".join(row) + " |")
  lines += _tests_markdown(cells)
  fails = failures(cells, grid, failed)
  lines += ["", "## Failures and unfinished cells", ""]
  lines += [f"* {f}" for f in fails] if fails else ["None."]
  return "\n".join(lines) + "\n"


def _steps(a, b) -> str:
  return f"{a:,}" if a == b else f"{a:,}-{b:,}"


def window_note(common: dict, methods) -> str:
  """The note under the papers' table of the 5 best in the common window: what the window is
  per method, how each method's whole run reads instead, and how its window's first and
  last evaluations read (task means)."""

  def spans(m):
    return collections.Counter(
      (c["window_from"], max(s for s, _ in c["curve"]), c["window_evals"])
      for (_, _, mm), c in common.items()
      if mm == m and "window_from" in c
    )

  methods = [m for m in methods if spans(m)]
  widths = sorted({c["window_steps"] for c in common.values() if "window_steps" in c})
  parts = []
  for m in methods:
    (first, last, n), _ = spans(m).most_common(1)[0]
    parts.append(f"{m} steps {_steps(first, last)} ({n} evaluation{'s' * (n != 1)})")
  whole = aggregate(common, "top5")["group"]
  window = aggregate(common, WINDOW_METRIC)["group"]
  moved = []
  for m in methods:
    if ("all", m) in whole and ("all", m) in window:
      w, v = whole[("all", m)][0], window[("all", m)][0]
      if abs(w - v) >= 0.0005:  # differs at the table's precision
        moved.append(f"{m} {100 * w:.1f} ({_signed(w - v)})")

  def ends(m):  # task means of each cell's first and last evaluation in its window
    firsts = {
      k: {"v": next(v for s, v in sorted(c["curve"]) if s >= c["window_from"])}
      for k, c in common.items()
      if k[2] == m and "window_from" in c
    }
    lasts = {
      k: {"v": sorted(c["curve"])[-1][1]}
      for k, c in common.items()
      if k[2] == m and "window_from" in c
    }
    return (
      aggregate(firsts, "v")["group"][("all", m)][0],
      aggregate(lasts, "v")["group"][("all", m)][0],
    )

  eval_n = "/".join(map(str, sorted({e for c in common.values() for e in c.get("episodes") or []})))
  honest_n = "/".join(
    map(str, sorted({n for v in honest_values(common).values() for (_, n) in v.values()}))
  )
  students = [m for m in methods if m in methods_lib.names() and methods_lib.info(m).needs_teacher]
  gaps = ""
  if (
    students
    and "teacher" in methods
    and all(("all", m) in window and ("all", m) in whole for m in students + ["teacher"])
  ):

    def span(agg):
      d = sorted(100 * (agg[("all", m)][0] - agg[("all", "teacher")][0]) for m in students)
      return f"{d[0]:+.1f}" if f"{d[0]:.1f}" == f"{d[-1]:.1f}" else f"{d[0]:+.1f} to {d[-1]:+.1f}"

    gaps = (
      f" The students' Average minus the teacher's: {span(window)} points here, "
      f"{span(whole)} over whole runs."
    )
  return (
    "Common window: each policy's evaluations in its last "
    + "/".join(f"{w:,}" for w in widths)
    + " training steps (the shortest run of the "
    "task-seed's methods), the 5 best of them averaged (all of them when there are 5 "
    "or fewer): "
    + "; ".join(parts)
    + "."
    + (
      f" {', '.join(students)} start from the trained teacher, so over each whole "
      "run the teacher's pool would hold the evaluations of its first, under-trained "
      "steps and theirs would not."
      if students and "teacher" in methods
      else ""
    )
    + (
      " Over each whole run (the 5 best of all evaluations), the Average reads: "
      + "; ".join(moved)
      + " points against this table."
      if moved
      else ""
    )
    + gaps
    + " First and last evaluation in the window (mean over tasks): "
    + "; ".join(f"{m} {100 * a:.1f} -> {100 * b:.1f}" for m in methods for a, b in [ends(m)])
    + ": a policy still improving in its window reads lower here for that reason "
    "alone. The final-evaluation table below compares the final checkpoints on the "
    f"same {eval_n} states"
    + (
      f"; the honest protocol, on {honest_n} other states paired across methods."
      if honest_n
      else "."
    )
  )


def _tests_markdown(cells: dict) -> list:
  """The per-task exact paired tests that reach p < alpha, with both corrections."""
  tests = task_tests(cells)
  if not tests["m"]:
    return []
  a = tests["alpha"]
  shown = [x for x in tests["tests"] if x["p"] < a]
  lines = [
    "",
    "## Per task paired tests (honest protocol)",
    "",
    "For every pair of the rows above and every task: the episodes where one policy "
    "succeeds and the other fails on the same initial state (each seed paired on its "
    "own states, the task's seeds pooled), and McNemar's exact test on them (a "
    "two-sided sign test). Of the "
    f"{tests['m']} tests with such episodes, {tests['below']} reach p < {a:g} (in "
    f"{tests['tasks_below']} of {tests['tasks']} tasks), where {tests['expected']:.1f} "
    "would by chance were no policy better than another on any task (the sum of each "
    f"exact test's attainable level; {tests['nominal']:.1f} at a nominal {100 * a:g} "
    "%); they are listed here. q: Benjamini-Hochberg's adjusted p over the "
    f"{tests['m']} tests (false discovery rate); Holm: Holm's adjusted p (family-wise "
    f"error). Below {a:g}, a difference that survives that correction.",
  ]
  if shown:
    lines += [
      "",
      "| Task | Group | a | b | a only | b only | seeds | p | q (BH) | Holm |",
      "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
      f"| {x['task']} | {GROUP_LABELS[group_of(x['task'])]} | {x['a']} | {x['b']} | "
      f"{x['a_only']} | {x['b_only']} | {x['seeds']} | {x['p']:.2g} | {x['bh']:.2g} | "
      f"{x['holm']:.2g} |"
      for x in shown
    ]
  return lines


def _fmt(ms, pct=True):
  m, s = ms
  if not np.isfinite(m):
    return "-"
  if not np.isfinite(s):  # one seed: no spread to show
    return f"{100 * m:.1f}" if pct else f"{m:.4f}"
  return f"{100 * m:.1f} ± {100 * s:.1f}" if pct else f"{m:.4f} ± {s:.4f}"


def papers_markdown(
  cells: dict, title: str = "jaxpolicy sweep", grid: dict | None = None, latency: dict | None = None
) -> str:
  """The report; `grid` ({"tasks", "seeds", "methods"}, the sweep's sweep.json) sizes the
  finished-cell count; `latency` (<root>/latency.json) is where the batch-1 figures came
  from when they were measured apart from the sweep."""
  cells = with_common_window(cells)
  tasks = sorted({t for t, _, _ in cells})
  seeds = sorted({s for _, s, _ in cells})
  methods = _ordered({k[2] for k in cells})
  groups = [g for g in group_order() if any(group_of(t) == g for t in tasks)]
  nfe = {m: next(v["nfe"] for k, v in cells.items() if k[2] == m) for m in methods}
  pol = {m: next(v["policy"] for k, v in cells.items() if k[2] == m) for m in methods}
  # group tables compare methods on the (task, seed) pairs all of them finished
  common = complete_cells(cells)
  common_tasks = sorted({t for t, _, _ in common})
  counts = {g: sum(group_of(t) == g for t in common_tasks) for g in groups}
  n_pairs, n_common = len({k[:2] for k in cells}), len({k[:2] for k in common})
  episodes = sorted({e for v in cells.values() for e in v["episodes"]})
  backends = sorted({b for v in cells.values() for b in v["backends"]})
  where = {"cpu": "the CPU simulator (C MuJoCo; MetaWorld itself)", "mjx": "MJX"}
  suite_names = sorted({suites.suite_of(t).name for t in tasks})
  grid = grid or {}
  if "cells" in grid:  # the planned (task, seed, method) cells
    n_grid = len({tuple(c) for c in grid["cells"]} | set(cells))
  else:
    n_grid = (
      len(set(grid.get("tasks", [])) | set(tasks))
      * len(set(grid.get("seeds", [])) | set(seeds))
      * len(set(grid.get("methods", [])) | set(methods))
    )
  lines = [
    f"# {title}",
    "",
    f"{len(tasks)} tasks ({', '.join(suite_names)}), seeds {seeds}, success rates in %: the mean over "
    "a group's tasks, each task's seeds averaged first (every task counts once), ± "
    "the std over seeds where all of the group's tasks ran the same seeds (none where "
    f"they did not, as in an Average over groups run on 1 and 3 seeds). Evaluated on {' and '.join(where.get(b, b) for b in backends)}, "
    f"{'/'.join(map(str, episodes))} episodes per evaluation. "
    f"{len(cells)} of {n_grid} cells (task x seed x method) finished."
    + (
      " Every cell's config was changed by "
      + ", ".join(f"`{k}={v}`" for k, v in grid["overrides"].items())
      + "."
      if grid.get("overrides")
      else ""
    )
    + (
      f" Group tables: the {n_common} (task, seed) pairs every method has finished "
      f"({n_pairs - n_common} more have some methods only; see the per-task table)."
      if n_common < n_pairs
      else ""
    ),
    "",
  ]
  best = WINDOW_METRIC if all(WINDOW_METRIC in c for c in common.values()) else "top5"
  for metric, label in (
    (
      best,
      "mean of the 5 best evaluations"
      + (" in a common window of training" if best != "top5" else "")
      + " (the papers' metric)",
    ),
    ("final", "final evaluation"),
    ("mean_all", "mean over all evaluations"),
  ):
    agg = aggregate(common, metric)
    lines += [
      f"## Success rate: {label} (cf. SDM Table 1)",
      "",
      "| Method | NFE | "
      + " | ".join(f"{GROUP_LABELS[g]} ({counts[g]})" for g in groups)
      + " | Average |",
      "|---|---|" + "---|" * (len(groups) + 1),
    ]
    for m in methods:
      row = [f"{m} (`{pol[m]}`)", str(nfe[m])]
      row += [_fmt(agg["group"].get((g, m), (np.nan, np.nan))) for g in groups]
      row.append(_fmt(agg["group"].get(("all", m), (np.nan, np.nan))))
      lines.append("| " + " | ".join(row) + " |")
    if metric == best and groups:  # the paper's rows beside ours, in its own metric
      lines += paper_rows(groups, nfe=True)
      lines += [
        "",
        "Paper rows: the SDM paper's Table 1 (MetaWorld v2, point clouds, "
        "paper-size networks, 3 seeds), for scale, not comparable in setting.",
      ]
      if best != "top5":
        lines += ["", window_note(common, methods)]
    if metric == "mean_all":
      taught = [
        m for m in methods if m in methods_lib.names() and methods_lib.info(m).needs_teacher
      ]
      lines += [
        "",
        "Every evaluation of each run"
        + (
          ", those of the teacher's first, under-trained steps included (the "
          "students start from the trained teacher)"
          if taught and "teacher" in methods
          else ""
        )
        + ": how training went, not a comparison of the methods.",
      ]
    lines.append("")
  if latency:
    source = (
      f"Measured apart from the sweep (`{latency['command']}`, {latency['date']}, "
      f"{latency['machine']}, CPUs {100 * latency['cpu_busy_before']:.0f} % busy just "
      "before; "
      f"{latency['calls']} calls per policy in {ROUNDS} interleaved rounds, on "
      + ", ".join(f"{m}: {c}" for m, c in latency["cell_of"].items())
      + "): every cell of a method runs the same network shapes, so one measurement "
      "stands for all."
    )
  else:
    source = (
      "Measured by the sweep after each cell's training, possibly beside other jobs "
      "(`python -m launch.report --latency` measures them apart)."
    )
  lines += [
    "## Policy frequency at batch 1 (cf. SDM Table 3)",
    "",
    "Steady state (a mid-episode call); an episode's first call apart (STEP's runs "
    "the teacher's sampler from noise). NFE/call: amortised over a 200-step episode. " + source,
    "",
    "| Method | NFE | NFE/call | "
    + ("Hz" if latency else "Hz (mean ± std over cells)")
    + " | latency ms | first call ms |",
    "|---|---|---|---|---|---|",
  ]
  for m in methods:
    mine = [v for k, v in cells.items() if k[2] == m]
    hz = mean_std([v["hz_b1"] for v in mine])
    lat = mean_std([v["latency_ms_b1"] for v in mine])
    first = mean_std([v.get("first_call_ms_b1") for v in mine])
    amort = mean_std([v.get("nfe_amortised") for v in mine])
    first_s = f"{first[0]:.2f}" if np.isfinite(first[0]) else "-"
    amort_s = f"{amort[0]:.2f}" if np.isfinite(amort[0]) else "-"
    hz_s = f"{hz[0]:.1f}" + (f" ± {hz[1]:.1f}" if not latency and np.isfinite(hz[1]) else "")
    lines.append(f"| {m} | {nfe[m]} | {amort_s} | {hz_s} | {lat[0]:.2f} | {first_s} |")
  mains = {v["policy"] for v in cells.values()}
  for name, r in sorted((latency or {}).get("policies", {}).items()):
    if name not in mains:  # a teacher's untrained few-step baseline
      lines.append(
        f"| `{name}` (baseline) | {r['nfe']} | {r['nfe']} | {r['hz_b1']:.1f} | "
        f"{r['latency_ms_b1']:.2f} | - |"
      )
  lines += [
    "",
    "## Action error on held-out demonstration windows (cf. SDM Table 4)",
    "",
    "MSE between the policy's normalised action chunk and the demonstrator's.",
    "",
    "| Method | " + " | ".join(GROUP_LABELS[g] for g in groups) + " | Average |",
    "|---|" + "---|" * (len(groups) + 1),
  ]
  agg = aggregate(
    {
      k: {"mse": v["action_mse"] if v["action_mse"] is not None else np.nan}
      for k, v in common.items()
    },
    "mse",
  )
  for m in methods:
    row = [m] + [_fmt(agg["group"].get((g, m), (np.nan, np.nan)), pct=False) for g in groups]
    row.append(_fmt(agg["group"].get(("all", m), (np.nan, np.nan)), pct=False))
    lines.append("| " + " | ".join(row) + " |")
  per_task = (best,) + PAPERS_METRICS[1:]
  lines += [
    "",
    "## Per task (success %, mean of the 5 best"
    + (" in the common window" if best != "top5" else "")
    + " / final / mean of all)",
    "",
    "| Task | Group | " + " | ".join(methods) + " |",
    "|---|---|" + "---|" * len(methods),
  ]
  aggs = {mt: aggregate(cells, mt)["task"] for mt in per_task}
  for t in tasks:
    row = [t, GROUP_LABELS[group_of(t)]]
    for m in methods:
      if (t, m) in aggs[best]:
        row.append(" / ".join(f"{100 * aggs[mt][(t, m)][0]:.0f}" for mt in per_task))
      else:
        row.append("-")
    lines.append("| " + " | ".join(row) + " |")
  lines += [
    "",
    "![learning curves per group](learning_curves_groups.png)",
    "",
    "![learning curves per task](learning_curves.png)",
    "",
  ]
  return "\n".join(lines)


def write_report(root: str, out: str | None = None) -> str:
  cells = load_sweep(root)
  if not cells:
    raise FileNotFoundError(f"no finished sweep cells under {root}")
  latency = apply_latency(root, cells)
  cells = with_common_window(cells)  # the papers' 5 best over a common window
  out = out or os.path.join(root, "report.md")
  folder = os.path.dirname(os.path.abspath(out))
  plots.plot_curves(cells, os.path.join(folder, "learning_curves.png"))
  plots.plot_group_curves(cells, os.path.join(folder, "learning_curves_groups.png"))
  grid_path = os.path.join(root, "sweep.json")
  grid = None
  if os.path.exists(grid_path):
    with open(grid_path) as f:
      grid = json.load(f)
  text = papers_markdown(cells, grid=grid, latency=latency)
  failed = load_failures(root)
  honest = honest_markdown(cells, grid, failed)
  words = reading(cells, grid, latency, failed)
  if words:  # the plain-words reading goes first, after the opening paragraph
    head, sep, rest = text.partition("\n## ")
    text = head + "\n" + words + sep + rest
  if honest:  # the honest protocol, its pictures and summary.json
    plots.plot_success_vs_hz(
      cells,
      os.path.join(folder, "success_vs_hz.png"),
      baseline_hz={p: r["hz_b1"] for p, r in (latency or {}).get("policies", {}).items()},
    )
    plots.plot_task_bars(cells, os.path.join(folder, "per_task_success.png"))
    text += (
      "\n"
      + honest
      + ("\n![success vs Hz](success_vs_hz.png)\n\n![per-task success](per_task_success.png)\n")
    )
  write_summary(folder, cells, grid, aggregate(complete_cells(cells), "top5"), failed)
  write_cells_csv(folder, cells)
  with open(out, "w") as f:
    f.write(text)
  return out
