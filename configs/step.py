"""STEP: spatiotemporal predictor + warm-started k-step DDIM of the unchanged teacher.

    python -m launch.train --config=configs/step.py --config.task=drawer-open

Trains the predictor against the trained teacher (training the teacher first when
missing, like configs/sdm.py), then evaluates on the real MetaWorld, per k in step.ks:
STEP (k NFEs), the teacher's DDIM with the same k from pure noise (trailing spacing, and
leading for k >= 2: the leading one-step grid is the teacher at t = 0 on pure noise) and
the predictor alone (k = 0), with the predictor's MSE against the teacher's full-step
output on held-out windows. Presets: quick (default) | paper | tiny.

step.* fields:
  dim, heads, blocks, mlp_dim   predictor size (d 128, 4 heads, 2 blocks, MLP 256)
  mode            'absolute' chunk, or 'residual' over the previous chunk (shifted by
                  n_action_steps, so each position adds to the same env step's action)
  ks              the k values evaluated (0 = predictor alone, clipped to [-1, 1])
  spacing         'leading' only (k=2 -> t = 50, 0; k=4 -> 75, 50, 25, 0): a trailing grid
                  starts at t = 99, where the warm start is erased, and is refused
  t0              -1: the leading grid's first timestep (k = 1: t0_k1); >= 0: the warm
                  start is at t0 exactly and the k steps are evenly spaced from t0 down to
                  0 (k NFEs); needs k - 1 <= t0 < T for every k > 0 in ks
  t0_k1           where k = 1 warm-starts when t0 = -1 (50: the teacher's one pass
                  predicts x0 from x_50; the leading one-step grid {0} would be a near-
                  identity on the warm start)
  s, sigma        warm-start coefficients in normal execution (1, 1):
                  x_t0 = sqrt(abar) s a_hat + sqrt(1 - abar) sigma eps
  s_stall, sigma_stall   when stalled: s_stall replaces s, and the chunk's actions get
                  sigma_stall * eps' added (normalised units, then clipped; the same
                  excitation of the executed actions for every k; 0 = off)
  action_kind     'auto' (the suite's: MetaWorld and blockpush are 'delta', a dataset of
                  your own 'absolute') | 'absolute' | 'delta': what a stall means
  eps_stall       absolute actions: stalled when the RMS change between the last two
                  executed chunks (normalised units) is below this
  eps_stall_delta delta actions: stalled when the RMS of the last executed chunk's first
                  delta_dims dims (xyz deltas, the action's own units) is below this
  delta_dims      how many leading action dims are position deltas (MetaWorld 3, blockpush 2)
  eval_baselines  also evaluate the teacher's pure-noise DDIM-k baselines
"""
import ml_collections

from configs import common


def get_config(arg=None):
  c = common.student_config(common.parse_arg(arg), "step")
  c.step = ml_collections.ConfigDict()
  s = c.step
  s.dim = 128
  s.heads = 4
  s.blocks = 2
  s.mlp_dim = 256
  s.mode = "absolute"
  s.ks = (0, 1, 2, 4)
  s.spacing = "leading"
  s.t0 = -1
  s.t0_k1 = 50
  s.s = 1.0
  s.sigma = 1.0
  s.action_kind = "auto"
  s.eps_stall = 0.01
  s.eps_stall_delta = 0.05   # MetaWorld: 0.5 mm per env step (actions move the hand 1 cm/unit)
  s.delta_dims = 3
  s.s_stall = 1.0
  s.sigma_stall = 0.1
  s.eval_baselines = True
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
