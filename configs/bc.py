"""bc: regression of the action chunk (behaviour cloning) with the teacher's encoder and U-Net.

    python -m launch.train --config=configs/bc.py --config.task=drawer-open

Trains from the demonstrations alone (no teacher) with the teacher's optimiser settings and
step budget, and evaluates the one-step policy `bc_1step` (NFE 1).
Presets: quick (default) | paper | tiny.
"""

from configs import common


def get_config(arg=None):
  c = common.base_config(common.parse_arg(arg))
  c.method = "bc"
  return c
