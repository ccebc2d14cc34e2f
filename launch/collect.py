"""Collect scripted-expert demonstrations in the real MetaWorld.

    python -m launch.collect --task=drawer-open [--episodes=10] [--data_dir=data]
"""
from absl import app, flags

from launch import common

flags.DEFINE_string("task", None, "MetaWorld v3 task name, e.g. drawer-open.")
flags.DEFINE_integer("episodes", 10, "Number of successful episodes to keep.")
flags.DEFINE_string("data_dir", "data", "Where datasets are stored.")
flags.DEFINE_string("obs", "state", "state | pointcloud")
flags.DEFINE_integer("seed", 0, "Collection seed.")
flags.mark_flags_as_required(["task"])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  common.setup()
  from jaxpolicy.data import collect  # pylint: disable=g-import-not-at-top
  path = common.run_guarded(lambda: collect.ensure_demos(
      FLAGS.data_dir, FLAGS.task, FLAGS.episodes, seed=FLAGS.seed, obs_type=FLAGS.obs))
  print(path)


if __name__ == "__main__":
  app.run(main)
