"""A MetaWorld v3 task as an unbatched, pure MJX environment.

    env = MJXEnv("drawer-open")
    state = env.reset(rng)                # a post-reset state drawn from MetaWorld's resets
    state = env.step(state, action)       # MetaWorld's action semantics, 5 physics steps
    states = jax.vmap(env.step)(states, actions)   # batching comes from vmap

On a CPU set `XLA_FLAGS=--xla_cpu_use_fusion_emitters=false` before JAX starts; MJX is meant
for accelerators. The step's semantics and the per-episode model fields carried in
`State.info`: docs/environments.md, "MetaWorld in MJX" (The environment).
"""

from __future__ import annotations

import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from jaxpolicy.suites.metaworld.mjx import tasks as tasks_lib
from jaxpolicy.suites.metaworld.mjx.convert import convert_model, converted_geom_frames
from jaxpolicy.suites.metaworld.mjx.resets import (
  ResetBank,
  build_resets,
  evaluation_resets,
  evaluation_seeds,
  task_constants,
)

MAX_CONTACT_POINTS = 64
MOCAP_QUAT = np.array([1.0, 0.0, 1.0, 0.0], np.float32) / np.sqrt(2.0)  # MuJoCo normalises it


@flax.struct.dataclass
class State:
  data: mjx.Data
  obs: jax.Array  # (39,) float32
  success: jax.Array  # () bool: MetaWorld's success flag after the last step
  info: dict  # target_pos, body_pos, site_pos (per-episode model fields), steps


