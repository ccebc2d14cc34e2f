"""The door: a config's task is checked and its suite's defaults filled in (`resolve`), and
bad input stops early with one message naming the problem and the fix."""

from __future__ import annotations

import json
import os

from jaxpolicy import evaluation, execution, methods, nets, runs, suites
from jaxpolicy import obs as obs_lib
from jaxpolicy.data import formats
from jaxpolicy.diffusion.schedule import PREDICTION_TYPES, SPACINGS
from jaxpolicy.errors import ConfigError

# config sections that define what a run *is*; a workdir holding a run that differs in
# any of them belongs to another experiment.
IDENTITY_KEYS = (
  "method",
  "task",
  "obs",
  "seed",
  "policy",
  "model",
  "diffusion",
  "data",
  "pointcloud",
  "rgb",
)
# sections a teacher and its students must share
TEACHER_KEYS = ("task", "obs", "policy", "model", "diffusion", "pointcloud", "rgb")


def _positive(config, path):
  node = config
  for p in path.split("."):
    node = node[p]
  if not isinstance(node, int) or isinstance(node, bool) or node <= 0:
    raise ConfigError(f"config.{path} must be a positive integer, got {node!r}")


def _check_optimizers(config) -> None:
  """Every optimiser field of any section: learning rates > 0; decay, warm-up, clip >= 0."""
  for section, fields in config.items():
    if not hasattr(fields, "items"):
      continue
    for name, value in fields.items():
      if name == "lr" or name.endswith("_lr"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
          raise ConfigError(f"config.{section}.{name} (a learning rate) must be > 0, got {value!r}")
      elif name in ("weight_decay", "warmup_steps", "grad_clip") and value < 0:
        raise ConfigError(f"config.{section}.{name} must be >= 0, got {value!r}")


def resolve(config) -> None:
  """Checks the task once (a ConfigError with the closest names) and fills the fields a
  config leaves to its suite (None: episode length, demonstrations, the point-cloud camera
  and crop), in place. A run on a dataset of its own needs no task; its defaults are those
  of the suite its eval.task names, else MetaWorld's. Idempotent."""
  if config.eval.get("task", ""):
    _check_eval_task(config)
    suite = suites.suite_of(config.eval.task)
  elif runs.offline(config) and config.task not in suites.tasks():
    suite = suites.get("metaworld")
  else:
    try:
      config.task = suites.check_task(config.task)
    except ValueError as e:
      raise ConfigError(str(e)) from None
    suite = suites.suite_of(config.task)
  if suite.requires is not None:
    try:
      suite.requires()
    except ImportError as e:
      raise ConfigError(str(e)) from None
  if config.eval.get("episode_length") is None:
    config.eval.episode_length = suite.episode_length
  if "realtime" in config.eval and config.eval.get("control_hz") is None:
    config.eval.control_hz = float(suite.control_hz)
  if config.data.get("num_episodes") is None:
    config.data.num_episodes = suite.demo_episodes
  if "pointcloud" in config:
    for field, value in suite.sensor.items():
      if config.pointcloud.get(field) is None:
        config.pointcloud[field] = value
  if "rgb" in config:
    if config.rgb.get("cameras") is None:
      config.rgb.cameras = (
        _dataset_cameras(config)
        if runs.offline(config) and config.obs == "rgb"
        else tuple(suite.cameras)
      )
    moves = {
      c: p
      for c, p in suite.cameras.items()
      if p and c in config.rgb.cameras and c not in config.rgb.camera_pos
    }
    if moves:
      with config.rgb.camera_pos.unlocked():
        for cam, pos in moves.items():
          config.rgb.camera_pos[cam] = tuple(pos)


def _check_eval_task(config) -> None:
  """eval.task: a suite task, for a run on a dataset of its own whose observations that
  suite offers (data.state_keys mapped through its features)."""
  if not runs.offline(config):
    raise ConfigError(
      f"config.eval.task ({config.eval.task!r}) names the suite task a run on "
      f"a dataset of its own (data.path) is evaluated in; this run trains on "
      f"{config.task}'s demonstrations: drop it, or set --config.task"
    )
  try:
    config.eval.task = suites.check_task(config.eval.task)
    suites.suite_of(config.eval.task).observation_map(
      obs_lib.keys(config.obs), formats.Mapping.from_config(config.data).state_keys
    )
  except ValueError as e:
    raise ConfigError(f"config.eval.task: {e}") from None


def _dataset_cameras(config) -> tuple:
  """The cameras of a dataset of your own a camera run reads (data.cameras, or all of
  them), as config.rgb.cameras names them: their policy keys are the dataset's keys."""
  try:
    source = formats.open_source(config.data.path)
    keys = formats.image_keys(source, formats.Mapping.from_config(config.data))
  except (ValueError, OSError) as e:
    raise ConfigError(f"data.path {config.data.path}: {e}") from None
  if not keys:
    raise ConfigError(f"data.path {config.data.path} holds no camera; obs='rgb' needs one")
  return ("img",) if list(keys) == ["img"] else tuple(k[len("img_") :] for k in keys)


def check_config(config) -> None:
  """`resolve`, then every check of the config (one ConfigError line each)."""
  resolve(config)
  try:
    methods.get(config.method)
    obs_lib.kind(config.obs)
    evaluation.resolve_backend(config.eval.backend)
    nets.check_compute_dtype(config.eval.get("dtype", "float32"))
  except ValueError as e:
    raise ConfigError(str(e)) from None
  for path in (
    "train.batch_size",
    "train.steps",
    "policy.horizon",
    "policy.n_obs_steps",
    "policy.n_action_steps",
    "data.num_episodes",
    "eval.episodes",
    "diffusion.num_inference_steps",
    "eval.episode_length",
  ):
    _positive(config, path)
  if "steps_per_call" in config.train:  # runs saved before the field was added lack it
    _positive(config, "train.steps_per_call")
  p = config.policy
  if p.n_obs_steps - 1 + p.n_action_steps > p.horizon:
    raise ConfigError(
      f"n_action_steps ({p.n_action_steps}) does not fit in the horizon "
      f"({p.horizon}) after n_obs_steps - 1 = {p.n_obs_steps - 1} observed "
      f"steps; need n_obs_steps - 1 + n_action_steps <= horizon"
    )
  levels = len(config.model.down_dims)
  if p.horizon % (2 ** (levels - 1)):
    raise ConfigError(
      f"policy.horizon ({p.horizon}) must be divisible by "
      f"{2 ** (levels - 1)} (the U-Net halves it {levels - 1} times)"
    )
  d = config.diffusion
  if d.prediction_type not in PREDICTION_TYPES:
    raise ConfigError(f"diffusion.prediction_type must be one of {PREDICTION_TYPES}")
  if d.spacing not in SPACINGS:
    raise ConfigError(f"diffusion.spacing must be one of {SPACINGS}, got {d.spacing!r}")
  if not 1 <= d.num_inference_steps <= d.num_train_timesteps:
    raise ConfigError(f"diffusion.num_inference_steps must be in [1, {d.num_train_timesteps}]")
  if any(c % config.model.n_groups for c in config.model.down_dims):
    raise ConfigError(
      f"every model.down_dims entry must be divisible by model.n_groups ({config.model.n_groups})"
    )
  _check_optimizers(config)
  check_realtime(config)
  _check_data_mapping(config)
  _check_log(config)
  if obs_lib.uses_camera(config):
    check_rgb(config)
  check = getattr(methods.get(config.method), "check_config", None)
  if check is not None:
    check(config)


def check_realtime(config) -> None:
  """eval.realtime's fields: a finite latency >= 0, control_hz > 0, a delay shorter than the
  episode, known modes, and stitching the run's policies can do."""
  e = config.eval
  if not e.get("realtime", False):
    return
  if e.latency_from not in ("fixed", "measured"):
    raise ConfigError(f"eval.latency_from must be 'fixed' or 'measured', got {e.latency_from!r}")
  try:
    timing = execution.Timing(
      execution.delay_steps(float(e.latency_ms), float(e.control_hz)),
      config.policy.horizon - config.policy.n_obs_steps + 1,
      config.policy.n_action_steps,
      e.execution,
      e.stitching,
    )
    if e.latency_from == "fixed":
      timing.check(e.episode_length)
  except ValueError as err:
    raise ConfigError(f"eval: {err}") from None
  if e.stitching == "rtc":
    names = [config.method] + (["teacher"] if methods.info(config.method).needs_teacher else [])
    blind = [m for m in names if not methods.info(m).guidable]
    if blind:
      raise ConfigError(
        f"eval.stitching='rtc' guides an iterative sampler; {blind[0]}'s "
        f"policies take one step and cannot be guided: use stitching "
        f"'ensemble' or 'none'"
      )


def _check_data_mapping(config) -> None:
  """data.state_keys / cameras: tuples of distinct feature names; data.action_key: a name."""
  d = config.data
  for field in ("state_keys", "cameras"):
    value = d.get(field, ())
    if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
      raise ConfigError(
        f"config.data.{field} must be a tuple of feature names, e.g. "
        f"--config.data.{field}='(\"a\", \"b\")', got {value!r}"
      )
    if len(set(value)) != len(value):
      raise ConfigError(f"config.data.{field} names a feature twice: {value!r}")
  if not isinstance(d.get("action_key", ""), str):
    raise ConfigError(f"config.data.action_key must be a feature name, got {d.get('action_key')!r}")
  named = [f for f in ("state_keys", "cameras", "action_key") if d.get(f)]
  if named and not runs.offline(config):
    raise ConfigError(
      f"config.data.{named[0]} picks features of a dataset of your own, but "
      f"data.path is empty (MetaWorld demonstrations have fixed keys); set "
      f"--config.data.path or drop it"
    )


WANDB_MODES = ("online", "offline", "disabled")


def _check_log(config) -> None:
  log = config.get("log")
  if log is None:  # runs saved before the section existed
    return
  for field in ("tensorboard", "wandb"):
    if not isinstance(log.get(field, False), bool):
      raise ConfigError(f"config.log.{field} must be True or False, got {log.get(field)!r}")
  if log.get("wandb_mode", "online") not in WANDB_MODES:
    raise ConfigError(
      f"config.log.wandb_mode must be one of {WANDB_MODES}, got {log.get('wandb_mode')!r}"
    )


def _pair(value) -> tuple | None:
  """(height, width) of an int or a pair of positive ints, else None."""
  v = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
  try:
    v = tuple(v)
  except TypeError:
    return None
  ok = len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v)
  return v if ok else None


