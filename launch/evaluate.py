"""Evaluate a saved run's policies and merge the results into a file in its workdir.

    python -m launch.evaluate --workdir=runs/sdm_drawer-open_state_quick_s0 [--episodes=20]
    python -m launch.evaluate --workdir=runs/teacher_pusht_lowdim_quick_s0 --task=pusht

On the suite's CPU simulator by default, into <workdir>/eval.json (--backend=mjx:
eval_mjx.json); --dtype=bfloat16, --task for a run on a dataset of its own, and how results
merge: docs/evaluation.md, "What an evaluation is".
"""

import json
import os

from absl import app, flags

from launch import common

flags.DEFINE_string("workdir", None, "A run directory with checkpoints.")
flags.DEFINE_integer("episodes", 20, "Episodes per policy.")
flags.DEFINE_integer("seed", 0, "Evaluation seed (same seed = same initial conditions).")
flags.DEFINE_string(
  "task",
  "",
  "Task to evaluate on (default: the run's task; for a run on a "
  "dataset of its own, the suite task to evaluate it in, e.g. pusht).",
)
flags.DEFINE_integer(
  "episode_length",
  0,
  "Control steps per episode (0: the run's "
  "eval.episode_length; the suite's for a data.path run given --task).",
)
flags.DEFINE_string(
  "dtype", "", "Policy compute dtype, float32 | bfloat16 (default: the run's eval.dtype)."
)
flags.DEFINE_string("backend", "", "auto | cpu | mjx (default: the run's eval.backend).")
flags.DEFINE_string(
  "results",
  "",
  "Results file name inside --workdir (default: eval.json on MetaWorld, eval_mjx.json on MJX).",
)
flags.mark_flags_as_required(["workdir"])
FLAGS = flags.FLAGS


def _saved_backend(workdir: str) -> str:
  """The run's eval.backend, read before JAX starts (MJX on CPU needs an XLA flag first)."""
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      return json.load(f)["config"]["eval"].get("backend", "auto")
  except (OSError, KeyError, ValueError):
    return "auto"


def evaluate(
  workdir: str,
  task: str = "",
  episodes: int = 20,
  seed: int = 0,
  episode_length: int = 0,
  dtype: str = "",
  backend: str = "",
  results_name: str = "",
) -> dict:
  """Evaluates the run in `workdir` as the flags say; {task: {policy: result}}, also merged
  into the results file."""
  from jaxpolicy import evaluation, runs  # pylint: disable=g-import-not-at-top
  from jaxpolicy.validate import check_config  # pylint: disable=g-import-not-at-top

  r = runs.restore_run(workdir)
  c = r.config
  with c.unlocked():
    if runs.offline(c):
      if task and task != c.eval.get("task", ""):  # another suite: its length, its rate
        c.eval.episode_length, c.eval.control_hz = None, None
      c.eval.task = task or c.eval.get("task", "")
    else:
      c.task = task or c.task
    c.eval.episodes, c.eval.seed = episodes, seed
    if episode_length:
      c.eval.episode_length = episode_length
    c.eval.dtype = dtype or c.eval.get("dtype", "float32")
    c.eval.backend = backend or c.eval.backend
  check_config(c)
  chosen = evaluation.resolve_backend(c.eval.backend)
  name = results_name or ("eval_mjx.json" if chosen == "mjx" else "eval.json")
  key = runs.eval_task(c) or runs.run_name(c)
  results = {key: evaluation.evaluate_policies(c, r.policies(), r.step)}
  print(evaluation.format_table(results))
  # kept: the file's metadata and earlier results of other policies / tasks (e.g. float32
  # beside bfloat16)
  payload = evaluation.read_results(workdir, name)
  merged = payload.pop("tasks")
  for t, res in results.items():
    merged.setdefault(t, {}).update(res)
  payload.update(method=c.method, step=r.step)
  evaluation.write_results(workdir, merged, extra=payload, name=name)
  return results


def main(argv):
  del argv
  common.setup(mjx=(FLAGS.backend or _saved_backend(FLAGS.workdir)) == "mjx")
  common.run_guarded(
    lambda: evaluate(
      FLAGS.workdir,
      FLAGS.task,
      FLAGS.episodes,
      FLAGS.seed,
      FLAGS.episode_length,
      FLAGS.dtype,
      FLAGS.backend,
      FLAGS.results,
    )
  )


if __name__ == "__main__":
  app.run(main)
