"""Grids of (task, seed, method) cells: train every unfinished cell, evaluate it on the
honest protocol, record its time and provenance, resume, share a grid between processes,
and record failures. The command line is launch/sweep.py (it passes the config loader: the
library never reads configs/); its docstring says what a sweep does.
"""

from __future__ import annotations

import ast
import json
import os
import resource
import socket
import time

from jaxpolicy.runtime import files, host


def expand_tasks(names) -> list[str]:
  """Task names, with suites (metaworld, blockpush), difficulty groups (easy, ...,
  metaworld/easy) and all expanded (jaxpolicy.suites.expand). A sweep trains on its suites'
  own demonstrations, so "all" leaves out suites without a scripted expert (pusht) unless
  they are named too."""
  from jaxpolicy import suites  # pylint: disable=g-import-not-at-top

  named = set(suites.expand([n for n in names if n != "all"]))
  return [
    t for t in suites.expand(names) if t in named or suites.suite_of(t).make_expert is not None
  ]


def honest_eval(workdir: str, episodes: int, seed: int) -> dict:
  """The final main policy, plus the untrained baselines its method declares, on `episodes`
  episodes from `seed`: {policy: success, successes, episodes, seed, nfe, the checkpoint's
  step, each episode's initial-state hash, and the suite's extras (p1, coverage, modes)}."""
  from jaxpolicy import demos, evaluation, runs, suites  # pylint: disable=g-import-not-at-top

  run = runs.restore_run(workdir)
  suite = suites.suite_of(run.config.task)
  extras = (
    suite.metrics
    + suite.scores
    + tuple(f"{m}_rate" for m in suite.metrics)
    + tuple(f"{m}_mean" for m in suite.scores)
  )
  out = {}
  with demos.open_sensor(run.config) as sensor:  # None for state observations
    for name, pol in run.main_and_baselines().items():
      r = evaluation.evaluate(
        pol,
        run.config.task,
        episodes=episodes,
        seed=seed,
        episode_length=run.config.eval.episode_length,
        sensor=sensor,
        backend="cpu",
      )
      keep = (
        "success_rate",
        "successes",
        "episodes",
        "seed",
        "nfe",
        "nfe_amortised",
        "backend",
        "initial_state_hashes",
        "modes",
        "mode_counts",
      ) + extras
      out[name] = dict({k: r[k] for k in keep if k in r}, step=int(run.step))
  return out


def _cpu_seconds() -> float:
  ru = resource.getrusage(resource.RUSAGE_SELF)
  return ru.ru_utime + ru.ru_stime


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def claim(wd: str) -> str | None:
  """Take cell `wd` for this process; None if taken, else the holder ("host pid") of a live
  claim. A claim from a process of this machine that no longer runs is taken over."""
  os.makedirs(wd, exist_ok=True)
  path = os.path.join(wd, "claim")
  me = f"{socket.gethostname()} {os.getpid()}"
  try:
    with os.fdopen(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY), "w") as f:
      f.write(me)
    return None
  except FileExistsError:
    pass
  try:
    with open(path) as f:
      holder = f.read().strip()
    host, pid = holder.split()
    pid = int(pid)
  except (OSError, ValueError):
    return "unknown (claim being written)"
  if holder == me:
    return None
  if host != socket.gethostname() or _alive(pid):
    return holder
  tmp = f"{path}.{os.getpid()}"
  with open(tmp, "w") as f:
    f.write(me)
  os.replace(tmp, path)
  with open(path) as f:  # two takers of one stale claim: the last writer has it
    return None if f.read().strip() == me else "another process taking over a stale claim"


def release(wd: str):
  path = os.path.join(wd, "claim")
  try:
    with open(path) as f:
      mine = f.read().strip() == f"{socket.gethostname()} {os.getpid()}"
    if mine:
      os.remove(path)
  except FileNotFoundError:
    pass


def parse_overrides(items) -> dict:
  """["key=value", ...] -> {key: value}; values are Python literals where they parse as one
  (512, 0.5, (-0.6, 0.25, 0.005), True), otherwise strings (pointcloud)."""
  out = {}
  for item in items:
    key, sep, text = item.partition("=")
    if not sep or not key:
      raise ValueError(f"--set={item}: expected key=value, e.g. --set=obs=pointcloud")
    try:
      out[key] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      out[key] = text
  return out


