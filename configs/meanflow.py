"""MeanFlow (MP1-style): a one-step policy trained from data with the MeanFlow identity.

    python -m launch.train --config=configs/meanflow.py --config.task=drawer-open

Trains the teacher's encoder and U-Net from the demonstrations alone (no teacher), with the
teacher's optimiser and step budget, and evaluates `meanflow_1step` (NFE 1).
Presets: quick (default) | paper | tiny.

model.fused_norm=False and model.time_inputs=2 (both required): the U-Net's plain GroupNorm
+ Mish, which jax.jvp passes, and its second time input (t - r).
meanflow.* fields:
  time_mu, time_sigma   logit-normal (t, r) draws (MP1, MeanFlow: -0.4, 1.0)
  ratio                 fraction of each batch with r < t; the rest r = t (MP1: 0.5)
  adaptive_p, adaptive_c  the loss weight 1 / (err^2 + c)^p per sample (MP1: 0.5, 1e-3)
"""
import ml_collections

from configs import common


def get_config(arg=None):
  c = common.base_config(common.parse_arg(arg))
  c.method = "meanflow"
  c.model.fused_norm = False
  c.model.time_inputs = 2
  c.meanflow = ml_collections.ConfigDict()
  m = c.meanflow
  m.time_mu = -0.4
  m.time_sigma = 1.0
  m.ratio = 0.5
  m.adaptive_p = 0.5
  m.adaptive_c = 1e-3
  return c
