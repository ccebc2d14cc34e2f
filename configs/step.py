"""STEP: spatiotemporal predictor + warm-started k-step DDIM of the unchanged teacher.

    python -m launch.train --config=configs/step.py --config.task=drawer-open

Trains the predictor against the trained teacher (training the teacher first when
missing, like configs/sdm.py), then evaluates on the real MetaWorld, per k in step.ks:
STEP (k NFEs), the teacher's DDIM with the same k from pure noise (leading and trailing
spacing) and the predictor alone (k = 0), with the predictor's MSE against the teacher's
full-step output on held-out windows. Presets: quick (default) | paper | tiny.

step.* fields:
  dim, heads, blocks, mlp_dim   predictor size (d 128, 4 heads, 2 blocks, MLP 256)
  mode            'absolute' chunk, or 'residual' over the previous chunk
  ks              the k values evaluated (0 = predictor alone)
  spacing         the k-step grid STEP warm-starts on ('leading': k=2 -> t = 50, 0)
  t0              >= 0 starts the warm start at this timestep instead of the grid's first
  s, sigma        warm-start coefficients in normal execution
  eps_stall       stall threshold on the RMS change of consecutive executed chunks
                  (normalised action units)
  s_stall, sigma_stall   coefficients when stalled (paper, simulation: sigma 0.1;
                  real robots 1.0-1.4)
  eval_baselines  also evaluate the teacher's pure-noise DDIM-k baselines
"""
import ml_collections

from configs import common


def get_config(arg=None):
  c = common.base_config(common.parse_arg(arg))
  c.method = "step"
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
  s.s = 1.0
  s.sigma = 1.0
  s.eps_stall = 0.01
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
