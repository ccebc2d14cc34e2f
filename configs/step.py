"""STEP: spatiotemporal predictor + warm-started k-step DDIM of the unchanged teacher.

    python -m launch.train --config=configs/step.py --config.task=drawer-open

Trains the predictor against the trained teacher (training the teacher first when missing,
like configs/sdm.py), then evaluates per k in step.ks: STEP, the teacher's DDIM-k from noise
and the predictor alone (k = 0), with the predictor's MSE against the teacher on held-out
windows. Presets: quick (default) | paper | tiny. The step.* fields are described beside
them below; the method, and why leading spacing only: docs/methods.md, "STEP".
"""

import ml_collections

from configs import common


def get_config(arg=None):
  c = common.student_config(common.parse_arg(arg), "step")
  c.step = ml_collections.ConfigDict()
  s = c.step
  # the predictor's size: width, attention heads, cross-attention blocks, MLP width
  s.dim = 128
  s.heads = 4
  s.blocks = 2
  s.mlp_dim = 256
  # "absolute" chunk, or "residual" over the previous chunk (shifted by n_action_steps, so
  # each position adds to the same env step's action)
  s.mode = "absolute"
  s.ks = (0, 1, 2, 4)  # the k values evaluated (0 = the predictor alone)
  # "leading" only (k = 2 -> t = 50, 0; k = 4 -> 75, 50, 25, 0): a trailing grid starts at
  # t = 99, where the warm start is erased, and is refused
  s.spacing = "leading"
  # -1: the leading grid's first timestep (k = 1: t0_k1); >= 0: the warm start at t0 exactly
  # and the k steps evenly spaced down to 0 (needs k - 1 <= t0 < T for every k > 0 in ks)
  s.t0 = -1
  s.t0_k1 = 50  # where k = 1 warm-starts when t0 = -1: one x0 prediction from x_50
  # warm-start coefficients: x_t0 = sqrt(abar) s a_hat + sqrt(1 - abar) sigma eps
  s.s = 1.0
  s.sigma = 1.0
  # what a stall means: "auto" (the suite's: MetaWorld and blockpush "delta", a dataset of
  # your own "absolute") | "absolute" | "delta"
  s.action_kind = "auto"
  # absolute actions: stalled when the RMS change between the last two executed chunks
  # (normalised units) is below this
  s.eps_stall = 0.01
  # delta actions: stalled when the RMS of the last executed chunk's first delta_dims dims
  # (the action's own units) is below this; MetaWorld: 0.5 mm per env step (actions move the
  # hand 1 cm/unit)
  s.eps_stall_delta = 0.05
  s.delta_dims = 3  # leading action dims that are position deltas (blockpush has 2)
  # when stalled: s_stall replaces s, and the chunk gets sigma_stall * eps' added
  # (normalised units, then clipped; the same for every k; 0 = off)
  s.s_stall = 1.0
  s.sigma_stall = 0.1
  s.eval_baselines = True  # also evaluate the teacher's DDIM-k from noise
  c.train.lr = 1e-4
  c.train.weight_decay = 1e-4
  c.train.steps = 3000
  if c.preset == "paper":
    c.train.steps = 100_000
    c.train.batch_size = 64
  elif c.preset == "tiny":
    c.train.steps = 10
    s.dim, s.heads, s.mlp_dim = 16, 2, 32
    s.ks = (0, 2)
  return c
