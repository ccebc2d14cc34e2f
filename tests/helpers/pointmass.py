"""A tiny suite from its own file: a point on a plane reaches a goal (`pointmass-reach`).

It shows that a suite joins everything without editing a shared file (`register(INFO)`),
and it is the fast environment of the pipeline tests: no MuJoCo, episodes of 30 steps, an
exact scripted expert, and a pure-JAX form for the compiled evaluator.

Dynamics: pos <- clip(pos + STEP * clip(a, -1, 1), -1, 1); success: |pos - goal| < RADIUS.
Observations: full_state = (pos, goal), agent_pos = pos. Actions: 2-d deltas.
"""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np

from jaxpolicy.envs.suite import SuiteInfo, episode_seeds

STEP, RADIUS, LENGTH = 0.15, 0.08, 30


def _initial(seed: int) -> np.ndarray:
  """(pos, goal) of an episode: uniform in [-0.8, 0.8]^2 each."""
  return np.random.default_rng(int(seed)).uniform(-0.8, 0.8, 4).astype(np.float32)


class PointMassEnv:
  model = data = None  # no MuJoCo model: no sensors

  def __init__(self, task: str, seed: int):
    del task
    self._rng = np.random.default_rng(int(seed))
    self.pos, self.goal = np.zeros(2, np.float32), np.zeros(2, np.float32)

  def reset(self, seed=None) -> dict:
    s = int(self._rng.integers(2**31)) if seed is None else seed
    x = _initial(s)
    self.pos, self.goal = x[:2], x[2:]
    return self._obs()

  def step(self, action):
    a = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
    self.pos = np.clip(self.pos + STEP * a, -1.0, 1.0).astype(np.float32)
    return self._obs(), bool(np.linalg.norm(self.pos - self.goal) < RADIUS)

  def _obs(self) -> dict:
    return {"full_state": np.concatenate([self.pos, self.goal]), "agent_pos": self.pos.copy()}

  def episode_info(self) -> dict:
    return {}


class Expert:
  def __init__(self, task: str):
    del task

  def reset(self, seed: int) -> None:
    del seed

  def __call__(self, obs: dict) -> np.ndarray:
    s = np.asarray(obs["full_state"], np.float32)
    return np.clip((s[2:] - s[:2]) / STEP, -1.0, 1.0)


@flax.struct.dataclass
class State:
  x: jax.Array  # (pos, goal)
  success: jax.Array
  data: None = None


class PointMassJAX:
  """The compiled evaluator's form of the same environment (pure jax.numpy)."""

  task = "pointmass-reach"

  def evaluation_states(self, seed: int, episodes: int) -> np.ndarray:
    return np.stack([_initial(s) for s in episode_seeds(seed, episodes)])

  def init_state(self, x) -> State:
    return State(jnp.asarray(x, jnp.float32), jnp.zeros((), bool))

  def step(self, state: State, action) -> State:
    a = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
    pos = jnp.clip(state.x[:2] + STEP * a, -1.0, 1.0)
    return State(state.x.at[:2].set(pos), jnp.linalg.norm(pos - state.x[2:]) < RADIUS)

  def observe(self, state: State, key: str):
    return state.x if key == "full_state" else state.x[:2]

  def episode_info(self, state: State) -> dict:
    del state
    return {}


INFO = SuiteInfo(
  name="pointmass",
  tasks=("pointmass-reach",),
  groups={"toy": ("pointmass-reach",)},
  group_labels={"toy": "Toy"},
  make_env=PointMassEnv,
  make_expert=Expert,
  mjx_env=lambda task: PointMassJAX(),
  obs_keys={"full_state": (4,), "agent_pos": (2,)},
  action_kind=("delta", "delta"),
  episode_length=LENGTH,
  control_hz=20.0,
  success=f"the point within {RADIUS} of the goal, at any step",
  demo_episodes=16,
)
