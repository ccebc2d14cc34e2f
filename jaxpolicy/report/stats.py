"""The arithmetic of both protocols on cells (plain dicts, tested on hand-made numbers):
the papers' best-5 / final / mean per group, and the honest protocol's paired, per-group
means with bootstrap intervals, paired differences, protocol gaps and failures."""

from __future__ import annotations

import collections

import numpy as np

from jaxpolicy import methods as methods_lib
from jaxpolicy.methods.common import baseline_label
from jaxpolicy.report.groups import PAIRS, PAPER_GROUPS, _main, group_order, group_size
from jaxpolicy.stats import bootstrap_mean_interval, sign_test, wilson_interval
from jaxpolicy.suites import group_of


def top_k_mean(values, k: int = 5) -> float:
  v = sorted(values, reverse=True)[:k]
  return float(np.mean(v)) if v else float("nan")


def cell_metrics(curve: list[tuple[int, float]], k: int = 5) -> dict:
  """curve: [(step, success)] in training order -> {top5, final, mean_all}."""
  curve = sorted(curve)
  vals = [s for _, s in curve]
  return {
    "top5": top_k_mean(vals, k),
    "final": vals[-1] if vals else float("nan"),
    "mean_all": float(np.mean(vals)) if vals else float("nan"),
  }


WINDOW_METRIC = "top5_window"  # the papers' 5 best, over the common window (below)


def common_window(cells: dict, k: int = 5) -> dict:
  """The papers' metric over a common window of training: per (task, seed), W = the
  shortest training among its methods (the step of each one's last evaluation), and each
  cell's pool = its evaluations in its own last W steps (step > last - W), so that no
  method's pool holds evaluations from further before its final checkpoint than another's.
  Students start from the trained teacher, so without it the teacher's pool of 5 best holds
  the evaluations of its under-trained first steps and theirs do not.
  {(task, seed, method): {"top5_window": mean of the (up to) k best in the window,
  "window_steps": W, "window_evals": how many, "window_from": the window's first step}}
  for the cells with a curve."""
  last = {key: max(s for s, _ in c["curve"]) for key, c in cells.items() if c.get("curve")}
  shortest: dict = {}
  for (t, s, _), v in last.items():
    shortest[(t, s)] = min(v, shortest.get((t, s), v))
  out = {}
  for key, end in last.items():
    w = shortest[key[:2]]
    pool = sorted((s, v) for s, v in cells[key]["curve"] if s > end - w)
    out[key] = {
      WINDOW_METRIC: top_k_mean([v for _, v in pool], k),
      "window_steps": w,
      "window_evals": len(pool),
      "window_from": pool[0][0],
    }
  return out


def with_common_window(cells: dict) -> dict:
  """cells, each with its common_window entries added (a new dict; cells are not changed)."""
  window = common_window(cells)
  return {key: {**c, **window.get(key, {})} for key, c in cells.items()}


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
  ran = {(t, m): [s for s in seeds if value(t, s, m) is not None] for t in tasks for m in methods}
  out = {"task": {}, "group": {}}
  for (t, m), ss in ran.items():
    if ss:
      out["task"][(t, m)] = mean_std([value(t, s, m) for s in ss])
  for g in list(group_order()) + ["all"]:
    for m in methods:
      members = [t for t in tasks if (g == "all" or group_of(t) == g) and ran[(t, m)]]
      if not members:
        continue
      mean = float(np.mean([out["task"][(t, m)][0] for t in members]))
      std = float("nan")
      if len({tuple(ran[(t, m)]) for t in members}) == 1:  # the same seeds everywhere
        std = mean_std([np.mean([value(t, s, m) for t in members]) for s in ran[(members[0], m)]])[
          1
        ]
      out["group"][(g, m)] = (mean, std)
  return out


def honest_rows(cells: dict) -> list[tuple[str, str, str, str | None]]:
  """Rows of the honest table, (key, label, method, policy): each method's main policy
  (policy None; key = the method; label = its INFO.label), then the untrained baselines
  its cells evaluated (key = the policy's name), methods in registry order."""
  present = {m for (_, _, m) in cells}
  order = [m for m in methods_lib.names() if m in present] + sorted(
    present - set(methods_lib.names())
  )
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
        len(sel),
        sum(len(per_task[t]) for t in sel),
      )
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


PAPERS_METRICS = ("top5", "final", "mean_all")  # the papers' protocol, per cell (report.py)
# and the papers' 5 best over the common window, where cells have it (with_common_window)
INTERVAL_METRICS = PAPERS_METRICS + (WINDOW_METRIC,)


