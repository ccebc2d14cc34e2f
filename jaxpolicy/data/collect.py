"""Demonstrations from MetaWorld's own scripted experts in the real MetaWorld.

Only successful episodes are kept (as DP3). Each episode is the full evaluation length,
recording (observation before the action, action) pairs.
"""
from __future__ import annotations

import logging as _logging
import os
import time

import numpy as np

from jaxpolicy.data import storage
from jaxpolicy.envs import metaworld_cpu as mw
from jaxpolicy.envs.registry import check_task

logging = _logging.getLogger("jaxpolicy")

DEMO_SEED_OFFSET = 1_000_000  # demo resets never coincide with evaluation resets


def demo_path(data_dir: str, task: str, num_episodes: int, obs_type: str, tag: str = "") -> str:
  """`tag` distinguishes sensor settings (point clouds of another sensor are other data)."""
  suffix = f"_{tag}" if tag else ""
  return os.path.join(data_dir, f"metaworld_{check_task(task)}_{obs_type}_{num_episodes}ep"
                      f"{suffix}.zarr")


def collect_episodes(task: str, num_episodes: int, seed: int = 0,
                     episode_length: int = mw.EPISODE_LENGTH, max_attempts: int | None = None,
                     sensor=None, log_every: int = 1) -> list[dict]:
  """Runs the scripted expert until `num_episodes` successful episodes are recorded;
  with a point-cloud `sensor` each frame's cloud is recorded too."""
  task = check_task(task)
  env = mw.make_env(task, seed=DEMO_SEED_OFFSET + seed)
  expert = mw.expert_policy(task)
  max_attempts = max_attempts or 3 * num_episodes
  episodes, attempts, t0 = [], 0, time.time()
  while len(episodes) < num_episodes:
    if attempts >= max_attempts:
      raise RuntimeError(f"the scripted expert for {task} succeeded in only {len(episodes)} of "
                         f"{attempts} episodes; cannot collect {num_episodes} demonstrations")
    attempts += 1
    state = mw.reset(env)
    rec = {"state": [], "full_state": [], "action": []}
    if sensor is not None:
      rec["point_cloud"] = []
    success = False
    for _ in range(episode_length):
      obs = mw.observe(env, state, sensor)
      rec["state"].append(obs["agent_pos"])
      rec["full_state"].append(obs["full_state"])
      if sensor is not None:
        rec["point_cloud"].append(obs["point_cloud"])
      action = mw.expert_action(expert, state)
      rec["action"].append(action)
      state, succ = mw.step(env, action)
      success |= succ
    if success:
      episodes.append({k: np.stack(v) for k, v in rec.items()})
      if log_every and len(episodes) % log_every == 0:
        logging.info("collect %s: %d/%d successful episodes (%d attempts, %.1fs)", task,
                     len(episodes), num_episodes, attempts, time.time() - t0)
  return episodes


def ensure_demos(data_dir: str, task: str, num_episodes: int, seed: int = 0,
                 obs_type: str = "state", sensor=None, tag: str = "",
                 attrs: dict | None = None) -> str:
  """Returns the dataset path, collecting and writing it first when it does not exist."""
  path = demo_path(data_dir, task, num_episodes, obs_type, tag)
  if os.path.isdir(path):
    logging.info("using existing demonstrations %s", path)
    return path
  logging.info("collecting %d %s demonstrations for %s -> %s", num_episodes, obs_type, task, path)
  os.makedirs(data_dir, exist_ok=True)
  eps = collect_episodes(task, num_episodes, seed=seed, sensor=sensor)
  storage.write_episodes(path, eps, attrs=dict(attrs or {}, task=task, obs_type=obs_type,
                                               source="metaworld scripted expert", seed=seed))
  return path
