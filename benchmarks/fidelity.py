"""Scripted-expert success in MJX vs the real MetaWorld, per task (MJX fidelity).

    python -m benchmarks.fidelity --tasks=reach,push,drawer-open --episodes=20 --out=fidelity.json
    python -m benchmarks.fidelity --tasks=all --episodes=20 --out=fidelity_all.json

MetaWorld's own scripted expert runs the same seeded episodes on both sides; the JSON is
rewritten after every task and a rerun with the same --out resumes. Compare success
statistics, not trajectories; all 50 tasks are for a GPU. The protocol and the published
figures: docs/environments.md, "MetaWorld in MJX" (Fidelity).
"""

from absl import app, flags

from launch import common

DEFAULT_TASKS = "reach,push,pick-place,drawer-open,button-press-topdown,door-open"

flags.DEFINE_string("tasks", DEFAULT_TASKS, "Comma-separated MetaWorld tasks, or 'all'.")
flags.DEFINE_integer("episodes", 20, "Episodes per task (same on both simulators).")
flags.DEFINE_integer(
  "seed",
  0,
  "Evaluation seed (episode i uses MetaWorld seed seed * 100003 + i, as jaxpolicy.evaluation).",
)
flags.DEFINE_integer("episode_length", 200, "Steps per episode.")
flags.DEFINE_string("out", "fidelity.json", "Where to write the JSON results.")
flags.DEFINE_integer(
  "max_contact_points",
  None,
  "MJX contact-point limit (default: the env's; 0 = keep every candidate contact).",
)
FLAGS = flags.FLAGS

GAP_POINTS = 10.0


def _row(task, mw_res, mjx_res, episodes):
  import numpy as np  # pylint: disable=g-import-not-at-top

  med = lambda first: float(np.median(first[first >= 0])) if (first >= 0).any() else None
  mw_rate = float(np.mean(mw_res["successes"]))
  row = {
    "task": task,
    "episodes": int(episodes),
    "metaworld_success": mw_rate,
    "metaworld_first_success_median": med(mw_res["first_success_step"]),
    "metaworld_wall_s": round(mw_res["wall_s"], 2),
  }
  mjx_rate = float(np.mean(mjx_res["successes"]))
  both = (mw_res["first_success_step"] >= 0) & (mjx_res["first_success_step"] >= 0)
  diff = (mjx_res["first_success_step"] - mw_res["first_success_step"])[both]
  row.update(
    mjx_success=mjx_rate,
    mjx_first_success_median=med(mjx_res["first_success_step"]),
    gap_points=round(100.0 * (mjx_rate - mw_rate), 1),
    first_success_step_diff_median=float(np.median(diff)) if diff.size else None,
    same_outcome=float(np.mean(mw_res["successes"] == mjx_res["successes"])),
    mjx_compile_s=round(mjx_res["compile_s"], 1),
    mjx_wall_s=round(mjx_res["wall_s"], 1),
    mjx_steps=int(mjx_res["steps"]),
    mjx_max_penetrating_contacts=int(mjx_res["max_penetrating_contacts"]),
    metaworld_successes=np.asarray(mw_res["successes"]).astype(int).tolist(),
    mjx_successes=np.asarray(mjx_res["successes"]).astype(int).tolist(),
  )
  return row


def large_gaps(rows) -> list[str]:
  return [
    r["task"] for r in rows if r.get("gap_points") is not None and abs(r["gap_points"]) > GAP_POINTS
  ]


def format_table(rows) -> str:
  lines = [
    f"{'task':<26}{'episodes':>9}{'MetaWorld':>11}{'MJX':>7}{'gap pts':>9}"
    f"{'same':>7}{'dt first':>10}{'compile s':>11}{'wall s':>8}"
  ]
  fmt = lambda v, f: "-" if v is None else format(v, f)
  for r in rows:
    lines.append(
      f"{r['task']:<26}{r['episodes']:>9d}{r['metaworld_success']:>11.2f}"
      f"{fmt(r.get('mjx_success'), '.2f'):>7}{fmt(r.get('gap_points'), '.1f'):>9}"
      f"{fmt(r.get('same_outcome'), '.2f'):>7}"
      f"{fmt(r.get('first_success_step_diff_median'), '.1f'):>10}"
      f"{fmt(r.get('mjx_compile_s'), '.1f'):>11}{fmt(r.get('mjx_wall_s'), '.1f'):>8}"
    )
  return "\n".join(lines)


