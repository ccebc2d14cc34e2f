"""MeanFlow (MP1-style): a one-step policy trained from data with the MeanFlow identity.

    python -m launch.train --config=configs/meanflow.py --config.task=drawer-open

Trains the teacher's encoder and U-Net from the demonstrations alone (no teacher), with the
teacher's optimiser and step budget, and evaluates `meanflow_1step` (NFE 1).
Presets: quick (default) | paper | tiny. The meanflow.* fields are described beside them
below; the method: docs/methods.md, "bc, MeanFlow, MIP".
"""

import ml_collections

from configs import common


def get_config(arg=None):
  c = common.base_config(common.parse_arg(arg))
  c.method = "meanflow"
  # both required: the U-Net's plain GroupNorm + Mish, which jax.jvp passes, and its second
  # time input (t - r)
  c.model.fused_norm = False
  c.model.time_inputs = 2
  c.meanflow = ml_collections.ConfigDict()
  m = c.meanflow
  m.time_mu = -0.4  # logit-normal (t, r) draws (MP1, MeanFlow: -0.4, 1.0)
  m.time_sigma = 1.0
  m.ratio = 0.5  # fraction of each batch with r < t; the rest r = t (MP1: 0.5)
  m.adaptive_p = 0.5  # the loss weight 1 / (err^2 + c)^p per sample (MP1: 0.5, 1e-3)
  m.adaptive_c = 1e-3
  return c
