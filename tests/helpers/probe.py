"""A probe suite and policy for real-time execution: the environment's observation is the
control step it was taken at, the policy plans actions that say which step they were planned
for and which observation they came from, and the environment logs what it executed.

Action = (OFFSET + the step it was planned for, OFFSET + the step of the observation it came
from); the first dimension is a delta, the second absolute, so a hold is (0, the last
command's second value).
"""

from __future__ import annotations

import dataclasses

import flax
import jax
import jax.numpy as jnp
import numpy as np

from jaxpolicy.envs.suite import SuiteInfo

LENGTH = 40
OFFSET = 100.0


class ProbeEnv:
  model = data = None

  def __init__(self, task, seed):
    del task, seed
    self.t, self.log = 0, []

  def reset(self, seed=None):
    del seed
    self.t, self.log = 0, []
    return self._obs()

  def step(self, action):
    self.log.append(np.asarray(action, np.float32).copy())
    self.t += 1
    return self._obs(), False

  def _obs(self):
    return {"full_state": np.asarray([self.t], np.float32)}

  def episode_info(self):
    return {}


@flax.struct.dataclass
class State:
  t: jax.Array
  log: jax.Array  # (LENGTH, 2) executed actions
  success: jax.Array
  data: None = None


class ProbeJAX:
  task = "probe"

  def evaluation_states(self, seed, episodes):
    del seed
    return np.zeros((episodes,), np.int32)

  def init_state(self, x):
    return State(jnp.asarray(x, jnp.int32), jnp.full((LENGTH, 2), -99.0), jnp.zeros((), bool))

  def step(self, state, action):
    log = state.log.at[state.t].set(jnp.asarray(action, jnp.float32))
    return State(state.t + 1, log, jnp.zeros((), bool))

  def observe(self, state, key):
    del key
    return jnp.asarray(state.t, jnp.float32)[None]

  def episode_info(self, state):
    del state
    return {}


INFO = SuiteInfo(
  name="probe",
  tasks=("probe",),
  groups={"probe": ("probe",)},
  group_labels={"probe": "Probe"},
  make_env=ProbeEnv,
  mjx_env=lambda task: ProbeJAX(),
  obs_keys={"full_state": (1,)},
  action_kind=("delta", "absolute"),
  episode_length=LENGTH,
  control_hz=10.0,
  success="never",
)


@dataclasses.dataclass
class ProbeNets:
  horizon: int = 8
  n_obs_steps: int = 2
  action_dim: int = 2


class ProbePolicy:
  """Plans, from its last observation (step o), position p's action for step
  o + p - (n_obs - 1) and says so: (that step, o). Duck-types `jaxpolicy.policy.Policy`
  for both evaluators; `guide` (rtc) is recorded by the CPU evaluator's calls."""

  name, nfe, nfe_first, guidable = "probe", 1, None, True

  def __init__(self, horizon=8, n_obs_steps=2, n_action_steps=3):
    self.nets = ProbeNets(horizon, n_obs_steps)
    self.n_action_steps = n_action_steps
    self.obs_shapes = {"full_state": (1,)}
    self.params = (jnp.zeros(()), jnp.zeros(()))
    self.carry = ()
    self.guides = []

  span = property(lambda self: self.nets.horizon - self.nets.n_obs_steps + 1)

  def apply(self, params, obs, carry, rng, guide=None):
    del params, rng, guide
    o = obs["full_state"][:, -1, 0]
    pos = jnp.arange(self.nets.horizon) - (self.nets.n_obs_steps - 1)
    planned = OFFSET + o[:, None] + pos[None].astype(jnp.float32)
    source = jnp.broadcast_to(OFFSET + o[:, None], planned.shape)
    return jnp.stack([planned, source], -1), carry

  def init_carry(self, batch):
    del batch
    return ()

  def reset(self, batch):
    del batch

  def chunk(self, obs, rng, guide=None):
    self.guides.append(guide)
    return self.apply(self.params, {k: jnp.asarray(v) for k, v in obs.items()}, (), rng)[0]

  def executable(self, chunk):
    return chunk[:, self.nets.n_obs_steps - 1 :]

  def __call__(self, obs, rng):
    c = self.executable(self.chunk(obs, rng))
    return np.asarray(c[:, : self.n_action_steps])

  stall_flags = staticmethod(lambda carry: None)

  def nfe_report(self, episode_length, calls=None):
    return {"nfe": 1, "policy_calls": float(np.mean(calls)) if calls is not None else 0}

  def compiled_cost(self, batch):
    fn = jax.jit(self.apply)
    return 0.0, fn
