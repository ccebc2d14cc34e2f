"""Batched MJX evaluation: every episode and the policy in one compiled program.

`evaluate(policy, suite, task, episodes, seed)` runs a suite's MJX form with `jax.vmap` over
environments and `lax.scan` over control steps (`make_rollout`); the policy
(`Policy.apply` with its carry) runs inside the scan whenever the executed part of its
chunk is used up, as the CPU evaluator replans. Results have the CPU evaluator's format plus
the backend, compile time and env-steps/s. What a suite's MJX form must offer:
docs/environments.md, "MetaWorld in MJX".
"""

from __future__ import annotations

import logging as _logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpolicy import execution
from jaxpolicy.envs import evaluator
from jaxpolicy.envs.evaluator import episode_extras, state_hash, timing_record
from jaxpolicy.envs.mjx.pointcloud import mjx_form
from jaxpolicy.envs.suite import SuiteInfo
from jaxpolicy.stats import calls_until_success, latency_summary, stall_summary

logging = _logging.getLogger("jaxpolicy")


def observe(env, state, keys, sensor=None) -> dict:
  """The policy's per-frame observation dict from an (unbatched) MJX state."""
  out = {}
  for k in keys:
    if k == "point_cloud":
      if sensor is None:
        raise ValueError(
          "this policy observes point clouds, but no MJX point-cloud sensor was given; "
          "evaluate it with --config.eval.backend=cpu or pass an MJX sensor"
        )
      out[k] = sensor(env, state)
    else:
      out[k] = env.observe(state, k)
  return out


def _mjx_sensor(sensor):
  """The JAX form of a point-cloud sensor: `form(env, state) -> (P, 3)`, or None."""
  if sensor is None:
    return None
  fn = mjx_form(sensor)
  if fn is None:
    raise ValueError(
      f"the point-cloud sensor's geometry set {sensor.spec.geoms!r} has no MJX "
      f"form (only 'light' does); evaluate point-cloud policies with "
      f"--config.eval.backend=cpu"
    )
  return fn


