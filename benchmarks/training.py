"""Training throughput per method: compile time, step time, steps/s and samples/s.

    python -m benchmarks.training [--preset=tiny|quick|paper] [--out=FILE.json] [--iters=N]
                                  [--methods=teacher,sdm]

The step is the one `jaxpolicy/training.py` runs: sample a batch of windows on device,
`method.train_step`, `jax.jit` with the state donated, the step key
`fold_in(rng, step)`. The data are synthetic windows of the right shapes (state
observations 39-d, 4-d actions, the preset's horizon / n_obs_steps / batch size), the
states randomly initialised (distillation methods from a random teacher). Compile time is
measured apart (lower + compile); then, after warm-up steps, each timed step is waited on
(median / p90 ms per step), and a run of steps dispatched back to back gives steps/s and
samples/s (SDM's generator update every c-th step is part of that average).

Methods are data: every method in `jaxpolicy.methods` is measured.
"""
from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import configs
from benchmarks import common
from benchmarks.latency import ACTION_DIM, OBS_SHAPES
from jaxpolicy import methods, training
from jaxpolicy import nets as nets_lib
from jaxpolicy.data.dataset import Windows, window_indices
from jaxpolicy.runtime import sharding


def synthetic_windows(config, episodes: int = 10, length: int = 100, seed: int = 0) -> Windows:
  """Device-resident normalised random data with DP-style padded window tables."""
  p = config.policy
  rng = np.random.default_rng(seed)
  n = episodes * length
  ends = np.arange(1, episodes + 1) * length
  obs = {k: jnp.asarray(rng.uniform(-1, 1, size=(n,) + tuple(s)), jnp.float32)
         for k, s in OBS_SHAPES.items()}
  action = jnp.asarray(rng.uniform(-1, 1, size=(n, ACTION_DIM)), jnp.float32)
  win = lambda shift: jnp.asarray(window_indices(ends, p.horizon, p.n_obs_steps - 1,
                                                 p.n_action_steps - 1, shift=shift))
  return Windows(obs, action, win(0), win(-p.n_action_steps), p.n_obs_steps)


def init_states(method_names, preset: str, seed: int = 0) -> dict:
  """{method: (config, nets, state)} from random states; one random teacher is shared.

  Built before any step runs: a distillation method copies the teacher's params at init,
  and the teacher's own state is donated once its steps are timed.
  """
  teacher_state = None
  out = {}
  for name in method_names:
    method = methods.get(name)
    config = configs.load(name, preset)
    nets = nets_lib.build_nets(config, ACTION_DIM)
    if method.INFO.needs_teacher and teacher_state is None:
      tconfig = configs.load("teacher", preset)
      teacher_state = methods.get("teacher").init(
          tconfig, nets_lib.build_nets(tconfig, ACTION_DIM), OBS_SHAPES,
          jax.random.PRNGKey(seed + 1000))
    if name == "teacher" and teacher_state is not None:
      state = teacher_state   # distillation states hold copies (their init copies the params)
    else:
      state = method.init(config, nets, OBS_SHAPES, jax.random.PRNGKey(seed), teacher_state)
    if name == "teacher":
      teacher_state = state
    out[name] = (config, nets, state)
  return out