def check_rgb(config) -> None:
  """The camera settings of an obs='rgb' config (`config.rgb`), and its evaluation backend:
  MJX has no rasteriser (`obs.check_mjx`)."""
  if "rgb" not in config:
    raise ConfigError("obs='rgb' needs a config.rgb section (see configs/common.py, c.rgb)")
  r = config.rgb
  cams = r.cameras
  if (
    isinstance(cams, str)
    or not cams
    or not all(isinstance(c, str) and c for c in cams)
    or len(set(cams)) != len(cams)
  ):
    raise ConfigError(
      f"config.rgb.cameras must be a tuple of distinct camera names, e.g. "
      f"('corner2',), got {cams!r}"
    )
  size, crop = _pair(r.image_size), _pair(r.crop)
  if size is None:
    raise ConfigError(f"config.rgb.image_size must be (height, width), got {r.image_size!r}")
  if crop is None or crop[0] > size[0] or crop[1] > size[1]:
    raise ConfigError(
      f"config.rgb.crop must be (height, width) no larger than "
      f"config.rgb.image_size {size}, got {r.crop!r}"
    )
  try:
    nets.vision.check_variant(r.encoder, r.pooling)
  except ValueError as e:
    raise ConfigError(f"config.{e}") from None
  for name in ("num_keypoints", "feature_dim"):
    _positive(config, f"rgb.{name}")
  fmap = nets.vision.feature_map_size(crop)
  if r.pooling == "spatial_softmax" and min(fmap) < 2:
    raise ConfigError(
      f"config.rgb.crop {crop} leaves the ResNet a {fmap[0]}x{fmap[1]} feature "
      f"map, where spatial softmax's keypoints are constant (the image cannot "
      f"reach the policy); crop at least 33x33, or set rgb.pooling='avg'"
    )
  for cam, pos in r.camera_pos.items():
    if len(tuple(pos)) not in (0, 3):
      raise ConfigError(
        f"config.rgb.camera_pos.{cam} must be () or an (x, y, z) position, got {pos!r}"
      )
  if config.eval.get("backend", "auto") == "mjx":
    try:
      obs_lib.check_mjx(config.obs)
    except ValueError as e:
      raise ConfigError(str(e)) from None


