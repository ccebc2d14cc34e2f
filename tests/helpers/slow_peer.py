"""`python -m launch.train ...` with this process held back before its first train step.

The multi-host test starts one process through this wrapper: it sleeps --delay seconds (an
env var, JAXPOLICY_TEST_PEER_DELAY_S) before building its train step, as a host that compiles
much more slowly than its peer would, so the peer reaches the first collective long before it.
Usage: python tests/helpers/slow_peer.py <launch.train flags>
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from jaxpolicy import training  # noqa: E402  pylint: disable=wrong-import-position
from launch import common, train  # noqa: E402  pylint: disable=wrong-import-position

_real = training.make_train_step


def _slow_make_train_step(*args, **kwargs):
  time.sleep(float(os.environ["JAXPOLICY_TEST_PEER_DELAY_S"]))
  return _real(*args, **kwargs)


training.make_train_step = _slow_make_train_step

if __name__ == "__main__":
  sys.argv[0] = "launch.train"
  common.run_app(train.main)