def apply_overrides(config, overrides: dict, method: str):
  """Sets each dotted `key` of `config` (a field that must exist in `method`'s config)."""
  from jaxpolicy.errors import ConfigError  # pylint: disable=g-import-not-at-top

  for key, value in overrides.items():
    *path, leaf = key.split(".")
    node = config
    for part in path:
      node = node.get(part) if hasattr(node, "get") else None
    if node is None or not hasattr(node, "get") or leaf not in node:
      raise ConfigError(f"--set={key}=...: the {method} config has no field {key}")
    if isinstance(node[leaf], tuple) and isinstance(value, list):
      value = tuple(value)
    node[leaf] = value


def cell_config(
  method, task, seed, preset, root, eval_every, episodes, overrides=None, load_config=None
):
  """A cell's config: `load_config(method, preset)` (the launcher's configs.load), the
  grid's overrides, the task and seed, its folders and its method's sweep settings."""
  from jaxpolicy import methods  # pylint: disable=g-import-not-at-top

  info = methods.info(method)
  config = load_config(method, preset)
  apply_overrides(config, overrides or {}, method)
  config.task, config.seed = task, seed
  config.data.dir = os.path.join(root, "data")
  config.eval.every, config.eval.episodes = eval_every, episodes
  if info.needs_teacher:
    config.teacher_workdir = os.path.join(root, task, f"s{seed}", "teacher")
  if info.sweep_settings is not None:  # e.g. STEP: k = 2 only
    info.sweep_settings(config)
  return config


def measure_hz(workdir: str, calls: int = 50) -> dict:
  """Batch-1 latency of the run's main policy (`Policy.latency_b1`)."""
  from jaxpolicy import methods, runs  # pylint: disable=g-import-not-at-top

  run = runs.restore_run(workdir)
  policies = run.policies()
  return policies[methods.info(run.config.method).main_policy_of(policies)].latency_b1(calls)


def failed_path(wd: str) -> str:
  """<cell>/failed.json: the reason a cell could not be trained (report.load_failures)."""
  from jaxpolicy.report import FAILED  # pylint: disable=g-import-not-at-top

  return os.path.join(wd, FAILED)


