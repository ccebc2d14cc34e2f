"""Consistency distillation (ManiCM-style) of the teacher: the baseline SDM is compared to.

    python -m launch.train --config=configs/cd.py --config.task=drawer-open

Trains (or reuses) the teacher like configs/sdm.py, distils it, and evaluates the teacher
(DDIM-10) and the one-step consistency policy (NFE 1) side by side.
Presets: quick (default) | paper | tiny. The cd.* fields are described beside them below;
the method: docs/methods.md, "CD".
"""

import ml_collections

from configs import common


def get_config(arg=None):
  c = common.student_config(common.parse_arg(arg), "cd")
  common.drop_train_optimizer(c)  # the online network's optimiser: cd.lr, ...
  c.cd = ml_collections.ConfigDict()
  d = c.cd
  d.skip = 10  # k: the solver step from t_n to t_n - k on the T-step grid
  d.target_decay = 0.95  # EMA decay of the target network
  d.sigma_data = 0.5  # the boundary scalings c_skip, c_out (s and the 10 in 10 t)
  d.timestep_scaling = 10.0
  # AdamW of the online network
  d.lr = 5e-5
  d.betas = (0.95, 0.999)
  d.weight_decay = 1e-6
  d.grad_clip = 1.0
  d.warmup_steps = 100
  d.eval_target = True  # evaluate the target (EMA) network, or False: the online one
  c.train.steps = 2000
  if c.preset == "paper":
    c.train.steps = 50_000
    d.warmup_steps = 500
  elif c.preset == "tiny":
    c.train.steps = 10
    d.warmup_steps = 2
  return c
