"""Evaluation: one evaluation of a policy on its task's suite (the CPU simulator or MJX,
`evaluate`; real-time execution as config.eval asks, `realtime_timing`), a run on a dataset
of its own by held-out action error and latency (`evaluate_offline`), a run's policies
either way (`evaluate_policies`), and the results files.
"""

from __future__ import annotations

import json
import logging as _logging
import os
import time

import jax
import numpy as np

from jaxpolicy import execution, suites
from jaxpolicy import obs as obs_lib
from jaxpolicy.data.dataset import unnormalize_obs
from jaxpolicy.demos import open_sensor
from jaxpolicy.envs import evaluator
from jaxpolicy.runs import eval_task, observation_map
from jaxpolicy.runtime import files
from jaxpolicy.stats import latency_summary

logging = _logging.getLogger("jaxpolicy")


BACKENDS = ("auto", "cpu", "mjx")


def resolve_backend(backend: str) -> str:
  """ "auto" = MJX when JAX sees an accelerator, else the suite's CPU simulator; or as given
  ("metaworld", the CPU backend's name before suites, still means "cpu")."""
  backend = "cpu" if backend == "metaworld" else backend
  if backend not in BACKENDS:
    raise ValueError(f"unknown evaluation backend {backend!r}; choose one of {BACKENDS}")
  if backend == "auto":
    return "mjx" if jax.default_backend() != "cpu" else "cpu"
  return backend


def evaluate(
  policy,
  task: str,
  episodes: int = 20,
  seed: int = 0,
  episode_length: int | None = None,
  sensor=None,
  backend: str = "auto",
  timing: execution.Timing | None = None,
  features: dict | None = None,
) -> dict:
  """One evaluation of `policy` on `task` (a checked name): `episodes` episodes at once,
  success = the suite's flag at any step, `episode_length` None = the suite's. The same seed
  gives the same initial states on both backends.

  `backend`: "cpu" (the suite's CPU simulator, e.g. the real MetaWorld; `envs.evaluator`),
  "mjx" (every episode and the policy in one compiled MJX program; `envs.mjx.evaluator`) or
  "auto" (MJX when JAX sees an accelerator and the suite has an MJX form, else the CPU).
  `sensor`: the run's point-cloud sensor, for policies that observe point clouds. `timing`
  (jaxpolicy.execution; `realtime_timing`): real-time execution, None = time stands still.
  `features` ({policy key: suite observation keys}, `observation_map`): how a policy trained
  on a dataset of its own reads the suite's observations (CPU only; None = as they are).
  """
  suite = suites.suite_of(task)
  chosen = resolve_backend(backend)
  renamed = bool(features) and any(parts != (k,) for k, parts in features.items())
  if chosen == "mjx" and renamed:
    if backend != "auto":
      raise ValueError(
        f"policy {policy.name} reads {suite.name}'s observations through its "
        f"dataset's features, which only the CPU evaluator maps: evaluate with "
        f"backend cpu"
      )
    chosen = "cpu"
  images = any(obs_lib.is_image_key(k) for k in policy.obs_shapes)
  if chosen == "mjx" and backend == "auto":
    if suite.mjx_env is None or images:  # MJX has no rasteriser
      chosen = "cpu"
    elif "point_cloud" in policy.obs_shapes:
      from jaxpolicy.envs.mjx import pointcloud as mjx_pc  # pylint: disable=g-import-not-at-top

      if sensor is None or not mjx_pc.supports(sensor.spec):
        logging.info("no MJX form of the point-cloud sensor: evaluating on the CPU")
        chosen = "cpu"
  if chosen == "mjx" and images:
    obs_lib.check_mjx("rgb")  # one line: evaluate camera policies on the CPU
  if chosen == "mjx":
    from jaxpolicy.envs.mjx import evaluator as mjx_evaluator  # pylint: disable=g-import-not-at-top

    return mjx_evaluator.evaluate(
      policy,
      suite,
      task,
      episodes=episodes,
      seed=seed,
      episode_length=episode_length,
      sensor=sensor,
      timing=timing,
    )
  if sensor is None and ("point_cloud" in policy.obs_shapes or images):
    raise ValueError(
      f"policy {policy.name} observes point clouds or camera frames: pass the "
      f"run's sensor (jaxpolicy.demos.open_sensor(run.config))"
    )
  return evaluator.evaluate(
    policy,
    suite,
    task,
    episodes=episodes,
    seed=seed,
    episode_length=episode_length,
    sensor=sensor,
    timing=timing,
    features=features,
  )


def realtime_timing(config, policy) -> tuple[execution.Timing | None, dict]:
  """(timing, record) of real-time evaluation as `config.eval` asks (None, {} when
  eval.realtime is off): the delay in control steps from the latency, fixed or the
  policy's own batch-1 latency measured warm on this machine now."""
  e = config.eval
  if not e.get("realtime", False):
    return None, {}
  record = {"control_hz": float(e.control_hz), "latency_from": e.latency_from}
  if e.latency_from == "measured":
    m = policy.latency_b1()
    record.update(latency_ms=m["latency_ms_b1"], first_call_ms=m["first_call_ms_b1"])
  else:
    record["latency_ms"] = float(e.latency_ms)
  delay = execution.delay_steps(record["latency_ms"], record["control_hz"])
  timing = execution.Timing(delay, policy.span, policy.n_action_steps, e.execution, e.stitching)
  timing.check(e.episode_length)
  record.update(delay_steps=delay, mode=e.execution, stitching=e.stitching)
  return timing, record


