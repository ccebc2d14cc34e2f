"""Every row of the README's bad-input table: one clear line, non-zero exit, nothing lost.

CLI cases fail before any training; the cases that need a trained run share one tiny
teacher trained once for the module.
"""

import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from configs import teacher as teacher_configs
from jaxpolicy.data import storage
from jaxpolicy import training

pytestmark = pytest.mark.xdist_group("test_bad_input")  # its module fixture: one worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  d = tmp_path_factory.mktemp("bad")
  c = teacher_configs.get_config("tiny")
  c.data.dir = str(d / "data")
  c.train.steps = 2
  c.eval.episodes, c.eval.episode_length = 1, 3
  training.train(c, str(d / "teacher"))
  return d


def _tree_digest(path):
  h = hashlib.sha256()
  for dirpath, _, files in sorted(os.walk(path)):
    for f in sorted(files):
      p = os.path.join(dirpath, f)
      h.update(p.encode())
      with open(p, "rb") as fh:
        h.update(fh.read())
  return h.hexdigest()


def _run(args, module="launch.train"):
  out = subprocess.run(
    [sys.executable, "-m", module] + args,
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=600,
    env=dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])),
  )
  return out.returncode, out.stdout + out.stderr


TINY = ["--config=configs/teacher.py:tiny"]

# What the command line itself does: parse flags and config files (launch.common); one
# library check (the task) shows the exit path. Each case is a fresh process (~5 s).
_slow = lambda *case: pytest.param(*case, marks=pytest.mark.slow, id=case[0])
CLI_CASES = [
  pytest.param(
    "unknown task",
    TINY + ["--config.task=drawer-opn"],
    "Did you mean drawer-open",
    id="unknown task",
  ),
  pytest.param(
    "unknown config key", TINY + ["--config.trian.steps=5"], "trian", id="unknown config key"
  ),
  _slow("wrong value type", TINY + ["--config.train.steps=abc"], "abc"),
  _slow("unknown preset", ["--config=configs/teacher.py:huge"], "unknown preset 'huge'"),
  _slow(
    "unknown top-level field",
    TINY + ["--config.no_such_key=1"],
    "unknown config field 'no_such_key'",
  ),
  _slow(
    "field under the wrong section",
    TINY + ["--config.batch_size=0"],
    "Did you mean train.batch_size?",
  ),
  _slow(
    "optimiser field a method does not read",
    ["--config=configs/sdm.py:tiny", "--config.train.lr=1e-3"],
    "unknown config field 'train.lr'. Did you mean sdm.fake_lr, sdm.gen_lr",
  ),
]


@pytest.mark.parametrize("name,args,message", CLI_CASES)
def test_cli_bad_config(name, args, message, tmp_path):
  rc, out = _run(args + [f"--workdir={tmp_path / 'w'}", f"--config.data.dir={tmp_path / 'd'}"])
  assert rc != 0, out
  assert message in out, out[-2000:]
  assert "Traceback" not in out, out[-2000:]
  assert not os.path.exists(tmp_path / "w" / "checkpoints")


# The library's checks (jaxpolicy.validate, the methods' check_config), in process: the
# config a command line would build, one line naming the problem; training stops there,
# before anything is written (test_cli_bad_config shows the command's exit path).
CONFIG_CASES = [
  ("unknown task", "teacher", {"task": "drawer-opn"}, "Did you mean drawer-open"),
  (
    "zero batch size",
    "teacher",
    {"train.batch_size": 0},
    "config.train.batch_size must be a positive integer",
  ),
  (
    "negative steps",
    "teacher",
    {"train.steps": -5},
    "config.train.steps must be a positive integer",
  ),
  (
    "zero horizon",
    "teacher",
    {"policy.horizon": 0},
    "config.policy.horizon must be a positive integer",
  ),
  (
    "n_action_steps > horizon",
    "teacher",
    {"policy.n_action_steps": 8},
    "does not fit in the horizon",
  ),
  (
    "unknown evaluation backend",
    "teacher",
    {"eval.backend": "gpu"},
    "unknown evaluation backend 'gpu'",
  ),
  ("unknown observation type", "teacher", {"obs": "sonar"}, "obs must be one of"),
  (
    "unknown SDM normaliser",
    "sdm",
    {"sdm.normalizer": "l2"},
    "sdm.normalizer must be 'dmd' or 'anchor'",
  ),
  (
    "negative learning rate",
    "teacher",
    {"train.lr": -1e-4},
    "config.train.lr (a learning rate) must be > 0",
  ),
  (
    "CD with epsilon prediction",
    "cd",
    {"diffusion.prediction_type": "epsilon"},
    "CD's one-step evaluation at t = 99 needs diffusion.prediction_type='sample'",
  ),
  ("STEP with trailing spacing", "step", {"step.spacing": "trailing"}, "erases the warm start"),
  ("STEP t0 below its grid", "step", {"step.t0": 0}, "step.t0 = 0 leaves no 2-step grid"),
]


