"""SDM one-step distillation of the diffusion-policy teacher -- the main job.

    python -m launch.train --config=configs/sdm.py

With nothing else, this trains the teacher on drawer-open (quick preset) when no trained
teacher exists, distils it into a one-step generator, evaluates both on 20 real-MetaWorld
episodes and prints the table (teacher DDIM-10 vs SDM NFE 1).
Presets: quick (default) | paper | tiny, e.g. --config=configs/sdm.py:paper.
The sdm.* fields are described beside them below; the method: docs/methods.md, "SDM".
"""

import ml_collections

from configs import common


def get_config(arg=None):
  c = common.student_config(common.parse_arg(arg), "sdm")
  common.drop_train_optimizer(c)  # G and D have their own optimisers: sdm.gen_lr, ...
  c.sdm = ml_collections.ConfigDict()
  s = c.sdm
  # weights of the generator's (distribution-matching) and the fake score's losses
  s.lam = 1.0
  s.gamma = 1.0
  s.gen_every = 5  # c: G is updated on every c-th step, D on every step
  # "grid": t from the trailing t_grid_steps-step grid {9, 19, ..., 99}; "uniform": t
  # uniform in [t_min, t_max]
  s.t_mode = "grid"
  s.t_grid_steps = 10
  s.t_min = 0
  s.t_max = 99
  # "dmd": per-sample 1 / mean|x - P_x0| in x0 space; "anchor": the released code's score
  # space, one batch-wide normaliser
  s.normalizer = "dmd"
  s.init = "ema"  # G, D, P from the teacher's "ema" weights or its raw "params"
  # AdamW learning rates of G and D (separate optimisers and schedules)
  s.gen_lr = 5e-5
  s.fake_lr = 5e-5
  s.betas = (0.95, 0.999)
  s.weight_decay = 1e-6
  s.grad_clip = 1.0
  s.warmup_steps = 100
  # > 0: also evaluate the released code's behaviour, that many DDIM steps through G (never
  # the main policy)
  s.eval_anchor_steps = 0
  c.train.steps = 2000
  if c.preset == "paper":
    c.train.steps = 50_000
    s.warmup_steps = 500
  elif c.preset == "tiny":
    c.train.steps = 10
    s.gen_every = 2
    s.warmup_steps = 2
  return c
