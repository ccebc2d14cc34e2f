"""Success-rate evaluation on the real MetaWorld with a batched policy in the loop.

All episodes of an evaluation run side by side: the policy is called once per replanning
step on a batch of every environment's observation history (its jitted batch size is the
number of environments) and each environment executes the returned `n_action_steps`
actions. Episodes use fresh, seeded MetaWorld resets; the same `seed` gives the same
initial conditions, so methods evaluated with one seed see identical episodes.
With `backend="mjx"` the same episodes run in MuJoCo MJX instead, all of them and the
policy in one compiled program (jaxpolicy.envs.mjx.evaluator); "auto" picks MJX on
accelerators and the real MetaWorld on CPU.
"""
from __future__ import annotations

import json
import logging as _logging
import os
import time

import jax
import numpy as np

from jaxpolicy.envs import metaworld_cpu as mw
from jaxpolicy.envs.registry import check_task
from jaxpolicy.stats import latency_summary, stall_summary

logging = _logging.getLogger("jaxpolicy")

BACKENDS = ("auto", "metaworld", "mjx")
_ENVS: dict = {}


def _envs(task: str, n: int):
  envs = _ENVS.setdefault(task, [])
  while len(envs) < n:
    envs.append(mw.make_env(task, seed=len(envs)))
  return envs[:n]


def resolve_backend(backend: str) -> str:
  """"auto" = MJX when JAX sees an accelerator, else the real MetaWorld; or as given."""
  if backend not in BACKENDS:
    raise ValueError(f"unknown evaluation backend {backend!r}; choose one of {BACKENDS}")
  if backend == "auto":
    return "mjx" if jax.default_backend() != "cpu" else "metaworld"
  return backend


def evaluate(policy, task: str, episodes: int = 20, seed: int = 0,
             episode_length: int = mw.EPISODE_LENGTH, sensor=None,
             backend: str = "auto") -> dict:
  """Runs `episodes` episodes at once; success = MetaWorld's flag at any step.

  `sensor(env) -> (P, 3)` provides point clouds for policies that observe them.
  `backend`: "metaworld" (the real MetaWorld, C MuJoCo), "mjx" (every episode and the policy
  in one compiled MJX program, jaxpolicy.envs.mjx.evaluator) or "auto" (MJX when JAX sees
  an accelerator, else MetaWorld). The same seed gives the same initial conditions on both
  backends.
  """
  task = check_task(task)
  chosen = resolve_backend(backend)
  if (chosen == "mjx" and backend == "auto" and "point_cloud" in policy.obs_shapes
      and getattr(sensor, "mjx", None) is None):
    logging.info("no MJX form of the point-cloud sensor: evaluating on MetaWorld")
    chosen = "metaworld"
  if chosen == "mjx":
    from jaxpolicy.envs.mjx import evaluator  # pylint: disable=g-import-not-at-top
    return evaluator.evaluate(policy, task, episodes=episodes, seed=seed,
                              episode_length=episode_length, sensor=sensor)
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
  latencies, t, call = [], 0, 0
  key = jax.random.PRNGKey(seed)
  # compile and run a first and a second call (a carried sampler's two branches: the first
  # execution of each costs extra) before the episodes, so every call below is timed warm
  policy.reset(episodes)
  for _ in range(2):
    policy({k: np.asarray(v, np.float32) for k, v in hist.items()}, key)
  policy.reset(episodes)
  t_start = time.time()
  while t < episode_length:
    obs = {k: np.asarray(v, np.float32) for k, v in hist.items()}
    t0 = time.perf_counter()
    actions = policy(obs, jax.random.fold_in(key, call))
    latencies.append(time.perf_counter() - t0)
    flags = policy.stall_flags(policy.carry)
    if flags is not None:
      stalls += np.asarray(flags)
    call += 1
    for j in range(actions.shape[1]):
      if t >= episode_length:
        break
      for i, env in enumerate(envs):
        state, succ = mw.step(env, actions[i, j])
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
         "wall_s": wall_s}
  if policy.stall_flags(policy.carry) is not None:
    out.update(stall_summary(stalls, call))
  return out


def format_table(results: dict) -> str:
  """results: {task: {policy: metrics}} -> a fixed-width text table."""
  lines = [f"{'task':<24}{'policy':<22}{'success':>9}{'episodes':>10}{'NFE':>5}"
           f"{'NFE/call':>9}{'latency ms':>12}"]
  for task, pols in results.items():
    for name, r in pols.items():   # NFE/call: amortised over an episode (first call included)
      lines.append(f"{task:<24}{name:<22}{r['success_rate']:>9.2f}{r['episodes']:>10d}"
                   f"{r['nfe']:>5d}{r.get('nfe_amortised', r['nfe']):>9.2f}"
                   f"{r['latency_ms']:>12.2f}")
  return "\n".join(lines)


def read_results(workdir: str, name: str = "eval.json") -> dict:
  """The whole results file <workdir>/<name>: {"tasks": {task: {policy: ...}}, metadata}."""
  path = os.path.join(workdir, name)
  if not os.path.exists(path):
    return {"tasks": {}}
  with open(path) as f:
    return json.load(f)


def write_results(workdir: str, results: dict, extra: dict | None = None,
                  name: str = "eval.json") -> str:
  path = os.path.join(workdir, name)
  payload = dict(extra or {}, tasks=results)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(payload, f, indent=2)
  os.replace(tmp, path)
  logging.info("wrote %s", path)
  return path
