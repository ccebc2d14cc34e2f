"""Every GPU figure the docs promise, in one command, within a time budget.

    python -m benchmarks.gpu_suite [--preset=paper] [--out_dir=DIR] [--budget_s=480]

Sections, in order: latency (batch 1, float32 and bfloat16) and training, with PyTorch beside
them when torch imports; mjx_throughput (env-steps/s at 256-4096 environments); mjx_eval
(three tasks end to end, and the 50-task time it implies). gpu_suite.json and gpu_suite.md
are rewritten after each section; a section past the budget is skipped. `--preset=tiny` is
the CI smoke test. Details: docs/speed.md, "How it is measured".
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import sys
import time

import jax
import numpy as np

from benchmarks import common

SIZES = {
  # preset -> what each section runs
  "paper": dict(
    latency_batches=(1,),
    latency_iters=50,
    train_iters=5,
    train_obs=("state", "pointcloud"),
    mjx_envs=(256, 1024, 4096),
    mjx_length=200,
    eval_tasks=("reach", "drawer-open", "button-press-topdown"),
    eval_episodes=20,
    eval_length=200,
  ),
  "quick": dict(
    latency_batches=(1,),
    latency_iters=50,
    train_iters=10,
    train_obs=("state", "pointcloud"),
    mjx_envs=(256, 1024, 4096),
    mjx_length=200,
    eval_tasks=("reach", "drawer-open", "button-press-topdown"),
    eval_episodes=20,
    eval_length=200,
  ),
  "tiny": dict(
    latency_batches=(1,),
    latency_iters=3,
    train_iters=2,
    train_obs=("pointcloud",),
    train_methods=("teacher",),
    latency_policies=("sdm_1step",),
    mjx_envs=(2,),
    mjx_length=4,
    eval_tasks=("reach",),
    eval_episodes=2,
    eval_length=4,
  ),
}
SECTIONS = ("latency", "training", "mjx_throughput", "mjx_eval")
ALL_TASKS = 50


def has_torch() -> bool:
  return importlib.util.find_spec("torch") is not None


def section_latency(preset: str, size: dict, log) -> dict:
  from benchmarks import latency

  out = {}
  for dtype in ("float32", "bfloat16"):
    r = latency.run(
      preset,
      batches=size["latency_batches"],
      iters=size["latency_iters"],
      warmup=2,
      max_seconds=20.0,
      torch_on=has_torch() and dtype == "float32",
      dtype=dtype,
      policies=size.get("latency_policies"),
      log=log,
    )
    out[dtype] = {
      "probe": r["probe"],
      "rows": [
        {
          k: row.get(k)
          for k in (
            "policy",
            "nfe",
            "batch",
            "compile_s",
            "median_ms",
            "p90_ms",
            "hz",
            "floor_ms",
            "achieved_over_floor",
            "jax_over_torch",
          )
        }
        | {
          "torch_median_ms": (row.get("torch") or {}).get("median_ms"),
          "torch_device": (row.get("torch") or {}).get("device"),
        }
        for row in r["results"]
      ],
    }
  return out


def section_training(preset: str, size: dict, log) -> dict:
  from benchmarks import training

  r = training.run(
    preset,
    iters=size["train_iters"],
    warmup=1,
    max_seconds=30.0,
    method_names=size.get("train_methods", ("teacher", "sdm")),
    obs_kinds=size["train_obs"],
    torch_on=has_torch(),
    log=log,
  )
  keep = (
    "method",
    "obs",
    "num_points",
    "batch_size",
    "steps_per_call",
    "compile_s",
    "median_ms",
    "steps_per_s",
    "gflop",
    "floor_ms",
    "floor_ratio",
    "torch_steps_per_s",
    "ratio",
    "torch_device",
  )
  return {
    "peak_flops": r["peak_flops"],
    "rows": [{k: row.get(k) for k in keep} for row in r["results"]],
  }


@functools.lru_cache(maxsize=1)
def _sdm_policy(preset: str):
  """One policy object for both MJX sections: the evaluator caches programs by policy (and
  task, episodes, length), so a section repeating another's shape reuses its program."""
  from benchmarks.rollout import build_random_policy

  return build_random_policy("sdm", preset)