@pytest.mark.parametrize(
  "name,method,fields,message", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES]
)
def test_bad_config(name, method, fields, message, tmp_path):
  import configs
  from jaxpolicy.errors import ConfigError

  c = configs.load(method, "tiny")
  for key, value in fields.items():
    node, leaf = c, key
    if "." in key:
      section, leaf = key.split(".")
      node = c[section]
    setattr(node, leaf, value)
  with pytest.raises(ConfigError) as e:
    training.train(c, str(tmp_path / "w"))
  assert message in str(e.value) and "\n" not in str(e.value)
  assert not os.path.exists(tmp_path / "w")


def test_missing_teacher_checkpoint(tmp_path):
  junk = tmp_path / "teacher"
  junk.mkdir()
  (junk / "notes.txt").write_text("not a run")
  rc, out = _run(
    [
      "--config=configs/sdm.py:tiny",
      f"--config.teacher_workdir={junk}",
      f"--workdir={tmp_path / 'w'}",
      f"--config.data.dir={tmp_path / 'd'}",
    ]
  )
  assert rc != 0 and "holds no teacher checkpoint" in out, out[-2000:]
  assert os.listdir(junk) == ["notes.txt"]


@pytest.mark.slow
def test_teacher_student_mismatch(trained, tmp_path):
  before = _tree_digest(trained / "teacher")
  rc, out = _run(
    [
      "--config=configs/sdm.py:tiny",
      f"--config.teacher_workdir={trained / 'teacher'}",
      "--config.model.down_dims=(32,64)",
      f"--workdir={tmp_path / 'w'}",
      f"--config.data.dir={trained / 'data'}",
    ]
  )
  assert rc != 0 and "does not match this config" in out and "down_dims" in out, out[-2000:]
  assert _tree_digest(trained / "teacher") == before


@pytest.mark.slow
def test_observation_mismatch_with_teacher(trained, tmp_path):
  rc, out = _run(
    [
      "--config=configs/sdm.py:tiny",
      f"--config.teacher_workdir={trained / 'teacher'}",
      "--config.obs=pointcloud",
      f"--workdir={tmp_path / 'w'}",
      f"--config.data.dir={trained / 'data'}",
    ]
  )
  assert rc != 0 and "does not match this config" in out and "obs" in out, out[-2000:]


@pytest.mark.slow
def test_workdir_of_another_config(trained):
  before = _tree_digest(trained / "teacher")
  rc, out = _run(
    TINY
    + [
      "--config.task=door-open",
      f"--workdir={trained / 'teacher'}",
      f"--config.data.dir={trained / 'data'}",
    ]
  )
  assert rc != 0 and "holds a run of a different config" in out, out[-2000:]
  assert _tree_digest(trained / "teacher") == before


@pytest.mark.slow
def test_corrupt_checkpoint(trained, tmp_path):
  wd = tmp_path / "copy"
  shutil.copytree(trained / "teacher", wd)
  step_dir = wd / "checkpoints" / "2"
  victims = [os.path.join(dp, f) for dp, _, fs in os.walk(step_dir / "model") for f in fs]
  for v in victims:
    with open(v, "wb") as f:
      f.write(b"garbage")
  before = _tree_digest(wd)
  rc, out = _run([f"--workdir={wd}", "--episodes=1"], module="launch.evaluate")
  assert rc != 0 and "corrupt" in out, out[-2000:]
  assert _tree_digest(wd) == before


@pytest.mark.slow
def test_evaluate_without_checkpoint(tmp_path):
  rc, out = _run([f"--workdir={tmp_path}"], module="launch.evaluate")
  assert rc != 0 and "no checkpoint" in out, out[-2000:]


def _broken_dataset(data_dir, lengths_ok=True, keys=("state", "full_state", "action")):
  path = os.path.join(data_dir, "metaworld_drawer-open_state_2ep.zarr")
  ep = {
    "state": np.zeros((5, 9), np.float32),
    "full_state": np.zeros((5, 39), np.float32),
    "action": np.zeros((5, 4), np.float32),
  }
  storage.write_episodes(path, [{k: ep[k] for k in keys}] * 2)
  if not lengths_ok:
    import zarr

    zarr.open_group(path, mode="a")["meta/episode_ends"][...] = np.array([5, 12])
  return path


