"""Collect scripted-expert demonstrations in the real MetaWorld.

    python -m launch.collect --task=drawer-open [--episodes=10] [--data_dir=data]
    python -m launch.collect --task=drawer-open --obs=pointcloud [--preset=quick]

Point clouds come from the sensor of `configs/common.py` for `--preset` (the one training
and evaluation with that preset use; see jaxpolicy/envs/pointcloud.py).
"""
from absl import app, flags

from launch import common

flags.DEFINE_string("task", None, "MetaWorld v3 task name, e.g. drawer-open.")
flags.DEFINE_integer("episodes", 10, "Number of successful episodes to keep.")
flags.DEFINE_string("data_dir", "data", "Where datasets are stored.")
flags.DEFINE_string("obs", "state", "state | pointcloud")
flags.DEFINE_integer("seed", 0, "Collection seed.")
flags.DEFINE_string("preset", "quick", "Config preset whose point-cloud sensor is used "
                    "(--obs=pointcloud): quick | paper | tiny.")
flags.mark_flags_as_required(["task"])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  common.setup()
  from configs import common as configs_common  # pylint: disable=g-import-not-at-top
  from jaxpolicy import obs, runs  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs.registry import check_task  # pylint: disable=g-import-not-at-top

  def run():
    obs.kind(FLAGS.obs)  # validates --obs
    config = configs_common.base_config(configs_common.parse_arg(FLAGS.preset))
    config.task, config.obs, config.seed = check_task(FLAGS.task), FLAGS.obs, FLAGS.seed
    config.data.dir, config.data.num_episodes, config.data.seed = (
        FLAGS.data_dir, FLAGS.episodes, FLAGS.seed)
    return runs.ensure_demo_data(config)   # the same dataset training would use

  path = common.run_guarded(run)
  print(path)


if __name__ == "__main__":
  app.run(main)
