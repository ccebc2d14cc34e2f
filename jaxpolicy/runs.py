"""Runs: a trained run's config, networks, state, normaliser and policies (`Run`,
`restore_run(workdir)`), its name and workdir, and the teacher config a distillation config
implies (`teacher_config`). Demonstrations and sensors are jaxpolicy.demos; evaluation and
results files jaxpolicy.evaluation.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import ml_collections

from jaxpolicy import methods
from jaxpolicy import nets as nets_lib
from jaxpolicy import suites
from jaxpolicy.data import formats
from jaxpolicy.data.normalizer import Normalizer
from jaxpolicy.errors import ConfigError
from jaxpolicy.policy import Policy, build_policy
from jaxpolicy.runtime.checkpoint import Checkpointer


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
      out[name] = build_policy(
        name,
        self.config,
        nets,
        self.normalizer,
        spec,
        self.obs_shapes,
        reuse=(reuse or {}).get(name),
      )
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
        chosen[name] = build_policy(
          name, self.config, self.nets, self.normalizer, spec, self.obs_shapes
        )
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
  mapping = suite.observation_map(
    tuple(obs_shapes), formats.Mapping.from_config(config.data).state_keys
  )
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
  return os.path.join(
    "runs",
    f"{method or config.method}_{run_name(config)}_{config.obs}_{config.preset}_s{config.seed}",
  )


# what a distillation config shares with its teacher; the teacher's own training settings
# travel in the student config as `teacher_train` (configs/common.py), so the library never
# reads the config files
TEACHER_SHARED = (
  "preset",
  "task",
  "obs",
  "seed",
  "data",
  "policy",
  "model",
  "diffusion",
  "eval",
  "pointcloud",
  "log",
  "rgb",
)


def teacher_config(config) -> ml_collections.ConfigDict:
  """The config of the teacher a distillation config implies (trained when missing)."""
  if "teacher_train" not in config:
    raise ConfigError(
      f"this {config.method} config has no teacher_train section (the "
      f"teacher's training settings, which configs/common.py adds); build "
      f"it from configs/{config.method}.py or set --config.teacher_workdir "
      f"to a trained teacher"
    )
  d = config.to_dict()
  tc = {k: d[k] for k in TEACHER_SHARED if k in d}
  tc.update(method="teacher", teacher_workdir="", train=d["teacher_train"])
  return ml_collections.ConfigDict(tc)


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
      lambda: methods.teacher.from_params(nets.init(jax.random.PRNGKey(0), obs_shapes))
    )
  target = jax.eval_shape(
    lambda ts: method.init(config, nets, obs_shapes, jax.random.PRNGKey(0), ts), teacher_state
  )
  state, meta = ckpt.restore(target, step)
  ckpt.close()
  return Run(
    config,
    workdir,
    nets,
    state,
    Normalizer.from_json(meta["normalizer"]),
    obs_shapes,
    meta["action_dim"],
    meta["step"],
  )
