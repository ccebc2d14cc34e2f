"""Observation encoders: one frame -> feature vector. Frames are flattened by the caller."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from jaxpolicy.nets.unet1d import mish


class StateEncoder(nn.Module):
  """MLP for low-dimensional observations (MetaWorld's 39-d state)."""
  hidden_dims: Sequence[int] = (256,)
  out_dim: int = 64

  @nn.compact
  def __call__(self, obs):
    x = obs["full_state"]
    for i, h in enumerate(self.hidden_dims):
      x = mish(nn.Dense(h, name=f"dense{i}")(x))
    x = nn.Dense(self.out_dim, name="out")(x)
    return nn.LayerNorm(name="norm")(x)


def encode_history(encoder: nn.Module, params, obs):
  """obs: dict of (B, n_obs_steps, ...) arrays -> (B, n_obs_steps * feat) global condition."""
  first = next(iter(obs.values()))
  b, n = first.shape[:2]
  flat = {k: v.reshape((b * n,) + v.shape[2:]) for k, v in obs.items()}
  feat = encoder.apply(params, flat)
  return feat.reshape(b, n * feat.shape[-1])
