"""One call per step against `train.steps_per_call` = 10, paired in one process.

Both compiled train steps (the training loop's own, `training.make_train_step`) step the
same state in alternating blocks of 60 steps, six rounds, the order flipped each round;
per block: wall ms per step and this process's CPU ms per step (user + system), which a
busy host's stolen time does not inflate. Quick preset, state observations, batch 128.

    PYTHONPATH=. python benchmarks/results/steps_per_call_quick_cpu_2026-12-03/paired_probe.py \
        teacher,sdm out.json
"""
import json
import resource
import sys
import time

import jax
import numpy as np

from benchmarks import common
from benchmarks import training as bt
from jaxpolicy import methods, training
from jaxpolicy.runtime import sharding


def cpu_s():
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def probe(name, per_call=(1, 10), rounds=6, block=60):
  config, nets, state = bt.init_states([name], "quick")[name]
  method = methods.get(name)
  mesh = sharding.make_mesh(0)
  windows = sharding.put_replicated(bt.synthetic_windows(config), mesh)
  state = sharding.put_replicated(state, mesh)
  state, _ = training.live_state(config, nets, state, mesh)
  fns = {k: training.make_train_step(config, method, nets, mesh, k)
         .lower(state, windows, np.int32(0)).compile() for k in per_call}
  blocks, i = {k: [] for k in per_call}, 0
  for r in range(rounds):
    for k in (per_call if r % 2 == 0 else per_call[::-1]):
      state, _ = fns[k](state, windows, np.int32(i))   # one warm call
      jax.block_until_ready(state)
      i += k
      t, c = time.perf_counter(), cpu_s()
      for _ in range(block // k):
        state, _ = fns[k](state, windows, np.int32(i))
        i += k
      jax.block_until_ready(state)
      blocks[k].append({"wall_ms": (time.perf_counter() - t) / block * 1e3,
                        "cpu_ms": (cpu_s() - c) / block * 1e3})
  out = {"method": name, "leaves": len(jax.tree_util.tree_leaves(state)), "rounds": []}
  for r in range(rounds):
    out["rounds"].append({str(k): blocks[k][r] for k in per_call})
  for k in per_call:
    out[f"median_wall_ms_{k}"] = float(np.median([b["wall_ms"] for b in blocks[k]]))
    out[f"median_cpu_ms_{k}"] = float(np.median([b["cpu_ms"] for b in blocks[k]]))
  a, b = per_call
  out["rounds_faster"] = sum(blocks[b][r]["wall_ms"] < blocks[a][r]["wall_ms"]
                             for r in range(rounds))
  return out


if __name__ == "__main__":
  names = sys.argv[1].split(",") if len(sys.argv) > 1 else ["teacher", "sdm"]
  res = {"environment": common.environment(), "results": [probe(n) for n in names]}
  for r in res["results"]:
    print(r["method"], {k: round(v, 1) for k, v in r.items() if k.startswith("median")},
          f"K=10 faster in {r['rounds_faster']} of {len(r['rounds'])} rounds")
  if len(sys.argv) > 2:
    common.write_json(sys.argv[2], res)
