"""Batch-1 latency of a sweep's policies, measured apart from training (launch.report
--latency), in interleaved rounds on an idle machine."""

from __future__ import annotations

import os
import time

import numpy as np

from jaxpolicy import runs
from jaxpolicy.report.load import LATENCY_FILE, load_sweep
from jaxpolicy.runtime import files, host


ROUNDS = 5  # interleaved rounds of the latency measurement


def cpu_busy(seconds: float = 1.0) -> float:
  """Share of the machine's CPU time spent busy over `seconds` (Linux /proc/stat); the
  one-minute load average instead where there is none (it lags: a job stopped a moment ago
  still counts)."""

  def sample():
    with open("/proc/stat") as f:
      v = [float(x) for x in f.readline().split()[1:]]
    return sum(v), v[3] + v[4]  # total, idle + iowait

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
    log(
      f"warning: the CPUs were {100 * busy:.0f} % busy before measuring: another job is "
      f"running and the latencies will be too high (recorded with them)"
    )
  first = {}
  for task, seed, method in sorted(cells):  # cells restored from an export keep no weights
    if os.path.isdir(os.path.join(root, task, f"s{seed}", method, "checkpoints")):
      first.setdefault(method, (task, seed))
  missing = sorted({m for (_, _, m) in cells} - set(first))
  if missing:
    raise FileNotFoundError(
      f"no finished cell of {missing} under {root} has its checkpoints "
      "(cells restored from an export have none): let the sweep train "
      "one first"
    )
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
    policies[name] = {
      "latency_ms_b1": lat,
      "hz_b1": 1e3 / lat,
      "first_call_ms_b1": first_ms,
      "round_ms": [round(r["latency_ms_b1"], 3) for r in rounds[name]],
      "policy": name,
      "method": method,
      "nfe": pol.nfe,
      "cell": cell_of[method],
    }
    log(
      f"{name}: {lat:.2f} ms ({1e3 / lat:.1f} Hz), first call {first_ms:.2f} ms; rounds "
      f"{policies[name]['round_ms']}"
    )
  out = {
    "command": f"python -m launch.report --workdir={root} --latency --latency_calls={calls}",
    "date": time.strftime("%Y-%m-%d"),
    "machine": host.describe(),
    "cpu_busy_before": busy,
    "calls": calls,
    "cell_of": cell_of,
    "policies": policies,
  }
  return files.write_json(os.path.join(root, LATENCY_FILE), out)
