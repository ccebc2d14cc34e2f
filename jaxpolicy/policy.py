"""A policy: observation history -> normalised obs -> encoder -> sampler -> actions.

One jitted function per policy covers the whole call. Methods only provide the sampler
(`sample(sampler_params, cond, rng) -> normalised action chunk`).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxpolicy.data.dataset import normalize_obs
from jaxpolicy.data.normalizer import Normalizer
from jaxpolicy.nets import Nets, inference_unet_params


@dataclasses.dataclass
class Policy:
  name: str
  nfe: int
  nets: Nets
  normalizer: Normalizer
  sample: Callable  # (sampler_params, cond, rng) -> (B, H, A) normalised
  encoder_params: Any
  sampler_params: Any
  obs_shapes: dict
  n_action_steps: int

  def __post_init__(self):
    self._jit = jax.jit(self._forward)

  def _forward(self, params, obs, rng):
    enc_params, sampler_params = params
    cond = self.nets.encode(enc_params, normalize_obs(self.normalizer, obs))
    x = self.sample(sampler_params, cond, rng)
    return self.normalizer["action"].unnormalize(x)

  @property
  def params(self):
    return (self.encoder_params, self.sampler_params)

  def check_obs(self, obs: dict):
    n = self.nets.n_obs_steps
    if set(obs) != set(self.obs_shapes):
      raise ValueError(f"policy {self.name} expects observation keys {sorted(self.obs_shapes)}, "
                       f"got {sorted(obs)}")
    for k, shape in self.obs_shapes.items():
      got = tuple(np.shape(obs[k]))
      if len(got) != len(shape) + 2 or got[1] != n or got[2:] != tuple(shape):
        raise ValueError(f"observation {k!r} must have shape (batch, {n}, "
                         f"{', '.join(map(str, shape))}) (n_obs_steps={n}), got {got}")

  def chunk(self, obs: dict, rng) -> jax.Array:
    """The full predicted chunk (B, horizon, A), unnormalised."""
    self.check_obs(obs)
    return self._jit(self.params, {k: jnp.asarray(v, jnp.float32) for k, v in obs.items()}, rng)

  def __call__(self, obs: dict, rng) -> np.ndarray:
    """The executed actions (B, n_action_steps, A): chunk[n_obs_steps-1 : +n_action_steps]."""
    start = self.nets.n_obs_steps - 1
    return np.asarray(self.chunk(obs, rng))[:, start:start + self.n_action_steps]

  def compiled_cost(self, batch: int):
    """(compile seconds, compiled executable) for a batch size, compiled apart."""
    obs = {k: jax.ShapeDtypeStruct((batch, self.nets.n_obs_steps) + tuple(s), jnp.float32)
           for k, s in self.obs_shapes.items()}
    t0 = time.perf_counter()
    lowered = self._jit.lower(self.params, obs, jax.random.PRNGKey(0))
    compiled = lowered.compile()
    return time.perf_counter() - t0, compiled


def unet_policy(name, config, nets: Nets, normalizer, sample, encoder_params, unet_params, nfe,
                obs_shapes, prune: bool = True) -> Policy:
  """A policy whose sampler takes U-Net params; prunes dead kernel taps once, here."""
  sampler_params = inference_unet_params(unet_params, config) if prune else unet_params
  return Policy(name, nfe, nets, normalizer, sample, encoder_params, sampler_params,
                dict(obs_shapes), config.policy.n_action_steps)