def measure(name: str, config, nets, state, iters: int, warmup: int,
            max_seconds: float) -> dict:
  """Times `name`'s train step on `state` (which is donated: do not reuse it)."""
  method = methods.get(name)
  windows = synthetic_windows(config)
  mesh = sharding.make_mesh(config.train.get("num_devices", 0))
  step = training.make_train_step(config, method, nets, mesh)   # exactly the training loop's
  state = sharding.put_replicated(state, mesh)
  windows = sharding.put_replicated(windows, mesh)
  key = np.int32   # the step index; the step folds it into the run's rng

  t0 = time.perf_counter()
  compiled = step.lower(state, windows, key(0)).compile()
  compile_s = time.perf_counter() - t0
  cost = common.program_cost(compiled)

  i = 0
  for _ in range(warmup):
    state, metrics = compiled(state, windows, key(i))
    i += 1
  jax.block_until_ready((state, metrics))
  times, start = [], time.perf_counter()
  for _ in range(iters):    # each step waited on: per-step latency
    t = time.perf_counter()
    state, metrics = compiled(state, windows, key(i))
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t)
    i += 1
    if len(times) >= 3 and time.perf_counter() - start > max_seconds:
      break
  n = len(times)
  t = time.perf_counter()   # the same number of steps dispatched back to back: throughput
  for _ in range(n):
    state, metrics = compiled(state, windows, key(i))
    i += 1
  jax.block_until_ready((state, metrics))
  run_s = time.perf_counter() - t
  finite = all(bool(np.all(np.isfinite(np.asarray(v)))) for v in jax.device_get(metrics).values())
  ms = np.asarray(times) * 1e3
  steps_per_s = n / run_s
  bs = config.train.batch_size
  return {
      "method": name, "batch_size": bs, "horizon": config.policy.horizon,
      "down_dims": list(config.model.down_dims),
      "unet_params": _unet_count(nets, config),
      "compile_s": compile_s, "median_ms": float(np.median(ms)),
      "p90_ms": float(np.percentile(ms, 90)), "min_ms": float(ms.min()), "steps_timed": n,
      "steps_per_s": steps_per_s, "samples_per_s": steps_per_s * bs,
      "flops_xla": cost["flops"], "bytes_accessed_xla": cost["bytes_accessed"],
      "metrics_finite": finite,
  }


def _unet_count(nets, config) -> int:
  del config
  p = jax.eval_shape(lambda: nets.init(jax.random.PRNGKey(0), OBS_SHAPES))
  return common.tree_size(p["unet"])


COLUMNS = [("method", "method"), ("batch", "batch_size"), ("U-Net params", "unet_params"),
           ("compile s", "compile_s"), ("step ms (median)", "median_ms"), ("p90 ms", "p90_ms"),
           ("steps/s", "steps_per_s"), ("samples/s", "samples_per_s")]


def run(preset: str = "quick", iters: int = 50, warmup: int = 3, max_seconds: float = 30.0,
        method_names=None, out: str | None = None, log=print) -> dict:
  """Times the train step of every registered method (or of `method_names`)."""
  env = common.environment()
  log(f"device: {env['device_kind']} ({env['platform']}), jax {env['packages']['jax']}")
  names = list(method_names or methods.names())
  unknown = sorted(set(names) - set(methods.names()))
  if unknown:
    raise SystemExit(f"unknown methods {unknown}; available: {list(methods.names())}")
  t0 = time.perf_counter()
  states = init_states(names, preset)
  log(f"initialised {len(states)} random states in {time.perf_counter() - t0:.1f} s")
  rows = []
  for name in names:
    config, nets, state = states.pop(name)
    r = measure(name, config, nets, state, iters, warmup, max_seconds)
    del state
    log(f"  {name}: compile {r['compile_s']:.2f} s, {r['median_ms']:.2f} ms/step, "
        f"{r['steps_per_s']:.2f} steps/s, {r['samples_per_s']:.0f} samples/s")
    rows.append(r)
  result = {"benchmark": "training", "preset": preset, "environment": env,
            "settings": {"iters": iters, "warmup": warmup, "max_seconds": max_seconds,
                         "action_dim": ACTION_DIM,
                         "obs_shapes": {k: list(v) for k, v in OBS_SHAPES.items()}},
            "results": rows}
  log(common.format_table(rows, COLUMNS))
  common.write_json(out, result)
  if out:
    log(f"wrote {out}")
  return result


def parse_args(argv):
  p = argparse.ArgumentParser(prog="python -m benchmarks.training", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--preset", default="quick", choices=("tiny", "quick", "paper"))
  p.add_argument("--out", default=None, help="write the results here as JSON")
  p.add_argument("--iters", type=int, default=50, help="timed steps per method")
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--max_seconds", type=float, default=30.0,
                 help="time budget for the timed steps of one method (at least 3)")
  p.add_argument("--methods", default="", help="comma-separated methods (default: all)")
  a = p.parse_args(argv)
  if a.iters < 1:
    p.error("--iters must be >= 1")
  return a


def main(argv=None):
  a = parse_args(sys.argv[1:] if argv is None else argv)
  return run(a.preset, a.iters, a.warmup, a.max_seconds,
             [m for m in a.methods.split(",") if m] or None, a.out)


if __name__ == "__main__":
  main()
