"""Observation encoders: one frame -> feature vector. Frames are flattened by the caller."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpolicy.nets.unet1d import mish


class StateEncoder(nn.Module):
  """MLP for one low-dimensional observation (MetaWorld's 39-d state, or a robot's own)."""
  hidden_dims: Sequence[int] = (256,)
  out_dim: int = 64
  key: str = "full_state"

  @nn.compact
  def __call__(self, obs):
    x = obs[self.key]
    for i, h in enumerate(self.hidden_dims):
      x = mish(nn.Dense(h, name=f"dense{i}")(x))
    x = nn.Dense(self.out_dim, name="out")(x)
    return nn.LayerNorm(name="norm")(x)


def encode_history(encoder: nn.Module, params, obs, frames_per_chunk: int = 0):
  """obs: dict of (B, n_obs_steps, ...) arrays -> (B, n_obs_steps * feat) global condition.

  `frames_per_chunk` > 0 encodes the B * n_obs_steps frames in chunks of (at most) that
  many, one after another (`lax.map`), each rematerialised in the backward pass
  (`jax.checkpoint`): the same function, with activations small enough to stay in a CPU's
  cache (see `Nets.frames_per_chunk`). A symbolic batch (`jax.export`) is encoded whole.
  """
  first = next(iter(obs.values()))
  b, n = first.shape[:2]
  flat = {k: v.reshape((b * n,) + v.shape[2:]) for k, v in obs.items()}
  # chunks need a concrete frame count (an exported program's batch is symbolic)
  concrete = isinstance(b, int) and isinstance(n, int)
  k = _divisor_at_most(b * n, frames_per_chunk) if frames_per_chunk and concrete else None
  if k is not None and k < b * n:
    chunks = {key: v.reshape((b * n // k, k) + v.shape[1:]) for key, v in flat.items()}
    feat = jax.lax.map(jax.checkpoint(lambda o: encoder.apply(params, o)), chunks)
    feat = feat.reshape(b * n, feat.shape[-1])
  else:
    feat = encoder.apply(params, flat)
  return feat.reshape(b, n * feat.shape[-1])


def _divisor_at_most(n: int, k: int) -> int:
  """The largest divisor of n that is <= k (k >= 1)."""
  return max(d for d in range(1, min(n, max(k, 1)) + 1) if n % d == 0)


class DP3Encoder(nn.Module):
  """DP3's point-cloud encoder: PointNet on xyz plus an MLP on the robot state.

  Per point: Dense 3->64->128->256, each followed by LayerNorm and ReLU; max-pool over the
  points; Dense 256->out_dim + LayerNorm. Robot state (`agent_pos`, 9-d): Dense 9->64, ReLU,
  Dense 64->64 (no final activation, as DP3's `create_mlp`). Output per frame:
  concat(point feature, state feature), out_dim + state_dims[-1] wide.

  obs["point_cloud"]: (B, P, 3 or 6) normalised points (only xyz is used unless
  `use_color`); obs["agent_pos"]: (B, 9).
  """
  out_dim: int = 64
  point_dims: Sequence[int] = (64, 128, 256)
  state_dims: Sequence[int] = (64, 64)
  use_color: bool = False

  @nn.compact
  def __call__(self, obs):
    x = obs["point_cloud"]
    x = x if self.use_color else x[..., :3]
    for i, h in enumerate(self.point_dims):
      x = nn.Dense(h, name=f"point_dense{i}")(x)
      x = nn.relu(nn.LayerNorm(name=f"point_norm{i}")(x))
    x = jnp.max(x, axis=-2)
    x = nn.LayerNorm(name="point_out_norm")(nn.Dense(self.out_dim, name="point_out")(x))
    s = obs["agent_pos"]
    for i, h in enumerate(self.state_dims):
      s = nn.Dense(h, name=f"state_dense{i}")(s)
      if i < len(self.state_dims) - 1:
        s = nn.relu(s)
    return jnp.concatenate([x, s], axis=-1)
