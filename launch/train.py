"""Train any method from a config file; evaluates at the end (eval.at_end) into eval.json.

    python -m launch.train --config=configs/sdm.py [--workdir=runs/...] [--config.task=...]

Multi-host: run the same command on every host with --multihost (automatic on TPU pods);
--coordinator_address / --num_processes / --process_id when no cluster manager sets them.
"""

from absl import flags
from ml_collections import config_flags

from launch import common

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
  "config", None, "Config file (configs/*.py[:preset]).", lock_config=True
)
flags.DEFINE_string("workdir", "", "Run directory (default: runs/<method>_<task>_...).")
flags.DEFINE_bool("multihost", False, "Call jax.distributed.initialize() first.")
flags.DEFINE_string("coordinator_address", "", "host:port of process 0 (multi-host).")
flags.DEFINE_integer("num_processes", 0, "Number of processes (multi-host).")
flags.DEFINE_integer("process_id", -1, "This process's index (multi-host).")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  common.setup()
  from jaxpolicy import training  # pylint: disable=g-import-not-at-top
  from jaxpolicy.runtime import sharding  # pylint: disable=g-import-not-at-top

  sharding.initialize_distributed(
    FLAGS.multihost, FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id
  )
  common.run_guarded(lambda: training.train(FLAGS.config, FLAGS.workdir or None))


if __name__ == "__main__":
  common.run_app(main)