def papers_intervals(cells: dict) -> dict:
  """The papers' protocol with intervals: {metric: {method: {group: (mean, low, high,
  n_tasks, n_cells)}}} over the (task, seed) pairs every method finished (as its tables)."""
  common = complete_cells(cells)
  out = {}
  for metric in INTERVAL_METRICS:
    for m in sorted({m for (_, _, m) in common}):
      vals = {
        (t, s): float(c[metric])
        for (t, s, mm), c in common.items()
        if mm == m and c.get(metric) is not None and np.isfinite(c[metric])
      }
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
    status = (
      f"failed: {failed[(task, seed, method)]}"
      if (task, seed, method) in failed
      else "not finished"
    )
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
      out.append(
        f"{task} seed {seed}: teacher {100 * rate:.0f} % (< 10 %): its students "
        f"cannot be judged against it"
      )
  return out


GAPS = {
  "top5_minus_honest": ("top5", "honest"),
  "top5_minus_final": ("top5", "final"),
  "final_minus_honest": ("final", "honest"),
}


def protocol_gap(cells: dict) -> dict:
  """How the papers' protocol reads against the honest one, per method and (task, seed)
  cell: the mean of the 5 best evaluations during training minus the final checkpoint's honest
  success (its main policy on the paired episodes), split into checkpoint selection (5 best
  minus the final evaluation, on the same episodes) and the episode sets (the final
  evaluation's episodes minus the honest ones, same checkpoint). The 5 best are those of the
  common window (WINDOW_METRIC, with_common_window) where a cell has it, else of its whole
  run ("top5").
  {gap: {method: {group: (mean, low, high, n_tasks, n_cells)}}} over cells with all three."""
  out = {k: {} for k in GAPS}
  for m in sorted({m for (_, _, m) in cells}):
    nums = {}
    for (t, s, mm), cell in cells.items():
      honest = cell.get("honest") or {}
      h = honest.get(_main(m, list(honest)))
      best = cell.get(WINDOW_METRIC, cell.get("top5"))
      if (
        mm == m
        and h is not None
        and all(v is not None and np.isfinite(v) for v in (best, cell.get("final")))
      ):
        nums[(t, s)] = {
          "top5": float(best),
          "final": float(cell["final"]),
          "honest": float(h["success_rate"]),
        }
    for gap, (a, b) in GAPS.items():
      if nums:
        out[gap][m] = by_group({c: v[a] - v[b] for c, v in nums.items()})
  return {k: v for k, v in out.items() if v}


def paper_average(nums) -> float:
  """A paper row's 50-task MetaWorld average, weighted by the groups' task counts (our
  arithmetic: the paper's own Average column also spans Adroit and DexArt)."""
  return sum(group_size(g) * v for g, v in zip(PAPER_GROUPS, nums)) / sum(
    group_size(g) for g in PAPER_GROUPS
  )


def honest_outcomes(cells: dict) -> dict:
  """{row label: {(task, seed): per-episode successes (0/1 array, in the order of the initial
  states the task-seed's methods share)}} from the cells' honest results."""
  out = {}
  for _, label, method, policy in honest_rows(cells):
    vals = {}
    for (task, seed, m), cell in cells.items():
      honest = cell.get("honest") or {}
      h = honest.get(policy or _main(method, list(honest)))
      if m == method and h is not None:
        vals[(task, seed)] = np.asarray(h["successes"], np.int64)
    if vals:
      out[label] = vals
  return out


def clustered_wilson(per_seed) -> tuple[float, float, float, float]:
  """(rate, low, high, n_eff): a task's success over its seeds, whose episodes run the same
  initial states (episode i of every seed starts from state i), with a Wilson 95 % interval
  at the effective number of episodes. The seeds' outcomes on one state are not independent
  draws, so the states are the unit: with y_i the mean success of state i over the m seeds
  (N states), the pooled rate's variance is var(y_i) / N against p (1 - p) / (m N) were the
  m N episodes independent (Kish's design effect), and n_eff = N p (1 - p) / var(y_i),
  clipped to [N, m N]: N where the seeds agree on every state, m N where they are
  independent. One seed gives the plain Wilson interval of its N episodes; so does p = 0 or
  1 at N (no spread to estimate the correlation from: the conservative end). Seeds whose
  episode counts differ cannot be paired by state: n_eff = the largest single seed's count.
  The policies' own seed-to-seed spread is not in it."""
  ys = [np.asarray(y, np.float64) for y in per_seed]
  k, n = sum(float(y.sum()) for y in ys), sum(len(y) for y in ys)
  p = k / n
  if len({len(y) for y in ys}) > 1:
    n_eff = float(max(len(y) for y in ys))
  else:
    n_states = len(ys[0])
    var = float(np.stack(ys).mean(axis=0).var())
    n_eff = (
      float(n_states)
      if p * (1 - p) == 0
      else float(np.clip(n_states * p * (1 - p) / var if var > 0 else np.inf, n_states, n))
    )
  lo, hi = wilson_interval(p * n_eff, n_eff)
  return p, lo, hi, n_eff