@pytest.mark.slow
@pytest.mark.parametrize(
  "kind,message", [("missing", "lacks data/full_state"), ("lengths", "inconsistent lengths")]
)
def test_corrupt_dataset(kind, message, tmp_path):
  data = tmp_path / "d"
  path = _broken_dataset(
    str(data),
    lengths_ok=kind != "lengths",
    keys=("state", "action") if kind == "missing" else ("state", "full_state", "action"),
  )
  before = _tree_digest(path)
  rc, out = _run(TINY + [f"--workdir={tmp_path / 'w'}", f"--config.data.dir={data}"])
  assert rc != 0 and message in out, out[-2000:]
  assert _tree_digest(path) == before


@pytest.mark.slow
def test_wrong_observation_shape_for_a_loaded_policy(trained):
  import jax
  import jaxpolicy

  policy = jaxpolicy.load_policy(str(trained / "teacher"))
  with pytest.raises(ValueError, match=r"must have shape \(batch, 2, 39\)"):
    policy({"full_state": np.zeros((1, 2, 40), np.float32)}, jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="expects observation keys"):
    policy({"point_cloud": np.zeros((1, 2, 128, 3), np.float32)}, jax.random.PRNGKey(0))


@pytest.mark.slow
def test_unknown_sweep_method(tmp_path):
  rc, out = _run(
    ["--tasks=drawer-open", "--methods=teacher,foo", "--preset=tiny", f"--workdir={tmp_path}"],
    module="launch.sweep",
  )
  assert rc != 0 and "unknown method 'foo'" in out, out[-2000:]


def test_no_pickle_in_the_package():
  bad = []
  for top in ("jaxpolicy", "launch", "configs", "benchmarks"):
    for dp, _, fs in os.walk(os.path.join(ROOT, top)):
      for f in fs:
        if f.endswith(".py"):
          text = open(os.path.join(dp, f)).read()
          for needle in (
            "import pickle",
            "from pickle",
            "pickle.load",
            "cloudpickle",
            "dill",
            "allow_pickle=True",
          ):
            if needle in text:
              bad.append(f"{f}: {needle}")
          # torch.load only with weights_only=True (tensors, no code run)
          bad += [
            f"{f}: {line.strip()}"
            for line in text.splitlines()
            if "torch.load(" in line and "weights_only=True" not in line
          ]
  assert not bad, bad


@pytest.mark.parametrize(
  "field,obs,other",
  [
    ("data.path", "state", "mine.zarr"),
    ("pointcloud.table", "pointcloud", "hide"),
    ("data.state_keys", "lowdim", ("joints",)),
    ("data.cameras", "lowdim", ("top",)),
    ("data.action_key", "lowdim", "actions"),
  ],
)
def test_run_written_before_a_field_existed(tmp_path, field, obs, other):
  """A run saved before a field existed (`data.path`, `pointcloud.table`, the data key
  mapping) resumes under a config holding its old value, and is refused under any other."""
  import json
  from jaxpolicy import validate
  from jaxpolicy.errors import ConfigError

  c = teacher_configs.get_config("tiny")
  c.obs = obs
  section, name = field.split(".")
  setattr(c[section], name, validate.ADDED_FIELDS[field])  # the old behaviour
  ident = validate.identity(c)
  del ident[section][name]
  (tmp_path / "config.json").write_text(json.dumps({"identity": ident}))
  validate.check_workdir(str(tmp_path), c)  # accepted: the field's old behaviour
  setattr(c[section], name, other)
  with pytest.raises(ConfigError, match=field):
    validate.check_workdir(str(tmp_path), c)


def test_resuming_with_other_training_settings_is_refused(tmp_path):
  """A resumed run keeps its optimisation (train.* and the method's section): another
  learning rate is one line naming the field; logging and checkpoint cadence may change."""
  import json
  from configs import sdm as sdm_configs
  from jaxpolicy import validate
  from jaxpolicy.errors import ConfigError

  c = sdm_configs.get_config("tiny")
  (tmp_path / "config.json").write_text(
    json.dumps({"identity": validate.identity(c), "config": c.to_dict()})
  )
  c.train.log_every, c.train.ckpt_every, c.train.steps_per_call = 7, 3, 1
  validate.check_workdir(str(tmp_path), c)  # how the run is carried out: allowed
  c.sdm.gen_lr = 1e-3
  with pytest.raises(ConfigError, match=r"other training settings \(sdm.gen_lr: 5e-05 vs "):
    validate.check_workdir(str(tmp_path), c)
  c = sdm_configs.get_config("tiny")
  c.train.steps = 99
  with pytest.raises(ConfigError, match="train.steps: 10 vs 99"):
    validate.check_workdir(str(tmp_path), c)
