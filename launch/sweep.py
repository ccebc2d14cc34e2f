"""Train and evaluate every (task, seed, method) cell, then write the report.

    python -m launch.sweep --tasks=drawer-open,push --seeds=0,1,2 \
        --methods=teacher,sdm,cd,step --preset=quick --workdir=runs/sweep

Cells live in <workdir>/<task>/s<seed>/<method>, one teacher per task and seed; finished
cells are skipped and interrupted ones resume, so the command can be rerun at any time, and
several processes may share one grid. The grid's logic is jaxpolicy.sweep; --tasks, --set,
the honest protocol, claims and failures: docs/evaluation.md, "Sweeps".
"""

import json
import os

from absl import app, flags

from jaxpolicy import sweep as _lib
from jaxpolicy.sweep import claim, expand_tasks, parse_overrides, release  # noqa: F401
from launch import common

flags.DEFINE_list("tasks", ["drawer-open"], "Tasks, suites or groups (see above).")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_list(
  "methods", ["all"], "Methods (jaxpolicy.methods names, or all; the teacher is implied)."
)
flags.DEFINE_string("preset", "quick", "tiny | quick | paper")
flags.DEFINE_string("workdir", "runs/sweep", "Sweep directory.")
flags.DEFINE_integer("eval_every", 500, "Training steps between evaluations.")
flags.DEFINE_integer("episodes", 20, "Episodes per evaluation.")
flags.DEFINE_integer(
  "honest_episodes", 100, "Final-checkpoint episodes (paired over methods); 0 = off."
)
flags.DEFINE_integer("honest_seed", 1000, "Evaluation seed of the honest protocol.")
flags.DEFINE_multi_string(
  "set",
  [],
  "A config override for every cell, key=value (repeat the "
  "flag), e.g. --set=obs=pointcloud --set=pointcloud.num_points=512; "
  "recorded in sweep.json: one workdir holds one setting.",
)
flags.DEFINE_bool("retry_failed", False, "Train cells again that failed earlier (failed.json).")
flags.DEFINE_bool(
  "plan_only",
  False,
  "Only add the cells to the grid (sweep.json), train "
  "nothing: the report then counts them as planned from the start.",
)
FLAGS = flags.FLAGS


def run_sweep(tasks, seeds, methods, preset, root, eval_every, episodes, **kwargs):
  """jaxpolicy.sweep.run_sweep with the configs of configs/ (`configs.load`)."""
  import configs  # pylint: disable=g-import-not-at-top

  return _lib.run_sweep(
    tasks, seeds, methods, preset, root, eval_every, episodes, configs.load, **kwargs
  )


def cell_config(method, task, seed, preset, root, eval_every, episodes, overrides=None):
  import configs  # pylint: disable=g-import-not-at-top

  return _lib.cell_config(
    method, task, seed, preset, root, eval_every, episodes, overrides, configs.load
  )


def main(argv):
  del argv
  common.setup()
  from jaxpolicy import report  # pylint: disable=g-import-not-at-top

  def go():
    seeds = [int(s) for s in FLAGS.seeds]
    done, skipped = run_sweep(
      FLAGS.tasks,
      seeds,
      FLAGS.methods,
      FLAGS.preset,
      FLAGS.workdir,
      FLAGS.eval_every,
      FLAGS.episodes,
      honest_episodes=FLAGS.honest_episodes,
      honest_seed=FLAGS.honest_seed,
      overrides=parse_overrides(FLAGS.set),
      retry_failed=FLAGS.retry_failed,
      plan_only=FLAGS.plan_only,
    )
    if FLAGS.plan_only:
      with open(os.path.join(FLAGS.workdir, "sweep.json")) as f:
        print(f"sweep: the grid in {FLAGS.workdir} now has {len(json.load(f)['cells'])} cells")
      return
    failed = report.load_failures(FLAGS.workdir)
    print(
      f"sweep: {done} cells trained, {skipped} skipped (finished, or failed earlier), "
      f"{len(failed)} failed in all" + (" (their failed.json says why)" if failed else "")
    )
    if report.load_sweep(FLAGS.workdir):
      print("report:", report.write_report(FLAGS.workdir))
    else:
      print(
        "no finished cell to report; failures: "
        + "; ".join(f"{t} s{s} {m}: {r}" for (t, s, m), r in sorted(failed.items()))
      )

  common.run_guarded(go)


if __name__ == "__main__":
  app.run(main)
