"""Train and evaluate every (task, seed, method) cell, then write the report.

    python -m launch.sweep --tasks=drawer-open,push --seeds=0,1,2 \
        --methods=teacher,sdm,cd,step --preset=quick --workdir=runs/sweep

Cells live in <workdir>/<task>/s<seed>/<method>; the teacher of a task and seed is trained
once and reused by every distillation method. Cells run seed by seed (all tasks and methods
of seed 0 first), so a partly finished sweep already gives complete per-seed tables; STEP
cells evaluate k = 2 only, without the pure-noise DDIM-k baselines (its own ablation, see
configs/step.py). A
finished cell (it has cell.json) is skipped; an interrupted one resumes from its
checkpoint, so the command can be stopped and rerun at any time. Several sweeps may share
one grid (e.g. the same command started twice on a machine whose cores one sweep leaves
idle): each cell is claimed by the process training it (<cell>/claim, "host pid"), a claim
whose process is gone is taken over, and a distillation cell waits for its teacher's cell to
finish. Evaluations every
--eval_every steps give the learning curves (the papers' protocol); <workdir>/sweep.json
records the grid. --tasks takes task names, suites (metaworld, blockpush), difficulty
groups (easy, medium, hard, very_hard; metaworld/easy) or all (every suite's tasks). --set=key=value (repeatable) changes a config field in every cell, e.g. a
point-cloud sweep: --set=obs=pointcloud --set=pointcloud.num_points=512.

The honest protocol (--honest_episodes, 0 = off): each cell's final main policy is also
evaluated on that many episodes whose initial states come from --honest_seed, the same for
every method of a task and seed (paired); the teacher's cell adds the teacher's own DDIM-1
and DDIM-2 (trailing spacing) from noise -- the "is distillation worth it?" baseline. Each
cell.json records its wall and CPU time (training, evaluations and latency).

A cell that cannot be trained (no demonstrations: the scripted expert keeps failing; a
non-finite loss; any other error) gets <cell>/failed.json with the reason and the sweep goes
on; the distillation cells of a failed teacher are recorded as failed with it. Reruns skip
failed cells; --retry_failed trains them again. The report lists them with their reasons.
"""
import json
import os

from absl import app, flags

from jaxpolicy import sweep as _lib
from jaxpolicy.sweep import claim, expand_tasks, parse_overrides, release  # noqa: F401
from launch import common

flags.DEFINE_list("tasks", ["drawer-open"], "Tasks, suites or groups (see above).")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_list("methods", ["all"], "Methods (jaxpolicy.methods names, or all; the teacher "
                  "is implied).")
flags.DEFINE_string("preset", "quick", "tiny | quick | paper")
flags.DEFINE_string("workdir", "runs/sweep", "Sweep directory.")
flags.DEFINE_integer("eval_every", 500, "Training steps between evaluations.")
flags.DEFINE_integer("episodes", 20, "Episodes per evaluation.")
flags.DEFINE_integer("honest_episodes", 100, "Final-checkpoint episodes (paired over methods); "
                     "0 = off.")
flags.DEFINE_integer("honest_seed", 1000, "Evaluation seed of the honest protocol.")
flags.DEFINE_multi_string("set", [], "A config override for every cell, key=value (repeat the "
                          "flag), e.g. --set=obs=pointcloud --set=pointcloud.num_points=512; "
                          "recorded in sweep.json: one workdir holds one setting.")
flags.DEFINE_bool("retry_failed", False, "Train cells again that failed earlier (failed.json).")
flags.DEFINE_bool("plan_only", False, "Only add the cells to the grid (sweep.json), train "
                  "nothing: the report then counts them as planned from the start.")
FLAGS = flags.FLAGS


def run_sweep(tasks, seeds, methods, preset, root, eval_every, episodes, **kwargs):
  """jaxpolicy.sweep.run_sweep with the configs of configs/ (`configs.load`)."""
  import configs  # pylint: disable=g-import-not-at-top
  return _lib.run_sweep(tasks, seeds, methods, preset, root, eval_every, episodes,
                        configs.load, **kwargs)


def cell_config(method, task, seed, preset, root, eval_every, episodes, overrides=None):
  import configs  # pylint: disable=g-import-not-at-top
  return _lib.cell_config(method, task, seed, preset, root, eval_every, episodes, overrides,
                          configs.load)


def main(argv):
  del argv
  common.setup()
  from jaxpolicy import report  # pylint: disable=g-import-not-at-top

  def go():
    seeds = [int(s) for s in FLAGS.seeds]
    done, skipped = run_sweep(FLAGS.tasks, seeds, FLAGS.methods, FLAGS.preset, FLAGS.workdir,
                              FLAGS.eval_every, FLAGS.episodes,
                              honest_episodes=FLAGS.honest_episodes,
                              honest_seed=FLAGS.honest_seed,
                              overrides=parse_overrides(FLAGS.set),
                              retry_failed=FLAGS.retry_failed,
                              plan_only=FLAGS.plan_only)
    if FLAGS.plan_only:
      with open(os.path.join(FLAGS.workdir, "sweep.json")) as f:
        print(f"sweep: the grid in {FLAGS.workdir} now has {len(json.load(f)['cells'])} cells")
      return
    failed = report.load_failures(FLAGS.workdir)
    print(f"sweep: {done} cells trained, {skipped} skipped (finished, or failed earlier), "
          f"{len(failed)} failed in all" + (" (their failed.json says why)" if failed else ""))
    if report.load_sweep(FLAGS.workdir):
      print("report:", report.write_report(FLAGS.workdir))
    else:
      print("no finished cell to report; failures: "
            + "; ".join(f"{t} s{s} {m}: {r}" for (t, s, m), r in sorted(failed.items())))

  common.run_guarded(go)


if __name__ == "__main__":
  app.run(main)