def make_rollout(
  env,
  policy,
  episode_length: int,
  sensor=None,
  return_final: bool = False,
  state_keys: tuple = (),
  timing: execution.Timing | None = None,
  suite: SuiteInfo | None = None,
):
  """A pure `rollout(params, states, key) -> (success, first_success_step, stall calls,
  initial observations, episode info)`, the first three (B,) (stall calls: how many of an
  episode's policy calls before its first success reported a stall; 0 for stateless ones).

  `states` is a batch of B initial states (`env.evaluation_states`); jit it, or lower and
  compile it apart to time compilation. `return_final` adds the final (env states, carry).
  The initial observations returned are those of `state_keys` (default: the policy's own,
  less sensors), for the initial-state hashes. `timing` (jaxpolicy.execution; its delay is
  a static integer of the program): how chunks execute while the policy computes; None =
  time stands still during a call. `suite` gives the hold command (else 0).
  """
  keys = tuple(policy.obs_shapes)
  n_obs = policy.nets.n_obs_steps
  timing = timing or execution.Timing(0, policy.span, policy.n_action_steps)
  timing.check(episode_length)
  fn = _mjx_sensor(sensor)
  obs_of = jax.vmap(lambda s: observe(env, s, keys, fn))
  env_keys = tuple(state_keys) or tuple(k for k in keys if k != "point_cloud")
  a_dim = policy.nets.action_dim
  delta = suite.delta_mask if suite is not None else np.ones(a_dim, bool)
  rest = suite.rest() if suite is not None else np.zeros(a_dim, np.float32)
  sched = execution.schedule(timing, episode_length)
  request = np.full(episode_length, -1, np.int32)  # the call requested at each step
  arrival = np.full(episode_length, -1, np.int32)  # the call arriving at each step
  for k, (r, arr, _) in enumerate(sched):
    request[r] = k
    if timing.delay and arr < episode_length:
      arrival[arr] = k
  base = np.asarray([b for _, _, b in sched], np.int32)

  def rollout(params, resets, key):
    batch = jax.tree_util.tree_leaves(resets)[0].shape[0]
    states = jax.vmap(env.init_state)(resets)
    o = obs_of(states)
    initial = {k: jax.vmap(lambda s, k=k: env.observe(s, k))(states) for k in env_keys}
    hist = {k: jnp.repeat(v[:, None], n_obs, axis=1) for k, v in o.items()}
    plan = execution.empty_plan(jnp, batch, episode_length, timing.span, a_dim)
    pending = jnp.zeros((batch, timing.span, a_dim), jnp.float32)
    last = jnp.broadcast_to(jnp.asarray(rest), (batch, a_dim))
    success = jnp.zeros((batch,), bool)
    first = jnp.full((batch,), -1, jnp.int32)
    stalls = jnp.zeros((batch,), jnp.int32)

    def call(args):
      hist, pcarry, plan, pending, t, stalls, success = args
      k = jnp.asarray(request)[t]
      guide = evaluator.rtc_guide(plan, t, timing, jnp) if timing.stitching == "rtc" else None
      chunk, pcarry = policy.apply(params, hist, pcarry, jax.random.fold_in(key, k), guide)
      chunk = policy.executable(chunk).astype(jnp.float32)
      flags = policy.stall_flags(pcarry)
      if flags is not None:  # an episode's calls until its first success, as on the CPU
        stalls = stalls + (flags & ~success).astype(jnp.int32)
      if timing.delay:
        pending = chunk
      else:
        plan = execution.install(jnp, plan, chunk, jnp.asarray(base)[k], t, timing)
      return pcarry, plan, pending, stalls

    def no_call(args):
      _, pcarry, plan, pending, _, stalls, _ = args
      return pcarry, plan, pending, stalls

    def body(carry, t):
      states, hist, pcarry, plan, pending, last, success, first, stalls = carry
      if timing.delay:
        k = jnp.asarray(arrival)[t]
        plan = jax.lax.cond(
          k >= 0,
          lambda p: execution.install(
            jnp, p, pending, jnp.asarray(base)[jnp.maximum(k, 0)], t, timing
          ),
          lambda p: p,
          plan,
        )
      pcarry, plan, pending, stalls = jax.lax.cond(
        jnp.asarray(request)[t] >= 0,
        call,
        no_call,
        (hist, pcarry, plan, pending, t, stalls, success),
      )
      hold = jnp.where(jnp.asarray(delta), 0.0, last)
      a, _ = execution.action_at(jnp, plan, t, hold)
      states = jax.vmap(env.step)(states, a)
      new = states.success & ~success
      first = jnp.where(new, t, first)
      success = success | states.success
      o = obs_of(states)
      hist = {k: jnp.concatenate([hist[k][:, 1:], o[k][:, None]], axis=1) for k in hist}
      return (states, hist, pcarry, plan, pending, a, success, first, stalls), None

    init = (states, hist, policy.init_carry(batch), plan, pending, last, success, first, stalls)
    (states, _, pcarry, _, _, _, success, first, stalls), _ = jax.lax.scan(
      body, init, jnp.arange(episode_length)
    )
    out = (success, first, stalls, initial, jax.vmap(env.episode_info)(states))
    return out + ((states, pcarry),) if return_final else out

  return rollout


def _policy_latency(policy, batch: int, calls: int = 11) -> np.ndarray:
  """ms per policy call at this batch size (the same jitted function the host loop uses),
  in episode order: the first call from a fresh carry, then with the carry each returns."""
  obs = {
    k: jnp.zeros((batch, policy.nets.n_obs_steps) + tuple(s), jnp.float32)
    for k, s in policy.obs_shapes.items()
  }
  _, compiled = policy.compiled_cost(batch)
  jax.block_until_ready(
    compiled(policy.params, obs, policy.init_carry(batch), jax.random.PRNGKey(0))
  )  # warm-up
  carry, out = policy.init_carry(batch), []
  for i in range(calls):
    t0 = time.perf_counter()
    _, carry = jax.block_until_ready(compiled(policy.params, obs, carry, jax.random.PRNGKey(i)))
    out.append(time.perf_counter() - t0)
  return np.asarray(out) * 1e3


# Compiled rollouts by (task, policy, episodes, length, sensor, ...): a run's periodic
# evaluations of its several policies (teacher and student, same policy objects and sensor
# every time) compile each once. Entries hold the policy and sensor themselves, so an id
# reused by a later object never finds another's program.
_COMPILED: dict = {}
_MAX_PROGRAMS = 8
COMPILATIONS = [0]  # rollout programs compiled in this process (tests count them)


