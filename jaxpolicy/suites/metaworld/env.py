"""The real MetaWorld (v3, C MuJoCo): environments, scripted experts and observations.

The reference environment and the CPU default evaluator. Episodes use fresh object and goal
positions drawn from MetaWorld's own reset distribution, seeded per episode. `MetaWorldEnv`
and `Expert` are the suite protocol (jaxpolicy.envs.suite) around MetaWorld's objects.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

EPISODE_LENGTH = 200
CONTROL_HZ = 80.0  # 5 physics steps of 2.5 ms per control step
STATE_DIM = 39  # MetaWorld's observation: hand, gripper, objects, previous frame, goal
AGENT_POS_DIM = 9  # DP3's agent_pos: end-effector, right and left finger-tip sites


def make_env(task: str, seed: int):
  """A goal-observable MetaWorld v3 env whose resets draw new positions from `seed`."""
  os.environ.setdefault("MUJOCO_GL", "egl")
  from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE as envs

  env = envs[f"{task}-v3-goal-observable"](seed=int(seed))
  env._freeze_rand_vec = False  # new object/goal positions on every reset
  env.seeded_rand_vec = True  # ... drawn from env.np_random (seeded), not np.random
  env.max_path_length = max(env.max_path_length, EPISODE_LENGTH)
  return env


def expert_policy(task: str):
  from metaworld.policies import ENV_POLICY_MAP

  return ENV_POLICY_MAP[f"{task}-v3"]()


def expert_action(policy, state: np.ndarray) -> np.ndarray:
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)  # "Constant(s) may be too high"
    return np.clip(policy.get_action(state), -1.0, 1.0).astype(np.float32)


def agent_pos(env) -> np.ndarray:
  """DP3's 9-d robot state (`agent_pos`): the end-effector position and the positions of
  the `rightEndEffector` and `leftEndEffector` finger-tip sites."""
  return np.concatenate(
    [
      env.get_endeff_pos(),
      env._get_site_pos("rightEndEffector"),
      env._get_site_pos("leftEndEffector"),
    ]
  ).astype(np.float32)


def reset(env):
  state, _ = env.reset()
  return state


def step(env, action):
  state, _, _, _, info = env.step(np.asarray(action, np.float64))
  return state, bool(info["success"])


class MetaWorldEnv:
  """One MetaWorld task (the suite protocol). `full_state` is MetaWorld's own float64
  observation, which the scripted experts read; datasets and policies take it as float32."""

  def __init__(self, task: str, seed: int):
    self.env = make_env(task, seed)

  @property
  def model(self):
    return self.env.model

  @property
  def data(self):
    return self.env.data

  def reset(self, seed: int | None = None) -> dict:
    if seed is not None:
      self.env.seed(int(seed))
    return self._observe(reset(self.env))

  def step(self, action) -> tuple[dict, bool]:
    state, success = step(self.env, action)
    return self._observe(state), success

  def _observe(self, state) -> dict:
    return {"full_state": np.asarray(state, np.float64), "agent_pos": agent_pos(self.env)}

  def episode_info(self) -> dict:
    return {}


class Expert:
  """MetaWorld's scripted expert of a task (deterministic: `reset` has nothing to draw)."""

  def __init__(self, task: str):
    self.policy = expert_policy(task)

  def reset(self, seed: int) -> None:
    del seed

  def __call__(self, obs: dict) -> np.ndarray:
    return expert_action(self.policy, obs["full_state"])
