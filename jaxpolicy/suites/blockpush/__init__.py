"""blockpush: a multimodal pushing benchmark in the spirit of IBC's Block Push (Florence et
al., 2021), built in MuJoCo with an MJX form. A pusher on a plane pushes two blocks into two
targets; the oracle picks per episode which block goes first and into which target, so the
first moves are not decided by the observation. Success (p2): both blocks in targets at one
step; p1: one block in a target. Modes: see `logic`. Tasks: `blockpush` draws the initial
configuration from wide ranges; `blockpush-narrow` from a tenth of them (scene.SPREAD).
"""

from __future__ import annotations

from jaxpolicy.envs.suite import SuiteInfo
from jaxpolicy.suites.blockpush import logic, scene
from jaxpolicy.suites.blockpush.env import BlockPushEnv, Oracle


def _make_env(task: str, seed: int) -> BlockPushEnv:
  return BlockPushEnv(seed, task)


def _make_expert(task: str) -> Oracle:
  del task
  return Oracle()


def _mjx_env(task: str):
  from jaxpolicy.suites.blockpush import mjx_env  # pylint: disable=g-import-not-at-top

  return mjx_env.make_env(task)


INFO = SuiteInfo(
  name="blockpush",
  tasks=("blockpush", "blockpush-narrow"),
  groups={"multimodal": ("blockpush", "blockpush-narrow")},
  group_labels={"multimodal": "Multimodal"},
  make_env=_make_env,
  make_expert=_make_expert,
  mjx_env=_mjx_env,
  obs_keys={"full_state": (logic.STATE_DIM,), "agent_pos": (2,)},
  action_kind=("delta", "delta"),
  episode_length=200,
  control_hz=scene.CONTROL_HZ,
  success="both blocks in different targets at the same step (p2), at any step",
  metrics=("p1",),
  modes=logic.MODES,
  demo_episodes=100,
  demo_stops_at_success=True,
  sensor={
    "camera": "overhead",
    "camera_pos": (),
    "crop_low": (-0.35, -0.35, 0.005),
    "crop_high": (0.35, 0.35, 0.2),
    "table": "keep",
  },
  sensor_kinds=("pointcloud", "rgb"),
  cameras={"overhead": ()},
)