def _relevant(config, keys) -> dict:
  """The config sections among `keys`; the point-cloud sensor and the cameras only matter
  for their obs."""
  d = config.to_dict()
  keep = [
    k
    for k in keys
    if k in d
    and (k != "pointcloud" or obs_lib.uses_sensor(config))
    and (k != "rgb" or obs_lib.uses_camera(config))
  ]
  return json.loads(json.dumps({k: d[k] for k in keep}))


def identity(config) -> dict:
  return _relevant(config, IDENTITY_KEYS)


# Config fields added after runs were already written, with the value that reproduces what
# those runs did: a saved run without the field matches a config holding this value.
ADDED_FIELDS = {
  "data.path": "",
  "pointcloud.table": "keep",
  "data.state_keys": (),
  "data.cameras": (),
  "data.action_key": "",
}


def _diff(a: dict, b: dict, prefix="") -> list[str]:
  out = []
  for k in sorted(set(a) | set(b)):
    va, vb = a.get(k), b.get(k)
    if isinstance(va, dict) and isinstance(vb, dict):
      out += _diff(va, vb, f"{prefix}{k}.")
    elif va != vb and not _added_later(f"{prefix}{k}", k in a, k in b, va, vb):
      out.append(f"{prefix}{k}: {va!r} vs {vb!r}")
  return out


