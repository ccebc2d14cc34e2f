"""Demonstrations from a suite's scripted expert, in the suite's CPU environments.

Only successful episodes are kept (as DP3). An episode runs the suite's full episode length
(MetaWorld: the expert keeps going after success, as DP3 records) or, where the suite says
so (blockpush), ends at its success, recording (observation before the action, action)
pairs under the dataset keys (jaxpolicy.obs.DATASET_KEYS).
"""
from __future__ import annotations

import logging as _logging
import os
import time

import numpy as np

from jaxpolicy import obs as obs_lib
from jaxpolicy.data import storage
from jaxpolicy.envs.evaluator import observe
from jaxpolicy.envs.suite import DEMO_SEED_OFFSET, EPISODE_SEED_STRIDE, SuiteInfo

logging = _logging.getLogger("jaxpolicy")


def demo_path(data_dir: str, suite: SuiteInfo, task: str, num_episodes: int, obs_type: str,
              tag: str = "") -> str:
  """`tag` distinguishes sensor settings (point clouds of another sensor are other data)."""
  suffix = f"_{tag}" if tag else ""
  return os.path.join(data_dir, f"{suite.name}_{task}_{obs_type}_{num_episodes}ep{suffix}.zarr")


def _stored(v) -> np.ndarray:
  """Floating observations are stored as float32; images and integers as they are."""
  v = np.asarray(v)
  return v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v


def collect_episodes(suite: SuiteInfo, task: str, num_episodes: int, seed: int = 0,
                     episode_length: int | None = None, max_attempts: int | None = None,
                     sensor=None, log_every: int = 1, infos: list | None = None,
                     require_success: bool = True) -> list[dict]:
  """Runs the scripted expert until `num_episodes` successful episodes are recorded (any
  episodes, without `require_success`); a sensor adds its keys (point clouds, camera
  frames) to every frame. `infos` (a list) receives each kept episode's `episode_info()`
  (its mode, for multimodal suites)."""
  if suite.make_expert is None:
    raise ValueError(f"suite {suite.name} has no scripted expert: bring demonstrations of "
                     f"your own (--config.data.path)")
  episode_length = int(episode_length or suite.episode_length)
  env = suite.make_env(task, DEMO_SEED_OFFSET + seed)
  expert = suite.make_expert(task)
  max_attempts = max_attempts or 3 * num_episodes
  episodes, attempts, t0 = [], 0, time.time()
  while len(episodes) < num_episodes:
    if attempts >= max_attempts:
      raise RuntimeError(f"the scripted expert for {task} succeeded in only {len(episodes)} of "
                         f"{attempts} episodes; cannot collect {num_episodes} demonstrations")
    expert.reset(DEMO_SEED_OFFSET + seed * EPISODE_SEED_STRIDE + attempts)
    attempts += 1
    obs = observe(env, env.reset(), sensor)
    rec = {k: [] for k in obs}
    rec["action"] = []
    success = False
    for _ in range(episode_length):
      for k, v in obs.items():
        rec[k].append(_stored(v))
      action = np.asarray(expert(obs), np.float32)
      rec["action"].append(action)
      o, succ = env.step(action)
      obs = observe(env, o, sensor)
      success |= succ
      if success and suite.demo_stops_at_success:
        break
    if success or not require_success:
      episodes.append({obs_lib.DATASET_KEYS.get(k, k): np.stack(v) for k, v in rec.items()})
      if infos is not None:
        infos.append(env.episode_info())
      if log_every and len(episodes) % log_every == 0:
        logging.info("collect %s: %d/%d successful episodes (%d attempts, %.1fs)", task,
                     len(episodes), num_episodes, attempts, time.time() - t0)
  return episodes


def ensure_demos(data_dir: str, suite: SuiteInfo, task: str, num_episodes: int, seed: int = 0,
                 obs_type: str = "state", sensor=None, tag: str = "",
                 attrs: dict | None = None) -> str:
  """Returns the dataset path, collecting and writing it first when it does not exist."""
  path = demo_path(data_dir, suite, task, num_episodes, obs_type, tag)
  if os.path.isdir(path):
    logging.info("using existing demonstrations %s", path)
    return path
  logging.info("collecting %d %s demonstrations for %s -> %s", num_episodes, obs_type, task, path)
  os.makedirs(data_dir, exist_ok=True)
  infos = []
  eps = collect_episodes(suite, task, num_episodes, seed=seed, sensor=sensor, infos=infos)
  extra = {"episode_info": infos} if any(infos) else {}
  storage.write_episodes(path, eps, attrs=dict(attrs or {}, task=task, obs_type=obs_type,
                                               suite=suite.name,
                                               source=f"{suite.name} scripted expert",
                                               seed=seed, **extra))
  return path
