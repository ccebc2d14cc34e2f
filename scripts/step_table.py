"""The per-k table of STEP runs: STEP, the teacher's DDIM-k from noise (leading, trailing)
and the predictor alone, from each run's eval.json.

    python scripts/step_table.py runs/step_drawer-open_state_quick_s0 [more workdirs] \
        [--json=step_table.json]

Success with its Wilson 95 % interval, NFE per call (steady state), the NFE amortised over
an episode (STEP's first call runs the teacher's DDIM-10), how often the stall excitation
fired (mean over episodes of the fraction of calls) and the steady-state latency of one
batched call (all the evaluation's environments at once).
"""

import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxpolicy.stats import wilson_interval  # noqa: E402  pylint: disable=wrong-import-position


def _order(name: str):
  m = re.search(r"(\d+)", name)
  k = int(m.group(1)) if m else 0
  kind = ("teacher" in name, "predictor" in name, name.startswith("ddim"), "trailing" in name)
  return (0 if "teacher" in name else 1, k if "predictor" not in name else -1, kind)


def rows_of(workdir: str):
  with open(os.path.join(workdir, "eval.json")) as f:
    ev = json.load(f)
  for task, pols in ev["tasks"].items():
    for name in sorted(pols, key=_order):
      r = pols[name]
      n = r["episodes"]
      lo, hi = wilson_interval(round(r["success_rate"] * n), n)
      yield {
        "task": task,
        "policy": name,
        "success": r["success_rate"],
        "episodes": n,
        "wilson95": [lo, hi],
        "nfe": r["nfe"],
        "nfe_amortised": r.get("nfe_amortised", r["nfe"]),
        "stall_fraction": r.get("stall_fraction"),
        "latency_ms": r["latency_ms"],
        "latency_first_call_ms": r.get("latency_first_call_ms"),
        "action_mse": r.get("action_mse"),
      }


def markdown(rows) -> str:
  out = [
    "| task | policy | success (95 % CI) | episodes | NFE | NFE/call amortised | "
    "stall fraction | latency ms (batch = episodes) |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    stall = "-" if r["stall_fraction"] is None else f"{r['stall_fraction']:.3f}"
    out.append(
      f"| {r['task']} | {r['policy']} | {100 * r['success']:.0f} % "
      f"({100 * r['wilson95'][0]:.0f}-{100 * r['wilson95'][1]:.0f}) | {r['episodes']} | "
      f"{r['nfe']} | {r['nfe_amortised']:.2f} | {stall} | {r['latency_ms']:.2f} |"
    )
  return "\n".join(out)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("workdirs", nargs="+")
  ap.add_argument("--json", default="", help="also write the rows here")
  args = ap.parse_args(argv)
  rows = [r for wd in args.workdirs for r in rows_of(wd)]
  print(markdown(rows))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"workdirs": args.workdirs, "rows": rows}, f, indent=2)
  return rows


if __name__ == "__main__":
  main()
