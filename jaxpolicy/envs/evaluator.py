"""Success-rate evaluation on a suite's CPU environments with a batched policy in the loop.

All episodes of an evaluation run side by side: the policy is called once per replanning
step on a batch of every environment's observation history, and each environment executes
the returned actions. Episode i of seed s resets from `episode_seeds(s, ...)[i]`, so every
method (and the MJX evaluator, `jaxpolicy.envs.mjx.evaluator`) evaluated with one seed sees
the same initial states; the result records a hash of each. An episode ends at its first
success: its simulator is not stepped after it (every row of a batched policy call depends
on its own inputs only, so the results are those of full-length episodes).
"""

from __future__ import annotations

import hashlib
import time

import jax
import numpy as np

from jaxpolicy import execution
from jaxpolicy.envs.suite import SuiteInfo, episode_seeds
from jaxpolicy.stats import calls_until_success, latency_summary, stall_summary

_ENVS: dict = {}  # one task's environments, reused by its evaluations


def _envs(suite: SuiteInfo, task: str, n: int) -> list:
  key = (suite.name, task)
  if key not in _ENVS:  # a sweep moves on through tasks: free the last one's simulators
    _ENVS.clear()
  envs = _ENVS.setdefault(key, [])
  while len(envs) < n:
    envs.append(suite.make_env(task, len(envs)))
  return envs[:n]


def _stacked(frames) -> np.ndarray:
  """A batch of observation histories: floating observations as float32, camera frames
  (uint8) as they are."""
  a = np.asarray(frames)
  return a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a


def observe(env, obs: dict, sensor=None, features=None) -> dict:
  """An environment's observation plus its sensor's (point clouds, camera frames);
  `features` ({policy key: observation keys}, SuiteInfo.observation_map) adds each policy
  key as its observation keys concatenated."""
  obs = dict(obs, **sensor(env)) if sensor is not None else obs
  if features:
    obs = dict(
      obs,
      **{
        k: np.concatenate([np.ravel(obs[p]) for p in parts]).astype(np.float32)
        for k, parts in features.items()
      },
    )
  return obs


def state_hash(obs: dict) -> str:
  """A short hash of an observation's low-dimensional arrays (the suite's `obs_keys`),
  rounded to 1e-4 (float rounding of one simulator apart): equal initial states have equal
  hashes on either backend."""
  h = hashlib.sha1()
  for k in sorted(obs):
    v = np.asarray(obs[k], np.float64)
    if v.ndim <= 1:
      h.update(k.encode() + (np.round(v, 4) + 0.0).astype(np.float32).tobytes())
  return h.hexdigest()[:12]


def episode_extras(suite: SuiteInfo, infos: list[dict]) -> dict:
  """The suite's per-episode extras and their summaries: `metrics` (0/1, e.g. p1) with their
  rate, `scores` (floats, e.g. Push-T's coverage) with their mean, mode labels with counts."""
  out = {}
  for m in suite.metrics:
    vals = [int(bool(i[m])) for i in infos]
    out[m] = vals
    out[f"{m}_rate"] = float(np.mean(vals)) if vals else float("nan")
  for m in suite.scores:
    vals = [float(i[m]) for i in infos]
    out[m] = vals
    out[f"{m}_mean"] = float(np.mean(vals)) if vals else float("nan")
  if suite.modes:
    modes = [i["mode"] for i in infos]
    out["modes"] = modes
    out["mode_counts"] = {m: modes.count(m) for m in suite.modes}
  return out


def rtc_guide(plan: dict, t: int, timing: execution.Timing, xp=np):
  """(target, weights) guiding a chunk requested at step t to agree with the plan's
  committed actions (real-time chunking)."""
  target, have = execution.committed(xp, plan, t, timing.span)
  w = xp.asarray(execution.rtc_weights(timing.span, timing.delay, timing.n_action_steps))
  weights = xp.broadcast_to(w * have.astype(xp.float32), target.shape[:2])
  return target, weights