def main(argv):
  del argv
  common.setup(mjx=True)
  import json  # pylint: disable=g-import-not-at-top
  import logging  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top

  import jax  # pylint: disable=g-import-not-at-top

  from jaxpolicy import suites  # pylint: disable=g-import-not-at-top
  from jaxpolicy.suites.metaworld.mjx import env as env_lib  # pylint: disable=g-import-not-at-top
  from jaxpolicy.suites.metaworld.mjx import experts  # pylint: disable=g-import-not-at-top
  from jaxpolicy.suites.metaworld.mjx.resets import evaluation_resets  # pylint: disable=g-import-not-at-top

  TASKS = suites.get("metaworld").tasks
  log = logging.getLogger("jaxpolicy")

  def run():
    tasks = (
      list(TASKS)
      if FLAGS.tasks == "all"
      else [suites.check_task(t.strip()) for t in FLAGS.tasks.split(",") if t]
    )
    if any(t not in TASKS for t in tasks):
      raise ValueError(
        "benchmarks.fidelity measures MetaWorld tasks (blockpush: "
        "python -m benchmarks.blockpush_oracle)"
      )
    if FLAGS.episodes < 1:
      raise ValueError(f"--episodes must be >= 1, got {FLAGS.episodes}")
    env_kwargs = {}
    if FLAGS.max_contact_points is not None:
      env_kwargs["max_contact_points"] = FLAGS.max_contact_points
    device = str(jax.devices()[0])
    payload = {
      "episodes": FLAGS.episodes,
      "seed": FLAGS.seed,
      "episode_length": FLAGS.episode_length,
      "max_contact_points": env_kwargs.get("max_contact_points", env_lib.MAX_CONTACT_POINTS),
      "tasks": [],
    }
    if os.path.exists(FLAGS.out):
      with open(FLAGS.out) as f:
        old = json.load(f)
      settings = ("episodes", "seed", "episode_length", "max_contact_points")
      if any(old.get(k) != payload[k] for k in settings):
        raise ValueError(
          f"{FLAGS.out} holds results for other settings "
          f"({', '.join(f'{k}={old.get(k)}' for k in settings)}); choose "
          f"another --out or the same settings to resume it"
        )
      # rows without an MJX result (files from before every task was ported) are redone
      payload["tasks"] = [r for r in old["tasks"] if r.get("mjx_success") is not None]
      done = {r["task"] for r in payload["tasks"]}
      log.info("resuming %s: %d tasks measured, skipping them", FLAGS.out, len(done))
      tasks = [t for t in tasks if t not in done]
    for task in tasks:
      log.info("fidelity %s: MetaWorld expert, %d episodes", task, FLAGS.episodes)
      mw_res = experts.run_expert_metaworld(task, FLAGS.seed, FLAGS.episodes, FLAGS.episode_length)
      env = env_lib.MJXEnv(task, **env_kwargs)
      log.info("fidelity %s: MJX expert (compiling)", task)
      mjx_res = experts.run_expert(
        task, evaluation_resets(task, FLAGS.seed, FLAGS.episodes), FLAGS.episode_length, env=env
      )
      row = _row(task, mw_res, mjx_res, FLAGS.episodes)
      row["device"] = device  # rows of a resumed file may come from other machines
      payload["tasks"].append(row)
      log.info(
        "fidelity %s: MetaWorld %.2f  MJX %s", task, row["metaworld_success"], row["mjx_success"]
      )
      payload["large_gaps"] = large_gaps(payload["tasks"])
      d = os.path.dirname(os.path.abspath(FLAGS.out))
      os.makedirs(d, exist_ok=True)
      with open(FLAGS.out + ".tmp", "w") as f:
        json.dump(payload, f, indent=2)
      os.replace(FLAGS.out + ".tmp", FLAGS.out)
    print(format_table(payload["tasks"]))
    gaps = large_gaps(payload["tasks"])
    print(
      f"tasks with |MJX - MetaWorld| > {GAP_POINTS:.0f} points: "
      f"{', '.join(gaps) if gaps else 'none'}"
    )
    print(f"wrote {FLAGS.out}")

  common.run_guarded(run)


if __name__ == "__main__":
  app.run(main)
