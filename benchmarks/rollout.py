"""Env-steps/s of batched evaluation with a policy in the loop, MJX or the CPU simulator.

    python -m benchmarks.rollout [--backend=mjx|cpu] [--batch=1,8,32] [--steps=N]
                                 [--task=reach] [--preset=tiny] [--out=FILE.json]

mjx: one compiled program per batch size (the evaluator's `make_rollout`), compile time
apart; cpu: the suite's CPU evaluator. env-steps/s = batch * steps / median rollout seconds.
Sets XLA_FLAGS=--xla_cpu_use_fusion_emitters=false for --backend=mjx before JAX starts (only
there: it slows other CPU compiles). Details: docs/speed.md, "How it is measured".
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax

from benchmarks import common
from benchmarks.latency import ACTION_DIM, OBS_SHAPES, identity_normalizer, random_teacher_state
from launch.common import set_mjx_cpu_flag


def build_random_policy(
  method: str = "sdm", preset: str = "tiny", name: str | None = None, seed: int = 0
):
  """A randomly initialised policy of `method` (state observations, 4-d actions)."""
  import configs  # pylint: disable=g-import-not-at-top
  from jaxpolicy import methods  # pylint: disable=g-import-not-at-top
  from jaxpolicy import nets as nets_lib  # pylint: disable=g-import-not-at-top
  from jaxpolicy.policy import build_policy  # pylint: disable=g-import-not-at-top

  rng = jax.random.PRNGKey(seed)
  config = configs.load(method, preset)
  nets = nets_lib.build_nets(config, ACTION_DIM)
  mod = methods.get(method)
  tstate = None
  if mod.INFO.needs_teacher:
    tstate = random_teacher_state(preset, jax.random.fold_in(rng, 1))
  state = mod.init(config, nets, OBS_SHAPES, jax.random.fold_in(rng, 2), tstate)
  specs = dict(mod.make_policies(config, nets, state, identity_normalizer()))
  if name is None:
    name = min(specs, key=lambda k: specs[k].nfe)  # SDM: the one-step generator
  if name not in specs:
    raise ValueError(f"no policy {name!r} in {method}; choose one of {sorted(specs)}")
  return build_policy(name, config, nets, identity_normalizer(), specs[name], OBS_SHAPES)


def bench_mjx(policy, task: str, batch: int, steps: int, repeats: int, seed: int) -> dict:
  from jaxpolicy import suites  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs.mjx import evaluator  # pylint: disable=g-import-not-at-top

  env = suites.suite_of(task).mjx_env(task)
  resets = env.evaluation_states(seed, batch)
  key = jax.random.PRNGKey(seed)
  t0 = time.perf_counter()
  compiled = (
    jax.jit(evaluator.make_rollout(env, policy, steps)).lower(policy.params, resets, key).compile()
  )
  compile_s = time.perf_counter() - t0
  t = common.time_calls(
    common.blocking(compiled, policy.params, resets, key),
    iters=repeats,
    warmup=1,
    max_seconds=120.0,
  )
  return {"compile_s": compile_s, **t}


def bench_cpu(policy, task: str, batch: int, steps: int, repeats: int, seed: int) -> dict:
  from jaxpolicy import suites  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs import evaluator  # pylint: disable=g-import-not-at-top

  suite = suites.suite_of(task)
  compile_s, _ = policy.compiled_cost(batch)
  evaluator.evaluate(
    policy, suite, task, episodes=batch, seed=seed, episode_length=min(steps, 3)
  )  # warm-up: envs, compile

  def run():
    evaluator.evaluate(
      policy, suite, task, episodes=batch, seed=seed, episode_length=steps, stop_on_success=False
    )

  t = common.time_calls(run, iters=repeats, warmup=0, max_seconds=120.0)
  return {"compile_s": compile_s, **t}


COLUMNS = (
  ("backend", "backend"),
  ("task", "task"),
  ("policy", "policy"),
  ("NFE", "nfe"),
  ("batch", "batch"),
  ("steps", "steps"),
  ("compile s", "compile_s"),
  ("rollout ms", "median_ms"),
  ("p90 ms", "p90_ms"),
  ("env-steps/s", "env_steps_per_s"),
)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--backend", default="mjx", choices=("mjx", "cpu"))
  p.add_argument("--batch", default="1,8,32", help="comma-separated batch sizes")
  p.add_argument("--steps", type=int, default=20, help="control steps per rollout")
  p.add_argument("--task", default="reach")
  p.add_argument("--method", default="sdm")
  p.add_argument("--policy", default=None, help="policy name (default: fewest NFE)")
  p.add_argument("--preset", default="tiny")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", default=None)
  args = p.parse_args(argv)
  os.environ.setdefault("MUJOCO_GL", "egl")
  if args.backend == "mjx":
    set_mjx_cpu_flag()  # before the first JAX computation initialises the backend
  from jaxpolicy import suites  # pylint: disable=g-import-not-at-top

  task = suites.check_task(args.task)
  batches = [int(b) for b in args.batch.split(",") if b]
  policy = build_random_policy(args.method, args.preset, args.policy, args.seed)
  rows = []
  for b in batches:
    fn = bench_mjx if args.backend == "mjx" else bench_cpu
    r = fn(policy, task, b, args.steps, args.repeats, args.seed)
    r.update(
      backend=args.backend,
      task=task,
      policy=policy.name,
      nfe=policy.nfe,
      batch=b,
      steps=args.steps,
      env_steps_per_s=b * args.steps / (r["median_ms"] / 1e3),
      preset=args.preset,
    )
    rows.append(r)
    print(
      f"{args.backend} batch {b}: {r['env_steps_per_s']:.1f} env-steps/s "
      f"(compile {r['compile_s']:.1f} s)",
      file=sys.stderr,
      flush=True,
    )
  result = {
    "environment": common.environment(),
    "args": vars(args),
    "rows": rows,
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }
  print(common.format_table(rows, COLUMNS))
  common.write_json(args.out, result)
  return result


if __name__ == "__main__":
  main()