def section_mjx_throughput(preset: str, size: dict, log) -> dict:
  from jaxpolicy import suites
  from jaxpolicy.envs.mjx import evaluator

  policy, rows = _sdm_policy(preset), []
  for n in size["mjx_envs"]:
    r = evaluator.evaluate(
      policy,
      suites.get("metaworld"),
      "reach",
      episodes=n,
      seed=0,
      episode_length=size["mjx_length"],
    )
    rows.append(
      {
        "task": "reach",
        "envs": n,
        "episode_length": size["mjx_length"],
        "compile_s": r["compile_s"],
        "run_s": r["wall_s"],
        "env_steps_per_s": r["env_steps_per_s"],
        "policy": policy.name,
      }
    )
    log(f"  MJX {n} envs: {r['env_steps_per_s']:.0f} env-steps/s (compile {r['compile_s']} s)")
  return {"rows": rows}


def section_mjx_eval(preset: str, size: dict, log) -> dict:
  from jaxpolicy import suites
  from jaxpolicy.envs.mjx import evaluator

  policy, rows = _sdm_policy(preset), []
  for task in size["eval_tasks"]:
    t0 = time.perf_counter()
    r = evaluator.evaluate(
      policy,
      suites.get("metaworld"),
      task,
      episodes=size["eval_episodes"],
      seed=0,
      episode_length=size["eval_length"],
    )
    total = time.perf_counter() - t0
    rows.append(
      {
        "task": task,
        "episodes": size["eval_episodes"],
        "episode_length": size["eval_length"],
        "compile_s": r["compile_s"],
        "run_s": r["wall_s"],
        "end_to_end_s": total,
        "other_s": total - r["compile_s"] - r["wall_s"],
      }
    )
    log(
      f"  MJX eval {task}: {total:.1f} s end to end (compile {r['compile_s']} s, "
      f"run {r['wall_s']} s)"
    )
  per_task = {
    k: float(np.mean([r[k] for r in rows]))
    for k in ("compile_s", "run_s", "other_s", "end_to_end_s")
  }
  implied = {k: ALL_TASKS * v for k, v in per_task.items()}
  return {
    "rows": rows,
    "mean_per_task": per_task,
    "implied_50_tasks_s": implied,
    "compile_share": per_task["compile_s"] / max(per_task["end_to_end_s"], 1e-9),
    "note": "one compiled rollout per task (each task is its own MuJoCo model); the "
    "implied time is 50 x the mean per task, one policy, one seed",
  }


RUNNERS = {
  "latency": section_latency,
  "training": section_training,
  "mjx_throughput": section_mjx_throughput,
  "mjx_eval": section_mjx_eval,
}


def _table(title: str, columns, rows) -> list[str]:
  """A Markdown table: columns are (header, key) pairs; the first column left-aligned."""
  head = "| " + " | ".join(h for h, _ in columns) + " |"
  rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|"
  body = ["| " + " | ".join(common.fmt(r.get(k)) for _, k in columns) + " |" for r in rows]
  return [f"## {title}", "", head, rule, *body, ""]


LATENCY_COLUMNS = (
  ("policy", "policy"),
  ("NFE", "nfe"),
  ("compile s", "compile_s"),
  ("median ms", "median_ms"),
  ("p90 ms", "p90_ms"),
  ("Hz", "hz"),
  ("x floor", "achieved_over_floor"),
  ("PyTorch ms", "torch_median_ms"),
)
TRAINING_COLUMNS = (
  ("method", "method"),
  ("obs", "obs"),
  ("batch", "batch_size"),
  ("steps/call", "steps_per_call"),
  ("compile s", "compile_s"),
  ("steps/s", "steps_per_s"),
  ("x floor", "floor_ratio"),
  ("PyTorch steps/s", "torch_steps_per_s"),
  ("JAX/PyTorch", "ratio"),
)
MJX_COLUMNS = (
  ("envs", "envs"),
  ("steps", "episode_length"),
  ("compile s", "compile_s"),
  ("run s", "run_s"),
  ("env-steps/s", "env_steps_per_s"),
)
EVAL_COLUMNS = (
  ("task", "task"),
  ("episodes", "episodes"),
  ("compile s", "compile_s"),
  ("run s", "run_s"),
  ("other s", "other_s"),
  ("total s", "end_to_end_s"),
)