def evaluate(
  policy,
  suite: SuiteInfo,
  task: str,
  episodes: int = 20,
  seed: int = 0,
  episode_length: int | None = None,
  sensor=None,
  stop_on_success: bool = True,
  timing: execution.Timing | None = None,
  features: dict | None = None,
) -> dict:
  """Runs `episodes` episodes of `task` at once; success = the suite's flag at any step.

  `sensor(env) -> {key: array}` adds point clouds or camera frames for policies that observe
  them. `timing` (jaxpolicy.execution): how chunks execute while the policy computes; None
  = time stands still during a call (sync, no delay). A carried sampler's stalls count until
  an episode's first success. `features`: how a policy trained on a dataset of its own reads
  the suite's observations (`observe`).
  """
  episode_length = int(episode_length or suite.episode_length)
  timing = timing or execution.Timing(0, policy.span, policy.n_action_steps)
  timing.check(episode_length)
  envs = _envs(suite, task, episodes)
  n_obs = policy.nets.n_obs_steps
  hist = {k: [] for k in policy.obs_shapes}
  hashes = []
  for env, s in zip(envs, episode_seeds(seed, episodes)):
    o = env.reset(seed=s)
    hashes.append(state_hash({k: o[k] for k in suite.obs_keys}))
    o = observe(env, o, sensor, features)
    for k in hist:
      hist[k].append([o[k]] * n_obs)
  success = np.zeros(episodes, bool)
  first = np.full(episodes, -1)
  stalls = np.zeros(episodes)
  latencies, call, env_steps, held = [], 0, 0, 0
  key = jax.random.PRNGKey(seed)
  batch = lambda: {k: _stacked(v) for k, v in hist.items()}
  # compile and run a first and a second call (a carried sampler's two branches: the first
  # execution of each costs extra) before the episodes, so every call below is timed warm
  policy.reset(episodes)
  for _ in range(2):
    policy(batch(), key)
  policy.reset(episodes)
  plan = execution.empty_plan(np, episodes, episode_length, timing.span, suite.action_dim)
  last = np.stack(
    [
      np.asarray(env.rest_action(), np.float32) if hasattr(env, "rest_action") else suite.rest()
      for env in envs
    ]
  )  # what holding means before any
  requests = {r: (arrival, base) for r, arrival, base in execution.schedule(timing, episode_length)}
  pending = None
  t_start = time.time()
  for t in range(episode_length):
    if stop_on_success and success.all():
      break
    if pending is not None and pending[0] == t:
      plan = execution.install(np, plan, pending[2], pending[1], t, timing)
      pending = None
    if t in requests:
      guide = rtc_guide(plan, t, timing) if timing.stitching == "rtc" else None
      t0 = time.perf_counter()
      chunk = np.asarray(
        policy.executable(policy.chunk(batch(), jax.random.fold_in(key, call), guide))
      )
      latencies.append(time.perf_counter() - t0)
      flags = policy.stall_flags(policy.carry)
      if flags is not None:
        stalls += np.asarray(flags) & ~success  # an episode's calls until its first success
      call += 1
      arrival, base = requests[t]
      if arrival == t:
        plan = execution.install(np, plan, chunk, base, t, timing)
      else:
        pending = (arrival, base, chunk)
    hold = np.stack([suite.hold(a) for a in last])
    actions, planned = execution.action_at(np, plan, t, hold)
    held += int(not planned)
    last = actions
    for i, env in enumerate(envs):
      if stop_on_success and success[i]:
        continue
      o, succ = env.step(actions[i])
      env_steps += 1
      if succ and not success[i]:
        success[i], first[i] = True, t
      o = observe(env, o, sensor, features)
      for k in hist:
        hist[k][i] = hist[k][i][1:] + [o[k]]
  calls = calls_until_success(first, requests, call)
  out = {
    "success_rate": float(success.mean()),
    "episodes": int(episodes),
    "seed": int(seed),
    **policy.nfe_report(episode_length, calls),
    **latency_summary(np.asarray(latencies) * 1e3),
    "batch": int(episodes),
    "episode_length": int(episode_length),
    "backend": "cpu",
    "suite": suite.name,
    "successes": success.astype(int).tolist(),
    "first_success_step": first.tolist(),
    "initial_state_hashes": hashes,
    "wall_s": round(time.time() - t_start, 2),
    "env_steps": env_steps,
    **episode_extras(suite, [e.episode_info() for e in envs]),
  }
  if timing.delay or timing.mode != "sync":
    out.update(execution=timing_record(timing), held_steps=held)
  if policy.stall_flags(policy.carry) is not None:
    out.update(stall_summary(stalls, calls))
  return out


def timing_record(timing: execution.Timing) -> dict:
  return {
    "delay_steps": timing.delay,
    "mode": timing.mode,
    "stitching": timing.stitching,
    "n_action_steps": timing.n_action_steps,
    "span": timing.span,
  }
