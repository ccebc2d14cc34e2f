"""Train any method from a config file; evaluates at the end and writes eval.json.

    python -m launch.train --config=configs/sdm.py [--workdir=runs/...] [--config.task=...]
"""
from absl import app, flags, logging
from ml_collections import config_flags

from launch import common

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:preset]).",
                                lock_config=True)
flags.DEFINE_string("workdir", "", "Run directory (default: runs/<method>_<task>_...).")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  common.setup()
  from jaxpolicy.train import loop  # pylint: disable=g-import-not-at-top
  common.run_guarded(lambda: loop.train(FLAGS.config, FLAGS.workdir or None))


if __name__ == "__main__":
  app.run(main)
