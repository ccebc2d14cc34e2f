"""MetaWorld's own scripted experts driving MJX environments, a batch at a time.

The experts (`metaworld.policies`) are NumPy functions of the 39-d observation; they run on
the host for each environment of the batch while the batch steps in MJX with one jitted
`vmap(env.step)`. Used to measure fidelity against the real MetaWorld (benchmarks/fidelity.py).
"""

from __future__ import annotations

import time

import jax
import numpy as np

from jaxpolicy.suites.metaworld import env as mw
from jaxpolicy.suites.metaworld.mjx import env as env_lib
from jaxpolicy.suites.metaworld.mjx.resets import (
  ResetBank,
  evaluation_seeds,
  metaworld_env,
  snapshot,
  stack,
)


def expert_actions(policy, obs: np.ndarray) -> np.ndarray:
  """(B, 39) observations -> (B, 4) clipped expert actions."""
  return np.stack([mw.expert_action(policy, o) for o in np.asarray(obs, np.float64)])


def run_expert(
  task: str,
  resets: ResetBank,
  episode_length: int = mw.EPISODE_LENGTH,
  env: env_lib.MJXEnv | None = None,
  stop_when_done: bool = True,
) -> dict:
  """Rolls MetaWorld's scripted expert out in MJX from each row of `resets`.

  Returns {"successes" (B,) bool, "first_success_step" (B,) int (-1 = never), "steps",
  "wall_s", "compile_s", "max_penetrating_contacts" (the most contacts with negative
  distance seen in one environment: below the env's contact limit means it never bound)}.
  `stop_when_done` ends early once every episode has succeeded.
  """
  env = env or env_lib.make_env(task)
  policy = mw.expert_policy(env.task)
  t0 = time.perf_counter()
  init = jax.jit(jax.vmap(env.init_state))
  step = jax.jit(jax.vmap(env.step))
  states = init(resets)
  a0 = np.zeros((len(resets), 4), np.float32)
  step = step.lower(states, a0).compile()
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  batch = len(resets)
  success = np.zeros(batch, bool)
  first = np.full(batch, -1)
  touching = 0  # most contacts with dist < 0 in one env (vs the env's contact limit)
  t = 0
  while t < episode_length:
    obs = np.asarray(states.obs)
    actions = expert_actions(policy, obs)
    states = step(states, actions)
    s = np.asarray(states.success)
    touching = max(touching, int((np.asarray(states.data.contact.dist) < 0).sum(-1).max()))
    first = np.where(s & ~success, t, first)
    success |= s
    t += 1
    if stop_when_done and success.all():
      break
  out = {
    "successes": success,
    "first_success_step": first,
    "steps": t,
    "wall_s": time.perf_counter() - t0,
    "compile_s": compile_s,
    "max_penetrating_contacts": touching,
  }
  return out


def run_expert_metaworld(
  task: str,
  seed: int,
  episodes: int,
  episode_length: int = mw.EPISODE_LENGTH,
  stop_when_done: bool = True,
  env=None,
) -> dict:
  """The same expert on the real MetaWorld, from the same seeded resets (`env`: a MetaWorld
  env of `task` to run in instead of the cached one, e.g. with its model swapped)."""
  env = metaworld_env(task) if env is None else env
  policy = mw.expert_policy(task)
  success = np.zeros(episodes, bool)
  first = np.full(episodes, -1)
  t0 = time.perf_counter()
  for i, s in enumerate(evaluation_seeds(seed, episodes)):
    env.seed(s)
    obs = mw.reset(env)
    for t in range(episode_length):
      obs, succ = mw.step(env, mw.expert_action(policy, obs.copy()))
      if succ:
        success[i], first[i] = True, t
        if stop_when_done:
          break
  return {"successes": success, "first_success_step": first, "wall_s": time.perf_counter() - t0}


def record_metaworld(task: str, seed: int, steps: int, noise: float = 0.0):
  """States, observations and success flags of a MetaWorld expert episode.

  Returns (rows, prev_frames, obs, success): `rows` a ResetBank of the state after each
  step (per-episode model fields included), `prev_frames` (T, 18) the previous frame each
  step's observation carries, `obs` (T, 39) MetaWorld's observations and `success` (T,) its
  `evaluate_state` flags; `noise` adds Gaussian action noise (more varied states).
  """
  env = metaworld_env(task)
  policy = mw.expert_policy(task)
  rng = np.random.default_rng(seed)
  env.seed(int(seed))
  obs = mw.reset(env)
  rows, prev, out_obs, success = [], [], [], []
  for _ in range(steps):
    a = mw.expert_action(policy, obs.copy())  # some experts edit their input in place
    if noise:
      a = np.clip(a + noise * rng.standard_normal(4), -1.0, 1.0).astype(np.float32)
    prev.append(obs[:18].copy())
    obs, succ = mw.step(env, a)
    rows.append(snapshot(env, obs))
    out_obs.append(obs)
    success.append(succ)
  return (
    stack(rows),
    np.asarray(prev, np.float32),
    np.asarray(out_obs, np.float32),
    np.asarray(success, bool),
  )
