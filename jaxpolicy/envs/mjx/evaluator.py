"""Batched MJX evaluation: every episode and the policy in one compiled program.

`jax.vmap` over environments and `lax.scan` over control steps; the policy (`Policy.apply`
with its carry: teacher DDIM, SDM one-step, STEP, ...) runs inside the scan whenever the
executed part of the previous action chunk is used up, exactly like the real-MetaWorld
evaluator's replanning. Success = MetaWorld's success flag at any step. Episode i of seed s
starts from the same MetaWorld reset as the real-MetaWorld evaluator
(`jaxpolicy.envs.metaworld_evaluator`) with that seed
(see resets.py), and policy call c uses `fold_in(PRNGKey(seed), c)` as there.

The result dict has the real-MetaWorld evaluator's format plus "backend": "mjx",
the compile time (measured apart) and env-steps/s.
"""
from __future__ import annotations

import logging as _logging
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpolicy.envs.mjx import env as env_lib
from jaxpolicy.envs.mjx.pointcloud import mjx_form
from jaxpolicy.envs.mjx.resets import ResetBank, evaluation_resets
from jaxpolicy.stats import calls_until_success, latency_summary, stall_summary

logging = _logging.getLogger("jaxpolicy")


def observe(env: env_lib.MJXEnv, state: env_lib.State, keys, sensor=None) -> dict:
  """The policy's per-frame observation dict from an (unbatched) MJX state."""
  out = {}
  for k in keys:
    if k == "full_state":
      out[k] = state.obs
    elif k == "agent_pos":
      out[k] = env.agent_pos(state.data)
    elif k == "point_cloud":
      if sensor is None:
        raise ValueError(
            "this policy observes point clouds, but no MJX point-cloud sensor was given; "
            "evaluate it with --config.eval.backend=metaworld or pass an MJX sensor")
      out[k] = sensor(env, state)
    else:
      raise ValueError(f"the MJX evaluator cannot provide observation {k!r}")
  return out


def _mjx_sensor(sensor):
  """The JAX form of a point-cloud sensor: `form(env, state) -> (P, 3)`, or None."""
  if sensor is None:
    return None
  fn = mjx_form(sensor)
  if fn is None:
    raise ValueError(f"the point-cloud sensor's geometry set {sensor.spec.geoms!r} has no MJX "
                     f"form (only 'light' does); evaluate point-cloud policies with "
                     f"--config.eval.backend=metaworld")
  return fn


