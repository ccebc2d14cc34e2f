"""Observation encoders: one frame -> feature vector. Frames are flattened by the caller."""
from __future__ import annotations

import functools
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
  many, one after another (`lax.map`, forward and backward): the same function, with
  activations small enough to stay in a CPU's cache (see `Nets.frames_per_chunk`). The
  point-cloud encoder keeps no per-point activations for its backward pass (`pointnet_max`
  recomputes them), so a chunk's residuals are small. A symbolic batch (`jax.export`) is
  encoded whole.
  """
  first = next(iter(obs.values()))
  b, n = first.shape[:2]
  flat = {k: v.reshape((b * n,) + v.shape[2:]) for k, v in obs.items()}
  # chunks need a concrete frame count (an exported program's batch is symbolic)
  concrete = isinstance(b, int) and isinstance(n, int)
  k = _divisor_at_most(b * n, frames_per_chunk) if frames_per_chunk and concrete else None
  if k is not None and k < b * n:
    chunks = {key: v.reshape((b * n // k, k) + v.shape[1:]) for key, v in flat.items()}
    feat = jax.lax.map(lambda o: encoder.apply(params, o), chunks)
    feat = feat.reshape(b * n, feat.shape[-1])
  else:
    feat = encoder.apply(params, flat)
  return feat.reshape(b, n * feat.shape[-1])


def _divisor_at_most(n: int, k: int) -> int:
  """The largest divisor of n that is <= k (k >= 1)."""
  return max(d for d in range(1, min(n, max(k, 1)) + 1) if n % d == 0)


# DP3's LayerNorms are PyTorch's, whose epsilon is 1e-5 (flax's default is 1e-6)
DP3_LN_EPS = 1e-5


def _point_mlp(point_dims: tuple[int, ...], params, x):
  """DP3's per-point MLP (Dense, LayerNorm, ReLU per layer) on x (..., P, C_in)."""
  for i, h in enumerate(point_dims):
    x = nn.Dense(h).apply({"params": params[f"point_dense{i}"]}, x)
    x = nn.LayerNorm(epsilon=DP3_LN_EPS).apply({"params": params[f"point_norm{i}"]}, x)
    x = nn.relu(x)
  return x


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def pointnet_max(point_dims: tuple[int, ...], params, x):
  """max over the points of DP3's per-point MLP: x (..., P, C_in) -> (..., point_dims[-1]).

  Exactly that function and its gradient, computed for less. The gradient of a max over P
  points reaches, per output channel, only the point where that channel peaks: at most C =
  point_dims[-1] points of the P. The forward pass keeps no per-point activations, only those
  argmax indices; the backward pass runs the MLP again on the (at most C) selected points
  and differentiates that (max over them is the same max). With P = 512 and C = 256 the
  gradient costs one forward over 512 points plus forward and backward over 256, instead
  of forward and backward over 512 (plus the forward a `jax.checkpoint` would redo).
  Undifferentiated (inference, a frozen encoder) it is the plain forward.
  """
  return jnp.max(_point_mlp(point_dims, params, x), axis=-2)


def _pointnet_max_fwd(point_dims, params, x):
  feats = _point_mlp(point_dims, params, x)
  # with no more points than channels every point may carry gradient: keep them all
  idx = jnp.argmax(feats, axis=-2) if x.shape[-2] > feats.shape[-1] else None
  return jnp.max(feats, axis=-2), (params, x, idx)


def _pointnet_max_bwd(point_dims, residuals, g):
  params, x, idx = residuals

  def on_selected(p, x):
    pts = x if idx is None else jnp.take_along_axis(x, idx[..., None], axis=-2)
    return jnp.max(_point_mlp(point_dims, p, pts), axis=-2)

  return jax.vjp(on_selected, params, x)[1](g)


pointnet_max.defvjp(_pointnet_max_fwd, _pointnet_max_bwd)


class DP3Encoder(nn.Module):
  """DP3's point-cloud encoder: PointNet on xyz plus an MLP on the robot state.

  Per point: Dense 3->64->128->256, each followed by LayerNorm and ReLU; max-pool over the
  points; Dense 256->out_dim + LayerNorm (LayerNorms with PyTorch's epsilon, as DP3). Robot
  state (`agent_pos`, 9-d): Dense 9->64, ReLU, Dense 64->64 (no final activation, as DP3's
  `create_mlp`). Output per frame: concat(point feature, state feature), out_dim +
  state_dims[-1] wide.

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
    names = [f"point_{kind}{i}" for i in range(len(self.point_dims))
             for kind in ("dense", "norm")]
    if self.is_initializing():   # the per-point layers' parameters, made on one point
      h = x[..., :1, :]
      for i, dim in enumerate(self.point_dims):
        h = nn.Dense(dim, name=f"point_dense{i}")(h)
        h = nn.relu(nn.LayerNorm(epsilon=DP3_LN_EPS, name=f"point_norm{i}")(h))
    params = {k: self.variables["params"][k] for k in names}
    x = pointnet_max(tuple(self.point_dims), params, x)
    x = nn.Dense(self.out_dim, name="point_out")(x)
    x = nn.LayerNorm(epsilon=DP3_LN_EPS, name="point_out_norm")(x)
    s = obs["agent_pos"]
    for i, h in enumerate(self.state_dims):
      s = nn.Dense(h, name=f"state_dense{i}")(s)
      if i < len(self.state_dims) - 1:
        s = nn.relu(s)
    return jnp.concatenate([x, s], axis=-1)
