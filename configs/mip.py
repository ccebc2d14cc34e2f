"""MIP: the two-step minimal iterative policy of "Much Ado About Noising" (arXiv 2512.01809).

    python -m launch.train --config=configs/mip.py --config.task=drawer-open

Trains the teacher's encoder and U-Net from the demonstrations alone (no teacher), with the
teacher's optimiser and step budget, and evaluates `mip_2step` (NFE 2, deterministic).
Presets: quick (default) | paper | tiny. The method: docs/methods.md, "bc, MeanFlow, MIP".
"""

import ml_collections

from configs import common


def get_config(arg=None):
  c = common.base_config(common.parse_arg(arg))
  c.method = "mip"
  c.mip = ml_collections.ConfigDict()
  # the second step's time: it denoises t* a + (1 - t*) z in training and refines the first
  # step's output at inference (the paper: 0.9)
  c.mip.t_star = 0.9
  return c