def evaluate_offline(policy, windows, calls: int = 30, rng=None) -> dict:
  """A policy without a simulator: its action error on held-out demonstration windows
  (normalised units, whole chunk; `windows` None when nothing is held out) and its batch-1
  latency on those windows' observations (the first call of an episode apart)."""
  rng = jax.random.PRNGKey(0) if rng is None else rng
  out = {
    "nfe": int(policy.nfe),
    "nfe_first_call": int(policy.nfe_first or policy.nfe),
    "backend": "offline",
    "episodes": 0,
  }
  if windows is None or windows.num_windows == 0:
    return out
  out["action_mse"] = policy.action_mse(windows, rng)
  obs = unnormalize_obs(policy.normalizer, windows.take(np.arange(1))["obs"])
  obs = {
    k: np.asarray(v, np.uint8 if obs_lib.is_image_key(k) else np.float32) for k, v in obs.items()
  }  # camera frames stay uint8
  policy.reset(1)
  for _ in range(2):  # compile; a carried sampler's two branches
    policy(obs, rng)
  policy.reset(1)
  times = []
  for i in range(calls):  # an episode's first call, then the steady state
    t0 = time.perf_counter()
    policy(obs, jax.random.fold_in(rng, i))
    times.append(time.perf_counter() - t0)
  out.update(latency_summary(np.asarray(times) * 1e3))
  return out


def evaluate_policies(config, policies: dict, step: int, sensor=None, data=None) -> dict:
  """Evaluates each policy as `config.eval` says; `sensor`: the run's point-cloud sensor
  (built once per run, so its renderers and the MJX programs compiled around it are
  reused); None makes one for this call and closes it. A run on a dataset of its own
  (data.path) is evaluated in the suite task eval.task names, reading its observations
  through the dataset's features (`observation_map`), or, without one, offline on
  `data.val` (`evaluate_offline`)."""
  task = eval_task(config)
  if not task:
    results = {}
    for name, pol in policies.items():
      results[name] = dict(
        evaluate_offline(pol, data.val if data is not None else None), step=int(step)
      )
      logging.info(
        "eval step %d %s: held-out action MSE %s (NFE %d, %.2f ms/call)",
        step,
        name,
        f"{results[name].get('action_mse', float('nan')):.4g}",
        results[name]["nfe"],
        results[name].get("latency_ms", float("nan")),
      )
    return results
  results = {}
  with open_sensor(config, sensor) as sensor:
    for name, pol in policies.items():
      timing, realtime = realtime_timing(config, pol)
      r = evaluate(
        pol,
        task,
        episodes=config.eval.episodes,
        seed=config.eval.seed,
        episode_length=config.eval.episode_length,
        sensor=sensor,
        backend=config.eval.get("backend", "auto"),
        timing=timing,
        features=observation_map(config, pol.obs_shapes),
      )
      r["step"] = int(step)
      if realtime:
        r["realtime"] = realtime
      results[name] = r
      logging.info(
        "eval step %d %s: success %.2f over %d episodes (NFE %d, %.2f ms/call)",
        step,
        name,
        r["success_rate"],
        r["episodes"],
        r["nfe"],
        r["latency_ms"],
      )
  return results


def _suite_extras(r: dict) -> str:
  """A result's suite summaries (blockpush's p1_rate, Push-T's coverage_mean, ...)."""
  return ", ".join(
    f"{k} {v:.2f}"
    for k, v in r.items()
    if k != "success_rate" and k.endswith(("_rate", "_mean")) and isinstance(v, float)
  )


def format_table(results: dict) -> str:
  """results: {task: {policy: metrics}} -> a fixed-width text table (the suite's extras,
  when it reports some, in a last column)."""
  num = lambda r, k, f: format(r[k], f) if r.get(k) is not None else "-"
  extras = any(_suite_extras(r) for pols in results.values() for r in pols.values())
  lines = [
    f"{'task':<24}{'policy':<22}{'success':>9}{'episodes':>10}{'NFE':>5}"
    f"{'NFE/call':>9}{'latency ms':>12}{'action MSE':>12}" + ("  suite metrics" if extras else "")
  ]
  for task, pols in results.items():
    for name, r in pols.items():  # NFE/call: amortised over an episode (first call included)
      lines.append(
        f"{task:<24}{name:<22}{num(r, 'success_rate', '.2f'):>9}"
        f"{r.get('episodes', 0):>10d}{r['nfe']:>5d}"
        f"{r.get('nfe_amortised', r['nfe']):>9.2f}{num(r, 'latency_ms', '.2f'):>12}"
        f"{num(r, 'action_mse', '.4g'):>12}" + (f"  {_suite_extras(r)}" if extras else "")
      )
  return "\n".join(lines)


def read_results(workdir: str, name: str = "eval.json") -> dict:
  """The whole results file <workdir>/<name>: {"tasks": {task: {policy: ...}}, metadata}."""
  path = os.path.join(workdir, name)
  if not os.path.exists(path):
    return {"tasks": {}}
  with open(path) as f:
    return json.load(f)


def write_results(
  workdir: str, results: dict, extra: dict | None = None, name: str = "eval.json"
) -> str:
  path = os.path.join(workdir, name)
  payload = dict(extra or {}, tasks=results)
  files.write_json(path, payload)
  logging.info("wrote %s", path)
  return path
