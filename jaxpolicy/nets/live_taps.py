"""Live kernel taps: at short horizons most taps of the U-Net's 5-wide kernels only ever
see zero padding (horizon 4: lengths 4 -> 2 -> 1). Which are live depends on the static
shapes alone, so policies prune the kernels once (`prune_params`) and the training loop
steps a state split to its live taps (`LiveTaps`): the same function and gradients;
checkpoints keep full, PyTorch-shaped kernels.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from jaxpolicy.nets.kernels import live_taps


Path = tuple  # keys from the U-Net's "params" dict down to a kernel


def live_tap_ranges(
  horizon: int, down_dims: Sequence[int], kernel_size: int = 5
) -> dict[Path, tuple[int, int, int]]:
  """{path of a kernel in the U-Net's params: (lo, hi, k)}: taps [lo, hi) of its k are live.

  Only kernels with dead taps are listed. Depends on the static shapes alone.
  """
  n = len(down_dims)
  lengths = [horizon // (2**i) for i in range(n)]  # sequence length per level
  out = {}

  def add(path, lo_hi, k):
    if lo_hi != (0, k):
      out[path] = (*lo_hi, k)

  def block(name, length):
    for sub in ("block0", "block1"):
      add((name, sub, "conv", "kernel"), live_taps(length, kernel_size), kernel_size)

  for i in range(n):
    for r in ("res0", "res1"):
      block(f"down{i}_{r}", lengths[i])
    if i < n - 1:
      add((f"down{i}_downsample", "kernel"), live_taps(lengths[i], 3, stride=2), 3)
  for m in ("mid0", "mid1"):
    block(m, lengths[n - 1])
  for i in range(n - 1):
    length = lengths[n - 1 - i]
    for r in ("res0", "res1"):
      block(f"up{i}_{r}", length)
    if length == 1:  # ConvTranspose1d(4, stride 2, padding 1) from length 1: taps 1 and 2
      add((f"up{i}_upsample", "kernel"), (1, 3), 4)
  add(("final_block", "conv", "kernel"), live_taps(horizon, kernel_size), kernel_size)
  return out


def _key_names(path) -> tuple:
  return tuple(getattr(k, "key", getattr(k, "name", getattr(k, "idx", None))) for k in path)


class LiveTaps:
  """Splits a training state into its live part and the U-Net's dead kernel taps.

  `split(tree)` slices every leaf whose key path ends in a kernel path of `ranges`
  (`live_tap_ranges`) -- the U-Net params of every network in a method's state, their
  optimiser moments and EMA copies alike -- to its live taps, and returns the dead taps
  apart; `join` puts them back. The training loop steps the live state: the same function
  and the same gradients on the live taps as full kernels, with no work on the dead ones,
  which keep their values. Checkpoints and policies see joined, full (PyTorch-shaped)
  kernels.
  """

  def __init__(self, ranges: dict):
    self.ranges = dict(ranges)

  def _range(self, path, leaf):
    names = _key_names(path)
    for p, (lo, hi, k) in self.ranges.items():
      if names[-len(p) :] == p:
        if leaf.shape[0] != k:
          raise ValueError(
            f"{jax.tree_util.keystr(path)} has {leaf.shape[0]} taps, expected "
            f"the full kernel's {k}: is this state already split?"
          )
        return lo, hi
    return None

  def split(self, tree):
    """(live tree, {key path: (taps before, taps after)})."""
    dead = {}

    def cut(path, leaf):
      r = self._range(path, leaf) if getattr(leaf, "ndim", 0) == 3 else None
      if r is None:
        return leaf
      dead[jax.tree_util.keystr(path)] = (leaf[: r[0]], leaf[r[1] :])
      return leaf[r[0] : r[1]]

    return jax.tree_util.tree_map_with_path(cut, tree), dead

  def join(self, live, dead: dict):
    def paste(path, leaf):
      d = dead.get(jax.tree_util.keystr(path))
      return leaf if d is None else jnp.concatenate([d[0], leaf, d[1]], axis=0)

    return jax.tree_util.tree_map_with_path(paste, live)


def prune_params(params, horizon: int, down_dims: Sequence[int], kernel_size: int = 5):
  """Slices every conv kernel to the taps that are live at this static horizon.

  Exact: the pruned network computes the same function. Call once, outside `jit`, when
  a policy is built (training splits its whole state instead: `LiveTaps`).
  """
  return LiveTaps(live_tap_ranges(horizon, down_dims, kernel_size)).split(params)[0]
