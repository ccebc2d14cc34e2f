"""MetaWorld's own reset distribution, precomputed with MetaWorld and replayed in MJX.

`build_resets(task, seeds)` runs MetaWorld's reset for each seed and records the resulting
state and per-episode model fields as a `ResetBank`; `evaluation_resets(task, seed,
episodes)` does so for the CPU evaluator's seeds, so the MJX evaluator starts from exactly
the initial conditions the real MetaWorld uses. What a reset does and what is recorded:
docs/environments.md, "MetaWorld in MJX" (Resets and success).
"""

from __future__ import annotations

import dataclasses

import flax
import numpy as np

from jaxpolicy.envs.suite import episode_seeds
from jaxpolicy.suites.metaworld import env as mw

_ENVS: dict = {}


def metaworld_env(task: str):
  """One cached MetaWorld env per task, reseeded for every recorded reset."""
  if task not in _ENVS:
    _ENVS[task] = mw.make_env(task, seed=0)
  return _ENVS[task]


def evaluation_seeds(seed: int, episodes: int) -> list[int]:
  """The per-episode MetaWorld seeds of an evaluation (the CPU evaluator's)."""
  return episode_seeds(seed, episodes)


@flax.struct.dataclass
class ResetBank:
  """N post-reset states of one task (leading axis N on every field)."""

  qpos: np.ndarray
  qvel: np.ndarray
  mocap_pos: np.ndarray
  mocap_quat: np.ndarray
  qacc_warmstart: np.ndarray
  ctrl: np.ndarray  # the gripper's actuator controls
  body_pos: np.ndarray
  site_pos: np.ndarray
  target_pos: np.ndarray
  obs: np.ndarray  # MetaWorld's own reset observation (39,), for checks

  def __len__(self):
    return self.qpos.shape[0]

  def take(self, index):
    """Rows `index` (an int or an index array) of every field."""
    return type(self)(
      **{f.name: np.asarray(getattr(self, f.name))[index] for f in dataclasses.fields(self)}
    )


@dataclasses.dataclass(frozen=True)
class TaskConstants:
  """Per-task constants read from the MetaWorld env."""

  mocap_low: np.ndarray
  mocap_high: np.ndarray
  obs_low: np.ndarray  # MetaWorld clips each step's observation to its space
  obs_high: np.ndarray
  action_scale: float
  frame_skip: int


def task_constants(task: str) -> TaskConstants:
  env = metaworld_env(task)
  space = env.sawyer_observation_space
  f32 = lambda x: np.asarray(x, np.float32)
  return TaskConstants(
    f32(env.mocap_low),
    f32(env.mocap_high),
    f32(space.low),
    f32(space.high),
    float(env.action_scale),
    int(env.frame_skip),
  )


def snapshot(env, obs) -> dict:
  """The current state of a MetaWorld env as one ResetBank row (numpy)."""
  d, m = env.data, env.model
  target = env._target_pos  # pylint: disable=protected-access
  return dict(
    qpos=d.qpos.copy(),
    qvel=d.qvel.copy(),
    mocap_pos=d.mocap_pos.copy(),
    mocap_quat=d.mocap_quat.copy(),
    qacc_warmstart=d.qacc_warmstart.copy(),
    ctrl=d.ctrl.copy(),
    body_pos=m.body_pos.copy(),
    site_pos=m.site_pos.copy(),
    target_pos=np.asarray(target, np.float64).copy(),
    obs=np.asarray(obs, np.float64).copy(),
  )


def stack(rows: list[dict]) -> ResetBank:
  return ResetBank(**{k: np.stack([r[k] for r in rows]).astype(np.float32) for k in rows[0]})


def build_resets(task: str, seeds) -> ResetBank:
  """Runs MetaWorld's reset once per seed and records the post-reset states."""
  env = metaworld_env(task)
  rows = []
  for s in seeds:
    env.seed(int(s))
    obs = mw.reset(env)
    rows.append(snapshot(env, obs))
  return stack(rows)


def evaluation_resets(task: str, seed: int, episodes: int) -> ResetBank:
  """The initial states of `the CPU evaluator's `evaluate(..., episodes, seed)`` for `task`."""
  return build_resets(task, evaluation_seeds(seed, episodes))