class MJXEnv:
  """One MetaWorld v3 task in MJX (see the module docstring).

  resets: the ResetBank `reset(rng)` samples from; default: `num_resets` MetaWorld resets
  with seeds `evaluation_seeds(reset_seed, num_resets)`.
  max_contact_points: MJX keeps this many closest contact points per condim group (0 = every
  candidate: 2268 constraint rows on drawer-open instead of 464, and slower steps; the
  active contacts of these scenes are far fewer, so the limit does not change them).
  """

  def __init__(
    self,
    task: str,
    resets: ResetBank | None = None,
    num_resets: int = 64,
    reset_seed: int = 1,
    max_contact_points: int = MAX_CONTACT_POINTS,
  ):
    self.task = task
    self.spec = tasks_lib.spec(self.task)
    self.mj_model = convert_model(self.task, max_contact_points=max_contact_points)
    self.model = mjx.put_model(self.mj_model)
    self.consts = task_constants(self.task)
    self._resets = resets
    self._num_resets, self._reset_seed = num_resets, reset_seed
    self._data0 = mjx.make_data(self.model)
    self._geom_frames = converted_geom_frames(self.task)

  @property
  def resets(self) -> ResetBank:
    if self._resets is None:
      self._resets = build_resets(self.task, evaluation_seeds(self._reset_seed, self._num_resets))
    return self._resets

  # -- observation and success --------------------------------------------------------------

  def sim(self, data) -> tasks_lib.Sim:
    return tasks_lib.Sim(self.mj_model, data, self._geom_frames)

  def frame(self, data) -> jax.Array:
    """MetaWorld's 18-d current frame (hand, gripper opening, objects)."""
    return tasks_lib.current_frame(self.sim(data), self.spec.objects)

  def agent_pos(self, data) -> jax.Array:
    """DP3's 9-d robot state: end effector and the two finger-tip sites."""
    sim = self.sim(data)
    return jnp.concatenate(
      [sim.body_pos("hand"), sim.site_pos("rightEndEffector"), sim.site_pos("leftEndEffector")]
    ).astype(jnp.float32)

  def success_of(self, data, obs, target) -> jax.Array:
    return jnp.asarray(self.spec.success(obs, target, self.sim(data)), bool)

  def _model(self, info) -> mjx.Model:
    return self.model.replace(body_pos=info["body_pos"], site_pos=info["site_pos"])

  # -- reset / step -------------------------------------------------------------------------

  def _data_of(self, row: ResetBank):
    """(mjx.Data ready to observe, info) of one recorded MetaWorld state (a ResetBank row)."""
    info = {
      "target_pos": jnp.asarray(row.target_pos, jnp.float32),
      "body_pos": jnp.asarray(row.body_pos, jnp.float32),
      "site_pos": jnp.asarray(row.site_pos, jnp.float32),
      "steps": jnp.zeros((), jnp.int32),
    }
    d = self._data0.replace(
      qpos=jnp.asarray(row.qpos, jnp.float32),
      qvel=jnp.asarray(row.qvel, jnp.float32),
      mocap_pos=jnp.asarray(row.mocap_pos, jnp.float32),
      mocap_quat=jnp.asarray(row.mocap_quat, jnp.float32),
      qacc_warmstart=jnp.asarray(row.qacc_warmstart, jnp.float32),
      ctrl=jnp.asarray(row.ctrl, jnp.float32),
    )
    return self._observable(self._model(info), d), info

  def _observable(self, model, d):
    """`d` ready to observe: positions suffice for most tasks (mjx.step recomputes the
    rest); a success predicate on contact forces gets MetaWorld's mj_forward in full."""
    return mjx.forward(model, d) if self.spec.needs_forward else mjx.kinematics(model, d)

  def init_state(self, reset: ResetBank) -> State:
    """The State of one recorded MetaWorld reset (one ResetBank row, unbatched).

    The observation is MetaWorld's own reset observation: MetaWorld observes before its
    forward pass after moving fixtures, so e.g. drawer-open's first frame shows the drawer
    where the previous reset left it; copying it keeps the MJX episode identical.
    """
    d, info = self._data_of(reset)
    return State(d, jnp.asarray(reset.obs, jnp.float32), jnp.zeros((), bool), info)

  def observe_state(self, row: ResetBank, prev_frame):
    """(39-d obs, success) of a recorded MetaWorld state after a step, as MetaWorld's
    `step` computes them (`prev_frame` = the previous observation's first 18 entries)."""
    d, info = self._data_of(row)
    target = info["target_pos"]
    obs = jnp.concatenate([self.frame(d), jnp.asarray(prev_frame, jnp.float32), target])
    obs = jnp.clip(obs, self.consts.obs_low, self.consts.obs_high)
    return obs, self.success_of(d, obs, target)

  # -- the MJX form protocol (jaxpolicy.envs.mjx.evaluator) ---------------------------------

  def evaluation_states(self, seed: int, episodes: int) -> ResetBank:
    """The initial states of the CPU evaluator with `seed` (MetaWorld's own resets)."""
    return evaluation_resets(self.task, seed, episodes)

  def observe(self, state: State, key: str):
    if key == "full_state":
      return state.obs
    if key == "agent_pos":
      return self.agent_pos(state.data)
    raise ValueError(f"MetaWorld in MJX has no observation {key!r}")

  def episode_info(self, state: State) -> dict:
    del state
    return {}

  def reset(self, rng) -> State:
    """A post-reset state drawn uniformly from MetaWorld's recorded resets."""
    bank = jax.tree_util.tree_map(jnp.asarray, self.resets)
    i = jax.random.randint(rng, (), 0, len(self.resets))
    return self.init_state(jax.tree_util.tree_map(lambda x: x[i], bank))

  def step(self, state: State, action) -> State:
    c = self.consts
    a = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
    d = state.data
    mocap = jnp.clip(d.mocap_pos[0] + a[:3] * c.action_scale, c.mocap_low, c.mocap_high)
    d = d.replace(
      mocap_pos=d.mocap_pos.at[0].set(mocap),
      mocap_quat=jnp.broadcast_to(MOCAP_QUAT, d.mocap_quat.shape),
      ctrl=jnp.stack([a[3], -a[3]]),
    )
    model = self._model(state.info)
    d = jax.lax.fori_loop(0, c.frame_skip, lambda _, x: mjx.step(model, x), d)
    d = self._observable(model, d)  # MetaWorld calls mj_forward before observing
    target = state.info["target_pos"]
    obs = jnp.concatenate([self.frame(d), state.obs[: tasks_lib.FRAME_DIM], target])
    obs = jnp.clip(obs, c.obs_low, c.obs_high)
    info = dict(state.info, steps=state.info["steps"] + 1)
    return State(d, obs, self.success_of(d, obs, target), info)


@functools.lru_cache(maxsize=8)
def make_env(task: str) -> MJXEnv:
  """A cached MJXEnv per task (conversion and put_model once)."""
  return MJXEnv(task)