def make_rollout(env: env_lib.MJXEnv, policy, episode_length: int, sensor=None,
                 return_final: bool = False):
  """A pure `rollout(params, resets, key) -> (success, first_success_step, stall calls)`,
  each (B,) (stall calls: how many of an episode's policy calls before its first success
  reported a stall; 0 for stateless ones).

  `resets` is a ResetBank with B rows (one per environment); jit it, or lower and compile
  it apart to time compilation. `return_final` adds the final (env states, policy carry).
  """
  keys = tuple(policy.obs_shapes)
  n_obs = policy.nets.n_obs_steps
  n_act = policy.n_action_steps
  fn = _mjx_sensor(sensor)
  obs_of = jax.vmap(lambda s: observe(env, s, keys, fn))

  def rollout(params, resets: ResetBank, key):
    batch = resets.qpos.shape[0]
    states = jax.vmap(env.init_state)(resets)
    o = obs_of(states)
    hist = {k: jnp.repeat(v[:, None], n_obs, axis=1) for k, v in o.items()}
    pcarry = policy.init_carry(batch)
    actions = jnp.zeros((batch, n_act, 4), jnp.float32)
    success = jnp.zeros((batch,), bool)
    first = jnp.full((batch,), -1, jnp.int32)

    stalls = jnp.zeros((batch,), jnp.int32)

    def plan(args):
      hist, pcarry, _, t, stalls, success = args
      chunk, pcarry = policy.apply(params, hist, pcarry, jax.random.fold_in(key, t // n_act))
      flags = policy.stall_flags(pcarry)
      if flags is not None:   # an episode's calls until its first success, as on MetaWorld
        stalls = stalls + (flags & ~success).astype(jnp.int32)
      return pcarry, policy.executed(chunk).astype(jnp.float32), stalls

    def keep(args):
      _, pcarry, actions, _, stalls, _ = args
      return pcarry, actions, stalls

    def body(carry, t):
      states, hist, pcarry, actions, success, first, stalls = carry
      pcarry, actions, stalls = jax.lax.cond(t % n_act == 0, plan, keep,
                                             (hist, pcarry, actions, t, stalls, success))
      a = jax.lax.dynamic_index_in_dim(actions, t % n_act, axis=1, keepdims=False)
      states = jax.vmap(env.step)(states, a)
      new = states.success & ~success
      first = jnp.where(new, t, first)
      success = success | states.success
      o = obs_of(states)
      hist = {k: jnp.concatenate([hist[k][:, 1:], o[k][:, None]], axis=1) for k in hist}
      return (states, hist, pcarry, actions, success, first, stalls), None

    init = (states, hist, pcarry, actions, success, first, stalls)
    (states, _, pcarry, _, success, first, stalls), _ = jax.lax.scan(
        body, init, jnp.arange(episode_length))
    out = (success, first, stalls)
    return out + ((states, pcarry),) if return_final else out

  return rollout


def _policy_latency(policy, batch: int, calls: int = 11) -> np.ndarray:
  """ms per policy call at this batch size (the same jitted function the host loop uses),
  in episode order: the first call from a fresh carry, then with the carry each returns."""
  obs = {k: jnp.zeros((batch, policy.nets.n_obs_steps) + tuple(s), jnp.float32)
         for k, s in policy.obs_shapes.items()}
  _, compiled = policy.compiled_cost(batch)
  jax.block_until_ready(compiled(policy.params, obs, policy.init_carry(batch),
                                 jax.random.PRNGKey(0)))   # warm-up
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
COMPILATIONS = [0]   # rollout programs compiled in this process (tests count them)


def run(policy, env: env_lib.MJXEnv, resets: ResetBank, seed: int, episode_length: int,
        sensor=None, return_final: bool = False):
  """(result dict, final (states, policy carry) or None) of one batched MJX evaluation from
  the given resets (one environment per row); policy call c uses fold_in(PRNGKey(seed), c)."""
  if (jax.default_backend() == "cpu"
      and "xla_cpu_use_fusion_emitters=false" not in os.environ.get("XLA_FLAGS", "")):
    logging.warning("MJX on CPU without XLA_FLAGS=--xla_cpu_use_fusion_emitters=false runs "
                    "~35x slower; set it before starting (or evaluate with backend=metaworld)")
  episodes = len(resets)
  key = jax.random.PRNGKey(seed)
  cache_key = (env.task, id(policy), episodes, int(episode_length), id(sensor), return_final)
  t0 = time.perf_counter()
  hit = _COMPILED.get(cache_key)
  if hit is None or hit[0] is not policy or hit[1] is not sensor:
    rollout = jax.jit(make_rollout(env, policy, episode_length, sensor, return_final))
    while len(_COMPILED) >= _MAX_PROGRAMS:   # they hold the model as constants: keep a few
      _COMPILED.pop(next(iter(_COMPILED)))
    hit = (policy, sensor, rollout.lower(policy.params, resets, key).compile())
    COMPILATIONS[0] += 1
  _COMPILED.pop(cache_key, None)
  _COMPILED[cache_key] = hit                 # most recently used last
  compiled = hit[2]
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  out = jax.block_until_ready(compiled(policy.params, resets, key))
  run_s = time.perf_counter() - t0
  lat = _policy_latency(policy, episodes)
  success, first = np.asarray(out[0]), np.asarray(out[1])
  nfe = policy.nfe_report(episode_length)
  result = {"success_rate": float(success.mean()), "episodes": int(episodes), "seed": int(seed),
            **nfe, **latency_summary(lat), "batch": int(episodes),
            "episode_length": int(episode_length), "backend": "mjx",
            "successes": success.astype(int).tolist(), "first_success_step": first.tolist(),
            "wall_s": round(run_s, 2), "compile_s": round(compile_s, 2),
            "env_steps_per_s": float(episodes * episode_length / max(run_s, 1e-9))}
  if policy.stall_flags(policy.init_carry(1)) is not None:
    calls = calls_until_success(first, policy.n_action_steps, nfe["policy_calls"])
    result.update(stall_summary(np.asarray(out[2]), calls))
  return result, (out[3] if return_final else None)


def evaluate(policy, task: str, episodes: int = 20, seed: int = 0, episode_length: int = 200,
             sensor=None, env: env_lib.MJXEnv | None = None) -> dict:
  """Runs `episodes` MJX episodes at once with the policy in the loop (one program), from
  the initial conditions the real-MetaWorld evaluator uses for the same seed."""
  env = env or env_lib.make_env(task)
  resets = evaluation_resets(env.task, seed, episodes)
  return run(policy, env, resets, seed, episode_length, sensor)[0]
