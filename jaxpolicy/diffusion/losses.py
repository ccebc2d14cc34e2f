"""The DDPM denoising loss shared by the teacher and SDM's fake score."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxpolicy.diffusion.samplers import add_noise
from jaxpolicy.diffusion.schedule import Schedule


def denoising_loss(schedule: Schedule, denoise, x0, rng, t=None):
  """MSE between the model output on x_t and its target (x0 or epsilon).

  t: (B,) int timesteps; uniform over [0, T) when None.
  """
  k_t, k_n = jax.random.split(rng)
  b = x0.shape[0]
  if t is None:
    t = jax.random.randint(k_t, (b,), 0, schedule.num_train_timesteps)
  noise = jax.random.normal(k_n, x0.shape, x0.dtype)
  x_t = add_noise(schedule, x0, noise, t)
  target = x0 if schedule.prediction_type == "sample" else noise
  return jnp.mean((denoise(x_t, t) - target) ** 2)
