"""Sliding windows over episodes with Diffusion Policy's edge padding, sampled on device.

`load_demos` reads a dataset (any format), checks it and splits held-out episodes;
`window_indices` gives every window's indices, edge-padded. The whole normalised dataset and
the window table live on the device, so a batch is one gather inside the jitted train step;
camera frames stay uint8 there. Where windows start, which positions are observed, targeted
and executed: docs/data.md, "Training windows".
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxpolicy import obs as obs_lib
from jaxpolicy.data import formats, storage
from jaxpolicy.data.normalizer import MinMax, Normalizer


def window_indices(episode_ends: np.ndarray, horizon: int, pad_before: int, pad_after: int,
                   episodes: np.ndarray | None = None, shift: int = 0) -> np.ndarray:
  """(W, horizon) absolute step indices of every window, edge-clipped per episode.

  `shift` offsets every index by that many steps (clipped to the same episode): shift =
  -n_action_steps gives the chunk that precedes each window (STEP's previous chunk).
  """
  starts = np.concatenate([[0], episode_ends[:-1]])
  episodes = np.arange(len(episode_ends)) if episodes is None else episodes
  rows = []
  for e in episodes:
    s, end = int(starts[e]), int(episode_ends[e])
    length = end - s
    for i in range(-pad_before, length - horizon + pad_after + 1):
      rel = np.arange(i, i + horizon) + shift
      rows.append(s + np.clip(rel, 0, length - 1))
  return np.asarray(rows, np.int32).reshape(-1, horizon)


def split_episodes(n_episodes: int, val_episodes: int, seed: int):
  """(train, val) episode ids; at least one training episode."""
  if n_episodes < 2 and val_episodes > 0:
    return np.arange(n_episodes), np.arange(0)
  val_episodes = min(val_episodes, n_episodes - 1)
  perm = np.random.default_rng(seed).permutation(n_episodes)
  return np.sort(perm[val_episodes:]), np.sort(perm[:val_episodes])


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Windows:
  """Device-resident normalised data and a window table; `sample` is jittable."""
  obs: dict            # key -> (N, ...) normalised
  action: jax.Array    # (N, A) normalised
  index: jax.Array     # (W, horizon)
  prev_index: jax.Array  # (W, horizon): the chunk n_action_steps earlier (edge-padded)
  n_obs_steps: int = dataclasses.field(metadata=dict(static=True))

  @property
  def num_windows(self) -> int:
    return self.index.shape[0]

  def take(self, rows):
    """{"obs": {k: (B, n_obs, ...)}, "action": (B, H, A), "prev_action": (B, H, A)}.

    prev_action is the ground-truth chunk preceding the window by n_action_steps: exactly
    the chunk a policy produced one call earlier (STEP's previous-chunk input).
    """
    idx = self.index[rows]
    obs = {k: v[idx[:, :self.n_obs_steps]] for k, v in self.obs.items()}
    return {"obs": obs, "action": self.action[idx], "prev_action": self.action[self.prev_index[rows]]}

  def sample(self, rng, batch_size: int):
    rows = jax.random.randint(rng, (batch_size,), 0, self.index.shape[0])
    return self.take(rows)


@dataclasses.dataclass
class DemoData:
  """An episode dataset with its normaliser and train/validation windows."""
  normalizer: Normalizer
  train: Windows
  val: Windows | None
  obs_shapes: dict
  action_dim: int
  num_episodes: int
  raw: dict
  episode_ends: np.ndarray
  train_episodes: np.ndarray
  val_episodes: np.ndarray


def check_episodes(path: str, raw: dict, ends: np.ndarray, horizon: int,
                   val_episodes: int) -> None:
  """Refuses data a policy cannot learn from, naming the fault: non-finite values, fewer
  episodes than training plus held-out ones need, episodes shorter than the horizon."""
  for k, v in raw.items():
    if not np.issubdtype(v.dtype, np.number):
      raise storage.DatasetError(f"dataset {path}: data/{k} has dtype {v.dtype}, not numbers")
    if obs_lib.is_image_key(k):
      check_images(path, k, v)
      continue   # integers: finite
    bad = ~np.isfinite(v.reshape(len(v), -1)).all(axis=1)
    if bad.any():
      step = int(np.argmax(bad))
      episode = int(np.searchsorted(ends, step, side="right"))
      raise storage.DatasetError(f"dataset {path}: data/{k} has NaN or inf at step {step} "
                                 f"(episode {episode}, {int(bad.sum())} steps in all); clean "
                                 f"or drop those episodes")
  need = val_episodes + 1
  if len(ends) < need:
    raise storage.DatasetError(f"dataset {path} has {len(ends)} episode(s); training with "
                               f"data.val_episodes={val_episodes} held out needs at least "
                               f"{need} (or set --config.data.val_episodes=0)")
  lengths = np.diff(np.concatenate([[0], ends]))
  short = np.nonzero(lengths < horizon)[0]
  if len(short):
    raise storage.DatasetError(f"dataset {path}: episode {int(short[0])} has "
                               f"{int(lengths[short[0]])} steps, fewer than policy.horizon = "
                               f"{horizon} ({len(short)} such episodes); drop them or use a "
                               f"shorter horizon")


def check_images(path: str, key: str, frames: np.ndarray) -> None:
  """Camera frames must be uint8 (N, H, W, 3): one line for float frames or channel-first
  (N, 3, H, W) ones."""
  if frames.dtype != np.uint8:
    raise storage.DatasetError(f"dataset {path}: data/{key} has dtype {frames.dtype}; camera "
                               f"frames must be uint8 (0-255), e.g. (frames * 255).round()"
                               f".astype(np.uint8) for [0, 1] floats")
  if frames.ndim == 4 and frames.shape[1] == 3 and frames.shape[-1] != 3:
    raise storage.DatasetError(f"dataset {path}: data/{key} has shape {frames.shape}, "
                               f"channel-first frames; store them channel-last (N, H, W, 3)")
  if frames.ndim != 4 or frames.shape[-1] != 3:
    raise storage.DatasetError(f"dataset {path}: data/{key} has shape {frames.shape}; camera "
                               f"frames must be (N, height, width, 3) RGB")


def load_demos(path: str, obs_keys: tuple[str, ...], horizon: int, n_obs_steps: int,
               n_action_steps: int, val_episodes: int = 1, seed: int = 0,
               normalizer: Normalizer | None = None,
               mapping: formats.Mapping | None = None) -> DemoData:
  """Reads a dataset (DP3-layout zarr, LeRobot folder or robomimic HDF5; `mapping` picks its
  features, formats.py) and builds normalised train/val windows.

  obs_keys are policy observation keys (agent_pos, full_state, point_cloud, img...). The
  normaliser is fitted on the training episodes unless one is given (a student reuses its
  teacher's); camera frames get none and stay uint8 on the device.
  """
  inv = {k: obs_lib.dataset_key(k) for k in obs_keys}
  ds_keys = tuple(inv[k] for k in obs_keys) + ("action",)
  raw, ends = formats.read_episodes(path, ds_keys, mapping)
  check_episodes(path, raw, ends, horizon, val_episodes)
  train_eps, val_eps = split_episodes(len(ends), val_episodes, seed)
  starts = np.concatenate([[0], ends[:-1]])
  train_mask = np.zeros(ends[-1], bool)
  for e in train_eps:
    train_mask[starts[e]:ends[e]] = True
  if normalizer is None:
    fields = {"action": MinMax.fit(raw["action"][train_mask])}
    for k in obs_keys:
      if obs_lib.is_image_key(k):
        continue
      x = raw[inv[k]][train_mask]
      fields[k] = MinMax.fit(x[..., :3] if k == "point_cloud" else x)
    normalizer = Normalizer(fields)
  obs = {k: jnp.asarray(v, jnp.uint8 if obs_lib.is_image_key(k) else jnp.float32) for k, v in
         normalize_obs(normalizer, {k: raw[inv[k]] for k in obs_keys}).items()}
  action = jnp.asarray(normalizer["action"].normalize(raw["action"]), jnp.float32)
  def make(eps):
    win = lambda shift: jnp.asarray(window_indices(ends, horizon, n_obs_steps - 1,
                                                   n_action_steps - 1, eps, shift))
    return Windows(obs, action, win(0), win(-n_action_steps), n_obs_steps)

  return DemoData(normalizer=normalizer, train=make(train_eps),
                  val=make(val_eps) if len(val_eps) else None,
                  obs_shapes={k: tuple(raw[inv[k]].shape[1:]) for k in obs_keys},
                  action_dim=raw["action"].shape[-1], num_episodes=len(ends), raw=raw,
                  episode_ends=ends, train_episodes=train_eps, val_episodes=val_eps)


def _map_obs(obs: dict, fn_of):
  """Applies each key's min/max map (`fn_of(key)`); a point cloud's xyz only (colour kept);
  camera frames pass unchanged (the encoder scales them)."""
  out = {}
  for k, x in obs.items():
    if obs_lib.is_image_key(k):
      out[k] = x
      continue
    fn = fn_of(k)
    if k == "point_cloud":
      xyz = fn(x[..., :3])
      out[k] = jnp.concatenate([xyz, x[..., 3:]], -1) if x.shape[-1] > 3 else xyz
    else:
      out[k] = fn(x)
  return out


def normalize_obs(normalizer: Normalizer, obs: dict):
  """Normalises a dict of observation arrays (numpy or jax) with the same rules."""
  return _map_obs(obs, lambda k: normalizer[k].normalize)


def unnormalize_obs(normalizer: Normalizer, obs: dict):
  """The inverse of `normalize_obs`: raw observations back from normalised ones."""
  return _map_obs(obs, lambda k: normalizer[k].unnormalize)
