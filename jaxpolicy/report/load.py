"""Reading a sweep's cells from disk: the grid, each cell's evaluations and honest record,
failures, and latency measured apart."""

from __future__ import annotations

import json
import os

from jaxpolicy.report.groups import main_policy
from jaxpolicy.report.stats import cell_metrics


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


FAILED = "failed.json"  # written by launch.sweep for a cell that could not be trained


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
        if os.path.exists(os.path.join(wd, FAILED)) and not os.path.exists(
          os.path.join(wd, "cell.json")
        ):
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
      backends.add("cpu" if backend == "metaworld" else backend)  # its name before suites
  with open(os.path.join(workdir, "eval.json")) as f:
    final = json.load(f)
  res = next(iter(final["tasks"].values()))[name]
  out = cell_metrics(curve)
  out.update(
    curve=curve,
    policy=name,
    nfe=res["nfe"],
    action_mse=res.get("action_mse"),
    hz_b1=cell.get("hz_b1"),
    latency_ms_b1=cell.get("latency_ms_b1"),
    first_call_ms_b1=cell.get("first_call_ms_b1"),
    nfe_amortised=res.get("nfe_amortised", res["nfe"]),
    episodes=sorted(episodes),
    backends=sorted(backends),
    honest=cell.get("honest"),
    cpu_s=cell.get("cpu_s"),
    wall_s=cell.get("wall_s"),
    host=cell.get("host"),
    code=cell.get("code"),
  )
  return out


LATENCY_FILE = "latency.json"  # batch-1 latency measured apart (launch.report --latency)


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
  for cell in cells.values():
    row = lat["policies"].get(cell["policy"])
    if row is not None:
      cell.update(
        hz_b1=row["hz_b1"],
        latency_ms_b1=row["latency_ms_b1"],
        first_call_ms_b1=row["first_call_ms_b1"],
        latency_source=LATENCY_FILE,
      )
  return lat
