"""The honest protocol of a sweep: final checkpoints on paired episodes, with intervals.

Each finished cell's `cell.json` holds `honest`: its final main policy evaluated on N
episodes whose initial states are shared by every method of the task and seed (and, in the
teacher's cell, the teacher's own DDIM-1 / DDIM-2 from noise). From those:

* per task and seed, success with a Wilson 95 % interval;
* per MetaWorld difficulty group, the mean over its tasks (each task's seeds averaged
  first) with a bootstrap 95 % interval resampling tasks;
* paired differences (SDM - teacher, SDM - CD, STEP - teacher, ...) per cell, then per group
  the same way -- the same initial states on both sides, so the difference
  carries no reset noise;
* the papers' protocol against the honest one per cell (5 best minus honest, split into
  checkpoint selection and the evaluation episodes);
* a plain-words reading of all that, written from the numbers;
* `summary.json` for both protocols (the papers' "mean of the 5 best" from jaxpolicy.report).

Plain arithmetic on dicts, tested on hand-made cells.
"""
from __future__ import annotations

import collections
import os

import numpy as np

from jaxpolicy import methods as methods_lib
from jaxpolicy import suites
from jaxpolicy.suites import group_of
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
PAPER_NFE = {"DP3* (paper)": 10, "ManiCM* (paper)": 1, "SDM (paper)": 1}
PAPER_GROUPS = ("easy", "medium", "hard", "very_hard")   # MetaWorld's, the papers' columns


def group_order() -> tuple[str, ...]:
  """Every registered suite's groups, suite by suite, in report order."""
  return tuple(g for name in suites.names() for g in suites.get(name).groups)


def group_size(group: str) -> int:
  """How many tasks a group has in its suite."""
  return next(len(suites.get(n).groups[group]) for n in suites.names()
              if group in suites.get(n).groups)


class _GroupLabels(dict):
  """group -> how tables name it (its suite's label)."""

  def __missing__(self, group):
    return suites.group_label(group)


GROUP_LABELS = _GroupLabels()


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


def by_group(values: dict, seed: int = 0) -> dict:
  """{(task, seed): value} -> {group or "all": (mean, low, high, n_tasks, n_cells)}: each
  task's value is its mean over the seeds it ran, a group's the mean over its tasks (every
  task counts once, as in the papers' averages, however many seeds it ran), with a bootstrap
  95 % interval resampling tasks (a task's seeds are not independent draws of the group)."""
  per_task = collections.defaultdict(list)
  for (t, _), v in sorted(values.items()):
    if v is not None and np.isfinite(v):
      per_task[t].append(v)
  out = {}
  for g in list(group_order()) + ["all"]:
    sel = [t for t in per_task if g == "all" or group_of(t) == g]
    if sel:
      out[g] = bootstrap_mean_interval([np.mean(per_task[t]) for t in sel], seed=seed) + (
          len(sel), sum(len(per_task[t]) for t in sel))
  return out


def group_means(values: dict, seed: int = 0) -> dict:
  """{(task, seed): (k, n)} -> {group or "all": (mean, low, high, n_tasks, n_cells)}."""
  return by_group({c: k / n for c, (k, n) in values.items()}, seed)


def paired_differences(cells: dict) -> dict:
  """{pair label: {group: (mean, low, high, n_tasks, n_cells)}} over cells with both sides."""
  values = honest_values(cells)
  out = {}
  label_of = {key: label for key, label, _, _ in honest_rows(cells)}
  for label, a, b in PAIRS:
    va, vb = values.get(label_of.get(a), {}), values.get(label_of.get(b), {})
    both = sorted(set(va) & set(vb))
    if both:
      out[label] = by_group({c: va[c][0] / va[c][1] - vb[c][0] / vb[c][1] for c in both})
  return out


