"""Collect scripted-expert demonstrations of any suite's task.

    python -m launch.collect --task=drawer-open [--episodes=10] [--data_dir=data]
    python -m launch.collect --task=blockpush          # the suite's default number (100)
    python -m launch.collect --task=drawer-open --obs=pointcloud [--preset=quick]

Point clouds come from the sensor of `configs/common.py` for `--preset` (the one training
and evaluation with that preset use; see jaxpolicy/envs/pointcloud.py).
"""

from absl import app, flags

from launch import common

flags.DEFINE_string("task", None, "A task of any suite, e.g. drawer-open or blockpush.")
flags.DEFINE_integer("episodes", 0, "Number of successful episodes to keep (0: the suite's).")
flags.DEFINE_string("data_dir", "data", "Where datasets are stored.")
flags.DEFINE_string("obs", "state", "state | pointcloud")
flags.DEFINE_integer("seed", 0, "Collection seed.")
flags.DEFINE_string(
  "preset",
  "quick",
  "Config preset whose point-cloud sensor is used (--obs=pointcloud): quick | paper | tiny.",
)
flags.mark_flags_as_required(["task"])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  common.setup()
  from configs import common as configs_common  # pylint: disable=g-import-not-at-top
  from jaxpolicy import demos, obs, validate  # pylint: disable=g-import-not-at-top

  def run():
    obs.kind(FLAGS.obs)  # validates --obs
    config = configs_common.base_config(configs_common.parse_arg(FLAGS.preset))
    config.task, config.obs, config.seed = FLAGS.task, FLAGS.obs, FLAGS.seed
    config.data.dir, config.data.seed = FLAGS.data_dir, FLAGS.seed
    if FLAGS.episodes:
      config.data.num_episodes = FLAGS.episodes
    validate.resolve(config)  # the door: the task, and the suite's defaults
    return demos.ensure_demo_data(config)  # the same dataset training would use

  path = common.run_guarded(run)
  print(path)


if __name__ == "__main__":
  app.run(main)