def per_task_intervals(cells: dict) -> dict:
  """{row label: {task: (rate, low, high, n_eff, n_seeds)}}: each task's honest success over
  its seeds with the interval of clustered_wilson (the seeds share the initial states)."""
  out = {}
  for label, vals in honest_outcomes(cells).items():
    for t in sorted({t for t, _ in vals}):
      runs = [y for (tt, _), y in sorted(vals.items()) if tt == t]
      out.setdefault(label, {})[t] = clustered_wilson(runs) + (len(runs),)
  return out


def sign_test_size(n: int, alpha: float = 0.05) -> float:
  """The probability, were both policies equally good, that the exact sign test on n
  discordant episodes reads p < alpha: below alpha (the test is discrete; 0 for n < 6 at
  5 %), so it is what a test on n discordant episodes contributes to the count of p < alpha
  expected by chance."""
  from math import comb  # pylint: disable=g-import-not-at-top

  return float(sum(comb(n, i) for i in range(n + 1) if sign_test(i, n - i) < alpha) / 2**n)


def holm(ps) -> np.ndarray:
  """Holm's step-down adjusted p-values (family-wise error): the i-th smallest of m times
  (m - i + 1), non-decreasing, at most 1."""
  ps = np.asarray(ps, np.float64)
  order, out, run = np.argsort(ps, kind="stable"), np.empty(len(ps)), 0.0
  for rank, i in enumerate(order):
    run = max(run, min(1.0, (len(ps) - rank) * ps[i]))
    out[i] = run
  return out


def benjamini_hochberg(ps) -> np.ndarray:
  """Benjamini-Hochberg adjusted p-values (q; false discovery rate): the i-th smallest of m
  times m / i, made non-decreasing from the largest down, at most 1."""
  ps = np.asarray(ps, np.float64)
  order, out, run = np.argsort(ps, kind="stable")[::-1], np.empty(len(ps)), 1.0
  for rank, i in enumerate(order):
    run = min(run, ps[i] * len(ps) / (len(ps) - rank))
    out[i] = run
  return out


def task_tests(cells: dict, alpha: float = 0.05) -> dict:
  """Exact paired tests per task, for every pair of the honest table's rows (the
  comparisons its per-task table offers): on each seed the two policies ran the same
  initial states, episode by episode; the discordant episodes (one succeeds, the other
  fails) of the task's seeds are pooled into one two-sided exact sign test (McNemar's exact
  test). The family: the tests with at least one discordant episode (the others cannot
  reject), m of them, adjusted by Holm (family-wise error) and Benjamini-Hochberg (false
  discovery rate).
  {"tests": [{"task", "a", "b", "a_only", "b_only", "seeds", "p", "holm", "bh"}] by p,
   "m", "below" (tests with p < alpha), "tasks_below" (tasks with one), "tasks" (tasks
   tested), "expected" (tests with p < alpha expected were no policy better than another:
   the sum of sign_test_size), "nominal" (alpha m), "alpha"}."""
  outcomes = honest_outcomes(cells)
  labels = list(outcomes)
  tests = []
  for i, a in enumerate(labels):
    for b in labels[i + 1 :]:
      both = sorted(set(outcomes[a]) & set(outcomes[b]))
      for t in sorted({t for t, _ in both}):
        a_only = b_only = seeds = 0
        for c in both:
          ya, yb = outcomes[a][c], outcomes[b][c]
          if c[0] == t and len(ya) == len(yb):  # paired only on the same states
            a_only += int(((ya == 1) & (yb == 0)).sum())
            b_only += int(((ya == 0) & (yb == 1)).sum())
            seeds += 1
        if a_only + b_only:
          tests.append(
            {
              "task": t,
              "a": a,
              "b": b,
              "a_only": a_only,
              "b_only": b_only,
              "seeds": seeds,
              "p": sign_test(a_only, b_only),
            }
          )
  ps = [x["p"] for x in tests]
  for x, h, q in zip(tests, holm(ps), benjamini_hochberg(ps)):
    x.update(holm=float(h), bh=float(q))
  tests.sort(key=lambda x: (x["p"], x["task"], x["a"], x["b"]))
  return {
    "tests": tests,
    "m": len(tests),
    "alpha": alpha,
    "below": sum(x["p"] < alpha for x in tests),
    "tasks_below": len({x["task"] for x in tests if x["p"] < alpha}),
    "tasks": len({t for v in outcomes.values() for t, _ in v}),
    "expected": sum(sign_test_size(x["a_only"] + x["b_only"], alpha) for x in tests),
    "nominal": alpha * len(tests),
  }
