"""Observation encoders: one frame -> feature vector. Frames are flattened by the caller."""

from __future__ import annotations

import contextlib
import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpolicy.nets.kernels import mish


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
  point_dims[-1] distinct points of the P, in practice far fewer (75-126 of 512 in
  drawer-open's clouds, trained or not; 45-78 of 128). The forward pass keeps no per-point
  activations, only those argmax indices; the backward pass runs the MLP again on the
  selected points of all the frames together (one list of rows: the MLP is per point) and
  differentiates each channel's feature at its argmax point. Shapes are static, so the list
  is padded to the smallest of a few fixed row counts that holds it (`selection_sizes`,
  `lax.switch`): it costs what the frames' selections add up to, not the largest of them
  times the frames. With P = 512 the gradient costs one forward over 512 points plus forward
  and backward over ~100 per frame, instead of forward and backward over 512 (plus the
  forward a `jax.checkpoint` would redo). Undifferentiated (inference, a frozen encoder) it
  is the plain forward.
  """
  return jnp.max(_point_mlp(point_dims, params, x), axis=-2)


# the most row counts the backward pass chooses among (branches of its `lax.switch`) ...
MAX_SIZES = 16
# ... spaced by at least this many rows
MIN_ROW_STEP = 32


def _pointnet_max_fwd(point_dims, params, x):
  feats = _point_mlp(point_dims, params, x)
  top, points = jnp.max(feats, axis=-2), feats.shape[-2]
  # each channel's argmax: its first point equal to the max (as `jnp.argmax`, whose (value,
  # index) reduce runs about as long as the widest layer's matmul on CPU)
  first = jnp.where(feats == top[..., None, :], jnp.arange(points)[:, None], points)
  return top, (params, x, jnp.minimum(jnp.min(first, axis=-2), points - 1))


def selection_sizes(frames: int, points: int, channels: int) -> tuple[int, ...]:
  """The static row counts `frames` frames' selected points are gathered into: evenly
  spaced (at most `MAX_SIZES`, at least `MIN_ROW_STEP` apart, multiples of 8) up to the
  most they can hold, frames * min(points, channels)."""
  top = frames * min(points, channels)
  step = max(MIN_ROW_STEP, -(-top // (MAX_SIZES * 8)) * 8)
  return tuple(range(step, top, step)) + (top,)


def selected_first(idx, points: int):
  """The frames' selected points (the argmax `idx` (F, C) of some channel), as rows of the
  frames' points flattened (frame f's point p is row f * points + p).

  Returns (mask (F, P) of the selected points, order (F * P,): the selected rows in row
  order, then row 0 repeated as padding, pos (F, C): where each channel's argmax lies in
  `order`).
  """
  frames, rows = idx.shape[0], idx.shape[0] * points
  mask = jnp.any(idx[:, :, None] == jnp.arange(points), axis=1)
  flat = mask.reshape(rows)
  # each selected row's place among them: a log-depth scan (`jnp.cumsum` lowers to a
  # reduce-window quadratic in the rows on CPU), then the rows scattered to their places
  rank = jax.lax.associative_scan(jnp.add, flat.astype(jnp.int32)) - 1
  order = (
    jnp.zeros(rows, jnp.int32)
    .at[jnp.where(flat, rank, rows)]
    .set(jnp.arange(rows, dtype=jnp.int32), mode="drop", unique_indices=True)
  )
  return mask, order, rank.reshape(frames, points)[jnp.arange(frames)[:, None], idx]


def selected_gradient(point_dims, params, x, idx, order, pos, size: int, g):
  """The VJP of max-over-points (x (F, P, C_in), idx and g (F, C)) with the MLP run again on
  the first `size` rows of `order` (every point, ungathered, when size == F * P), each
  channel read at the point the forward pass's argmax chose (`idx`; `pos` in `order`):
  recomputed features can differ in the last bit, and a max over them could pick another
  point where points nearly tie."""
  frames, points = x.shape[:2]
  gather = size < frames * points
  rows = pos if gather else jnp.arange(frames)[:, None] * points + idx

  def on_selected(p, x):
    pts = x.reshape(frames * points, x.shape[-1])
    feats = _point_mlp(point_dims, p, pts[order[:size]] if gather else pts)
    return feats[rows, jnp.arange(idx.shape[-1])]

  return jax.vjp(on_selected, params, x)[1](g)


def _gather_size(idx, points: int):
  """(sizes, index into them, order, pos) for the frames of `idx` (F, C): `selection_sizes`,
  the smallest of them holding all the frames' selected points, and `selected_first`'s
  order and positions."""
  sizes = selection_sizes(idx.shape[0], points, idx.shape[-1])
  mask, order, pos = selected_first(idx, points)
  return sizes, jnp.searchsorted(jnp.asarray(sizes), jnp.sum(mask)), order, pos


def _pointnet_max_bwd(point_dims, residuals, g):
  params, x, idx = residuals
  lead, (points, cin), channels = x.shape[:-2], x.shape[-2:], idx.shape[-1]
  x, idx, g = x.reshape(-1, points, cin), idx.reshape(-1, channels), g.reshape(-1, channels)
  sizes, branch, order, pos = _gather_size(idx, points)
  grad = functools.partial(selected_gradient, point_dims, params, x, idx, order, pos)
  if _COUNTING_SIZE is not None:  # tracing for a FLOP count: one size, no switch
    grads = grad(min(round(_COUNTING_SIZE * x.shape[0]), sizes[-1]), g)
  else:  # (under vmap the switch becomes a select that runs every size: correct, not faster)
    grads = jax.lax.switch(branch, [functools.partial(grad, k) for k in sizes], g)
  return grads[0], grads[1].reshape(lead + (points, cin))


pointnet_max.defvjp(_pointnet_max_fwd, _pointnet_max_bwd)


_COUNTING_SIZE = None


@contextlib.contextmanager
def counting_selection(size: float):
  """Traces `pointnet_max`'s backward pass gathering `size` points per frame (rows: `size`
  times the frames), without the switch, so that XLA's cost analysis (which counts a switch
  as its costliest branch) counts the work of a step whose selections take that many. A
  gradient traced under it is wrong wherever the selections exceed it: lower it for
  counting, never run it. `jit` caches traces, so trace a function made under it (a new
  `jax.jit`)."""
  global _COUNTING_SIZE
  old, _COUNTING_SIZE = _COUNTING_SIZE, size
  try:
    yield
  finally:
    _COUNTING_SIZE = old


def gather_sizes(point_dims: tuple[int, ...], params, clouds, frames_per_chunk: int):
  """Per chunk of `clouds` (frames, P, 3) encoded `frames_per_chunk` at a time (0: all at
  once), with `params` the per-point layers' parameters: the rows `pointnet_max`'s backward
  pass gathers, per frame of the chunk (points per frame; at most min(P, C)). For reports:
  what real clouds cost."""
  frames, points = clouds.shape[0], clouds.shape[-2]
  k = _divisor_at_most(frames, frames_per_chunk) if frames_per_chunk else frames
  chunks = clouds.reshape((frames // k, k) + clouds.shape[1:])
  idx = jax.lax.map(lambda x: jnp.argmax(_point_mlp(point_dims, params, x), axis=-2), chunks)
  branch = jax.vmap(lambda i: _gather_size(i, points)[1])(idx)
  return jnp.asarray(selection_sizes(k, points, idx.shape[-1]))[branch] / k


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
    names = [f"point_{kind}{i}" for i in range(len(self.point_dims)) for kind in ("dense", "norm")]
    if self.is_initializing():  # the per-point layers' parameters, made on one point
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
