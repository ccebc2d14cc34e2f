"""bc: regression of the action chunk (behaviour cloning), one network evaluation.

The teacher's encoder and U-Net, trained from scratch on the demonstrations (no teacher):
the U-Net runs once as a deterministic map from the observation to the chunk -- its input
zeros, its timestep 0 -- trained by the mean squared error against the demonstrated chunk
(normalised units). Evaluation: a = clip(f(0, 0 | obs), -1, 1), NFE 1. This is the
regression baseline of "Much Ado About Noising" (Pan et al., arXiv 2512.01809): the same
architecture as the generative policies, without noise or iteration.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxpolicy.methods.common import (
  MethodInfo,
  ModelState,
  fit_step,
  init_model_state,
  policy_params,
)
from jaxpolicy.policy import PolicySpec

INFO = MethodInfo(
  name="bc", label="BC (1 step)", main_policy="bc_1step", style=("tab:purple", "v", "--", 5)
)


def init(config, nets, obs_shapes, rng, teacher_state=None) -> ModelState:
  del teacher_state
  return init_model_state(config, nets, obs_shapes, rng)


def regress(nets, unet_params, cond):
  """The U-Net's chunk for zero input at timestep 0 (normalised, unclipped)."""
  b = cond.shape[0]
  x = jnp.zeros((b, nets.horizon, nets.action_dim), jnp.float32)
  return nets.denoiser(unet_params, cond)(x, jnp.zeros((b,), jnp.int32))


def train_step(config, nets, state: ModelState, batch, rng):
  del rng

  def loss_fn(params):
    cond = nets.encode(params["encoder"], batch["obs"])
    return jnp.mean((regress(nets, params["unet"], cond) - batch["action"]) ** 2), {}

  return fit_step(config, state, loss_fn)


def sampler(nets):
  """(sample(unet_params, cond, rng) -> clipped chunk, nfe = 1)."""
  return (lambda unet_params, cond, rng: jnp.clip(regress(nets, unet_params, cond), -1, 1)), 1


def make_policies(config, nets, state: ModelState, normalizer):
  del normalizer
  params = policy_params(state.model, config.eval.use_ema)
  sample, nfe = sampler(nets)
  return {"bc_1step": PolicySpec(sample, params["encoder"], params["unet"], nfe)}
