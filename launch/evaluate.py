"""Evaluate a saved run's policies and merge the results into a file in its workdir.

    python -m launch.evaluate --workdir=runs/sdm_drawer-open_state_quick_s0 [--episodes=20]

On the suite's CPU simulator (e.g. the real MetaWorld) by default, results in <workdir>/eval.json. --backend=mjx evaluates
in MJX (jaxpolicy.envs.mjx) and writes <workdir>/eval_mjx.json unless --results names
another file. --dtype=bfloat16 evaluates with bfloat16 params and network compute (names
get a "_bf16" suffix). Merging keeps what the file holds (its metadata, other tasks and
policies) and replaces the entries of the policies evaluated now.
"""
import json
import os

from absl import app, flags

from launch import common

flags.DEFINE_string("workdir", None, "A run directory with checkpoints.")
flags.DEFINE_integer("episodes", 20, "Episodes per policy.")
flags.DEFINE_integer("seed", 0, "Evaluation seed (same seed = same initial conditions).")
flags.DEFINE_string("task", "", "Task to evaluate on (default: the run's task).")
flags.DEFINE_string("dtype", "", "Policy compute dtype, float32 | bfloat16 (default: the run's "
                    "eval.dtype).")
flags.DEFINE_string("backend", "", "auto | cpu | mjx (default: the run's eval.backend).")
flags.DEFINE_string("results", "", "Results file name inside --workdir (default: eval.json "
                    "on MetaWorld, eval_mjx.json on MJX).")
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def _saved_backend(workdir: str) -> str:
  """The run's eval.backend, read before JAX starts (MJX on CPU needs an XLA flag first)."""
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      return json.load(f)["config"]["eval"].get("backend", "auto")
  except (OSError, KeyError, ValueError):
    return "auto"


def main(argv):
  del argv
  common.setup(mjx=(FLAGS.backend or _saved_backend(FLAGS.workdir)) == "mjx")
  from jaxpolicy import runs  # pylint: disable=g-import-not-at-top
  from jaxpolicy.validate import check_config  # pylint: disable=g-import-not-at-top

  def run():
    r = runs.restore_run(FLAGS.workdir)
    task = FLAGS.task or r.config.task
    with r.config.unlocked():
      r.config.task, r.config.eval.episodes, r.config.eval.seed = task, FLAGS.episodes, FLAGS.seed
      r.config.eval.dtype = FLAGS.dtype or r.config.eval.get("dtype", "float32")
      r.config.eval.backend = FLAGS.backend or r.config.eval.backend
    check_config(r.config)
    backend = runs.resolve_backend(r.config.eval.backend)
    name = FLAGS.results or ("eval_mjx.json" if backend == "mjx" else "eval.json")
    results = {task: runs.evaluate_policies(r.config, r.policies(), r.step)}
    print(runs.format_table(results))
    # kept: the file's metadata and earlier results of other policies / tasks (e.g. float32
    # beside bfloat16)
    payload = runs.read_results(FLAGS.workdir, name)
    merged = payload.pop("tasks")
    for t, res in results.items():
      merged.setdefault(t, {}).update(res)
    payload.update(method=r.config.method, step=r.step)
    runs.write_results(FLAGS.workdir, merged, extra=payload, name=name)

  common.run_guarded(run)


if __name__ == "__main__":
  app.run(main)
