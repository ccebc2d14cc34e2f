"""pusht: Push-T (Diffusion Policy's planar pushing task) in gym-pusht, the environment
LeRobot evaluates it in. A round agent pushes a T into a fixed goal pose by absolute target
positions (pixels, 0-512), 10 actions per second, 300 per episode. Observations, by
gym-pusht's names: agent_pos (2) = `agent_pos` (LeRobot's observation.state), full_state
(16) = `environment_state`, the T's 8 corners (observation.environment_state), pose (5) =
its `state` observation (Diffusion Policy's zarr data/state). Success: coverage of the goal
above 0.95; per episode the best coverage and reward are reported. No scripted expert:
bring demonstrations (data.path) and evaluate with eval.task=pusht.
"""

from __future__ import annotations

from jaxpolicy.envs.suite import SuiteInfo
from jaxpolicy.suites.pusht.env import (
  CONTROL_HZ,
  EPISODE_LENGTH,
  SUCCESS_COVERAGE,
  PushTEnv,
  gym_class,
)


def _make_env(task: str, seed: int) -> PushTEnv:
  del task
  return PushTEnv(seed)


INFO = SuiteInfo(
  name="pusht",
  tasks=("pusht",),
  groups={"planar": ("pusht",)},
  group_labels={"planar": "Planar pushing"},
  make_env=_make_env,
  obs_keys={"agent_pos": (2,), "full_state": (16,), "pose": (5,)},
  action_kind=("absolute", "absolute"),  # the agent's target position; hold = the last
  episode_length=EPISODE_LENGTH,
  control_hz=CONTROL_HZ,
  success=f"the T covers more than {SUCCESS_COVERAGE:.0%} of the goal (gym-pusht), at any step",
  scores=("coverage", "max_reward"),
  requires=gym_class,
  features={
    "observation.state": "agent_pos",
    "observation.environment_state": "full_state",
    "state": "pose",
  },
)
