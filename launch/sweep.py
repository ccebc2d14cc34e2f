"""Train and evaluate every (task, seed, method) cell, then write the report.

    python -m launch.sweep --tasks=drawer-open,push --seeds=0,1,2 \
        --methods=teacher,sdm,cd,step --preset=quick --workdir=runs/sweep

Cells live in <workdir>/<task>/s<seed>/<method>; the teacher of a task and seed is trained
once and reused by every distillation method. Cells run seed by seed (all tasks and methods
of seed 0 first), so a partly finished sweep already gives complete per-seed tables; STEP
cells skip the pure-noise DDIM-k baselines (its own ablation, see configs/step.py). A
finished cell (it has cell.json) is skipped; an interrupted one resumes from its
checkpoint, so the command can be stopped and rerun at any time. Evaluations every
--eval_every steps give the learning curves; <workdir>/sweep.json records the grid.
"""
import json
import os
import time

from absl import app, flags

from launch import common

flags.DEFINE_list("tasks", ["drawer-open"], "MetaWorld tasks.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_list("methods", ["teacher", "sdm", "cd", "step"], "Methods (teacher is implied).")
flags.DEFINE_string("preset", "quick", "tiny | quick | paper")
flags.DEFINE_string("workdir", "runs/sweep", "Sweep directory.")
flags.DEFINE_integer("eval_every", 500, "Training steps between evaluations.")
flags.DEFINE_integer("episodes", 20, "Episodes per evaluation.")
FLAGS = flags.FLAGS


def cell_config(method, task, seed, preset, root, eval_every, episodes):
  import importlib  # pylint: disable=g-import-not-at-top
  config = importlib.import_module(f"configs.{method}").get_config(preset)
  config.task, config.seed = task, seed
  config.data.dir = os.path.join(root, "data")
  config.eval.every, config.eval.episodes = eval_every, episodes
  if method != "teacher":
    config.teacher_workdir = os.path.join(root, task, f"s{seed}", "teacher")
  if method == "step":
    # The report compares the main policies (STEP k = 2); the pure-noise DDIM-k baselines
    # (STEP's own ablation, configs/step.py) would multiply the cell's evaluation time.
    config.step.eval_baselines = False
  return config


def measure_hz(workdir: str, calls: int = 50) -> dict:
  """Batch-1 latency of the run's main policy (after warm-up): the steady state (calls
  after an episode's first, a mid-episode carry) and an episode's first call apart (STEP's
  runs the teacher's sampler from noise)."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxpolicy import report  # pylint: disable=g-import-not-at-top
  from jaxpolicy.train import loop  # pylint: disable=g-import-not-at-top
  run = loop.restore_run(workdir)
  policies = run.policies()
  pol = policies[report.main_policy(run.config.method, policies)]
  obs = {k: np.zeros((1, run.nets.n_obs_steps) + tuple(s), np.float32)
         for k, s in run.obs_shapes.items()}
  pol.reset(1)
  for i in range(3):
    pol(obs, jax.random.PRNGKey(i))
  firsts = []
  for i in range(5):
    pol.reset(1)
    t0 = time.perf_counter()
    pol(obs, jax.random.PRNGKey(50 + i))
    firsts.append(time.perf_counter() - t0)
  pol(obs, jax.random.PRNGKey(60))    # the carry is now mid-episode
  times = []
  for i in range(calls):
    t0 = time.perf_counter()
    pol(obs, jax.random.PRNGKey(100 + i))
    times.append(time.perf_counter() - t0)
  med = float(np.median(times))
  return {"latency_ms_b1": 1e3 * med, "hz_b1": 1.0 / med, "policy": pol.name,
          "first_call_ms_b1": 1e3 * float(np.median(firsts))}


def run_sweep(tasks, seeds, methods, preset, root, eval_every, episodes, log=print):
  from jaxpolicy.train import loop  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs.registry import check_task  # pylint: disable=g-import-not-at-top
  from jaxpolicy import methods as methods_lib  # pylint: disable=g-import-not-at-top
  tasks = [check_task(t) for t in tasks]
  for m in methods:
    methods_lib.get(m)  # unknown names stop here, before any training
  order = ["teacher"] + [m for m in methods if m != "teacher"]
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, "sweep.json"), "w") as f:   # the grid, for the report
    json.dump({"tasks": tasks, "seeds": list(seeds), "methods": order, "preset": preset}, f)
  done = skipped = 0
  # Seed-major: a sweep stopped part-way has every task and method for its first seeds.
  for seed in seeds:
    for task in tasks:
      for method in order:
        wd = os.path.join(root, task, f"s{seed}", method)
        marker = os.path.join(wd, "cell.json")
        if os.path.exists(marker):
          skipped += 1
          continue
        log(f"sweep: {task} seed {seed} {method} -> {wd}")
        config = cell_config(method, task, seed, preset, root, eval_every, episodes)
        loop.train(config, wd)
        cell = dict(task=task, seed=seed, method=method, preset=preset, **measure_hz(wd))
        with open(marker + ".tmp", "w") as f:
          json.dump(cell, f, indent=2)
        os.replace(marker + ".tmp", marker)
        done += 1
  return done, skipped


def main(argv):
  del argv
  common.setup()
  from jaxpolicy import report  # pylint: disable=g-import-not-at-top

  def go():
    seeds = [int(s) for s in FLAGS.seeds]
    done, skipped = run_sweep(FLAGS.tasks, seeds, FLAGS.methods, FLAGS.preset, FLAGS.workdir,
                              FLAGS.eval_every, FLAGS.episodes)
    print(f"sweep: {done} cells trained, {skipped} already finished")
    print("report:", report.write_report(FLAGS.workdir))

  common.run_guarded(go)


if __name__ == "__main__":
  app.run(main)
