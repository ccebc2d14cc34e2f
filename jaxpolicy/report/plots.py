"""The pictures of a report: learning curves per task and per group, honest success
against batch-1 frequency, and per-task honest success with Wilson intervals."""

from __future__ import annotations

import numpy as np

from jaxpolicy import methods as methods_lib
from jaxpolicy.report.groups import GROUP_LABELS, _ordered, _style, group_order
from jaxpolicy.report.stats import (
  complete_cells,
  group_means,
  honest_rows,
  honest_values,
  per_task_intervals,
)
from jaxpolicy.suites import group_of


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
      ax.plot(
        steps,
        mean,
        color=color,
        marker=marker,
        linestyle=style,
        markersize=size,
        markerfacecolor="none",
        label=m,
      )
      if len(curves) > 1:
        ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.12, linewidth=0)
    ax.set_title(f"{t} ({GROUP_LABELS[group_of(t)]})")
    ax.set_xlabel("training step")
    ax.set_ylabel("success %")
    ax.set_ylim(-5, 105)
    ax.grid(alpha=0.3)
  for ax in axes.ravel()[len(tasks) :]:
    ax.axis("off")
  handles = [
    plt.Line2D(
      [],
      [],
      color=_style(m)[0],
      marker=_style(m)[1],
      linestyle=_style(m)[2],
      markerfacecolor="none",
    )
    for m in methods
  ]
  fig.legend(
    handles,
    methods,
    loc="upper center",
    ncol=len(methods),
    frameon=False,
    title=f"mean over each curve's finished seeds (up to {n_seeds}); band: +- std",
  )
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
  groups = [g for g in group_order() if any(group_of(t) == g for t, _, _ in common)] + ["all"]
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
      vals = (
        np.asarray(
          [[np.mean([curves[(t, s)][st] for s in seeds_of[t]]) for t in tasks] for st in steps]
        )
        * 100
      )
      mean, se = vals.mean(1), vals.std(1, ddof=0) / np.sqrt(vals.shape[1])
      color, marker, style, size = _style(m)
      ax.plot(
        steps,
        mean,
        color=color,
        marker=marker,
        linestyle=style,
        markersize=size,
        markerfacecolor="none",
        label=m,
      )
      ax.fill_between(steps, mean - se, mean + se, color=color, alpha=0.12, linewidth=0)
    name = "All tasks" if g == "all" else GROUP_LABELS[g]
    ax.set_title(f"{name} ({len(tasks)} tasks, {len(pairs)} task-seeds)")
    ax.set_xlabel("training step")
    ax.set_ylabel("success % (evaluations in training)")
    ax.set_ylim(-5, 105)
    ax.grid(alpha=0.3)
  handles, labels = axes[0][0].get_legend_handles_labels()
  fig.legend(
    handles,
    labels,
    loc="upper center",
    ncol=max(len(labels), 1),
    frameon=False,
    title="mean over tasks (seeds averaged) of the task-seeds every method "
    "finished; band: +- 1 s.e. over tasks",
  )
  fig.tight_layout(rect=(0, 0, 1, 0.8))
  fig.savefig(path, dpi=110)
  plt.close(fig)
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
  rows = [
    (label, method, policy)
    for _, label, method, policy in honest_rows(cells)
    if policy is None or policy in baseline_hz
  ]
  markers = {
    m: (methods_lib.info(m).style[1] if m in methods_lib.names() else "x") for _, m, _ in rows
  }
  groups = [g for g in group_order() if any(group_of(t) == g for (t, _, _) in cells)] + ["all"]
  fig, axes = plt.subplots(1, len(groups), figsize=(3.6 * len(groups), 3.4), squeeze=False)
  for ax, g in zip(axes[0], groups):
    for label, method, policy in rows:
      if label not in values:
        continue
      gm = group_means(values[label]).get(g)
      if policy is None:
        hz = [
          c.get("hz_b1")
          for (t, _, m), c in cells.items()
          if m == method and (g == "all" or group_of(t) == g) and c.get("hz_b1")
        ]
      else:
        hz = [baseline_hz[policy]]
      if gm is None or not hz:
        continue
      x, (m, lo, hi) = float(np.median(hz)), gm[:3]
      ax.errorbar(
        [x],
        [100 * m],
        yerr=[[100 * max(m - lo, 0)], [100 * max(hi - m, 0)]],
        marker=markers[method],
        markerfacecolor="none" if policy is None else None,
        capsize=3,
        label=label,
      )
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
  """Per-task honest success with Wilson intervals at the effective number of episodes
  (stats.clustered_wilson: a task's seeds share the initial states), one bar per method; one panel per
  difficulty group (a group of more than `per_row` tasks over several rows)."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  values = honest_values(cells)
  intervals = per_task_intervals(cells)
  names = GROUP_LABELS
  panels = []
  for g in group_order():
    tasks = sorted({t for v in values.values() for (t, _) in v if group_of(t) == g})
    parts = [tasks[i : i + per_row] for i in range(0, len(tasks), per_row)]
    panels += [
      (f"{names[g]}" + (f" ({k + 1}/{len(parts)})" if len(parts) > 1 else ""), p)
      for k, p in enumerate(parts)
    ]
  labels = list(values)
  width = 0.8 / max(len(labels), 1)
  n_cols = max((len(p) for _, p in panels), default=1)
  fig, axes = plt.subplots(
    len(panels), 1, figsize=(max(6.0, 0.9 * n_cols + 2), 2.9 * len(panels) + 0.8), squeeze=False
  )
  for ax, (title, tasks) in zip(axes[:, 0], panels):
    for i, label in enumerate(labels):
      xs, ys, lo_err, hi_err = [], [], [], []
      for j, t in enumerate(tasks):
        if t not in intervals.get(label, {}):
          continue
        p, lo, hi = intervals[label][t][:3]
        xs.append(j + (i - (len(labels) - 1) / 2) * width)
        ys.append(100 * p)
        lo_err.append(100 * max(p - lo, 0))  # a plot must not fail on rounding
        hi_err.append(100 * max(hi - p, 0))
      ax.bar(
        xs,
        ys,
        width,
        yerr=[lo_err, hi_err],
        capsize=2,
        label=label,
        color=f"C{i}",
        error_kw={"elinewidth": 0.8},
      )
    ax.set_xticks(range(len(tasks)))
    ax.set_xticklabels(tasks, rotation=30, ha="right", fontsize=8)
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylabel("success %")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=9, loc="left")
    ax.grid(axis="y", alpha=0.3)
  import matplotlib.patches  # pylint: disable=g-import-not-at-top

  handles = [
    matplotlib.patches.Patch(color=f"C{i}", label=label)  # every method, even one
    for i, label in enumerate(labels)
  ]  # absent from a panel
  fig.legend(
    handles=handles,
    loc="upper center",
    ncol=min(len(labels), 6),
    fontsize=8,
    frameon=False,
    title="honest protocol, seeds pooled; bars: Wilson 95 % at the effective "
    "episodes (the seeds share the states)",
  )
  fig.tight_layout(rect=(0, 0, 1, 1 - 0.7 / fig.get_figheight()))
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
