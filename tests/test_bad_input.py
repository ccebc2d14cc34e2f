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

pytestmark = pytest.mark.xdist_group("test_bad_input")   # its module fixture: one worker

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
  out = subprocess.run([sys.executable, "-m", module] + args, cwd=ROOT, capture_output=True,
                       text=True, timeout=600, env=dict(os.environ, PYTHONPATH=ROOT))
  return out.returncode, out.stdout + out.stderr


TINY = ["--config=configs/teacher.py:tiny"]

CLI_CASES = [
    ("unknown task", TINY + ["--config.task=drawer-opn"], "Did you mean drawer-open"),
    ("unknown config key", TINY + ["--config.trian.steps=5"], "trian"),
    ("wrong value type", TINY + ["--config.train.steps=abc"], "abc"),
    ("zero batch size", TINY + ["--config.train.batch_size=0"],
     "config.train.batch_size must be a positive integer"),
    ("negative steps", TINY + ["--config.train.steps=-5"],
     "config.train.steps must be a positive integer"),
    ("zero horizon", TINY + ["--config.policy.horizon=0"],
     "config.policy.horizon must be a positive integer"),
    ("n_action_steps > horizon", TINY + ["--config.policy.n_action_steps=8"],
     "does not fit in the horizon"),
    ("unknown evaluation backend", TINY + ["--config.eval.backend=gpu"],
     "unknown evaluation backend 'gpu'"),
    ("unknown preset", ["--config=configs/teacher.py:huge"], "unknown preset 'huge'"),
    ("unknown observation type", TINY + ["--config.obs=rgbd"], "obs must be one of"),
    ("unknown SDM normaliser", ["--config=configs/sdm.py:tiny", "--config.sdm.normalizer=l2"],
     "sdm.normalizer must be 'dmd' or 'anchor'"),
    ("unknown top-level field", TINY + ["--config.no_such_key=1"],
     "unknown config field 'no_such_key'"),
    ("field under the wrong section", TINY + ["--config.batch_size=0"],
     "Did you mean train.batch_size?"),
    ("optimiser field a method does not read", ["--config=configs/sdm.py:tiny",
                                                "--config.train.lr=1e-3"],
     "unknown config field 'train.lr'. Did you mean sdm.fake_lr, sdm.gen_lr"),
    ("negative learning rate", TINY + ["--config.train.lr=-1e-4"],
     "config.train.lr (a learning rate) must be > 0"),
    ("CD with epsilon prediction", ["--config=configs/cd.py:tiny",
                                    "--config.diffusion.prediction_type=epsilon"],
     "CD's one-step evaluation at t = 99 needs diffusion.prediction_type='sample'"),
    ("STEP with trailing spacing", ["--config=configs/step.py:tiny",
                                    "--config.step.spacing=trailing"],
     "erases the warm start"),
    ("STEP t0 below its grid", ["--config=configs/step.py:tiny", "--config.step.t0=0"],
     "step.t0 = 0 leaves no 2-step grid"),
]


