"""Push-T on the CPU: gym-pusht's environment (the one LeRobot evaluates Push-T in) behind
the suite protocol. gym-pusht is optional (`pip install 'jaxpolicy[pusht]'`); it is imported
when the first environment is made. Observations: see the package docstring."""

from __future__ import annotations

import os

import numpy as np

GYM_ID = "gym_pusht/PushT-v0"
EPISODE_LENGTH = 300  # gym-pusht's registered max_episode_steps
CONTROL_HZ = 10.0  # gym-pusht's metadata["render_fps"]: one action per 0.1 s
SUCCESS_COVERAGE = 0.95  # gym-pusht's success_threshold


def gym_class():
  """gym-pusht's environment class; one line naming the install when it is missing."""
  # headless: pygame draws the camera frame into an off-screen surface; no window, no banner
  os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
  os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
  try:
    from gym_pusht.envs.pusht import PushTEnv  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
      f"the pusht suite needs gym-pusht: pip install 'jaxpolicy[pusht]' "
      f"(or pip install gym-pusht); importing it failed: {e}"
    ) from None
  return PushTEnv


class PushTEnv:
  """One Push-T environment (the suite protocol: reset / step / episode_info)."""

  model = data = None  # no MuJoCo model: no point-cloud sensor

  def __init__(self, seed: int = 0):
    self.env = gym_class()(obs_type="environment_state_agent_pos", render_mode="rgb_array")
    self._rng = np.random.default_rng(int(seed))
    self._best = 0.0

  def reset(self, seed: int | None = None) -> dict:
    """gym-pusht's reset from `seed` (agent, T position and angle drawn from it); seed None
    draws one from this environment's own stream."""
    s = int(self._rng.integers(2**31)) if seed is None else int(seed)
    obs, _ = self.env.reset(seed=s)
    self._best = 0.0
    return self._observe(obs)

  def step(self, action) -> tuple[dict, bool]:
    """Moves the agent towards the target position `action` (pixels) for one control
    period; success = gym-pusht's (coverage above 0.95)."""
    obs, _, _, _, info = self.env.step(np.asarray(action, np.float64))
    self._best = max(self._best, float(info["coverage"]))
    return self._observe(obs), bool(info["is_success"])

  def _observe(self, obs: dict) -> dict:
    return {
      "agent_pos": np.asarray(obs["agent_pos"], np.float32),
      "full_state": np.asarray(obs["environment_state"], np.float32),
      "pose": self.pose(),
    }

  def pose(self) -> np.ndarray:
    """(5,) gym-pusht's `state` observation: agent x, y, T x, y, T angle in [0, 2 pi)."""
    e = self.env
    return np.asarray(
      [*e.agent.position, *e.block.position, e.block.angle % (2 * np.pi)], np.float32
    )

  def frame(self) -> np.ndarray:
    """(96, 96, 3) uint8: gym-pusht's camera observation (its `pixels`) of the current state."""
    return self.env._render()  # pylint: disable=protected-access

  def rest_action(self) -> np.ndarray:
    """The command that holds the agent where it is: its own position."""
    return np.asarray(self.env.agent.position, np.float32)

  def coverage(self) -> float:
    """The fraction of the goal's area the T covers now (gym-pusht's own computation)."""
    return float(self.env._get_coverage())  # pylint: disable=protected-access

  def episode_info(self) -> dict:
    """The episode's best coverage, and its best reward as gym-pusht defines it
    (min(1, coverage / 0.95): the score Diffusion Policy and LeRobot average)."""
    return {"coverage": self._best, "max_reward": min(1.0, self._best / SUCCESS_COVERAGE)}
