"""Success-rate evaluation on the real MetaWorld (C MuJoCo) with a batched policy in the loop.

All episodes of an evaluation run side by side: the policy is called once per replanning
step on a batch of every environment's observation history (its jitted batch size is the
number of environments) and each environment executes the returned `n_action_steps`
actions. Episodes use fresh, seeded MetaWorld resets; the same `seed` gives the same
initial conditions, so methods evaluated with one seed see identical episodes. The MJX
evaluator (`jaxpolicy.envs.mjx.evaluator`) runs the same episodes in one compiled program;
`jaxpolicy.runs.evaluate` picks between them.
"""
from __future__ import annotations

import time

import jax
import numpy as np

from jaxpolicy.envs import metaworld_cpu as mw
from jaxpolicy.envs.registry import check_task
from jaxpolicy.stats import calls_until_success, latency_summary, stall_summary

_ENVS: dict = {}   # one task's environments, reused by its evaluations


def _envs(task: str, n: int):
  if task not in _ENVS:   # a sweep moves on through tasks: free the last one's simulators
    _ENVS.clear()
  envs = _ENVS.setdefault(task, [])
  while len(envs) < n:
    envs.append(mw.make_env(task, seed=len(envs)))
  return envs[:n]


def evaluate(policy, task: str, episodes: int = 20, seed: int = 0,
             episode_length: int = mw.EPISODE_LENGTH, sensor=None,
             stop_on_success: bool = True) -> dict:
  """Runs `episodes` episodes at once; success = MetaWorld's flag at any step.

  An episode ends at its first success: with `stop_on_success` its simulator is not stepped
  after it (the policy still gets its last observations, in the batch), and the evaluation
  ends when every episode has; the results are those of full-length episodes (every row of
  a batched policy call depends on its own inputs only), at about half the simulation on
  the leaderboard's tasks. A carried sampler's stalls count until the first success.
  `sensor(env) -> (P, 3)` provides point clouds for policies that observe them.
  """
  task = check_task(task)
  envs = _envs(task, episodes)
  n_obs = policy.nets.n_obs_steps
  hist = {k: [] for k in policy.obs_shapes}
  for i, env in enumerate(envs):
    env.seed(seed * 100_003 + i)
    state = mw.reset(env)
    o = mw.observe(env, state, sensor)
    for k in hist:
      hist[k].append([o[k]] * n_obs)
  success = np.zeros(episodes, bool)
  first = np.full(episodes, -1)
  stalls = np.zeros(episodes)
  latencies, t, call, env_steps = [], 0, 0, 0
  key = jax.random.PRNGKey(seed)
  # compile and run a first and a second call (a carried sampler's two branches: the first
  # execution of each costs extra) before the episodes, so every call below is timed warm
  policy.reset(episodes)
  for _ in range(2):
    policy({k: np.asarray(v, np.float32) for k, v in hist.items()}, key)
  policy.reset(episodes)
  t_start = time.time()
  while t < episode_length and not (stop_on_success and success.all()):
    obs = {k: np.asarray(v, np.float32) for k, v in hist.items()}
    t0 = time.perf_counter()
    actions = policy(obs, jax.random.fold_in(key, call))
    latencies.append(time.perf_counter() - t0)
    flags = policy.stall_flags(policy.carry)
    if flags is not None:
      stalls += np.asarray(flags) & ~success   # an episode's calls until its first success
    call += 1
    for j in range(actions.shape[1]):
      if t >= episode_length:
        break
      for i, env in enumerate(envs):
        if stop_on_success and success[i]:
          continue
        state, succ = mw.step(env, actions[i, j])
        env_steps += 1
        if succ and not success[i]:
          success[i], first[i] = True, t
        o = mw.observe(env, state, sensor)
        for k in hist:
          hist[k][i] = hist[k][i][1:] + [o[k]]
      t += 1
  wall_s = round(time.time() - t_start, 2)
  out = {"success_rate": float(success.mean()), "episodes": int(episodes), "seed": int(seed),
         **policy.nfe_report(episode_length), **latency_summary(np.asarray(latencies) * 1e3),
         "batch": int(episodes), "episode_length": int(episode_length), "backend": "metaworld",
         "successes": success.astype(int).tolist(), "first_success_step": first.tolist(),
         "wall_s": wall_s, "env_steps": env_steps}
  if policy.stall_flags(policy.carry) is not None:
    out.update(stall_summary(stalls, calls_until_success(first, policy.n_action_steps, call)))
  return out