def run(
  policy,
  env,
  resets,
  seed: int,
  episode_length: int,
  sensor=None,
  return_final: bool = False,
  suite: SuiteInfo | None = None,
  timing: execution.Timing | None = None,
):
  """(result dict, final (states, policy carry) or None) of one batched MJX evaluation from
  the given initial states (one environment per row); policy call c uses
  fold_in(PRNGKey(seed), c). `suite` adds its per-episode extras (p1, modes) and its hold
  command; `timing` see make_rollout."""
  timing = timing or execution.Timing(0, policy.span, policy.n_action_steps)
  if jax.default_backend() == "cpu" and "xla_cpu_use_fusion_emitters=false" not in os.environ.get(
    "XLA_FLAGS", ""
  ):
    logging.warning(
      "MJX on CPU without XLA_FLAGS=--xla_cpu_use_fusion_emitters=false runs "
      "~35x slower; set it before starting (or evaluate with backend=cpu)"
    )
  episodes = jax.tree_util.tree_leaves(resets)[0].shape[0]
  key = jax.random.PRNGKey(seed)
  cache_key = (
    env.task,
    id(policy),
    episodes,
    int(episode_length),
    id(sensor),
    return_final,
    timing,
  )
  t0 = time.perf_counter()
  hit = _COMPILED.get(cache_key)
  if hit is None or hit[0] is not policy or hit[1] is not sensor:
    rollout = jax.jit(
      make_rollout(
        env,
        policy,
        episode_length,
        sensor,
        return_final,
        tuple(suite.obs_keys) if suite is not None else (),
        timing,
        suite,
      )
    )
    while len(_COMPILED) >= _MAX_PROGRAMS:  # they hold the model as constants: keep a few
      _COMPILED.pop(next(iter(_COMPILED)))
    hit = (policy, sensor, rollout.lower(policy.params, resets, key).compile())
    COMPILATIONS[0] += 1
  _COMPILED.pop(cache_key, None)
  _COMPILED[cache_key] = hit  # most recently used last
  compiled = hit[2]
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  out = jax.block_until_ready(compiled(policy.params, resets, key))
  run_s = time.perf_counter() - t0
  lat = _policy_latency(policy, episodes)
  success, first = np.asarray(out[0]), np.asarray(out[1])
  requests = [r for r, _, _ in execution.schedule(timing, episode_length)]
  calls = calls_until_success(first, requests, len(requests))
  initial = {k: np.asarray(v) for k, v in out[3].items()}
  result = {
    "success_rate": float(success.mean()),
    "episodes": int(episodes),
    "seed": int(seed),
    **policy.nfe_report(episode_length, calls),
    **latency_summary(lat),
    "batch": int(episodes),
    "episode_length": int(episode_length),
    "backend": "mjx",
    "successes": success.astype(int).tolist(),
    "first_success_step": first.tolist(),
    "initial_state_hashes": [
      state_hash({k: v[i] for k, v in initial.items()}) for i in range(episodes)
    ],
    "wall_s": round(run_s, 2),
    "compile_s": round(compile_s, 2),
    "env_steps_per_s": float(episodes * episode_length / max(run_s, 1e-9)),
  }
  if timing.delay or timing.mode != "sync":
    result["execution"] = timing_record(timing)
  if suite is not None:
    info = {k: np.asarray(v) for k, v in out[4].items()}
    infos = [
      {k: (suite.modes[int(v[i])] if k == "mode" else v[i]) for k, v in info.items()}
      for i in range(episodes)
    ]
    result.update(episode_extras(suite, infos))
  if policy.stall_flags(policy.init_carry(1)) is not None:
    result.update(stall_summary(np.asarray(out[2]), calls))
  return result, (out[5] if return_final else None)


def evaluate(
  policy,
  suite: SuiteInfo,
  task: str,
  episodes: int = 20,
  seed: int = 0,
  episode_length: int | None = None,
  sensor=None,
  env=None,
  timing: execution.Timing | None = None,
) -> dict:
  """Runs `episodes` MJX episodes of `task` at once with the policy in the loop (one
  program), from the initial states the CPU evaluator uses for the same seed."""
  if suite.mjx_env is None:
    raise ValueError(f"suite {suite.name} has no MJX form; evaluate with --config.eval.backend=cpu")
  env = env or suite.mjx_env(task)
  resets = env.evaluation_states(seed, episodes)
  return run(
    policy,
    env,
    resets,
    seed,
    int(episode_length or suite.episode_length),
    sensor,
    suite=suite,
    timing=timing,
  )[0]