def complete_cells(cells: dict) -> dict:
  """The cells of the (task, seed) pairs every method of `cells` has finished: group means
  of a partly finished grid then compare methods on the same tasks."""
  methods = {m for _, _, m in cells}
  pairs = {(t, s) for t, s, _ in cells}
  done = {p for p in pairs if all((*p, m) in cells for m in methods)}
  return {k: v for k, v in cells.items() if k[:2] in done}


PAPERS_METRICS = ("top5", "final", "mean_all")   # the papers' protocol, per cell (report.py)


def papers_intervals(cells: dict) -> dict:
  """The papers' protocol with intervals: {metric: {method: {group: (mean, low, high,
  n_tasks, n_cells)}}} over the (task, seed) pairs every method finished (as its tables)."""
  common = complete_cells(cells)
  out = {}
  for metric in PAPERS_METRICS:
    for m in sorted({m for (_, _, m) in common}):
      vals = {(t, s): float(c[metric]) for (t, s, mm), c in common.items()
              if mm == m and c.get(metric) is not None and np.isfinite(c[metric])}
      if vals:
        out.setdefault(metric, {})[m] = by_group(vals)
  return out


def failures(cells: dict, grid: dict | None, failed: dict | None = None) -> list[str]:
  """Planned cells that did not finish (with the recorded reason of those that failed:
  `failed` = {(task, seed, method): reason}, report.load_failures), and teachers below 10 %
  (kept, with the reason)."""
  out = []
  failed = {k: v for k, v in (failed or {}).items() if k not in cells}
  planned = {tuple(c) for c in (grid or {}).get("cells", [])} | set(failed)
  missing: dict = {}
  for task, seed, method in sorted(planned - set(cells)):
    status = (f"failed: {failed[(task, seed, method)]}" if (task, seed, method) in failed
              else "not finished")
    missing.setdefault((task, seed, status), []).append(method)
  for (task, seed, status), methods in sorted(missing.items()):
    out.append(f"{task} seed {seed} {', '.join(methods)}: {status}")
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


GAPS = {"top5_minus_honest": ("top5", "honest"), "top5_minus_final": ("top5", "final"),
        "final_minus_honest": ("final", "honest")}


def protocol_gap(cells: dict) -> dict:
  """How the papers' protocol reads against the honest one, per method and (task, seed)
  cell: the mean of the 5 best evaluations during training minus the final checkpoint's honest
  success (its main policy on the paired episodes), split into checkpoint selection (5 best
  minus the final evaluation, on the same episodes) and the episode sets (the final
  evaluation's episodes minus the honest ones, same checkpoint).
  {gap: {method: {group: (mean, low, high, n_tasks, n_cells)}}} over cells with all three."""
  out = {k: {} for k in GAPS}
  for m in sorted({m for (_, _, m) in cells}):
    nums = {}
    for (t, s, mm), cell in cells.items():
      honest = cell.get("honest") or {}
      h = honest.get(_main(m, list(honest)))
      if mm == m and h is not None and all(
          cell.get(k) is not None and np.isfinite(cell[k]) for k in ("top5", "final")):
        nums[(t, s)] = {"top5": float(cell["top5"]), "final": float(cell["final"]),
                        "honest": float(h["success_rate"])}
    for gap, (a, b) in GAPS.items():
      if nums:
        out[gap][m] = by_group({c: v[a] - v[b] for c, v in nums.items()})
  return {k: v for k, v in out.items() if v}


def paper_average(nums) -> float:
  """A paper row's 50-task MetaWorld average, weighted by the groups' task counts (our
  arithmetic: the paper's own Average column also spans Adroit and DexArt)."""
  return sum(group_size(g) * v for g, v in zip(PAPER_GROUPS, nums)) / sum(
      group_size(g) for g in PAPER_GROUPS)


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
    rows.append(f"| {label} | " + (f"{PAPER_NFE[label]} | " if nfe else "")
                + " | ".join(f"{by_group[g]:.1f}" for g in present) + f" | {avg} |")
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
    return (f"{100 * m:+.1f} points {where}: too few tasks for a claim either way "
            f"(a verdict needs {MIN_TASKS_FOR_VERDICT}).")
  if lo <= 0 <= hi:
    bound = 100 * max(-lo, hi)
    return (f"{_points(v)} {where}. No difference shown; at this sample a gap "
            f"beyond about {bound:.1f} points either way is unlikely.")
  side = "higher" if m > 0 else "lower"
  return (f"{_points(v)} {where}. The interval excludes 0: the first is "
          f"{side}, by {abs(100 * m):.1f} points on average.")


