"""Farthest-point sampling (FPS) in JAX: jittable, vmap-able, with a validity mask.

`farthest_point_sampling(points, k, mask)` picks `k` of `n` points greedily, each the point
farthest from those already picked (DP3's reduction of a cropped depth cloud, pytorch3d's
deterministic start at the first point). A boolean mask stands in for ragged clouds; with
fewer than `k` valid points the remaining slots repeat real points and the returned
`valid` flags mark the distinct picks. `batched_farthest_point_sampling` maps over all
leading axes. Why not DP3's zero padding: docs/environments.md, "The point-cloud sensor".
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _start_index(mask, start, rng):
  """The first pick: `start` if valid, else the first valid point (or a random valid one)."""
  n = mask.shape[0]
  if rng is not None:
    # uniform over valid points: the valid point with the largest random key
    keys = jnp.where(mask, jax.random.uniform(rng, (n,)), -1.0)
    return jnp.argmax(keys).astype(jnp.int32)
  start = jnp.asarray(start, jnp.int32)
  first_valid = jnp.argmax(mask).astype(jnp.int32)
  return jnp.where(mask[start], start, first_valid)


@functools.partial(jax.jit, static_argnames=("num_samples",))
def farthest_point_sampling(points, num_samples: int, mask=None, start=0, rng=None):
  """Indices of `num_samples` farthest-point samples of `points`.

  Args:
    points: (n, d) coordinates (pass xyz only; extra channels would count as distance).
    num_samples: k, static.
    mask: optional (n,) bool, the points that may be picked (default: all).
    start: index of the first pick (deterministic; if it is masked out, the first valid
      point is used instead).
    rng: optional PRNG key: start at a uniformly random valid point instead.

  Returns:
    (indices (k,) int32, valid (k,) bool). Ties go to the lowest index, as numpy's argmax.
    `valid` marks the first min(k, valid points) slots; with no valid point at all every
    index is 0 and every flag False.
  """
  points = jnp.asarray(points, jnp.float32)
  n = points.shape[0]
  mask = jnp.ones((n,), bool) if mask is None else jnp.asarray(mask, bool)
  first = _start_index(mask, start, rng)
  coords = points.T  # (d, n): reductions over the long axis
  iota = jnp.arange(n, dtype=jnp.int32)
  # min squared distance to the picked set; -inf marks points that must never be picked
  dist0 = jnp.where(mask, jnp.inf, -jnp.inf)
  idx0 = jnp.zeros((num_samples,), jnp.int32)

  def body(i, carry):
    idx, dist, cur = carry
    idx = idx.at[i].set(cur)
    q = jax.lax.dynamic_slice_in_dim(coords, cur, 1, axis=1)
    dist = jnp.minimum(dist, jnp.sum(jnp.square(coords - q), axis=0))
    # argmax with ties to the lowest index, as max + min-index (faster than jnp.argmax in
    # XLA's CPU loop)
    nxt = jnp.min(jnp.where(dist == jnp.max(dist), iota, n)).astype(jnp.int32)
    return idx, dist, nxt

  idx, _, _ = jax.lax.fori_loop(0, num_samples, body, (idx0, dist0, first))
  n_valid = jnp.sum(mask)
  valid = jnp.arange(num_samples) < n_valid
  idx = jnp.where(n_valid > 0, idx, 0)
  return idx, valid


def batched_farthest_point_sampling(points, num_samples: int, mask=None, start=0):
  """FPS over all leading axes: points (..., n, d), mask (..., n) -> ((..., k), (..., k))."""
  points = jnp.asarray(points)
  lead = points.shape[:-2]
  n, d = points.shape[-2:]
  flat = points.reshape((-1, n, d))
  m = jnp.ones(flat.shape[:2], bool) if mask is None else jnp.asarray(mask).reshape((-1, n))
  fn = jax.vmap(lambda p, mk: farthest_point_sampling(p, num_samples, mk, start))
  idx, valid = fn(flat, m)
  return idx.reshape(lead + (num_samples,)), valid.reshape(lead + (num_samples,))


def sample_points(points, num_samples: int, mask=None, start=0, xyz_dims: int = 3):
  """(n, c) points (xyz first, e.g. xyz+rgb) -> ((k, c) FPS subset, (k,) valid flags).

  Distances use the first `xyz_dims` channels only.
  """
  points = jnp.asarray(points)
  idx, valid = farthest_point_sampling(points[:, :xyz_dims], num_samples, mask, start)
  return points[idx], valid
