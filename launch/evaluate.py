"""Evaluate a saved run's policies on the real MetaWorld and write <workdir>/eval.json.

    python -m launch.evaluate --workdir=runs/sdm_drawer-open_state_quick_s0 [--episodes=20]

--dtype=bfloat16 evaluates the policies with bfloat16 params and network compute (names get
a "_bf16" suffix). Results are merged into eval.json: entries of other policies and tasks
already there are kept, those of the policies evaluated now are replaced.
"""
from absl import app, flags

from launch import common

flags.DEFINE_string("workdir", None, "A run directory with checkpoints.")
flags.DEFINE_integer("episodes", 20, "Episodes per policy.")
flags.DEFINE_integer("seed", 0, "Evaluation seed (same seed = same initial conditions).")
flags.DEFINE_string("task", "", "Task to evaluate on (default: the run's task).")
flags.DEFINE_string("dtype", "", "Policy compute dtype, float32 | bfloat16 (default: the run's "
                    "eval.dtype).")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  common.setup()
  from jaxpolicy import evaluation  # pylint: disable=g-import-not-at-top
  from jaxpolicy.train import loop  # pylint: disable=g-import-not-at-top
  from jaxpolicy.train.validate import check_config  # pylint: disable=g-import-not-at-top

  def run():
    r = loop.restore_run(FLAGS.workdir)
    task = FLAGS.task or r.config.task
    with r.config.unlocked():
      r.config.task, r.config.eval.episodes, r.config.eval.seed = task, FLAGS.episodes, FLAGS.seed
      r.config.eval.dtype = FLAGS.dtype or r.config.eval.get("dtype", "float32")
    check_config(r.config)
    results = {task: loop.evaluate_policies(r.config, r.policies(), r.step)}
    print(evaluation.format_table(results))
    # kept: earlier results of other policies / tasks (e.g. float32 beside bfloat16)
    merged = evaluation.read_results(FLAGS.workdir)
    for t, res in results.items():
      merged.setdefault(t, {}).update(res)
    evaluation.write_results(FLAGS.workdir, merged, extra={"method": r.config.method,
                                                           "step": r.step})

  common.run_guarded(run)


if __name__ == "__main__":
  app.run(main)
