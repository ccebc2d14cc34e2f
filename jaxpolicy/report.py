"""The evaluation protocol of the DP3 / SDM papers, computed from stored evaluations.

Per cell (task, seed, method) the main policy's evaluations over training give three
numbers: the papers' "mean of the 5 best evaluations" (optimistic: it picks the best
checkpoints after the fact), the final evaluation and the mean over all evaluations.
Tasks are averaged per MetaWorld difficulty group (each task's seeds first, so every task
counts once), +- the std over seeds where the group's tasks ran the same seeds (`aggregate`).
Everything here is plain arithmetic on dicts, so it is tested on hand-made numbers.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from jaxpolicy import leaderboard
from jaxpolicy import methods as methods_lib
from jaxpolicy import runs
from jaxpolicy import suites
from jaxpolicy.suites import group_of
from jaxpolicy.runtime import files, host

GROUP_NAMES = leaderboard.GROUP_LABELS
METRICS = leaderboard.PAPERS_METRICS


def main_policy(method: str, names) -> str:
  """The policy a method is reported by (its INFO.main_policy): teacher DDIM, SDM/CD
  one-step, STEP k = 2."""
  return methods_lib.info(method).main_policy_of(names)


def _ordered(methods) -> list[str]:
  """Methods in registry order (the teacher first); unknown ones after, by name."""
  known = [m for m in methods_lib.names() if m in methods]
  return known + sorted(set(methods) - set(known))


def _style(method: str) -> tuple:
  try:
    return methods_lib.info(method).style
  except ValueError:   # a method no longer registered: a neutral style
    return ("tab:gray", "x", "-", 5)


def top_k_mean(values, k: int = 5) -> float:
  v = sorted(values, reverse=True)[:k]
  return float(np.mean(v)) if v else float("nan")


def cell_metrics(curve: list[tuple[int, float]], k: int = 5) -> dict:
  """curve: [(step, success)] in training order -> {top5, final, mean_all}."""
  curve = sorted(curve)
  vals = [s for _, s in curve]
  return {"top5": top_k_mean(vals, k), "final": vals[-1] if vals else float("nan"),
          "mean_all": float(np.mean(vals)) if vals else float("nan")}


def mean_std(values) -> tuple[float, float]:
  """(mean, std over the finite values); std is NaN for fewer than two (no spread to show)."""
  v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
  if len(v) == 0:
    return float("nan"), float("nan")
  return float(v.mean()), float(v.std(ddof=0)) if len(v) > 1 else float("nan")


def aggregate(cells: dict, metric: str) -> dict:
  """cells: {(task, seed, method): {metric: value}} ->
  {"task": {(task, method): (mean, std)}, "group": {(group, method): (mean, std)}}.

  A task's value is its mean over the seeds it ran; a group's ("all" = every task) the mean
  over its tasks, so every task counts once however many seeds it ran (a grid that ran the
  Easy tasks on one seed and the others on three still averages the 50 tasks as the papers
  do). std is over seeds of the per-seed group means, and only where every task of the group
  ran the same two or more seeds; otherwise (one seed, or tasks with different seeds, e.g.
  the Average over such a grid) it is NaN: there is no seed spread to show without making
  one up. None and non-finite values count as not run.
  """
  def value(t, s, m):
    v = cells.get((t, s, m), {}).get(metric)
    return float(v) if v is not None and np.isfinite(v) else None

  tasks = sorted({t for t, _, _ in cells})
  seeds = sorted({s for _, s, _ in cells})
  methods = sorted({m for _, _, m in cells})
  ran = {(t, m): [s for s in seeds if value(t, s, m) is not None]
         for t in tasks for m in methods}
  out = {"task": {}, "group": {}}
  for (t, m), ss in ran.items():
    if ss:
      out["task"][(t, m)] = mean_std([value(t, s, m) for s in ss])
  for g in list(leaderboard.group_order()) + ["all"]:
    for m in methods:
      members = [t for t in tasks if (g == "all" or group_of(t) == g) and ran[(t, m)]]
      if not members:
        continue
      mean = float(np.mean([out["task"][(t, m)][0] for t in members]))
      std = float("nan")
      if len({tuple(ran[(t, m)]) for t in members}) == 1:   # the same seeds everywhere
        std = mean_std([np.mean([value(t, s, m) for t in members])
                        for s in ran[(members[0], m)]])[1]
      out["group"][(g, m)] = (mean, std)
  return out


complete_cells = leaderboard.complete_cells


def load_sweep(root: str) -> dict:
  """Reads every finished cell under root/<task>/s<seed>/<method>/."""
  cells = {}
  for task in sorted(os.listdir(root)):
    tdir = os.path.join(root, task)
    if not os.path.isdir(tdir) or task == "data":
      continue
    for sd in sorted(os.listdir(tdir)):
      if not sd.startswith("s"):
        continue
      for method in sorted(os.listdir(os.path.join(tdir, sd))):
        wd = os.path.join(tdir, sd, method)
        if os.path.exists(os.path.join(wd, "cell.json")):
          cells[(task, int(sd[1:]), method)] = read_cell(wd, method)
  return cells


FAILED = "failed.json"   # written by launch.sweep for a cell that could not be trained


def load_failures(root: str) -> dict:
  """{(task, seed, method): reason} of the cells under root/<task>/s<seed>/<method>/ that
  failed (their failed.json) and have not finished since."""
  out = {}
  for task in sorted(os.listdir(root)):
    tdir = os.path.join(root, task)
    if not os.path.isdir(tdir) or task == "data":
      continue
    for sd in sorted(d for d in os.listdir(tdir) if d.startswith("s")):
      for method in sorted(os.listdir(os.path.join(tdir, sd))):
        wd = os.path.join(tdir, sd, method)
        if os.path.exists(os.path.join(wd, FAILED)) and \
            not os.path.exists(os.path.join(wd, "cell.json")):
          with open(os.path.join(wd, FAILED)) as f:
            out[(task, int(sd[1:]), method)] = json.load(f).get("reason", "?")
  return out


def read_cell(workdir: str, method: str) -> dict:
  with open(os.path.join(workdir, "cell.json")) as f:
    cell = json.load(f)
  curve, names = [], set()
  with open(os.path.join(workdir, "evals.jsonl")) as f:
    rows = [json.loads(l) for l in f if l.strip()]
  for r in rows:
    names |= set(r["results"])
  name = main_policy(method, names)
  seen, episodes, backends = set(), set(), set()
  for r in rows:
    if name in r["results"] and r["step"] not in seen:
      seen.add(r["step"])
      res = r["results"][name]
      curve.append((r["step"], res["success_rate"]))
      episodes.add(res["episodes"])
      backend = res.get("backend", "cpu")
      backends.add("cpu" if backend == "metaworld" else backend)   # its name before suites
  with open(os.path.join(workdir, "eval.json")) as f:
    final = json.load(f)
  res = next(iter(final["tasks"].values()))[name]
  out = cell_metrics(curve)
  out.update(curve=curve, policy=name, nfe=res["nfe"], action_mse=res.get("action_mse"),
             hz_b1=cell.get("hz_b1"), latency_ms_b1=cell.get("latency_ms_b1"),
             first_call_ms_b1=cell.get("first_call_ms_b1"),
             nfe_amortised=res.get("nfe_amortised", res["nfe"]),
             episodes=sorted(episodes), backends=sorted(backends),
             honest=cell.get("honest"), cpu_s=cell.get("cpu_s"), wall_s=cell.get("wall_s"),
             host=cell.get("host"), code=cell.get("code"))
  return out


def _fmt(ms, pct=True):
  m, s = ms
  if not np.isfinite(m):
    return "-"
  if not np.isfinite(s):   # one seed: no spread to show
    return f"{100 * m:.1f}" if pct else f"{m:.4f}"
  return f"{100 * m:.1f} ± {100 * s:.1f}" if pct else f"{m:.4f} ± {s:.4f}"


def markdown(cells: dict, title: str = "jaxpolicy sweep", grid: dict | None = None,
             latency: dict | None = None) -> str:
  """The report; `grid` ({"tasks", "seeds", "methods"}, the sweep's sweep.json) sizes the
  finished-cell count; `latency` (<root>/latency.json) is where the batch-1 figures came
  from when they were measured apart from the sweep."""
  tasks = sorted({t for t, _, _ in cells})
  seeds = sorted({s for _, s, _ in cells})
  methods = _ordered({k[2] for k in cells})
  groups = [g for g in leaderboard.group_order() if any(group_of(t) == g for t in tasks)]
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
  if "cells" in grid:   # the planned (task, seed, method) cells
    n_grid = len({tuple(c) for c in grid["cells"]} | set(cells))
  else:
    n_grid = len(set(grid.get("tasks", [])) | set(tasks)) * len(
        set(grid.get("seeds", [])) | set(seeds)) * len(
            set(grid.get("methods", [])) | set(methods))
  lines = [f"# {title}", "",
           f"{len(tasks)} tasks ({', '.join(suite_names)}), seeds {seeds}, success rates in %: the mean over "
           "a group's tasks, each task's seeds averaged first (every task counts once), ± "
           "the std over seeds where all of the group's tasks ran the same seeds (none where "
           f"they did not, as in an Average over groups run on 1 and 3 seeds). Evaluated on {' and '.join(where.get(b, b) for b in backends)}, "
           f"{'/'.join(map(str, episodes))} episodes per evaluation. "
           f"{len(cells)} of {n_grid} cells (task x seed x method) finished."
           + (" Every cell's config was changed by "
              + ", ".join(f"`{k}={v}`" for k, v in grid["overrides"].items()) + "."
              if grid.get("overrides") else "")
           + (f" Group tables: the {n_common} (task, seed) pairs every method has finished "
              f"({n_pairs - n_common} more have some methods only; see the per-task table)."
              if n_common < n_pairs else ""), ""]
  for metric, label in (("top5", "mean of the 5 best evaluations (the papers' metric)"),
                        ("final", "final evaluation"), ("mean_all", "mean over all evaluations")):
    agg = aggregate(common, metric)
    lines += [f"## Success rate: {label} (cf. SDM Table 1)", "",
              "| Method | NFE | " + " | ".join(f"{GROUP_NAMES[g]} ({counts[g]})"
                                            for g in groups) + " | Average |",
              "|---|---|" + "---|" * (len(groups) + 1)]
    for m in methods:
      row = [f"{m} (`{pol[m]}`)", str(nfe[m])]
      row += [_fmt(agg["group"].get((g, m), (np.nan, np.nan))) for g in groups]
      row.append(_fmt(agg["group"].get(("all", m), (np.nan, np.nan))))
      lines.append("| " + " | ".join(row) + " |")
    if metric == "top5" and groups:   # the paper's rows beside ours, in its own metric
      lines += leaderboard.paper_rows(groups, nfe=True)
      lines += ["", "Paper rows: the SDM paper's Table 1 (MetaWorld v2, point clouds, "
                "paper-size networks, 3 seeds), for scale, not comparable in setting."]
    lines.append("")
  if latency:
    source = (f"Measured apart from the sweep (`{latency['command']}`, {latency['date']}, "
              f"{latency['machine']}, CPUs {100 * latency['cpu_busy_before']:.0f} % busy just "
              "before; "
              f"{latency['calls']} calls per policy in {ROUNDS} interleaved rounds, on "
              + ", ".join(f"{m}: {c}" for m, c in latency["cell_of"].items())
              + "): every cell of a method runs the same network shapes, so one measurement "
              "stands for all.")
  else:
    source = ("Measured by the sweep after each cell's training, possibly beside other jobs "
              "(`python -m launch.report --latency` measures them apart).")
  lines += ["## Policy frequency at batch 1 (cf. SDM Table 3)", "",
            "Steady state (a mid-episode call); an episode's first call apart (STEP's runs "
            "the teacher's sampler from noise). NFE/call: amortised over a 200-step episode. "
            + source, "", "| Method | NFE | NFE/call | "
            + ("Hz" if latency else "Hz (mean ± std over cells)")
            + " | latency ms | first call ms |", "|---|---|---|---|---|---|"]
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
    if name not in mains:   # a teacher's untrained few-step baseline
      lines.append(f"| `{name}` (baseline) | {r['nfe']} | {r['nfe']} | {r['hz_b1']:.1f} | "
                   f"{r['latency_ms_b1']:.2f} | - |")
  lines += ["", "## Action error on held-out demonstration windows (cf. SDM Table 4)", "",
            "MSE between the policy's normalised action chunk and the demonstrator's.", "",
            "| Method | " + " | ".join(GROUP_NAMES[g] for g in groups) + " | Average |",
            "|---|" + "---|" * (len(groups) + 1)]
  agg = aggregate({k: {"mse": v["action_mse"] if v["action_mse"] is not None else np.nan}
                   for k, v in common.items()}, "mse")
  for m in methods:
    row = [m] + [_fmt(agg["group"].get((g, m), (np.nan, np.nan)), pct=False) for g in groups]
    row.append(_fmt(agg["group"].get(("all", m), (np.nan, np.nan)), pct=False))
    lines.append("| " + " | ".join(row) + " |")
  lines += ["", "## Per task (success %, mean of the 5 best / final / mean of all)", "",
            "| Task | Group | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
  aggs = {mt: aggregate(cells, mt)["task"] for mt in METRICS}
  for t in tasks:
    row = [t, GROUP_NAMES[group_of(t)]]
    for m in methods:
      if (t, m) in aggs["top5"]:
        row.append(" / ".join(f"{100 * aggs[mt][(t, m)][0]:.0f}" for mt in METRICS))
      else:
        row.append("-")
    lines.append("| " + " | ".join(row) + " |")
  lines += ["", "![learning curves per group](learning_curves_groups.png)", "",
            "![learning curves per task](learning_curves.png)", ""]
  return "\n".join(lines)


def plot_curves(cells: dict, path: str) -> str:
  """Success vs training step per task: mean over seeds, band = +- std over seeds."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  tasks = sorted({t for t, _, _ in cells})
  # per method (its INFO.style): colour, marker, line style, marker size. Hollow markers of
  # different shapes and sizes keep curves that coincide (e.g. at 100 %) all visible.
  methods = _ordered({k[2] for k in cells})
  n_seeds = len({k[1] for k in cells})
  cols = min(3, len(tasks))
  rows = -(-len(tasks) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows + 0.6), squeeze=False)
  for ax, t in zip(axes.ravel(), tasks):
    for m in methods:
      curves = [dict(cells[k]["curve"]) for k in cells if k[0] == t and k[2] == m]
      if not curves:
        continue
      steps = sorted({s for c in curves for s in c})
      vals = [100 * np.asarray([c[s] for c in curves if s in c]) for s in steps]
      mean, std = np.asarray([v.mean() for v in vals]), np.asarray([v.std() for v in vals])
      color, marker, style, size = _style(m)
      ax.plot(steps, mean, color=color, marker=marker, linestyle=style, markersize=size,
              markerfacecolor="none", label=m)
      if len(curves) > 1:
        ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.12, linewidth=0)
    ax.set_title(f"{t} ({GROUP_NAMES[group_of(t)]})")
    ax.set_xlabel("training step")
    ax.set_ylabel("success %")
    ax.set_ylim(-5, 105)
    ax.grid(alpha=0.3)
  for ax in axes.ravel()[len(tasks):]:
    ax.axis("off")
  handles = [plt.Line2D([], [], color=_style(m)[0], marker=_style(m)[1],
                        linestyle=_style(m)[2], markerfacecolor="none") for m in methods]
  fig.legend(handles, methods, loc="upper center", ncol=len(methods), frameon=False,
             title=f"mean over each curve's finished seeds (up to {n_seeds}); band: +- std")
  fig.tight_layout(rect=(0, 0, 1, 1 - 0.75 / fig.get_figheight()))
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def plot_group_curves(cells: dict, path: str) -> str:
  """Success vs training step per difficulty group (and all tasks): for each method, the
  mean over the tasks whose (task, seed) pairs every method has finished (a task's seeds
  averaged first, so every task counts once), band = +- one standard error over those tasks.
  The per-task curves are `plot_curves`."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  common = complete_cells(cells)
  methods = _ordered({k[2] for k in common})
  groups = [g for g in leaderboard.group_order() if any(group_of(t) == g for t, _, _ in common)] + ["all"]
  fig, axes = plt.subplots(1, len(groups), figsize=(3.8 * len(groups), 3.4), squeeze=False)
  for ax, g in zip(axes[0], groups):
    pairs = sorted({(t, s) for t, s, _ in common if g == "all" or group_of(t) == g})
    tasks = sorted({t for t, _ in pairs})
    seeds_of = {t: [s for tt, s in pairs if tt == t] for t in tasks}
    for m in methods:
      curves = {p: dict(common[(*p, m)]["curve"]) for p in pairs}
      steps = sorted(set.intersection(*(set(c) for c in curves.values()))) if curves else []
      if not steps:
        continue
      vals = np.asarray([[np.mean([curves[(t, s)][st] for s in seeds_of[t]]) for t in tasks]
                         for st in steps]) * 100
      mean, se = vals.mean(1), vals.std(1, ddof=0) / np.sqrt(vals.shape[1])
      color, marker, style, size = _style(m)
      ax.plot(steps, mean, color=color, marker=marker, linestyle=style, markersize=size,
              markerfacecolor="none", label=m)
      ax.fill_between(steps, mean - se, mean + se, color=color, alpha=0.12, linewidth=0)
    name = "All tasks" if g == "all" else GROUP_NAMES[g]
    ax.set_title(f"{name} ({len(tasks)} tasks, {len(pairs)} task-seeds)")
    ax.set_xlabel("training step")
    ax.set_ylabel("success % (evaluations in training)")
    ax.set_ylim(-5, 105)
    ax.grid(alpha=0.3)
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="upper center", ncol=max(len(labels), 1), frameon=False,
             title="mean over tasks (seeds averaged) of the task-seeds every method "
             "finished; band: +- 1 s.e. over tasks")
  fig.tight_layout(rect=(0, 0, 1, 0.8))
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


LATENCY_FILE = "latency.json"   # batch-1 latency measured apart (launch.report --latency)
ROUNDS = 5                      # interleaved rounds of the latency measurement


def cpu_busy(seconds: float = 1.0) -> float:
  """Share of the machine's CPU time spent busy over `seconds` (Linux /proc/stat); the
  one-minute load average instead where there is none (it lags: a job stopped a moment ago
  still counts)."""
  def sample():
    with open("/proc/stat") as f:
      v = [float(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]    # total, idle + iowait
  try:
    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return 1.0 - (i1 - i0) / max(t1 - t0, 1e-9)
  except OSError:
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def measure_latency(root: str, calls: int, log=print) -> str:
  """Times each method's policies on the first finished cell of that method that has its
  checkpoints; writes <root>/latency.json and returns its path."""
  cells = load_sweep(root)
  if not cells:
    raise FileNotFoundError(f"no finished sweep cells under {root}")
  busy = cpu_busy()
  if busy > 0.2:
    log(f"warning: the CPUs were {100 * busy:.0f} % busy before measuring: another job is "
        f"running and the latencies will be too high (recorded with them)")
  first = {}
  for task, seed, method in sorted(cells):   # cells restored from an export keep no weights
    if os.path.isdir(os.path.join(root, task, f"s{seed}", method, "checkpoints")):
      first.setdefault(method, (task, seed))
  missing = sorted({m for (_, _, m) in cells} - set(first))
  if missing:
    raise FileNotFoundError(f"no finished cell of {missing} under {root} has its checkpoints "
                            "(cells restored from an export have none): let the sweep train "
                            "one first")
  chosen, cell_of = {}, {}
  for method, (task, seed) in first.items():
    cell_of[method] = f"{task}/s{seed}"
    run = runs.restore_run(os.path.join(root, task, f"s{seed}", method))
    for name, pol in run.main_and_baselines().items():
      chosen[name] = (method, pol)
  # interleaved rounds, so every policy sees the same machine: the median of round medians
  rounds = {name: [] for name in chosen}
  for _ in range(ROUNDS):
    for name, (_, pol) in chosen.items():
      rounds[name].append(pol.latency_b1(max(calls // ROUNDS, 1)))
  policies = {}
  for name, (method, pol) in chosen.items():
    lat = float(np.median([r["latency_ms_b1"] for r in rounds[name]]))
    first_ms = float(np.median([r["first_call_ms_b1"] for r in rounds[name]]))
    policies[name] = {"latency_ms_b1": lat, "hz_b1": 1e3 / lat, "first_call_ms_b1": first_ms,
                      "round_ms": [round(r["latency_ms_b1"], 3) for r in rounds[name]],
                      "policy": name, "method": method, "nfe": pol.nfe,
                      "cell": cell_of[method]}
    log(f"{name}: {lat:.2f} ms ({1e3 / lat:.1f} Hz), first call {first_ms:.2f} ms; rounds "
        f"{policies[name]['round_ms']}")
  out = {"command": f"python -m launch.report --workdir={root} --latency "
                    f"--latency_calls={calls}",
         "date": time.strftime("%Y-%m-%d"), "machine": host.describe(), "cpu_busy_before": busy,
         "calls": calls, "cell_of": cell_of, "policies": policies}
  return files.write_json(os.path.join(root, LATENCY_FILE), out)


def apply_latency(root: str, cells: dict) -> dict | None:
  """Replaces each cell's in-sweep batch-1 latency (measured beside training) by its
  method's measurement in <root>/latency.json, when that file exists; returns the file.
  Every cell of a method runs the same network shapes, so one measurement per policy
  stands for all of them."""
  path = os.path.join(root, LATENCY_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    lat = json.load(f)
  for (_, _, method), cell in cells.items():
    row = lat["policies"].get(cell["policy"])
    if row is not None:
      cell.update(hz_b1=row["hz_b1"], latency_ms_b1=row["latency_ms_b1"],
                  first_call_ms_b1=row["first_call_ms_b1"], latency_source=LATENCY_FILE)
  return lat


def write_report(root: str, out: str | None = None) -> str:
  cells = load_sweep(root)
  if not cells:
    raise FileNotFoundError(f"no finished sweep cells under {root}")
  latency = apply_latency(root, cells)
  out = out or os.path.join(root, "report.md")
  folder = os.path.dirname(os.path.abspath(out))
  plot_curves(cells, os.path.join(folder, "learning_curves.png"))
  plot_group_curves(cells, os.path.join(folder, "learning_curves_groups.png"))
  grid_path = os.path.join(root, "sweep.json")
  grid = None
  if os.path.exists(grid_path):
    with open(grid_path) as f:
      grid = json.load(f)
  text = markdown(cells, grid=grid, latency=latency)
  failed = load_failures(root)
  honest = leaderboard.markdown(cells, grid, failed)
  words = leaderboard.reading(cells, grid, latency, failed)
  if words:   # the plain-words reading goes first, after the opening paragraph
    head, sep, rest = text.partition("\n## ")
    text = head + "\n" + words + sep + rest
  if honest:   # the honest protocol, its pictures and summary.json
    leaderboard.plot_success_vs_hz(cells, os.path.join(folder, "success_vs_hz.png"),
                                   baseline_hz={p: r["hz_b1"] for p, r in
                                                (latency or {}).get("policies", {}).items()})
    leaderboard.plot_task_bars(cells, os.path.join(folder, "per_task_success.png"))
    text += "\n" + honest + ("\n![success vs Hz](success_vs_hz.png)\n\n"
                             "![per-task success](per_task_success.png)\n")
  leaderboard.write_summary(folder, cells, grid, aggregate(complete_cells(cells), "top5"),
                            failed)
  leaderboard.write_cells_csv(folder, cells)
  with open(out, "w") as f:
    f.write(text)
  return out