def reading(cells: dict, grid: dict | None = None, latency: dict | None = None,
            failed: dict | None = None) -> str:
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
  lines = ["## Reading", "",
           f"* **Coverage.** {len(cells)} of {planned} cells finished, {len(task_seeds)} "
           f"task-seeds, seeds {seeds}; tasks per group: " + ", ".join(
               f"{names[g]} {per_group[g]}/{group_size(g)}" for g in shown) + "."
           + (f" {n_failed} failed (see Failures)." if n_failed else "")
           + (" Groups or seeds not yet run make no claim." if len(cells) < planned else "")]
  lines += _provenance(cells)
  diffs = paired_differences(cells)
  for label, res in diffs.items():
    if "all" in res:
      lines.append(f"* **{label}** (paired, same initial states): " + _verdict(res["all"]))
  eligible = [(label, g, v) for label, res in diffs.items() for g, v in res.items()
              if g != "all" and v[3] >= MIN_TASKS_FOR_VERDICT]
  apart = [f"{label}, {names[g]}: {_points(v)}" for label, g, v in eligible
           if not v[1] <= 0 <= v[2]]
  if apart:
    lines.append(f"* **Per group, intervals that exclude 0** (groups of at least "
                 f"{MIN_TASKS_FOR_VERDICT} tasks): {'; '.join(apart)}. Were there no "
                 f"true differences, about {0.05 * len(eligible):.1f} of these "
                 f"{len(eligible)} intervals would exclude 0 by chance: read them as leads, "
                 "not findings.")
  gap = protocol_gap(cells)
  if gap:
    n_evals = sorted({len(c["curve"]) for c in cells.values() if c.get("curve")})
    count = (f" ({n_evals[0]}-{n_evals[-1]} per cell)" if len(n_evals) > 1 else
             f" ({n_evals[0]} per cell)" if n_evals else "")
    backends = sorted({b for c in cells.values() for b in c.get("backends") or []})
    sim = ("; the evaluations during training ran on " + " and ".join(backends)
           + ", the honest ones on the CPU simulator, so this part includes the simulators' "
           "difference" if backends and backends != ["cpu"] else "")

    def per(name):
      return "; ".join(f"{m} {_points(r['all'])}" for m, r in gap[name].items() if "all" in r)
    lines.append(
        "* **The papers' protocol against the honest one** (positive: the papers' reads "
        f"higher; per task-seed, averaged per task, then over tasks). The mean of the (up "
        f"to) 5 best {eval_n}-episode evaluations "
        f"during training{count} minus the final checkpoint's success on {honest_n} paired "
        "episodes: "
        f"{per('top5_minus_honest')}. It has two parts. Picking the best checkpoints after "
        f"the fact (5 best minus the final evaluation, same {eval_n} episodes): "
        f"{per('top5_minus_final')}. The {eval_n} evaluation episodes against the honest ones "
        f"(same final checkpoint{sim}): {per('final_minus_honest')}. Every evaluation during "
        f"training reuses one set of {eval_n} initial states, so its luck or bad luck is "
        f"shared by all of a cell's evaluations; the honest table, on {honest_n} other states, "
        "is what a user of the final policy gets.")
  if latency and latency.get("policies"):
    hz = {p: r["hz_b1"] for p, r in latency["policies"].items()}
    teacher = hz.get("teacher_ddim10")
    if teacher:
      others = ", ".join(f"`{p}` {h:.0f} Hz ({h / teacher:.1f}x)" for p, h in sorted(
          hz.items(), key=lambda kv: -kv[1]) if p != "teacher_ddim10")
      where = ", ".join(str(latency[k]) for k in ("machine", "date") if latency.get(k))
      lines.append(f"* **Speed** (batch 1, measured apart from training"
                   + (f": {where}" if where else "") + "): the teacher's DDIM-10 "
                   f"runs at {teacher:.0f} Hz; {others}. Success above says whether the "
                   "speed costs anything.")
  fails = [f for f in failures(cells, grid) if f.endswith("cannot be judged against it")]
  if fails:
    lines.append(f"* **Teachers below 10 %**: {len(fails)} task-seeds; kept in every mean, "
                 "their students cannot be judged against them.")
  half = 100 * max(h - l for l, h in [wilson_interval(n // 2, n) for n in episodes]) / 2
  preset = (grid or {}).get("preset", "?")
  obs = ((grid or {}).get("overrides") or {}).get("obs", "state")
  lines.append(
      f"* **What it does not show.** These are {preset}-preset networks on {obs} "
      "observations in MetaWorld v3. The paper rows are MetaWorld v2, point clouds and "
      "paper-size networks: compare the gaps between methods, not the levels. Per task, "
      f"{honest_n} "
      f"episodes leave a Wilson interval of up to about +-{half:.0f} points, so per-task "
      "differences of a few points are noise; group means and paired differences are the "
      "evidence.")
  return "\n".join(lines) + "\n"


def _provenance(cells: dict) -> list:
  """A line on the hosts and code versions the cells were trained with (cells record them
  since 2026-12-03): a grid run over sessions mixes them, and differs with them at least by
  float rounding."""
  hosts = collections.Counter(c["host"] for c in cells.values() if c.get("host"))
  codes = collections.Counter(c["code"] for c in cells.values() if c.get("code"))
  if not hosts and not codes:
    return []
  counted = lambda counter: ", ".join(f"{k} ({n})" for k, n in counter.most_common())
  unrecorded = sum(1 for c in cells.values() if not c.get("host"))
  return [f"* **Provenance** (cells per host and per code version): {counted(hosts)}; code "
          f"{counted(codes)}"
          + (f"; {unrecorded} cells predate the record" if unrecorded else "") + "."]


def _ci(v, signed: bool = False):
  """mean [interval] in % (`signed`: points of a difference, with their sign); a single task
  has no interval (the bootstrap resamples tasks)."""
  fmt = _signed if signed else (lambda x: f"{100 * x:.1f}")
  m, lo, hi = v[:3]
  if len(v) > 3 and v[3] < 2:
    return f"{fmt(m)} [one task]"
  return f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]"


def markdown(cells: dict, grid: dict | None = None, failed: dict | None = None) -> str:
  """The honest-protocol sections of the report (empty when no cell has honest results)."""
  values = honest_values(cells)
  if not values:
    return ""
  episodes = sorted({n for v in values.values() for (_, n) in v.values()})
  present = [g for g in group_order() if any(group_of(t) == g for v in values.values()
                                           for (t, _) in v)]
  names = GROUP_LABELS
  lines = ["## Honest protocol: final checkpoint, paired episodes", "",
           f"Every policy's final checkpoint on {'/'.join(map(str, episodes))} episodes whose "
           "initial states are shared by all methods of a task and seed. Success in %, mean "
           "over each group's tasks (a task's seeds averaged first, so every task counts "
           "once), [bootstrap 95 % interval resampling tasks] (tasks / task-seeds). The "
           "teacher's DDIM-1/2 rows run the trained teacher from noise in 1 or 2 steps, no "
           "distillation. The paper rows are the SDM paper's Table 1 (MetaWorld "
           "v2, point clouds, paper-size networks, the papers' protocol), not comparable in "
           "setting; shown for scale only (their Average, once all four groups are here: "
           "the group means weighted by task counts, our arithmetic).", "",
           "| Method | " + " | ".join(f"{names[g]}" for g in present) + " | Average |",
           "|---|" + "---|" * (len(present) + 1)]
  for label, vals in values.items():
    gm = group_means(vals)
    row = [label] + [_ci(gm[g]) + f" ({gm[g][3]} / {gm[g][4]})" if g in gm else "-"
                     for g in present]
    row.append(_ci(gm["all"]) + f" ({gm['all'][3]} / {gm['all'][4]})")
    lines.append("| " + " | ".join(row) + " |")
  lines += paper_rows(present)
  diffs = paired_differences(cells)
  if diffs:
    lines += ["", "## Paired differences (honest protocol)", "",
              "Per (task, seed) cell the difference of success rates on the same initial "
              "states, in points; per task the mean over its seeds, per group the mean over "
              "tasks [bootstrap 95 % interval resampling tasks]. An "
              "interval that contains 0 shows no difference at this sample size.", "",
              "| Difference | " + " | ".join(names[g] for g in present) + " | All |",
              "|---|" + "---|" * (len(present) + 1)]
    for label, res in diffs.items():
      row = [label] + [_ci(res[g], signed=True) if g in res else "-" for g in present]
      row.append(_ci(res["all"], signed=True) if "all" in res else "-")
      lines.append("| " + " | ".join(row) + " |")
  lines += ["", "## Per task (honest protocol, success % [Wilson 95 %], seeds pooled)", "",
            "| Task | Group | " + " | ".join(values) + " |", "|---|---|" + "---|" * len(values)]
  tasks = sorted({t for v in values.values() for (t, _) in v},
                 key=lambda t: (group_order().index(group_of(t)), t))
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
  fails = failures(cells, grid, failed)
  lines += ["", "## Failures and unfinished cells", ""]
  lines += [f"* {f}" for f in fails] if fails else ["None."]
  return "\n".join(lines) + "\n"


def summary(cells: dict, grid: dict | None, papers_agg: dict, failed: dict | None = None) -> dict:
  """summary.json: per protocol, method and group: mean, interval, tasks, cells; the grid's
  finished-cell count; CPU-hours."""
  values = honest_values(cells)
  honest = {label: {g: dict(zip(("mean", "low", "high", "n_tasks", "n_cells"), v))
                    for g, v in group_means(vals).items()} for label, vals in values.items()}
  keys = ("mean", "low", "high", "n_tasks", "n_cells")
  papers = {f"{m}": {g: {"mean": v[0], "std_over_seeds": v[1]}   # NaN -> None below
                     for (g, mm), v in papers_agg["group"].items() if mm == m}
            for m in sorted({mm for (_, mm) in papers_agg["group"]})}
  intervals = papers_intervals(cells)
  for m, groups in intervals.get("top5", {}).items():   # bootstrap over tasks
    for g, v in groups.items():
      papers.setdefault(m, {}).setdefault(g, {}).update(dict(zip(keys, v)))
  planned = len({tuple(c) for c in (grid or {}).get("cells", [])} | set(cells))
  cpu = sum(c.get("cpu_s") or 0.0 for c in cells.values())
  wall = sum(c.get("wall_s") or 0.0 for c in cells.values())
  return _finite({"protocols": {"papers_top5": papers, "honest": honest,
                        **{f"papers_{k}": {m: {g: dict(zip(keys, v)) for g, v in res.items()}
                                           for m, res in per.items()}
                           for k, per in intervals.items() if k != "top5"}},
          "paired_differences": {k: {g: dict(zip(("mean", "low", "high", "n_tasks", "n_cells"),
                                                 v)) for g, v in res.items()}
                                 for k, res in paired_differences(cells).items()},
          "protocol_gaps": {gap: {m: {g: dict(zip(("mean", "low", "high", "n_tasks",
                                                   "n_cells"), v)) for g, v in res.items()}
                                  for m, res in per.items()}
                            for gap, per in protocol_gap(cells).items()},
          "finished_cells": len(cells), "planned_cells": planned,
          "cpu_hours": cpu / 3600, "wall_hours": wall / 3600,
          "failed_cells": len({k for k in (failed or {}) if k not in cells}),
          "failures": failures(cells, grid, failed)})


def _finite(obj):
  """NaN / inf -> None throughout (strict JSON has no NaN)."""
  if isinstance(obj, dict):
    return {k: _finite(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_finite(v) for v in obj]
  if isinstance(obj, float) and not np.isfinite(obj):
    return None
  return obj


def write_summary(root: str, cells: dict, grid: dict | None, papers_agg: dict,
                  failed: dict | None = None) -> str:
  return files.write_json(os.path.join(root, "summary.json"),
                          summary(cells, grid, papers_agg, failed))


CSV_COLUMNS = ("task", "group", "seed", "method", "policy", "honest_success",
               "honest_episodes", "top5", "final", "mean_all", "nfe", "hz_b1", "cpu_s", "wall_s")


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
        row = {"task": task, "group": group_of(task), "seed": seed, "method": method,
               "policy": policy, "honest_success": h.get("success_rate"),
               "honest_episodes": h.get("episodes"), "nfe": h.get("nfe", cell.get("nfe"))}
        if policy == main:
          row.update({k: cell.get(k) for k in ("top5", "final", "mean_all", "hz_b1",
                                               "cpu_s", "wall_s")})
        w.writerow(["" if row.get(c) is None else row[c] for c in CSV_COLUMNS])
  os.replace(path + ".tmp", path)
  return path


def plot_success_vs_hz(cells: dict, path: str, baseline_hz: dict | None = None) -> str:
  """Honest success (mean over tasks, as `group_means`) vs batch-1 Hz per method, one panel
  per group; the untrained baselines too where `baseline_hz` ({policy: Hz}) has theirs."""
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
  groups = [g for g in group_order() if any(group_of(t) == g for (t, _, _) in cells)] + ["all"]
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
      ax.errorbar([x], [100 * m], yerr=[[100 * max(m - lo, 0)], [100 * max(hi - m, 0)]],
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


def plot_task_bars(cells: dict, path: str, per_row: int = 14) -> str:
  """Per-task honest success with Wilson intervals, one bar per method; one panel per
  difficulty group (a group of more than `per_row` tasks over several rows)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  values = honest_values(cells)
  names = GROUP_LABELS
  panels = []
  for g in group_order():
    tasks = sorted({t for v in values.values() for (t, _) in v if group_of(t) == g})
    parts = [tasks[i:i + per_row] for i in range(0, len(tasks), per_row)]
    panels += [(f"{names[g]}" + (f" ({k + 1}/{len(parts)})" if len(parts) > 1 else ""), p)
               for k, p in enumerate(parts)]
  labels = list(values)
  width = 0.8 / max(len(labels), 1)
  n_cols = max((len(p) for _, p in panels), default=1)
  fig, axes = plt.subplots(len(panels), 1, figsize=(max(6.0, 0.9 * n_cols + 2),
                                                    2.9 * len(panels) + 0.8), squeeze=False)
  for ax, (title, tasks) in zip(axes[:, 0], panels):
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
        lo_err.append(100 * max(k / n - lo, 0))   # a plot must not fail on rounding
        hi_err.append(100 * max(hi - k / n, 0))
      ax.bar(xs, ys, width, yerr=[lo_err, hi_err], capsize=2, label=label,
             color=f"C{i}", error_kw={"elinewidth": 0.8})
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=30, ha="right", fontsize=8)
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylabel("success %")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=9, loc="left")
    ax.grid(axis="y", alpha=0.3)
  import matplotlib.patches  # pylint: disable=g-import-not-at-top
  handles = [matplotlib.patches.Patch(color=f"C{i}", label=label)   # every method, even one
             for i, label in enumerate(labels)]                      # absent from a panel
  fig.legend(handles=handles, loc="upper center", ncol=min(len(labels), 6), fontsize=8,
             frameon=False, title="honest protocol, seeds pooled; bars: Wilson 95 %")
  fig.tight_layout(rect=(0, 0, 1, 1 - 0.7 / fig.get_figheight()))
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
