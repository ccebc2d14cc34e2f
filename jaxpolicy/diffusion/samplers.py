"""Forward noising, the DDIM update and k-step samplers as single `lax.scan` programs.

A *denoiser* is any function `denoise(x_t, t) -> model_output` with `x_t` of shape
(B, H, A) and `t` an int32 array of shape (B,); its output is an x0 ("sample") or an
epsilon prediction according to the schedule. Observation conditioning is closed over by
the caller, so the same sampler serves the teacher, SDM's generator, CD and STEP. A
denoiser may also offer its timestep conditioning apart (`conditioning(ts)` for ts of
shape (k, B), `with_conditioning(x_t, c)`; `nets.Denoiser`): a k-step sampler then computes
the k steps' conditioning in one batched pass before its loop.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxpolicy.diffusion.schedule import Schedule, prev_timesteps, timesteps

Denoiser = Callable[[jax.Array, jax.Array], jax.Array]


def _gather(table: np.ndarray, t: jax.Array, ndim: int) -> jax.Array:
  """table[t] broadcast against a (B, ...) array of `ndim` dims."""
  v = jnp.asarray(table, jnp.float32)[t]
  return v.reshape(v.shape + (1,) * (ndim - v.ndim))


def add_noise(schedule: Schedule, x0, noise, t):
  """q(x_t | x0): sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, t int array of shape (B,)."""
  abar = _gather(schedule.alphas_cumprod, t, x0.ndim)
  return jnp.sqrt(abar) * x0 + jnp.sqrt(1.0 - abar) * noise


def split_prediction(schedule: Schedule, x_t, model_output, t):
  """Returns (x0, eps) implied by a model output; x0 is not clipped here."""
  abar = _gather(schedule.alphas_cumprod, t, x_t.ndim)
  if schedule.prediction_type == "sample":
    x0 = model_output
    eps = (x_t - jnp.sqrt(abar) * x0) / jnp.sqrt(1.0 - abar)
  else:
    eps = model_output
    x0 = (x_t - jnp.sqrt(1.0 - abar) * eps) / jnp.sqrt(abar)
  return x0, eps


def predict_x0(schedule: Schedule, x_t, model_output, t):
  """The (clipped when `clip_sample`) x0 estimate of a model output."""
  x0, _ = split_prediction(schedule, x_t, model_output, t)
  return jnp.clip(x0, -1.0, 1.0) if schedule.clip_sample else x0


def ddim_step(schedule: Schedule, x_t, model_output, t, prev_t, guide=None):
  """One deterministic DDIM step (eta = 0) from t to prev_t (prev_t < 0 => abar = 1).

  As diffusers with `use_clipped_model_output=False`: epsilon comes from the unclipped x0,
  the clipped x0 is what is carried to prev_t. `guide` = (target, w), w in [0, 1]
  broadcasting against x: inpainting in x0 space, x0 <- w target + (1 - w) x0, with the
  epsilon of the guided x0 blended in by w (w = 0 leaves the step exactly unguided).
  """
  x0, eps = split_prediction(schedule, x_t, model_output, t)
  if schedule.clip_sample:
    x0 = jnp.clip(x0, -1.0, 1.0)
  if guide is not None:
    target, w = guide
    x0 = w * target + (1.0 - w) * x0
    abar = _gather(schedule.alphas_cumprod, t, x_t.ndim)
    eps = w * (x_t - jnp.sqrt(abar) * x0) / jnp.sqrt(1.0 - abar) + (1.0 - w) * eps
  abar_prev = _gather(schedule.abar_with_one(), jnp.where(prev_t < 0, -1, prev_t), x_t.ndim)
  return jnp.sqrt(abar_prev) * x0 + jnp.sqrt(1.0 - abar_prev) * eps


def ddim_grid(
  schedule: Schedule, num_steps: int, spacing: str = "leading", first_timestep: int | None = None
):
  """(timesteps, prev_timesteps) int32 arrays of a k-step sampler.

  `first_timestep` (STEP's t0) starts the grid exactly there: k timesteps evenly spaced
  from it down to 0 (rounded), each step going to the next and the last to the clean
  sample (alpha-bar 1). For t0 = the leading grid's first point this is the leading grid.
  It needs k distinct integer timesteps: k - 1 <= first_timestep < T.
  """
  T = schedule.num_train_timesteps
  if first_timestep is None:
    ts = timesteps(T, num_steps, spacing)
    return ts, prev_timesteps(ts, T, num_steps)
  if not num_steps - 1 <= first_timestep < T:
    raise ValueError(
      f"a {num_steps}-step grid starting at t0 = {first_timestep} needs {num_steps - 1} <= t0 < {T}"
    )
  ts = np.round(np.linspace(first_timestep, 0, num_steps)).astype(np.int32)
  return ts, np.append(ts[1:], -1).astype(np.int32)


def ddim_sample(schedule: Schedule, denoise: Denoiser, x_init, ts, prev_ts, guide=None):
  """Runs the DDIM steps (ts[i] -> prev_ts[i]) from x_init as one `lax.scan`.

  `ts`/`prev_ts` are static numpy arrays; the number of network evaluations is len(ts).
  `guide`: (target, weights) inpainting of every step (`ddim_step`), e.g. real-time
  chunking's committed actions.
  """
  batch = x_init.shape[0]
  ts_b = jnp.broadcast_to(jnp.asarray(ts, jnp.int32)[:, None], (len(ts), batch))
  prev_b = jnp.broadcast_to(jnp.asarray(prev_ts, jnp.int32)[:, None], (len(ts), batch))
  hoist = len(ts) > 1 and hasattr(denoise, "conditioning")
  # every step's conditioning at once, outside the loop (one read of its weights)
  conds = denoise.conditioning(ts_b) if hoist else None

  def body(x, step):
    t_b, prev_t_b, c = step
    out = denoise.with_conditioning(x, c) if hoist else denoise(x, t_b)
    return ddim_step(schedule, x, out, t_b, prev_t_b, guide), None

  x, _ = jax.lax.scan(body, x_init, (ts_b, prev_b, conds))
  return x
