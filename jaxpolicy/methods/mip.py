"""mip: the minimal iterative policy of "Much Ado About Noising" (Pan et al., arXiv 2512.01809).

Two supervised steps of one network (the teacher's encoder and U-Net, trained from data, no
teacher), its time input tau * T (T = diffusion.num_train_timesteps):
  step 1, tau = 0:       f(0 | obs)                   regressed onto t* a,  weight 1 / t*^2
  step 2, tau = t*:      f(t* a + (1 - t*) z | obs)   regressed onto a,     weight 1 / (1 - t*)^2
(z ~ N(0, I): the noise is in training only; a the normalised chunk; t* = `mip.t_star`, 0.9
as the paper). Inference is deterministic: a = clip(f(f(0 | obs) at tau = t*)), NFE 2. This is
the paper's form (its release's `mip_origin_loss`; the release's default drops the t* scale).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxpolicy.errors import ConfigError
from jaxpolicy.methods.common import (
  MethodInfo,
  ModelState,
  fit_step,
  init_model_state,
  policy_params,
)
from jaxpolicy.policy import PolicySpec

INFO = MethodInfo(
  name="mip", label="MIP (2 steps)", main_policy="mip_2step", style=("tab:olive", "*", "--", 7)
)


def check_config(config):
  if not 0.0 < config.mip.t_star < 1.0:
    raise ConfigError(
      f"mip.t_star (the second step's time) must be in (0, 1), got {config.mip.t_star}"
    )


def init(config, nets, obs_shapes, rng, teacher_state=None) -> ModelState:
  del teacher_state
  return init_model_state(config, nets, obs_shapes, rng)


def first_step(config, nets, unet_params, cond):
  """f(0 | obs) at tau = 0: the estimate of t* a."""
  del config
  b = cond.shape[0]
  x = jnp.zeros((b, nets.horizon, nets.action_dim), jnp.float32)
  return nets.denoiser(unet_params, cond)(x, jnp.zeros((b,), jnp.float32))


def second_step(config, nets, unet_params, cond, x):
  """f(x | obs) at tau = t*: the chunk."""
  tau = config.mip.t_star * config.diffusion.num_train_timesteps
  return nets.denoiser(unet_params, cond)(x, jnp.full((x.shape[0],), tau, jnp.float32))


def second_step_input(config, a, rng):
  """The second step's training input, t* a + (1 - t*) z: the noise that makes it a
  denoiser (the paper's "stochasticity"), seen in training only."""
  ts = config.mip.t_star
  return ts * a + (1 - ts) * jax.random.normal(rng, a.shape)


def loss(config, nets, params, batch, rng):
  ts = config.mip.t_star
  a = batch["action"]
  cond = nets.encode(params["encoder"], batch["obs"])
  noisy = second_step_input(config, a, rng)
  first = jnp.mean((first_step(config, nets, params["unet"], cond) - ts * a) ** 2) / ts**2
  second = (
    jnp.mean((second_step(config, nets, params["unet"], cond, noisy) - a) ** 2) / (1 - ts) ** 2
  )
  return first + second, {"loss_first": first, "loss_second": second}


def train_step(config, nets, state: ModelState, batch, rng):
  return fit_step(config, state, lambda params: loss(config, nets, params, batch, rng))


def two_step_sampler(config, nets):
  """(sample(unet_params, cond, rng) -> clipped chunk, nfe = 2); deterministic."""

  def sample(unet_params, cond, rng):
    del rng
    x = first_step(config, nets, unet_params, cond)
    return jnp.clip(second_step(config, nets, unet_params, cond, x), -1.0, 1.0)

  return sample, 2


def make_policies(config, nets, state: ModelState, normalizer):
  del normalizer
  params = policy_params(state.model, config.eval.use_ema)
  sample, nfe = two_step_sampler(config, nets)
  return {"mip_2step": PolicySpec(sample, params["encoder"], params["unet"], nfe)}
