"""Low-dimensional toys with known answers for the methods' learning tests.

Data is a Gaussian N(mu, diag(s2)) over (H, A) action chunks, so the exact x0 posterior
mean of a noisy sample is known in closed form:
  E[x0 | x_t] = mu + c_t (x_t - sqrt(abar_t) mu),  c_t = sqrt(abar_t) s2 / (abar_t s2 + 1 - abar_t).
`ToyUnet` has the U-Net's `apply(params, x, t, cond)` signature and dispatches on params:
  {"mu", "log_s2"}     the exact posterior mean of N(mu, exp(log_s2)) (a teacher, or a
                       learnable "fake score" of that family);
  {"a", "b"}           an affine generator x = a * z + b (its output is N(b, a^2));
  {"alpha", "beta"}    a per-timestep affine x0 model alpha[t] + beta[t] * x (the family
                       that holds the consistency function of Gaussian data).
`toy_nets` wraps it in `Nets` with a real (tiny) state encoder whose output the toys
ignore, so the methods' own `train_step`s run unchanged. `mlp_nets` does the same with
`ToyMLP`, a small learnable network with the U-Net's call signature, for answers no closed
form above holds (a noise-to-two-modes map).
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxpolicy import nets as nets_lib
from jaxpolicy.diffusion.schedule import Schedule
from jaxpolicy.nets.encoders import StateEncoder


@dataclasses.dataclass(frozen=True)
class ToyUnet:
  num_train_timesteps: int = 100

  def apply(self, params, x, t, cond):
    del cond
    T = self.num_train_timesteps
    if "a" in params:
      return params["a"] * x + params["b"]
    if "alpha" in params:
      tt = jnp.clip(t, 0, T - 1)
      return params["alpha"][tt][:, None, :] + params["beta"][tt][:, None, :] * x
    abar = jnp.asarray(Schedule(T).alphas_cumprod, jnp.float32)[jnp.clip(t, 0, T - 1)]
    ab = abar[:, None, None]
    s2 = jnp.exp(params["log_s2"])
    c = jnp.sqrt(ab) * s2 / (ab * s2 + 1 - ab)
    return params["mu"] + c * (x - jnp.sqrt(ab) * params["mu"])


def gaussian(mu, s) -> dict:
  return {"mu": jnp.asarray(mu, jnp.float32), "log_s2": jnp.log(jnp.asarray(s, jnp.float32) ** 2)}


def posterior_affine(mu, s, T: int = 100) -> dict:
  """{"alpha", "beta"} (T, A) that reproduce the exact posterior mean of N(mu, s^2)."""
  ab = Schedule(T).alphas_cumprod[:, None]
  mu, s2 = np.asarray(mu, np.float64)[None], np.asarray(s, np.float64)[None] ** 2
  c = np.sqrt(ab) * s2 / (ab * s2 + 1 - ab)
  return {
    "alpha": jnp.asarray(mu * (1 - c * np.sqrt(ab)), jnp.float32),
    "beta": jnp.asarray(c, jnp.float32),
  }


def toy_nets(action_dim: int, horizon: int = 1):
  """(Nets with ToyUnet, encoder params, a batch maker) for observation-free toys."""
  enc = StateEncoder(hidden_dims=(8,), out_dim=4)
  nets = nets_lib.Nets(enc, ToyUnet(), horizon, 1, action_dim)
  enc_params = enc.init(jax.random.PRNGKey(0), {"full_state": jnp.zeros((1, 3))})

  def batch(size: int):
    return {
      "obs": {"full_state": jnp.zeros((size, 1, 3))},
      "action": jnp.zeros((size, horizon, action_dim)),
    }

  return nets, enc_params, batch


def ddim_chain_f64(mu, s, x, ts, prev_ts, T: int = 100):
  """The exact teacher's deterministic DDIM chain in float64 (x0 clipped to [-1, 1],
  epsilon from the unclipped x0, alpha-bar 1 below 0): the ODE end point CD must learn."""
  abar = Schedule(T).alphas_cumprod
  mu, s2 = np.asarray(mu, np.float64), np.asarray(s, np.float64) ** 2
  x = np.asarray(x, np.float64)
  for t, p in zip(ts, prev_ts):
    ab = abar[t]
    c = np.sqrt(ab) * s2 / (ab * s2 + 1 - ab)
    x0 = mu + c * (x - np.sqrt(ab) * mu)
    eps = (x - np.sqrt(ab) * x0) / np.sqrt(1 - ab)
    ab_prev = abar[p] if p >= 0 else 1.0
    x = np.sqrt(ab_prev) * np.clip(x0, -1, 1) + np.sqrt(1 - ab_prev) * eps
  return x


class ToyMLP(nn.Module):
  """An MLP over (flattened chunk, time(s) / 100, condition) with the U-Net's call
  signature, `apply(params, x, t, cond[, timestep2=...])`; `time_inputs` as the U-Net's."""

  hidden: int = 128
  layers: int = 3
  time_inputs: int = 1

  @nn.compact
  def __call__(self, x, timestep=None, global_cond=None, films=None, timestep2=None):
    del films
    b, h, a = x.shape
    times = [timestep] + ([timestep2] if self.time_inputs == 2 else [])
    y = jnp.concatenate(
      [x.reshape(b, h * a)]
      + [t.astype(jnp.float32)[:, None] / 100.0 for t in times]
      + [global_cond],
      axis=-1,
    )
    for i in range(self.layers):
      y = nn.silu(nn.Dense(self.hidden, name=f"dense{i}")(y))
    return nn.Dense(h * a, name="out")(y).reshape(b, h, a)


def mlp_nets(action_dim: int, horizon: int = 1, time_inputs: int = 1, hidden: int = 128):
  """(Nets with a ToyMLP, a batch maker) for observation-free toys: one constant frame."""
  enc = StateEncoder(hidden_dims=(8,), out_dim=4)
  nets = nets_lib.Nets(enc, ToyMLP(hidden, time_inputs=time_inputs), horizon, 1, action_dim)

  def batch(actions):
    return {"obs": {"full_state": jnp.zeros((actions.shape[0], 1, 3))}, "action": actions}

  return nets, batch