def record_failure(
  wd: str, task: str, seed: int, method: str, reason: str, detail: str = ""
) -> None:
  files.write_json(
    failed_path(wd),
    {
      "task": task,
      "seed": seed,
      "method": method,
      "reason": reason,
      "detail": detail,
      "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    },
  )


def _failure_reason(path: str) -> str:
  try:
    with open(path) as f:
      return json.load(f).get("reason", "?")
  except (OSError, ValueError):
    return "?"


def run_sweep(
  tasks,
  seeds,
  methods,
  preset,
  root,
  eval_every,
  episodes,
  load_config,
  log=print,
  honest_episodes: int = 0,
  honest_seed: int = 1000,
  overrides=None,
  retry_failed: bool = False,
  max_failures_in_a_row: int = 5,
  plan_only: bool = False,
):
  """Trains every unfinished cell; returns (cells trained, cells skipped: finished or failed
  earlier). A cell that raises is recorded (failed.json) and counted as neither; after
  `max_failures_in_a_row` such cells without a success in between the sweep stops (an error
  every cell meets, not a task that cannot be learned). `plan_only`: add the cells to
  sweep.json and return (0, 0)."""
  from jaxpolicy import training  # pylint: disable=g-import-not-at-top
  from jaxpolicy import methods as methods_lib  # pylint: disable=g-import-not-at-top

  provenance = dict(host=host.describe(), code=host.code_version())  # the code loaded now
  tasks = expand_tasks(tasks)
  methods = list(methods_lib.names()) if list(methods) == ["all"] else list(methods)
  for m in methods:
    methods_lib.get(m)  # unknown names stop here, before any training
  order = ["teacher"] + [m for m in methods if m != "teacher"]
  overrides = dict(overrides or {})
  for m in order:  # a misspelt override stops here, before any training
    apply_overrides(load_config(m, preset), overrides, m)
  os.makedirs(root, exist_ok=True)
  # the grid, for the report: the union of every invocation's cells in this directory (e.g.
  # seeds 0-2 of some tasks and seed 0 of others)
  grid_path = os.path.join(root, "sweep.json")
  cells = []
  if os.path.exists(grid_path):
    with open(grid_path) as f:
      old = json.load(f)
    if old.get("preset", preset) != preset:
      raise ValueError(
        f"{root} holds a {old['preset']} sweep; use another --workdir for --preset={preset}"
      )
    if old.get("overrides", {}) != json.loads(json.dumps(overrides)):
      raise ValueError(
        f"{root} holds a sweep with overrides {old.get('overrides', {})}, not "
        f"{overrides}; use another --workdir"
      )
    cells = [tuple(c) for c in old.get("cells", [])]
  cells += [(t, int(s), m) for s in seeds for t in tasks for m in order]
  cells = list(dict.fromkeys(cells))
  files.write_json(
    grid_path,
    {
      "tasks": sorted({c[0] for c in cells}),
      "seeds": sorted({c[1] for c in cells}),
      "methods": list(dict.fromkeys(c[2] for c in cells)),
      "preset": preset,
      "overrides": overrides,
      "cells": cells,
    },
    indent=None,
  )
  if plan_only:
    return 0, 0
  done = skipped = in_a_row = 0
  # Seed-major: a sweep stopped part-way has every task and method for its first seeds.
  for seed in seeds:
    for task in tasks:
      for method in order:
        wd = os.path.join(root, task, f"s{seed}", method)
        marker = os.path.join(wd, "cell.json")
        if os.path.exists(marker):
          skipped += 1
          continue
        failed = failed_path(wd)
        if os.path.exists(failed) and not retry_failed:
          log(
            f"sweep: {task} seed {seed} {method} failed earlier ({_failure_reason(failed)});"
            f" skipped (--retry_failed trains it again)"
          )
          skipped += 1
          continue
        teacher_dir = os.path.join(root, task, f"s{seed}", "teacher")
        if method != "teacher" and not os.path.exists(os.path.join(teacher_dir, "cell.json")):
          if os.path.exists(failed_path(teacher_dir)):
            reason = f"its teacher failed: {_failure_reason(failed_path(teacher_dir))}"
            os.makedirs(wd, exist_ok=True)
            record_failure(wd, task, seed, method, reason)
            log(f"sweep: {task} seed {seed} {method} not trained: {reason}")
          else:
            log(f"sweep: {task} seed {seed} {method} waits for its teacher (another sweep)")
          continue
        holder = claim(wd)
        if holder is not None:
          log(f"sweep: {task} seed {seed} {method} is being trained by {holder}; skipped")
          continue
        try:
          if os.path.exists(failed):  # --retry_failed
            os.remove(failed)
          log(f"sweep: {task} seed {seed} {method} -> {wd}")
          config = cell_config(
            method, task, seed, preset, root, eval_every, episodes, overrides, load_config
          )
          wall0, cpu0 = time.time(), _cpu_seconds()
          training.train(config, wd)
          cell = dict(task=task, seed=seed, method=method, preset=preset, **measure_hz(wd))
          if honest_episodes:
            cell["honest"] = honest_eval(wd, honest_episodes, honest_seed)
          # this process's time (a resumed cell counts from its resumption)
          cell.update(
            wall_s=round(time.time() - wall0, 1),
            cpu_s=round(_cpu_seconds() - cpu0, 1),
            **provenance,
          )
          files.write_json(marker, cell)
        except Exception as e:  # pylint: disable=broad-except
          # one cell that cannot be trained must not stop a grid of hundreds: its reason is
          # recorded for the report, and a rerun can retry it (signals still stop the sweep)
          import traceback  # pylint: disable=g-import-not-at-top

          reason = f"{type(e).__name__}: {e}".splitlines()[0][:300]
          record_failure(wd, task, seed, method, reason, traceback.format_exc()[-3000:])
          log(
            f"sweep: {task} seed {seed} {method} FAILED: {reason} (recorded in "
            f"{failed}; the sweep goes on)"
          )
          in_a_row += 1
          if in_a_row >= max_failures_in_a_row:
            raise RuntimeError(
              f"{in_a_row} cells in a row failed, the last with {reason}: "
              "stopping the sweep (an error every cell meets?). Fix it, "
              "then rerun with --retry_failed"
            ) from e
          continue
        finally:
          release(wd)
        done += 1
        in_a_row = 0
  return done, skipped