@pytest.mark.parametrize("name,args,message", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_config(name, args, message, tmp_path):
  rc, out = _run(args + [f"--workdir={tmp_path / 'w'}", f"--config.data.dir={tmp_path / 'd'}"])
  assert rc != 0, out
  assert message in out, out[-2000:]
  assert "Traceback" not in out, out[-2000:]
  assert not os.path.exists(tmp_path / "w" / "checkpoints")


def test_missing_teacher_checkpoint(tmp_path):
  junk = tmp_path / "teacher"
  junk.mkdir()
  (junk / "notes.txt").write_text("not a run")
  rc, out = _run(["--config=configs/sdm.py:tiny", f"--config.teacher_workdir={junk}",
                  f"--workdir={tmp_path / 'w'}", f"--config.data.dir={tmp_path / 'd'}"])
  assert rc != 0 and "holds no teacher checkpoint" in out, out[-2000:]
  assert os.listdir(junk) == ["notes.txt"]


def test_teacher_student_mismatch(trained, tmp_path):
  before = _tree_digest(trained / "teacher")
  rc, out = _run(["--config=configs/sdm.py:tiny", f"--config.teacher_workdir={trained / 'teacher'}",
                  "--config.model.down_dims=(32,64)", f"--workdir={tmp_path / 'w'}",
                  f"--config.data.dir={trained / 'data'}"])
  assert rc != 0 and "does not match this config" in out and "down_dims" in out, out[-2000:]
  assert _tree_digest(trained / "teacher") == before


def test_observation_mismatch_with_teacher(trained, tmp_path):
  rc, out = _run(["--config=configs/sdm.py:tiny", f"--config.teacher_workdir={trained / 'teacher'}",
                  "--config.obs=pointcloud", f"--workdir={tmp_path / 'w'}",
                  f"--config.data.dir={trained / 'data'}"])
  assert rc != 0 and "does not match this config" in out and "obs" in out, out[-2000:]


def test_workdir_of_another_config(trained):
  before = _tree_digest(trained / "teacher")
  rc, out = _run(TINY + ["--config.task=door-open", f"--workdir={trained / 'teacher'}",
                         f"--config.data.dir={trained / 'data'}"])
  assert rc != 0 and "holds a run of a different config" in out, out[-2000:]
  assert _tree_digest(trained / "teacher") == before


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


def test_evaluate_without_checkpoint(tmp_path):
  rc, out = _run([f"--workdir={tmp_path}"], module="launch.evaluate")
  assert rc != 0 and "no checkpoint" in out, out[-2000:]


def _broken_dataset(data_dir, lengths_ok=True, keys=("state", "full_state", "action")):
  path = os.path.join(data_dir, "metaworld_drawer-open_state_2ep.zarr")
  ep = {"state": np.zeros((5, 9), np.float32), "full_state": np.zeros((5, 39), np.float32),
        "action": np.zeros((5, 4), np.float32)}
  storage.write_episodes(path, [{k: ep[k] for k in keys}] * 2)
  if not lengths_ok:
    import zarr
    zarr.open_group(path, mode="a")["meta/episode_ends"][...] = np.array([5, 12])
  return path


@pytest.mark.parametrize("kind,message", [("missing", "lacks data/full_state"),
                                          ("lengths", "inconsistent lengths")])
def test_corrupt_dataset(kind, message, tmp_path):
  data = tmp_path / "d"
  path = _broken_dataset(str(data), lengths_ok=kind != "lengths",
                         keys=("state", "action") if kind == "missing" else
                         ("state", "full_state", "action"))
  before = _tree_digest(path)
  rc, out = _run(TINY + [f"--workdir={tmp_path / 'w'}", f"--config.data.dir={data}"])
  assert rc != 0 and message in out, out[-2000:]
  assert _tree_digest(path) == before


def test_wrong_observation_shape_for_a_loaded_policy(trained):
  import jax
  import jaxpolicy
  policy = jaxpolicy.load_policy(str(trained / "teacher"))
  with pytest.raises(ValueError, match=r"must have shape \(batch, 2, 39\)"):
    policy({"full_state": np.zeros((1, 2, 40), np.float32)}, jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match="expects observation keys"):
    policy({"point_cloud": np.zeros((1, 2, 128, 3), np.float32)}, jax.random.PRNGKey(0))


def test_unknown_sweep_method(tmp_path):
  rc, out = _run(["--tasks=drawer-open", "--methods=teacher,foo", "--preset=tiny",
                  f"--workdir={tmp_path}"], module="launch.sweep")
  assert rc != 0 and "unknown method 'foo'" in out, out[-2000:]


def test_no_pickle_in_the_package():
  bad = []
  for top in ("jaxpolicy", "launch", "configs", "benchmarks"):
    for dp, _, fs in os.walk(os.path.join(ROOT, top)):
      for f in fs:
        if f.endswith(".py"):
          text = open(os.path.join(dp, f)).read()
          for needle in ("import pickle", "from pickle", "pickle.load", "cloudpickle", "dill",
                         "allow_pickle=True", "torch.load("):
            if needle in text:
              bad.append(f"{f}: {needle}")
  assert not bad, bad


@pytest.mark.parametrize("field,obs,other", [("data.path", "state", "mine.zarr"),
                                             ("pointcloud.table", "pointcloud", "hide")])
def test_run_written_before_a_field_existed(tmp_path, field, obs, other):
  """A run saved before a field existed (`data.path`, `pointcloud.table`) resumes under a
  config holding its old value, and is refused under any other value."""
  import json
  from jaxpolicy import validate
  from jaxpolicy.errors import ConfigError
  c = teacher_configs.get_config("tiny")
  c.obs = obs
  section, name = field.split(".")
  setattr(c[section], name, validate.ADDED_FIELDS[field])   # the old behaviour
  ident = validate.identity(c)
  del ident[section][name]
  (tmp_path / "config.json").write_text(json.dumps({"identity": ident}))
  validate.check_workdir(str(tmp_path), c)          # accepted: the field's old behaviour
  setattr(c[section], name, other)
  with pytest.raises(ConfigError, match=field):
    validate.check_workdir(str(tmp_path), c)
