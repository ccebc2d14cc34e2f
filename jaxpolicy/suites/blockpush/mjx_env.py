"""blockpush in MuJoCo MJX: the same scene, pure and batched with `jax.vmap`, and the oracle
rolled out in one compiled program (the CPU/MJX agreement check)."""

from __future__ import annotations

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from jaxpolicy.envs.suite import episode_seeds
from jaxpolicy.suites.blockpush import logic, scene


@flax.struct.dataclass
class State:
  data: mjx.Data
  success: jax.Array  # () bool: p2 after the last step
  info: dict  # arrival: () int32 mode index; p1: () bool


class BlockPushMJX:
  """The MJX form (the protocol of jaxpolicy.envs.mjx.evaluator): evaluation_states,
  init_state, step, observe, episode_info."""

  def __init__(self, task: str = "blockpush"):
    self.task = task
    self.mj_model = scene.model()
    self.model = mjx.put_model(self.mj_model)
    self._data0 = mjx.make_data(self.model)

  def evaluation_states(self, seed: int, episodes: int) -> np.ndarray:
    """(episodes, 8) initial configurations: those of the CPU evaluator with `seed`."""
    return np.stack(
      [
        scene.initial_qpos(np.random.default_rng(s), self.task)
        for s in episode_seeds(seed, episodes)
      ]
    ).astype(np.float32)

  def init_state(self, qpos) -> State:
    qpos = jnp.asarray(qpos, jnp.float32)
    d = mjx.forward(self.model, self._data0.replace(qpos=qpos, ctrl=qpos[scene.PUSHER]))
    info = {"arrival": jnp.asarray(logic.NO_ARRIVAL, jnp.int32), "p1": jnp.zeros((), bool)}
    return State(d, jnp.zeros((), bool), info)

  def step(self, state: State, action) -> State:
    d = state.data
    d = d.replace(ctrl=logic.set_point(jnp, d.qpos, action))
    d = jax.lax.fori_loop(0, scene.SUBSTEPS, lambda _, x: mjx.step(self.model, x), d)
    inside = logic.in_targets(jnp, logic.blocks_of(jnp, d.qpos))
    info = {
      "arrival": logic.first_arrival(jnp, state.info["arrival"], inside).astype(jnp.int32),
      "p1": state.info["p1"] | inside.any(),
    }
    return State(d, logic.both_in(jnp, inside), info)

  def observe(self, state: State, key: str):
    if key == "full_state":
      return logic.observation(jnp, state.data.qpos)
    if key == "agent_pos":
      return logic.agent_pos(jnp, state.data.qpos)
    raise ValueError(f"blockpush in MJX has no observation {key!r}")

  def episode_info(self, state: State) -> dict:
    return {"p1": state.info["p1"], "mode": state.info["arrival"]}


@functools.lru_cache(maxsize=2)
def make_env(task: str = "blockpush") -> BlockPushMJX:
  return BlockPushMJX(task)


def oracle_rollout(env: BlockPushMJX, episode_length: int):
  """A pure `rollout(initial qpos (B, 8), first (B,), first_target (B,)) -> (p2, p1, mode,
  first success step)`, each (B,), of the oracle in MJX; success counts at any step."""

  def one(qpos, first, target):
    def body(carry, t):
      state, success, first_step = carry
      pusher, blocks = logic.positions_of_state(jnp, env.observe(state, "full_state"))
      state = env.step(state, logic.oracle_action(jnp, pusher, blocks, first, target))
      first_step = jnp.where(state.success & ~success, t, first_step)
      return (state, success | state.success, first_step), None

    init = (env.init_state(qpos), jnp.zeros((), bool), jnp.asarray(-1, jnp.int32))
    (state, success, first_step), _ = jax.lax.scan(body, init, jnp.arange(episode_length))
    info = env.episode_info(state)
    return success, info["p1"], info["mode"], first_step

  return jax.vmap(one)
