"""The real MetaWorld (v3, C MuJoCo): environments, scripted experts and observations.

This is the reference environment and the CPU default evaluator. Episodes use fresh random
object/goal positions drawn from MetaWorld's own reset distribution, seeded per episode.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from jaxpolicy.envs.registry import check_task

EPISODE_LENGTH = 200
STATE_DIM = 39   # MetaWorld's observation: hand, gripper, objects, previous frame, goal
AGENT_POS_DIM = 9  # DP3's agent_pos: end-effector, right and left finger-tip sites


def make_env(task: str, seed: int):
  """A goal-observable MetaWorld v3 env whose resets draw new positions from `seed`."""
  task = check_task(task)
  os.environ.setdefault("MUJOCO_GL", "egl")
  from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE as envs
  env = envs[f"{task}-v3-goal-observable"](seed=int(seed))
  env._freeze_rand_vec = False   # new object/goal positions on every reset
  env.seeded_rand_vec = True     # ... drawn from env.np_random (seeded), not np.random
  env.max_path_length = max(env.max_path_length, EPISODE_LENGTH)
  return env


def expert_policy(task: str):
  from metaworld.policies import ENV_POLICY_MAP
  return ENV_POLICY_MAP[f"{check_task(task)}-v3"]()


def expert_action(policy, state: np.ndarray) -> np.ndarray:
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # "Constant(s) may be too high"
    return np.clip(policy.get_action(state), -1.0, 1.0).astype(np.float32)


def agent_pos(env) -> np.ndarray:
  """DP3's 9-d robot state (`agent_pos`): the end-effector position and the positions of
  the `rightEndEffector` and `leftEndEffector` finger-tip sites."""
  return np.concatenate([env.get_endeff_pos(), env._get_site_pos("rightEndEffector"),
                         env._get_site_pos("leftEndEffector")]).astype(np.float32)


def observe(env, state: np.ndarray, sensor=None) -> dict:
  """The per-frame observation dict stored in datasets and fed to policies.

  `sensor(env) -> (P, 3) float32` adds a "point_cloud" entry (see jaxpolicy.envs.pointcloud).
  """
  obs = {"full_state": np.asarray(state, np.float32), "agent_pos": agent_pos(env)}
  if sensor is not None:
    obs["point_cloud"] = sensor(env)
  return obs


def reset(env):
  state, _ = env.reset()
  return state


def step(env, action):
  state, _, _, _, info = env.step(np.asarray(action, np.float64))
  return state, bool(info["success"])
