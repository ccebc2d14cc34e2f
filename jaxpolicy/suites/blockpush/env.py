"""blockpush on the CPU (C MuJoCo): the environment and the scripted oracle."""

from __future__ import annotations

import mujoco
import numpy as np

from jaxpolicy.suites.blockpush import logic, scene


class BlockPushEnv:
  """One blockpush environment (the suite protocol: reset / step / episode_info)."""

  def __init__(self, seed: int = 0, task: str = "blockpush"):
    self.task = task
    self.model = scene.model()
    self.data = mujoco.MjData(self.model)
    self._rng = np.random.default_rng(int(seed))
    self._arrival, self._p1 = logic.NO_ARRIVAL, False

  def reset(self, seed: int | None = None) -> dict:
    rng = self._rng if seed is None else np.random.default_rng(int(seed))
    self.reset_to(scene.initial_qpos(rng, self.task))
    return self.observe()

  def reset_to(self, qpos) -> None:
    """Starts an episode from a given configuration (8,)."""
    mujoco.mj_resetData(self.model, self.data)
    self.data.qpos[:] = qpos
    self.data.ctrl[:] = self.data.qpos[scene.PUSHER]
    mujoco.mj_forward(self.model, self.data)
    self._arrival, self._p1 = logic.NO_ARRIVAL, False

  def step(self, action) -> tuple[dict, bool]:
    self.data.ctrl[:] = logic.set_point(np, self.data.qpos, action)
    mujoco.mj_step(self.model, self.data, nstep=scene.SUBSTEPS)
    inside = logic.in_targets(np, logic.blocks_of(np, self.data.qpos))
    self._arrival = int(logic.first_arrival(np, self._arrival, inside))
    self._p1 |= bool(inside.any())
    return self.observe(), bool(logic.both_in(np, inside))

  def observe(self) -> dict:
    q = self.data.qpos
    return {"full_state": logic.observation(np, q), "agent_pos": logic.agent_pos(np, q)}

  def episode_info(self) -> dict:
    return {"p1": bool(self._p1), "mode": logic.MODES[self._arrival]}


class Oracle:
  """The scripted oracle: per episode a uniformly random mode (which block first, into which
  target), drawn from the episode's seed, then simple pushing primitives."""

  def __init__(self):
    self.first, self.target = 0, 0

  def reset(self, seed: int) -> None:
    self.first, self.target = logic.oracle_choice(seed)

  def __call__(self, obs: dict) -> np.ndarray:
    pusher, blocks = logic.positions_of_state(np, np.asarray(obs["full_state"], np.float64))
    return logic.oracle_action(np, pusher, blocks, self.first, self.target)
