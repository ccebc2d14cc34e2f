"""MetaWorld v3 (50 tasks): the real MetaWorld on the CPU, MetaWorld's scripted experts, and
an MJX form of every task (`mjx/`: converted models, MetaWorld's recorded resets, success
predicates)."""

from __future__ import annotations

from jaxpolicy.envs.suite import SuiteInfo
from jaxpolicy.suites.metaworld import tasks
from jaxpolicy.suites.metaworld.env import (
  AGENT_POS_DIM,
  CONTROL_HZ,
  EPISODE_LENGTH,
  STATE_DIM,
  Expert,
  MetaWorldEnv,
)


def _mjx_env(task: str):
  from jaxpolicy.suites.metaworld.mjx import env  # pylint: disable=g-import-not-at-top

  return env.make_env(task)


INFO = SuiteInfo(
  name="metaworld",
  tasks=tasks.TASKS,
  groups=tasks.GROUPS,
  group_labels=tasks.GROUP_LABELS,
  make_env=MetaWorldEnv,
  make_expert=Expert,
  mjx_env=_mjx_env,
  obs_keys={"full_state": (STATE_DIM,), "agent_pos": (AGENT_POS_DIM,)},
  action_kind=("delta", "delta", "delta", "absolute"),  # xyz moves, gripper command
  episode_length=EPISODE_LENGTH,
  control_hz=CONTROL_HZ,
  success="MetaWorld's success flag, at any step",
  demo_episodes=10,
  # DP3's sensor: corner2 moved to (0.6, 0.295, 0.8), the workspace box, the table hidden
  sensor={
    "camera": "corner2",
    "camera_pos": (0.6, 0.295, 0.8),
    "crop_low": (-0.6, 0.25, -0.01),
    "crop_high": (0.6, 1.05, 0.7),
    "table": "hide",
  },
  sensor_kinds=("pointcloud", "rgb"),
  cameras={"corner2": (0.6, 0.295, 0.8)},  # DP3's corner2, moved as DP3 does
  rest_action=(0.0, 0.0, 0.0, -1.0),  # MetaWorld's reset leaves the gripper open
)