def markdown(result: dict) -> str:
  env = result["environment"]
  lines = [
    f"# GPU suite ({result['preset']} preset)",
    "",
    f"{env['device_kind']} ({env['platform']}), jax {env['packages']['jax']}, "
    f"torch {env['packages'].get('torch') or 'absent'}; {env['time']}; "
    f"{result['wall_s']:.0f} s in all.",
    "",
  ]
  s = result["sections"]
  for dtype, d in (s.get("latency") or {}).items():
    if isinstance(d, dict) and "rows" in d:
      lines += _table(f"Batch-1 latency, {dtype}", LATENCY_COLUMNS, d["rows"])
  if "rows" in (s.get("training") or {}):
    lines += _table("Training", TRAINING_COLUMNS, s["training"]["rows"])
  if "rows" in (s.get("mjx_throughput") or {}):
    lines += _table(
      "MJX rollout throughput (SDM 1-step in the loop)", MJX_COLUMNS, s["mjx_throughput"]["rows"]
    )
  e = s.get("mjx_eval") or {}
  if "rows" in e:
    lines += _table("MJX evaluation, end to end", EVAL_COLUMNS, e["rows"])
    i = e["implied_50_tasks_s"]
    lines += [
      f"Implied 50-task evaluation: {i['end_to_end_s'] / 60:.1f} min, of which "
      f"compilation {i['compile_s'] / 60:.1f} min ({100 * e['compile_share']:.0f} %).",
      "",
    ]
  for k, v in s.items():
    if isinstance(v, dict) and "skipped" in v:
      lines.append(f"* {k}: skipped ({v['skipped']})")
  return "\n".join(lines) + "\n"


def write(result: dict, out_dir: str):
  os.makedirs(out_dir, exist_ok=True)
  common.write_json(os.path.join(out_dir, "gpu_suite.json"), result)
  with open(os.path.join(out_dir, "gpu_suite.md"), "w") as f:
    f.write(markdown(result))


def run(
  preset: str = "paper",
  out_dir: str | None = None,
  budget_s: float = 480.0,
  sections=SECTIONS,
  log=print,
) -> dict:
  size = SIZES[preset]
  out_dir = out_dir or os.path.join(
    "benchmarks",
    "results",
    f"gpu_suite_{preset}_{jax.default_backend()}_{time.strftime('%Y-%m-%d')}",
  )
  env = common.environment()
  if env["platform"] != "gpu":
    log(f"note: running on {env['platform']}, not a GPU: the figures are this device's")
  t0 = time.perf_counter()
  result = {
    "benchmark": "gpu_suite",
    "preset": preset,
    "environment": env,
    "budget_s": budget_s,
    "torch": has_torch(),
    "sections": {},
    "wall_s": 0.0,
  }
  for name in sections:
    elapsed = time.perf_counter() - t0
    if elapsed > budget_s:
      result["sections"][name] = {"skipped": f"budget of {budget_s:.0f} s spent ({elapsed:.0f} s)"}
      log(f"[{name}] skipped: budget spent")
      continue
    log(f"[{name}] starting at {elapsed:.0f} s")
    s0 = time.perf_counter()
    result["sections"][name] = RUNNERS[name](preset, size, log)
    result["sections"][name]["section_s"] = time.perf_counter() - s0
    result["wall_s"] = time.perf_counter() - t0
    write(result, out_dir)
  result["wall_s"] = time.perf_counter() - t0
  write(result, out_dir)
  log(markdown(result))
  log(f"wrote {out_dir}/gpu_suite.json and gpu_suite.md")
  return result


def main(argv=None):
  p = argparse.ArgumentParser(
    prog="python -m benchmarks.gpu_suite",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--preset", default="paper", choices=tuple(SIZES))
  p.add_argument("--out_dir", default=None)
  p.add_argument(
    "--budget_s",
    type=float,
    default=480.0,
    help="no section starts after this many seconds (default 8 minutes)",
  )
  p.add_argument("--sections", default=",".join(SECTIONS))
  a = p.parse_args(sys.argv[1:] if argv is None else argv)
  sections = [x for x in a.sections.split(",") if x]
  bad = sorted(set(sections) - set(SECTIONS))
  if bad:
    p.error(f"unknown sections {bad}; choose from {SECTIONS}")
  if any(x.startswith("mjx") for x in sections):
    from launch.common import set_mjx_cpu_flag

    set_mjx_cpu_flag()  # only changes anything on CPU; before JAX starts its backend
  return run(a.preset, a.out_dir, a.budget_s, sections)


if __name__ == "__main__":
  main()