def _added_later(name: str, in_a: bool, in_b: bool, va, vb) -> bool:
  """True when only one side has `name`, a field added later, at its old behaviour."""
  if name not in ADDED_FIELDS or in_a == in_b:
    return False
  return (vb if in_b else va) == json.loads(json.dumps(ADDED_FIELDS[name]))  # () == []


def check_workdir(workdir: str, config) -> None:
  """Refuses a workdir that holds a run of a different config."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    if os.path.isdir(os.path.join(workdir, "checkpoints")):
      raise ConfigError(
        f"workdir {workdir} has checkpoints but no config.json; it was not "
        f"written by this tool or is damaged. Use another --workdir."
      )
    return
  try:
    with open(path) as f:
      payload = json.load(f)
    saved = payload["identity"]
  except (OSError, ValueError, KeyError) as e:
    raise ConfigError(f"cannot read {path} ({e}); use another --workdir") from None
  diff = _diff(saved, identity(config))
  if diff:
    raise ConfigError(
      f"workdir {workdir} holds a run of a different config "
      f"({'; '.join(diff[:4])}). Use a new --workdir, or delete the old run."
    )
  if "config" in payload:  # runs saved before the whole config was kept resume as before
    changed = _diff(training_fields(payload["config"]), training_fields(config.to_dict()))
    if changed:
      raise ConfigError(
        f"resuming {workdir} with other training settings ({'; '.join(changed[:4])}):"
        f" the saved optimiser state and schedule belong to the old ones. "
        f"Resume with the saved values, or train into a new --workdir."
      )


# train.* fields that only say how a run is carried out (logging, checkpoints, devices, its
# calls): a resumed run may change them; every other train.* field, and the method's own
# section (sdm.*, cd.*, step.*, ...), is the optimisation itself
OPERATIONAL_TRAIN_FIELDS = ("log_every", "ckpt_every", "steps_per_call", "num_devices", "live_taps")


def training_fields(config: dict) -> dict:
  """The fields a resumed run must keep: train.* less the operational ones, and the
  method's own section (a JSON-like dict)."""
  d = json.loads(json.dumps(config))
  out = {
    "train": {k: v for k, v in d.get("train", {}).items() if k not in OPERATIONAL_TRAIN_FIELDS}
  }
  method = d.get("method", "")
  if isinstance(d.get(method), dict):
    out[method] = d[method]
  return out


def check_teacher(teacher_config, student_config, workdir: str) -> None:
  """A student must match its teacher's task, observations, architecture and schedule."""
  diff = _diff(_relevant(teacher_config, TEACHER_KEYS), _relevant(student_config, TEACHER_KEYS))
  for field in ("path", "state_keys", "cameras", "action_key"):  # the same data, features
    a, b = (
      c.data.get(field, ADDED_FIELDS[f"data.{field}"]) for c in (teacher_config, student_config)
    )
    if json.dumps(a) != json.dumps(b):  # a tuple equals the list it was saved as
      diff.append(f"data.{field}: {a!r} vs {b!r}")
  if teacher_config.method != "teacher":
    raise ConfigError(
      f"teacher_workdir {workdir} holds a {teacher_config.method!r} run, not a teacher"
    )
  if diff:
    raise ConfigError(
      f"the teacher in {workdir} does not match this config "
      f"({'; '.join(diff[:4])}). Train a matching teacher (leave "
      f"teacher_workdir empty) or change the student config to match."
    )
