"""Success against latency: trained policies evaluated in real time on the real MetaWorld.

    python -m benchmarks.realtime --root=runs/rt_h4 --out=docs/results/realtime_h4
    python -m benchmarks.realtime --root=runs/rt_h4 --out=... --report_only

Every policy of a sweep's cells (--root, one seed) at every latency of --latencies, at its
own and at its paper-size latency, sync and async with each stitching it can do; rows go to
<out>/rows.jsonl as they finish (reruns skip them), the report is rewritten at the end. The
protocol: docs/realtime.md, "Success against latency".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

from benchmarks import realtime_report
from benchmarks.realtime_report import POLICIES


def _cpu_s() -> float:
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def load_policies(root: str, task: str, seed: int = 0) -> dict:
  """{policy name: Policy} of a task's finished cells."""
  from jaxpolicy import runs  # pylint: disable=g-import-not-at-top

  out = {}
  for method, name in POLICIES:
    wd = os.path.join(root, task, f"s{seed}", method)
    if not os.path.exists(os.path.join(wd, "eval.json")):
      continue
    run = runs.restore_run(wd)
    pols = run.main_and_baselines() if method == "teacher" else run.policies()
    if name in pols:
      out[name] = (pols[name], run.config)
  return out


def paper_latency_ms(preset: str, horizon: int, n_action_steps: int) -> dict:
  """Batch-1 latency (ms) of every policy of POLICIES with its networks at `preset` size and
  this horizon (random weights: timing only)."""
  from benchmarks import latency  # pylint: disable=g-import-not-at-top
  from jaxpolicy.policy import build_policy  # pylint: disable=g-import-not-at-top

  def edit(config):
    config.policy.horizon, config.policy.n_action_steps = horizon, n_action_steps

  names = [n for _, n in POLICIES]
  out = {}
  for c in latency.candidates(
    preset, method_names=sorted({m for m, _ in POLICIES}), wanted=names, edit=edit
  ):
    pol = build_policy(
      c.name, c.config, c.nets, latency.identity_normalizer(), c.spec, latency.OBS_SHAPES
    )
    out[c.name] = pol.latency_b1(calls=20)["latency_ms_b1"]
  return out


def stitchings(policy, mode: str, wanted) -> list[str]:
  if mode == "sync":
    return ["none"]
  return [s for s in wanted if s != "rtc" or policy.guidable]


def _paper_latencies(args, config) -> dict:
  """The paper-size latencies for the sweep's horizon, measured once and kept in <out>."""
  p = config.policy
  cache = os.path.join(args.out, f"latency_{args.paper_preset}_h{p.horizon}.json")
  if not os.path.exists(cache):
    from jaxpolicy.runtime import files, host  # pylint: disable=g-import-not-at-top

    ms = paper_latency_ms(args.paper_preset, p.horizon, p.n_action_steps)
    files.write_json(
      cache,
      {
        "latency_ms_b1": ms,
        "host": host.describe(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
      },
    )
  with open(cache) as f:
    return json.load(f)["latency_ms_b1"]


def run_rows(args) -> None:
  from jaxpolicy import evaluation, execution, suites  # pylint: disable=g-import-not-at-top

  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "rows.jsonl")
  done = set()
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        r = json.loads(line)
        done.add((r["task"], r["policy"], r["latency"], r["mode"], r["stitching"]))
  paper = {}
  for task in args.tasks.split(","):
    suite = suites.suite_of(suites.check_task(task))
    pols = load_policies(args.root, task)
    for name, (pol, config) in pols.items():
      extra = [e for e in args.extra.split(",") if e]
      if "paper" in extra and args.paper_preset and not paper:
        paper = _paper_latencies(args, config)
      lats = [(str(x), float(x)) for x in args.latencies.split(",") if x]
      if "own" in extra and any(
        (task, name, "own", m, s) not in done
        for m in ("sync", "async")
        for s in args.stitching.split(",")
      ):
        lats.append(("own", pol.latency_b1(calls=30)["latency_ms_b1"]))
      if "paper" in extra and name in paper:
        lats.append(("paper", paper[name]))
      for label, ms in lats:
        delay = execution.delay_steps(ms, suite.control_hz)
        for mode in ("sync", "async"):
          for stitch in stitchings(pol, mode, args.stitching.split(",")):
            key = (task, name, label, mode, stitch)
            if key in done or (delay == 0 and mode == "async"):
              continue  # no delay: async is sync
            timing = execution.Timing(delay, pol.span, pol.n_action_steps, mode, stitch)
            if delay >= suite.episode_length:
              continue
            wall0, cpu0 = time.time(), _cpu_s()
            r = evaluation.evaluate(
              pol,
              task,
              episodes=args.episodes,
              seed=args.seed,
              episode_length=suite.episode_length,
              backend="cpu",
              timing=timing,
            )
            row = {
              "task": task,
              "policy": name,
              "latency": label,
              "latency_ms": ms,
              "delay_steps": delay,
              "mode": mode,
              "stitching": stitch,
              "success_rate": r["success_rate"],
              "successes": r["successes"],
              "episodes": r["episodes"],
              "held_steps": r.get("held_steps", 0),
              "horizon": config.policy.horizon,
              "n_action_steps": config.policy.n_action_steps,
              "initial_state_hashes": r["initial_state_hashes"],
              "wall_s": round(time.time() - wall0, 1),
              "cpu_s": round(_cpu_s() - cpu0, 1),
            }
            with open(path, "a") as f:
              f.write(json.dumps(row) + "\n")
            done.add(key)
            print(
              f"{task} {name} {label} ({ms:.1f} ms, d={delay}) {mode}/{stitch}: "
              f"{r['success_rate']:.2f}",
              flush=True,
            )


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--root", required=True, help="a sweep directory (teacher/sdm/cd/step)")
  p.add_argument("--tasks", default="")
  p.add_argument("--latencies", default="0,12.5,25,50,100,200")
  p.add_argument("--stitching", default="none,ensemble,rtc")
  p.add_argument("--episodes", type=int, default=100)
  p.add_argument("--seed", type=int, default=1000)
  p.add_argument("--paper_preset", default="paper")
  p.add_argument(
    "--extra",
    default="own,paper",
    help="latency points besides --latencies: "
    "own (each policy's batch-1 latency measured now; run with the machine "
    "idle) and paper (its paper-size network's)",
  )
  p.add_argument("--out", required=True)
  p.add_argument("--report_only", action="store_true")
  args = p.parse_args(argv)
  os.environ.setdefault("MUJOCO_GL", "egl")
  if not args.tasks:
    with open(os.path.join(args.root, "sweep.json")) as f:
      args.tasks = ",".join(json.load(f)["tasks"])
  if not args.report_only:
    run_rows(args)
  print(realtime_report.write(args.out))


if __name__ == "__main__":
  main()
