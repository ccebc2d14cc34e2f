"""Runs: what every job does around training -- saved runs and their policies, the
teacher a student needs, demonstration data, the point-cloud sensor and evaluation.

`launch/*`, `benchmarks/*` and `jaxpolicy.load_policy` use this module without training
anything; the training loop (`jaxpolicy.training`) builds on it.

* `Run` / `restore_run(workdir)`: a trained run's config, networks, state and normaliser,
  and its policies.
* `teacher_config(config)`: the teacher config a distillation config implies (its shared
  sections plus its `teacher_train` section).
* `ensure_demo_data` / `load_demo_data`: the demonstrations a config trains on.
* `open_sensor(config)`: the run's point-cloud sensor (None for state observations).
* `evaluate(policy, task, ..., backend)`: one evaluation on the task's suite, on the CPU or
  in MJX;
  `evaluate_offline`: a run on a dataset of its own (data.path, no simulator), held-out
  action error and latency; `evaluate_policies` evaluates a run's policies either way, or a
  data.path run in the suite task eval.task names (`observation_map`); results are read and
  written as JSON.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging as _logging
import os
import time

import jax
import ml_collections
import numpy as np

from jaxpolicy import execution, methods
from jaxpolicy import nets as nets_lib
from jaxpolicy import obs as obs_lib
from jaxpolicy import suites
from jaxpolicy.data import collect, formats
from jaxpolicy.data.dataset import DemoData, load_demos, unnormalize_obs
from jaxpolicy.data.normalizer import Normalizer
from jaxpolicy.errors import ConfigError
from jaxpolicy.envs import camera, evaluator, pointcloud
from jaxpolicy.policy import Policy, build_policy
from jaxpolicy.runtime import files, sharding
from jaxpolicy.runtime.checkpoint import Checkpointer
from jaxpolicy.stats import latency_summary

logging = _logging.getLogger("jaxpolicy")


@dataclasses.dataclass
class Run:
  """A trained (or restored) run: enough to build its policies or distil from it."""
  config: ml_collections.ConfigDict
  workdir: str
  nets: nets_lib.Nets
  state: object
  normalizer: Normalizer
  obs_shapes: dict
  action_dim: int
  step: int

  def policies(self, reuse: dict | None = None, dtype: str | None = None) -> dict[str, Policy]:
    """The run's policies; `reuse` (an earlier result) keeps their compiled functions.

    `dtype`: their compute dtype (default: the run's eval.dtype); bfloat16 names end "_bf16".
    """
    method = methods.get(self.config.method)
    dtype = dtype or self.config.eval.get("dtype", "float32")
    nets = self.nets.with_compute_dtype(dtype)
    suffix = "" if dtype == "float32" else "_bf16"
    out = {}
    for name, spec in method.make_policies(self.config, nets, self.state, self.normalizer).items():
      name += suffix
      out[name] = build_policy(name, self.config, nets, self.normalizer, spec,
                               self.obs_shapes, reuse=(reuse or {}).get(name))
    return out

  def main_and_baselines(self) -> dict[str, Policy]:
    """The run's main policy, then the untrained baselines its method declares
    (INFO.baselines: the teacher's DDIM-1/2 trailing from noise)."""
    info = methods.info(self.config.method)
    policies = self.policies()
    main = info.main_policy_of(policies)
    chosen = {main: policies[main]}
    if info.baselines is not None:
      for name, spec in info.baselines(self.config, self.nets, self.state).items():
        chosen[name] = build_policy(name, self.config, self.nets, self.normalizer, spec,
                                    self.obs_shapes)
    return chosen


def offline(config) -> bool:
  """A run on a dataset of your own (data.path): no simulator; evaluation is the held-out
  action error and each policy's latency."""
  return bool(config.data.get("path", ""))


def eval_task(config) -> str:
  """The task a run's policies are evaluated in: its own, or for a run on a dataset of its own
  the suite task eval.task names ('' = none: offline evaluation)."""
  return config.eval.get("task", "") if offline(config) else config.task


def observation_map(config, obs_shapes: dict) -> dict | None:
  """How a run on a dataset of its own reads its eval.task's observations ({policy key:
  suite observation keys}, SuiteInfo.observation_map), its sizes checked; None for a run
  on its suite's demonstrations (it reads the suite's keys as they are)."""
  if not offline(config):
    return None
  suite = suites.suite_of(eval_task(config))
  mapping = suite.observation_map(tuple(obs_shapes),
                                  formats.Mapping.from_config(config.data).state_keys)
  suite.check_shapes(mapping, obs_shapes)
  return mapping


def run_name(config) -> str:
  """What a run is about: its task, or its own dataset's file name."""
  if offline(config):
    return os.path.splitext(os.path.basename(os.path.normpath(config.data.path)))[0]
  return config.task


def default_workdir(config, method: str | None = None) -> str:
  """runs/<method>_<task or dataset>_<obs>_<preset>_s<seed> (`method`: another method's run
  of the same data, e.g. a student's teacher)."""
  return os.path.join("runs", f"{method or config.method}_{run_name(config)}_{config.obs}_"
                      f"{config.preset}_s{config.seed}")


# what a distillation config shares with its teacher; the teacher's own training settings
# travel in the student config as `teacher_train` (configs/common.py), so the library never
# reads the config files
TEACHER_SHARED = ("preset", "task", "obs", "seed", "data", "policy", "model", "diffusion",
                  "eval", "pointcloud", "log", "rgb")


def teacher_config(config) -> ml_collections.ConfigDict:
  """The config of the teacher a distillation config implies (trained when missing)."""
  if "teacher_train" not in config:
    raise ConfigError(f"this {config.method} config has no teacher_train section (the "
                      f"teacher's training settings, which configs/common.py adds); build "
                      f"it from configs/{config.method}.py or set --config.teacher_workdir "
                      f"to a trained teacher")
  d = config.to_dict()
  tc = {k: d[k] for k in TEACHER_SHARED if k in d}
  tc.update(method="teacher", teacher_workdir="", train=d["teacher_train"])
  return ml_collections.ConfigDict(tc)


@contextlib.contextmanager
def open_sensor(config, sensor=None):
  """The run's sensor -- the point-cloud sensor or the cameras -- `sensor` when given, else a
  new one for `config` (collection and evaluation share it), closed on exit; None for
  state observations."""
  wants = obs_lib.uses_sensor(config) or obs_lib.uses_camera(config)
  if sensor is not None or not wants or (offline(config) and not config.eval.get("task")):
    yield sensor
    return
  sensor = (pointcloud.make_sensor(config) if obs_lib.uses_sensor(config)
            else camera.make_camera_sensor(config))
  try:
    yield sensor
  finally:
    sensor.close()


def ensure_demo_data(config) -> str:
  """The demonstrations a config trains on: collected on demand by process 0; other
  processes wait for the file (datasets appear atomically) instead of a collective barrier,
  whose 30 s rendezvous limit a long collection would exceed. Point-cloud datasets are
  named by a hash of the sensor settings, which are also stored in their attributes. A
  dataset of your own (data.path) is used as it is."""
  if offline(config):
    formats.detect(config.data.path)   # one line when it is none of the formats
    return config.data.path
  tag, attrs = "", {}
  if obs_lib.uses_sensor(config) or obs_lib.uses_camera(config):
    spec = (pointcloud.sensor_spec(config) if obs_lib.uses_sensor(config)
            else camera.camera_spec(config))
    attrs = {"sensor": spec.to_dict()}
    tag = hashlib.sha1(json.dumps(attrs, sort_keys=True).encode()).hexdigest()[:8]
  suite = suites.suite_of(config.task)
  path = collect.demo_path(config.data.dir, suite, config.task, config.data.num_episodes,
                           config.obs, tag)
  if not sharding.is_primary():
    deadline = time.time() + 3600
    while not os.path.isdir(path):
      if time.time() > deadline:
        raise TimeoutError(f"process {jax.process_index()}: {path} did not appear in an hour")
      time.sleep(1.0)
  if os.path.isdir(path):   # no sensor (and no renderer) needed
    return collect.ensure_demos(config.data.dir, suite, config.task, config.data.num_episodes,
                                seed=config.data.seed, obs_type=config.obs, tag=tag,
                                attrs=attrs)
  with open_sensor(config) as sensor:
    return collect.ensure_demos(config.data.dir, suite, config.task, config.data.num_episodes,
                                seed=config.data.seed, obs_type=config.obs, sensor=sensor,
                                tag=tag, attrs=attrs)


def load_demo_data(config, normalizer=None) -> DemoData:
  """Demonstration windows for a config (see `ensure_demo_data`)."""
  path = ensure_demo_data(config)
  p = config.policy
  return load_demos(path, obs_lib.keys_of(config), p.horizon, p.n_obs_steps,
                    p.n_action_steps, val_episodes=config.data.val_episodes,
                    seed=config.data.seed, normalizer=normalizer,
                    mapping=formats.Mapping.from_config(config.data))


def restore_run(workdir: str, step: int | None = None) -> Run:
  """Loads a saved run of any method from its workdir (the latest step by default)."""
  ckpt = Checkpointer(workdir)
  meta = ckpt.restore_meta(step)
  config = ml_collections.ConfigDict(meta["config"])
  method = methods.get(config.method)
  obs_shapes = {k: tuple(v) for k, v in meta["obs_shapes"].items()}
  nets = nets_lib.build_nets(config, meta["action_dim"])
  teacher_state = None
  if method.INFO.needs_teacher:
    teacher_state = jax.eval_shape(
        lambda: methods.teacher.from_params(nets.init(jax.random.PRNGKey(0), obs_shapes)))
  target = jax.eval_shape(
      lambda ts: method.init(config, nets, obs_shapes, jax.random.PRNGKey(0), ts), teacher_state)
  state, meta = ckpt.restore(target, step)
  ckpt.close()
  return Run(config, workdir, nets, state, Normalizer.from_json(meta["normalizer"]), obs_shapes,
             meta["action_dim"], meta["step"])


# --- evaluation ----------------------------------------------------------------------------

BACKENDS = ("auto", "cpu", "mjx")


def resolve_backend(backend: str) -> str:
  """"auto" = MJX when JAX sees an accelerator, else the suite's CPU simulator; or as given
  ("metaworld", the CPU backend's name before suites, still means "cpu")."""
  backend = "cpu" if backend == "metaworld" else backend
  if backend not in BACKENDS:
    raise ValueError(f"unknown evaluation backend {backend!r}; choose one of {BACKENDS}")
  if backend == "auto":
    return "mjx" if jax.default_backend() != "cpu" else "cpu"
  return backend


def evaluate(policy, task: str, episodes: int = 20, seed: int = 0,
             episode_length: int | None = None, sensor=None, backend: str = "auto",
             timing: execution.Timing | None = None, features: dict | None = None) -> dict:
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
      raise ValueError(f"policy {policy.name} reads {suite.name}'s observations through its "
                       f"dataset's features, which only the CPU evaluator maps: evaluate with "
                       f"backend cpu")
    chosen = "cpu"
  images = any(obs_lib.is_image_key(k) for k in policy.obs_shapes)
  if chosen == "mjx" and backend == "auto":
    if suite.mjx_env is None or images:   # MJX has no rasteriser
      chosen = "cpu"
    elif "point_cloud" in policy.obs_shapes:
      from jaxpolicy.envs.mjx import pointcloud as mjx_pc  # pylint: disable=g-import-not-at-top
      if sensor is None or not mjx_pc.supports(sensor.spec):
        logging.info("no MJX form of the point-cloud sensor: evaluating on the CPU")
        chosen = "cpu"
  if chosen == "mjx" and images:
    obs_lib.check_mjx("rgb")   # one line: evaluate camera policies on the CPU
  if chosen == "mjx":
    from jaxpolicy.envs.mjx import evaluator as mjx_evaluator  # pylint: disable=g-import-not-at-top
    return mjx_evaluator.evaluate(policy, suite, task, episodes=episodes, seed=seed,
                                  episode_length=episode_length, sensor=sensor, timing=timing)
  if sensor is None and ("point_cloud" in policy.obs_shapes or images):
    raise ValueError(f"policy {policy.name} observes point clouds or camera frames: pass the "
                     f"run's sensor (runs.open_sensor(run.config))")
  return evaluator.evaluate(policy, suite, task, episodes=episodes, seed=seed,
                            episode_length=episode_length, sensor=sensor, timing=timing,
                            features=features)


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
  timing = execution.Timing(delay, policy.span, policy.n_action_steps, e.execution,
                            e.stitching)
  timing.check(e.episode_length)
  record.update(delay_steps=delay, mode=e.execution, stitching=e.stitching)
  return timing, record


def evaluate_offline(policy, windows, calls: int = 30, rng=None) -> dict:
  """A policy without a simulator: its action error on held-out demonstration windows
  (normalised units, whole chunk; `windows` None when nothing is held out) and its batch-1
  latency on those windows' observations (the first call of an episode apart)."""
  rng = jax.random.PRNGKey(0) if rng is None else rng
  out = {"nfe": int(policy.nfe), "nfe_first_call": int(policy.nfe_first or policy.nfe),
         "backend": "offline", "episodes": 0}
  if windows is None or windows.num_windows == 0:
    return out
  out["action_mse"] = policy.action_mse(windows, rng)
  obs = unnormalize_obs(policy.normalizer, windows.take(np.arange(1))["obs"])
  obs = {k: np.asarray(v, np.uint8 if obs_lib.is_image_key(k) else np.float32)
         for k, v in obs.items()}   # camera frames stay uint8
  policy.reset(1)
  for _ in range(2):                    # compile; a carried sampler's two branches
    policy(obs, rng)
  policy.reset(1)
  times = []
  for i in range(calls):                # an episode's first call, then the steady state
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
      results[name] = dict(evaluate_offline(pol, data.val if data is not None else None),
                           step=int(step))
      logging.info("eval step %d %s: held-out action MSE %s (NFE %d, %.2f ms/call)", step,
                   name, f"{results[name].get('action_mse', float('nan')):.4g}",
                   results[name]["nfe"], results[name].get("latency_ms", float("nan")))
    return results
  results = {}
  with open_sensor(config, sensor) as sensor:
    for name, pol in policies.items():
      timing, realtime = realtime_timing(config, pol)
      r = evaluate(pol, task, episodes=config.eval.episodes, seed=config.eval.seed,
                   episode_length=config.eval.episode_length, sensor=sensor,
                   backend=config.eval.get("backend", "auto"), timing=timing,
                   features=observation_map(config, pol.obs_shapes))
      r["step"] = int(step)
      if realtime:
        r["realtime"] = realtime
      results[name] = r
      logging.info("eval step %d %s: success %.2f over %d episodes (NFE %d, %.2f ms/call)",
                   step, name, r["success_rate"], r["episodes"], r["nfe"], r["latency_ms"])
  return results


def _suite_extras(r: dict) -> str:
  """A result's suite summaries (blockpush's p1_rate, Push-T's coverage_mean, ...)."""
  return ", ".join(f"{k} {v:.2f}" for k, v in r.items()
                   if k != "success_rate" and k.endswith(("_rate", "_mean"))
                   and isinstance(v, float))


def format_table(results: dict) -> str:
  """results: {task: {policy: metrics}} -> a fixed-width text table (the suite's extras,
  when it reports some, in a last column)."""
  num = lambda r, k, f: format(r[k], f) if r.get(k) is not None else "-"
  extras = any(_suite_extras(r) for pols in results.values() for r in pols.values())
  lines = [f"{'task':<24}{'policy':<22}{'success':>9}{'episodes':>10}{'NFE':>5}"
           f"{'NFE/call':>9}{'latency ms':>12}{'action MSE':>12}"
           + ("  suite metrics" if extras else "")]
  for task, pols in results.items():
    for name, r in pols.items():   # NFE/call: amortised over an episode (first call included)
      lines.append(f"{task:<24}{name:<22}{num(r, 'success_rate', '.2f'):>9}"
                   f"{r.get('episodes', 0):>10d}{r['nfe']:>5d}"
                   f"{r.get('nfe_amortised', r['nfe']):>9.2f}{num(r, 'latency_ms', '.2f'):>12}"
                   f"{num(r, 'action_mse', '.4g'):>12}"
                   + (f"  {_suite_extras(r)}" if extras else ""))
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
  files.write_json(path, payload)
  logging.info("wrote %s", path)
  return path
