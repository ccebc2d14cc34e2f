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
* `evaluate(policy, task, ..., backend)`: one evaluation on the real MetaWorld or in MJX;
  `evaluate_offline`: a run on a dataset of its own (data.path, no simulator), held-out
  action error and latency; `evaluate_policies` evaluates a run's policies either way;
  results are read and written as JSON.
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

from jaxpolicy import methods
from jaxpolicy import nets as nets_lib
from jaxpolicy import obs as obs_lib
from jaxpolicy.data import collect
from jaxpolicy.data.dataset import DemoData, load_demos, unnormalize_obs
from jaxpolicy.data.normalizer import Normalizer
from jaxpolicy.errors import ConfigError
from jaxpolicy.envs import metaworld_evaluator, pointcloud
from jaxpolicy.envs.registry import check_task
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


def run_name(config) -> str:
  """What a run is about: its MetaWorld task, or its own dataset's file name."""
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
                  "eval", "pointcloud", "rgb")


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
  """The run's point-cloud sensor: `sensor` when given, else a new one for `config`
  (collection and evaluation share it), closed on exit; None for state observations."""
  if sensor is not None or not obs_lib.uses_sensor(config) or offline(config):
    yield sensor
    return
  sensor = pointcloud.make_sensor(config)
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
    if not os.path.isdir(config.data.path):
      raise FileNotFoundError(f"data.path {config.data.path} is not a dataset directory (a "
                              f"DP3-layout zarr: data/action, data/state, ..., "
                              f"meta/episode_ends; see the README, 'Your own robot')")
    return config.data.path
  tag, attrs = "", {}
  if obs_lib.uses_sensor(config):
    attrs = {"sensor": pointcloud.sensor_spec(config).to_dict()}
    tag = hashlib.sha1(json.dumps(attrs, sort_keys=True).encode()).hexdigest()[:8]
  path = collect.demo_path(config.data.dir, config.task, config.data.num_episodes, config.obs,
                           tag)
  if not sharding.is_primary():
    deadline = time.time() + 3600
    while not os.path.isdir(path):
      if time.time() > deadline:
        raise TimeoutError(f"process {jax.process_index()}: {path} did not appear in an hour")
      time.sleep(1.0)
  if os.path.isdir(path):   # no sensor (and no renderer) needed
    return collect.ensure_demos(config.data.dir, config.task, config.data.num_episodes,
                                seed=config.data.seed, obs_type=config.obs, tag=tag,
                                attrs=attrs)
  with open_sensor(config) as sensor:
    return collect.ensure_demos(config.data.dir, config.task, config.data.num_episodes,
                                seed=config.data.seed, obs_type=config.obs, sensor=sensor,
                                tag=tag, attrs=attrs)


def load_demo_data(config, normalizer=None) -> DemoData:
  """Demonstration windows for a config (see `ensure_demo_data`)."""
  path = ensure_demo_data(config)
  p = config.policy
  return load_demos(path, obs_lib.keys_of(config), p.horizon, p.n_obs_steps,
                    p.n_action_steps, val_episodes=config.data.val_episodes,
                    seed=config.data.seed, normalizer=normalizer)


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

BACKENDS = ("auto", "metaworld", "mjx")


def resolve_backend(backend: str) -> str:
  """"auto" = MJX when JAX sees an accelerator, else the real MetaWorld; or as given."""
  if backend not in BACKENDS:
    raise ValueError(f"unknown evaluation backend {backend!r}; choose one of {BACKENDS}")
  if backend == "auto":
    return "mjx" if jax.default_backend() != "cpu" else "metaworld"
  return backend


def evaluate(policy, task: str, episodes: int = 20, seed: int = 0, episode_length: int = 200,
             sensor=None, backend: str = "auto") -> dict:
  """One evaluation of `policy` on `task`: `episodes` episodes at once, success =
  MetaWorld's flag at any step. The same seed gives the same initial conditions on both
  backends.

  `backend`: "metaworld" (the real MetaWorld, C MuJoCo; `envs.metaworld_evaluator`), "mjx"
  (every episode and the policy in one compiled MJX program; `envs.mjx.evaluator`) or
  "auto" (MJX when JAX sees an accelerator, else MetaWorld). `sensor`: the run's
  point-cloud sensor, for policies that observe point clouds.
  """
  task = check_task(task)
  chosen = resolve_backend(backend)
  if chosen == "mjx" and backend == "auto" and "point_cloud" in policy.obs_shapes:
    from jaxpolicy.envs.mjx import pointcloud as mjx_pc  # pylint: disable=g-import-not-at-top
    if sensor is None or not mjx_pc.supports(sensor.spec):
      logging.info("no MJX form of the point-cloud sensor: evaluating on MetaWorld")
      chosen = "metaworld"
  if chosen == "mjx":
    from jaxpolicy.envs.mjx import evaluator  # pylint: disable=g-import-not-at-top
    return evaluator.evaluate(policy, task, episodes=episodes, seed=seed,
                              episode_length=episode_length, sensor=sensor)
  if sensor is None and "point_cloud" in policy.obs_shapes:
    raise ValueError(f"policy {policy.name} observes point clouds: pass the run's sensor "
                     f"(runs.open_sensor(run.config))")
  return metaworld_evaluator.evaluate(policy, task, episodes=episodes, seed=seed,
                                      episode_length=episode_length, sensor=sensor)


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
  (data.path) is evaluated offline on `data.val` (`evaluate_offline`)."""
  if offline(config):
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
      r = evaluate(pol, config.task, episodes=config.eval.episodes, seed=config.eval.seed,
                   episode_length=config.eval.episode_length, sensor=sensor,
                   backend=config.eval.get("backend", "auto"))
      r["step"] = int(step)
      results[name] = r
      logging.info("eval step %d %s: success %.2f over %d episodes (NFE %d, %.2f ms/call)",
                   step, name, r["success_rate"], r["episodes"], r["nfe"], r["latency_ms"])
  return results


def format_table(results: dict) -> str:
  """results: {task: {policy: metrics}} -> a fixed-width text table."""
  num = lambda r, k, f: format(r[k], f) if r.get(k) is not None else "-"
  lines = [f"{'task':<24}{'policy':<22}{'success':>9}{'episodes':>10}{'NFE':>5}"
           f"{'NFE/call':>9}{'latency ms':>12}{'action MSE':>12}"]
  for task, pols in results.items():
    for name, r in pols.items():   # NFE/call: amortised over an episode (first call included)
      lines.append(f"{task:<24}{name:<22}{num(r, 'success_rate', '.2f'):>9}"
                   f"{r.get('episodes', 0):>10d}{r['nfe']:>5d}"
                   f"{r.get('nfe_amortised', r['nfe']):>9.2f}{num(r, 'latency_ms', '.2f'):>12}"
                   f"{num(r, 'action_mse', '.4g'):>12}")
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
