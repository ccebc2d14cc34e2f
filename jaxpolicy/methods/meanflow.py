"""meanflow: MP1-style one-step policy from the MeanFlow identity, trained from data alone.

The U-Net u(z, r, t), the average velocity over [r, t], is regressed onto MeanFlow's target
through one `jax.jvp`, with MP1's adaptive per-sample weight; (t, r) are logit-normal draws.
One step: a = clip(eps - u(eps, 0, 1)), `meanflow_1step`. The U-Net reads two time inputs and
runs the plain GroupNorm + Mish (jvp cannot pass the fused one). The equations, the papers,
and what of MP1's release is not copied: docs/methods.md, "bc, MeanFlow, MIP".
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
  name="meanflow",
  label="MeanFlow (1 step)",
  main_policy="meanflow_1step",
  style=("tab:brown", "P", "-.", 6),
)


def check_config(config):
  m, model = config.meanflow, config.model
  if model.get("fused_norm", True) or model.get("time_inputs", 1) != 2:
    raise ConfigError(
      "MeanFlow needs model.fused_norm=False (jax.jvp cannot pass the fused "
      "GroupNorm + Mish) and model.time_inputs=2 (t and t - r), as "
      "configs/meanflow.py sets them"
    )
  if not 0.0 <= m.ratio <= 1.0:
    raise ConfigError(
      f"meanflow.ratio (the fraction of samples with r < t) must be in [0, 1], got {m.ratio}"
    )
  if not m.time_sigma > 0:
    raise ConfigError(f"meanflow.time_sigma must be > 0, got {m.time_sigma}")
  if m.adaptive_p < 0 or not m.adaptive_c > 0:
    raise ConfigError(
      f"meanflow.adaptive_p must be >= 0 and meanflow.adaptive_c > 0, got "
      f"{m.adaptive_p} and {m.adaptive_c}"
    )


def init(config, nets, obs_shapes, rng, teacher_state=None) -> ModelState:
  del teacher_state
  return init_model_state(config, nets, obs_shapes, rng)


def sample_times(config, rng, batch: int):
  """(t, r), each (batch,): t >= r, both logit-normal; r = t outside a `ratio` fraction."""
  m = config.meanflow
  k_s, k_m = jax.random.split(rng)
  s = jax.nn.sigmoid(m.time_mu + m.time_sigma * jax.random.normal(k_s, (batch, 2)))
  t, r = s.max(axis=1), s.min(axis=1)
  return t, jnp.where(jax.random.uniform(k_m, (batch,)) < m.ratio, r, t)


def average_velocity(config, nets, unet_params, cond, z, r, t):
  """u(z, r, t): the U-Net at times T t and T (t - r)."""
  T = config.diffusion.num_train_timesteps
  return nets.denoiser(unet_params, cond)(z, T * t, T * (t - r))


def total_derivative(config, nets, unet_params, cond, z, r, t, v):
  """(u(z, r, t), du/dt along dz/dt = v with r fixed): Eq. 8 by one forward-mode pass."""
  u_fn = lambda z, r, t: average_velocity(config, nets, unet_params, cond, z, r, t)
  return jax.jvp(u_fn, (z, r, t), (v, jnp.zeros_like(r), jnp.ones_like(t)))


def target(v, dudt, t, r):
  """The regression target of Eq. 10, v - (t - r) du/dt (du/dt the total derivative)."""
  return v - (t - r)[:, None, None] * dudt


def loss(config, nets, params, batch, rng):
  m = config.meanflow
  x = batch["action"]
  k_t, k_e = jax.random.split(rng)
  t, r = sample_times(config, k_t, x.shape[0])
  eps = jax.random.normal(k_e, x.shape)
  z = (1 - t)[:, None, None] * x + t[:, None, None] * eps
  v = eps - x
  cond = nets.encode(params["encoder"], batch["obs"])
  u, dudt = total_derivative(config, nets, params["unet"], cond, z, r, t, v)
  err = u - jax.lax.stop_gradient(target(v, dudt, t, r))
  sq = jnp.mean(err**2, axis=(1, 2))
  w = jax.lax.stop_gradient(1.0 / (sq + m.adaptive_c) ** m.adaptive_p)
  return jnp.mean(w * sq), {"mse": jnp.mean(sq)}


def train_step(config, nets, state: ModelState, batch, rng):
  return fit_step(config, state, lambda params: loss(config, nets, params, batch, rng))


def one_step_sampler(config, nets):
  """(sample(unet_params, cond, rng) -> clip(eps - u(eps, 0, 1)), nfe = 1)."""

  def sample(unet_params, cond, rng):
    b = cond.shape[0]
    eps = jax.random.normal(rng, (b, nets.horizon, nets.action_dim))
    u = average_velocity(config, nets, unet_params, cond, eps, jnp.zeros((b,)), jnp.ones((b,)))
    return jnp.clip(eps - u, -1.0, 1.0)

  return sample, 1


def make_policies(config, nets, state: ModelState, normalizer):
  del normalizer
  params = policy_params(state.model, config.eval.use_ema)
  sample, nfe = one_step_sampler(config, nets)
  return {"meanflow_1step": PolicySpec(sample, params["encoder"], params["unet"], nfe)}
