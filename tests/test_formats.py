"""LeRobot (v2.1, v3.0) and robomimic datasets, written with the formats' own libraries
(pyarrow, PyAV, h5py; tests/helpers/datasets.py), read back exactly: the actions and states
written, the camera frames within the codec's error; faults refused with one line each;
launch.inspect_data; a tiny teacher and SDM trained on each format (slow)."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("av")
pytest.importorskip("h5py")

import configs  # noqa: E402
from jaxpolicy import demos, runs, training  # noqa: E402
from jaxpolicy.data import formats  # noqa: E402
from jaxpolicy.data.dataset import load_demos  # noqa: E402
from jaxpolicy.data.storage import DatasetError  # noqa: E402
from helpers import datasets as ds  # noqa: E402

pytestmark = pytest.mark.xdist_group("test_formats")  # its module fixtures: one worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = 64  # SVT-AV1 (LeRobot's default encoder) wants frames of at least 64 x 64


@pytest.fixture(autouse=True)
def frame_cache(tmp_path, monkeypatch):
  """A frame cache of the test's own (the user's ~/.cache stays untouched)."""
  monkeypatch.setenv("JAXPOLICY_FRAME_CACHE", str(tmp_path / "frames"))


def _cat(eps, key):
  return np.concatenate([e[key] for e in eps])


def _ends(eps):
  return np.cumsum([len(e["action"]) for e in eps])


def _check_frames(got, eps, camera):
  """Frames equal the ones written within the codec's error, and each is the right frame:
  among its episode's written frames, the closest to it is the one at its own index."""
  want = _cat(eps, f"camera:{camera}").astype(np.int16)
  assert got.shape == want.shape and got.dtype == np.uint8
  err = np.abs(got.astype(np.int16) - want)
  mse = np.mean(err.astype(np.float64) ** 2, axis=(1, 2, 3))
  assert err.mean() < 3.0 and np.all(10 * np.log10(255**2 / mse) > 30)  # PSNR > 30 dB
  start = 0
  for e in eps:
    n = len(e["action"])
    g = got[start : start + n].astype(np.float64).reshape(n, 1, -1)
    w = want[start : start + n].astype(np.float64).reshape(1, n, -1)
    np.testing.assert_array_equal(np.argmin(((g - w) ** 2).mean(-1), axis=1), np.arange(n))
    start += n


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_lerobot_returns_the_actions_states_and_frames_written(tmp_path, version):
  cams = ("top",) if version == "v2.1" else ("top", "wrist")
  eps = ds.robot_episodes(episodes=7, length=12, image=IMAGE, cameras=cams)
  write = ds.write_lerobot_v21 if version == "v2.1" else ds.write_lerobot_v30
  path = write(str(tmp_path / "robot"), eps)
  img_keys = ("img",) if len(cams) == 1 else tuple(f"img_{c}" for c in cams)
  raw, ends = formats.read_episodes(path, ("state", "full_state", "action") + img_keys)
  np.testing.assert_array_equal(ends, _ends(eps))
  for key, feature in (("state", "state"), ("full_state", "env_state"), ("action", "action")):
    assert raw[key].dtype == np.float32
    np.testing.assert_array_equal(raw[key], _cat(eps, feature))  # bit for bit
  for key, cam in zip(img_keys, cams):
    _check_frames(raw[key], eps, cam)
  # data.state_keys concatenates in the order named; cameras picked by short name
  m = formats.Mapping(
    state_keys=("observation.environment_state", "observation.state"), cameras=("top",)
  )
  raw, _ = formats.read_episodes(path, ("state", "img"), m)
  np.testing.assert_array_equal(
    raw["state"], np.concatenate([_cat(eps, "env_state"), _cat(eps, "state")], 1)
  )
  _check_frames(raw["img"], eps, "top")


def test_lerobot_v30_files_roll_over_into_chunks(tmp_path):
  eps = ds.robot_episodes(episodes=7, length=12, image=IMAGE)
  path = ds.write_lerobot_v30(
    str(tmp_path / "robot"), eps, episodes_per_file=2, episodes_per_video=3, chunks_size=2
  )
  assert os.path.isfile(os.path.join(path, "data/chunk-001/file-001.parquet"))
  assert os.path.isfile(os.path.join(path, "videos/observation.images.top/chunk-001/file-000.mp4"))
  raw, ends = formats.read_episodes(path, ("state", "action", "img"))
  np.testing.assert_array_equal(raw["action"], _cat(eps, "action"))
  _check_frames(raw["img"], eps, "top")


def test_lerobot_png_image_features_are_exact(tmp_path):
  eps = ds.robot_episodes(episodes=4, length=6, image=16)
  path = ds.write_lerobot_v21(str(tmp_path / "robot"), eps, image_dtype="image")
  raw, _ = formats.read_episodes(path, ("state", "img"))
  np.testing.assert_array_equal(raw["img"], _cat(eps, "camera:top"))  # PNG is lossless


def test_robomimic_returns_the_demos_written_in_their_order(tmp_path):
  eps = ds.robot_episodes(episodes=12, length=8, image=24)  # demo_10 sorts after demo_9
  path = ds.write_robomimic(str(tmp_path / "demo.hdf5"), eps, image=True)
  m = formats.Mapping(state_keys=("robot0_eef_pos", "obs/robot0_eef_quat"))
  raw, ends = formats.read_episodes(path, ("state", "action", "img"), m)
  np.testing.assert_array_equal(ends, _ends(eps))
  state = _cat(eps, "state")
  np.testing.assert_array_equal(
    raw["state"], np.concatenate([state, np.ones((len(state), 1), np.float32)], 1)
  )
  np.testing.assert_array_equal(raw["action"], _cat(eps, "action"))
  np.testing.assert_array_equal(raw["img"], _cat(eps, "camera:top"))


def test_videos_are_decoded_once_into_the_frame_cache(tmp_path):
  eps = ds.robot_episodes(episodes=2, length=6, image=IMAGE)
  path = ds.write_lerobot_v21(str(tmp_path / "robot"), eps)
  first = formats.read_episodes(path, ("img",))[0]["img"]
  cached = sorted(os.listdir(tmp_path / "frames"))
  assert len(cached) == 4 and all(f.endswith((".frames.npy", ".times.npy")) for f in cached)
  for f in cached:  # what a second read gets comes from the cache, not the decoder
    if f.endswith(".frames.npy"):
      frames = np.load(tmp_path / "frames" / f)
      np.save(tmp_path / "frames" / f, 255 - frames)
  second = formats.read_episodes(path, ("img",))[0]["img"]
  np.testing.assert_array_equal(second, 255 - first)


def test_the_config_names_features_as_flags_give_them(tmp_path):
  """--config.data.state_keys=a,b reaches the config as one string ('a,b',): it names two."""
  eps = ds.robot_episodes(episodes=3, length=6)
  path = ds.write_lerobot_v30(str(tmp_path / "robot"), eps)
  c = configs.load("teacher", "tiny")
  c.data.path = path
  c.data.state_keys = ("observation.environment_state, observation.state",)
  raw, _ = formats.read_episodes(path, ("state",), formats.Mapping.from_config(c.data))
  np.testing.assert_array_equal(
    raw["state"], np.concatenate([_cat(eps, "env_state"), _cat(eps, "state")], 1)
  )


@pytest.mark.parametrize(
  "field,value,match",
  [
    ("data.state_keys", ("a", "a"), r"config.data.state_keys names a feature twice"),
    ("data.cameras", ("",), r"config.data.cameras must be a tuple of feature names"),
    (
      "log.wandb_mode",
      "cloud",
      r"config.log.wandb_mode must be one of \('online', 'offline', "
      r"'disabled'\), got 'cloud'",
    ),
    (
      "data.action_key",
      "act",
      r"config.data.action_key picks features of a dataset of your own,"
      r" but data.path is empty",
    ),
  ],
)
def test_mapping_and_log_fields_are_checked(field, value, match):
  from jaxpolicy import validate  # pylint: disable=g-import-not-at-top
  from jaxpolicy.errors import ConfigError  # pylint: disable=g-import-not-at-top

  c = configs.load("teacher", "tiny")
  section, name = field.split(".")
  if section == "data" and name != "action_key":
    c.data.path = "mine.zarr"
  setattr(c[section], name, value)
  with pytest.raises(ConfigError, match=match):
    validate.check_config(c)


def _v21(tmp_path, **kw):
  eps = ds.robot_episodes(episodes=4, length=8, image=IMAGE, **kw)
  return ds.write_lerobot_v21(str(tmp_path / "robot"), eps, fps=10), eps


def _edit_info(path, **fields):
  p = os.path.join(path, "meta", "info.json")
  info = json.load(open(p))
  info.update(fields)
  json.dump(info, open(p, "w"))


def _video(path, e):
  return os.path.join(path, f"videos/chunk-000/observation.images.top/episode_{e:06d}.mp4")


def _nan_state(path):
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top

  f = os.path.join(path, "data/chunk-000/episode_000001.parquet")
  t = pq.read_table(f)
  state = np.asarray(t["observation.state"].to_pylist(), np.float32)
  state[3, 2] = np.nan
  col = pa.FixedSizeListArray.from_arrays(pa.array(state.ravel()), state.shape[1])
  pq.write_table(
    t.set_column(t.column_names.index("observation.state"), "observation.state", col), f
  )


FAULTS = [
  # (name, edit(path, eps), mapping, keys, the one line it must say)
  (
    "misnamed state feature",
    None,
    dict(state_keys=("observation.stat",)),
    ("state",),
    r"has no feature 'observation.stat' \(data.state_keys\); it has action, .*"
    r"observation.state.* Did you mean observation.state\?",
  ),
  (
    "missing action feature",
    None,
    dict(action_key="actions"),
    ("action",),
    r"has no feature 'actions' \(data.action_key\); it has action, ",
  ),
  (
    "missing camera",
    None,
    dict(cameras=("wrist",)),
    ("img",),
    r"has no camera 'wrist' \(data.cameras\); its cameras are observation.images.top",
  ),
  (
    "fps mismatch",
    lambda p, eps: ds.write_mp4(_video(p, 2), eps[2]["camera:top"], 20),
    {},
    ("img",),
    r"fps mismatch between parquet and video: meta/info.json says 10 fps, "
    r"videos/chunk-000/observation.images.top/episode_000002.mp4 runs at 20 fps",
  ),
  (
    "frame-count mismatch",
    lambda p, eps: ds.write_mp4(_video(p, 1), eps[1]["camera:top"][:7], 10),
    {},
    ("img",),
    r"frame-count mismatch between parquet and video: episode 1 has 8 frames in the parquet "
    r"data but 7 in videos/chunk-000/observation.images.top/episode_000001.mp4",
  ),
  (
    "undecodable video",
    lambda p, eps: open(_video(p, 3), "wb").write(b"\x00" * 300),
    {},
    ("img",),
    r"cannot decode .*episode_000003.mp4 \(",
  ),
  (
    "parquet off its fps",
    lambda p, eps: _edit_info(p, fps=30),
    {},
    ("state",),
    r"episode 0's timestamps are not 1/fps = 0.03333 s apart at frame 1 \(gap 0.1 s\)",
  ),
  (
    "NaN",
    lambda p, eps: _nan_state(p),
    {},
    ("state", "action"),
    r"feature observation.state has NaN or inf at step 11 \(episode 1, 1 steps in all\)",
  ),
  (
    "unknown version",
    lambda p, eps: _edit_info(p, codebase_version="v1.6"),
    {},
    ("state",),
    r"unknown format version 'v1.6' in meta/info.json \(this reader knows v2.0, v2.1, v3.0\)",
  ),
  (
    "newer version",
    lambda p, eps: _edit_info(p, codebase_version="v4.0"),
    {},
    ("state",),
    r"unknown format version 'v4.0' .* it is newer than this reader",
  ),
]


@pytest.mark.parametrize("name,edit,mapping,keys,match", FAULTS, ids=[f[0] for f in FAULTS])
def test_lerobot_faults_are_one_line_each(tmp_path, name, edit, mapping, keys, match):
  del name
  path, eps = _v21(tmp_path)
  if edit is not None:
    edit(path, eps)
  with pytest.raises(DatasetError, match=match) as e:
    formats.read_episodes(path, keys, formats.Mapping(**mapping))
  assert "\n" not in str(e.value)


def test_robomimic_without_state_keys_lists_its_obs_keys(tmp_path):
  path = ds.write_robomimic(str(tmp_path / "d.hdf5"), ds.robot_episodes(episodes=3, length=6))
  with pytest.raises(
    DatasetError,
    match=r"name the obs/ keys that make the policy's state with "
    r"--config.data.state_keys .* it has object \(10,\), robot0_eef_pos "
    r"\(3,\), robot0_eef_quat \(4,\), robot0_gripper_qpos \(2,\)$",
  ):
    load_demos(path, ("agent_pos",), horizon=4, n_obs_steps=2, n_action_steps=3)


def test_files_that_are_none_of_the_formats(tmp_path):
  import h5py  # pylint: disable=g-import-not-at-top

  (tmp_path / "notes.txt").write_text("hello")
  (tmp_path / "empty").mkdir()
  with h5py.File(tmp_path / "other.h5", "w") as f:
    f["x"] = np.zeros(3)
  for p in ("notes.txt", "empty"):
    with pytest.raises(
      DatasetError,
      match=r"is none of the dataset formats jaxpolicy reads: it "
      r"must be a LeRobot dataset folder with "
      r"meta/info.json, a robomimic HDF5 file",
    ):
      formats.read_episodes(str(tmp_path / p), ("state",))
  with pytest.raises(
    DatasetError,
    match=r"is not robomimic's layout: it has no data/demo_N "
    r"groups \(top level: x\)",
  ):
    formats.read_episodes(str(tmp_path / "other.h5"), ("state",))
  with pytest.raises(DatasetError, match=r"no dataset at .*missing.zarr"):
    formats.read_episodes(str(tmp_path / "missing.zarr"), ("state",))


def test_inspect_data_reports_what_a_dataset_holds_and_its_faults(tmp_path):
  path, eps = _v21(tmp_path)
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
  out = subprocess.run(
    [sys.executable, "-m", "launch.inspect_data", path],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env=env,
  )
  assert out.returncode == 0, out.stderr[-2000:]
  text = out.stdout
  assert "format    lerobot (v2.1)" in text and "episodes  4  frames 32" in text
  assert "fps 10" in text and "faults    none" in text
  act = _cat(eps, "action")
  row = next(l for l in text.splitlines() if l.strip().startswith("action "))
  assert (
    "(6,)" in row
    and "float32" in row
    and f"min {act.min():.4g}" in row
    and f"max {act.max():.4g}" in row
    and f"mean {act.astype(np.float64).mean():.4g}" in row
  )
  assert "observation.images.top" in text and "(64, 64, 3)" in text and "camera" in text
  assert (
    "agent_pos  <- observation.state" in text and "img        <- observation.images.top" in text
  )
  # a broken copy: one video a frame short, one undecodable; both listed, exit code 1
  bad = str(tmp_path / "bad")
  shutil.copytree(path, bad)
  ds.write_mp4(_video(bad, 1), eps[1]["camera:top"][:7], 10)
  summary = formats.inspect(bad)
  assert any("frame-count mismatch" in f and "episode 1 has 8" in f for f in summary["faults"])
  out = subprocess.run(
    [sys.executable, "-m", "launch.inspect_data", bad, "--json"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env=env,
  )
  assert out.returncode == 1 and json.loads(out.stdout)["faults"] == summary["faults"]


# --- training on each format ---------------------------------------------------------------


def _write(fmt, d):
  eps = ds.robot_episodes(episodes=8, length=16, seed=3)
  if fmt == "lerobot_v21":
    return ds.write_lerobot_v21(str(d / "arm_v21"), eps), (), eps
  if fmt == "lerobot_v30":
    return ds.write_lerobot_v30(str(d / "arm_v30"), eps), (), eps
  keys = ("robot0_eef_pos", "robot0_eef_quat")
  return ds.write_robomimic(str(d / "arm.hdf5"), eps), keys, eps


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["lerobot_v21", "lerobot_v30", "robomimic"])
def test_teacher_and_sdm_train_on_each_format(tmp_path, fmt):
  path, state_keys, eps = _write(fmt, tmp_path)
  c = configs.load("sdm", "tiny")
  c.data.path, c.obs, c.task = path, "lowdim", ""
  c.data.state_keys, c.data.val_episodes = state_keys, 2
  c.teacher_workdir = str(tmp_path / "teacher")
  results = training.train(c, str(tmp_path / "sdm"))[runs.run_name(c)]
  assert set(results) == {"teacher_ddim10", "sdm_1step"}
  for r in results.values():
    assert r["backend"] == "offline" and np.isfinite(r["action_mse"]) and 0 < r["action_mse"] < 10
  run = runs.restore_run(str(tmp_path / "sdm"))
  state_dim = 7 if fmt == "robomimic" else ds.S
  assert run.obs_shapes == {"agent_pos": (state_dim,)} and run.action_dim == ds.A
  # the normaliser was fitted on the training episodes of the data written
  data = demos.load_demo_data(c)
  acts = _cat([eps[e] for e in data.train_episodes], "action")
  np.testing.assert_allclose(
    run.normalizer["action"].unnormalize(np.array([-1.0, 1.0])[:, None] * np.ones(ds.A)),
    np.stack([acts.min(0), acts.max(0)]),
    rtol=1e-5,
    atol=1e-6,
  )


# --- scripts/zarr_to_lerobot.py ------------------------------------------------------------


def _zarr_with_camera(path, eps):
  """A DP3-layout zarr (plain zarr calls) holding state, full_state, action and data/img."""
  import zarr  # pylint: disable=g-import-not-at-top

  root = zarr.open_group(path, mode="w", zarr_format=2)
  data = root.create_group("data")
  for key, feature in (
    ("state", "state"),
    ("full_state", "env_state"),
    ("action", "action"),
    ("img", "camera:top"),
  ):
    x = _cat(eps, feature)
    data.create_array(key, shape=x.shape, dtype=x.dtype)[...] = x
  ends = _ends(eps).astype(np.int64)
  root.create_group("meta").create_array("episode_ends", shape=ends.shape, dtype=ends.dtype)[
    ...
  ] = ends
  root.attrs["task"] = "drawer-open"
  return path


def _converter():
  sys.path.insert(0, os.path.join(ROOT, "scripts"))
  import zarr_to_lerobot  # pylint: disable=g-import-not-at-top

  return zarr_to_lerobot


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_zarr_to_lerobot_keeps_every_step(tmp_path, version):
  eps = ds.robot_episodes(episodes=5, length=10, image=IMAGE)
  src = _zarr_with_camera(str(tmp_path / "demo.zarr"), eps)
  dst = _converter().convert(src, str(tmp_path / "demo_lerobot"), version=version, fps=80)
  summary = formats.inspect(dst)
  assert summary["faults"] == [] and summary["version"] == version and summary["fps"] == 80
  raw, ends = formats.read_episodes(dst, ("state", "full_state", "action", "img"))
  np.testing.assert_array_equal(ends, _ends(eps))
  for key, feature in (("state", "state"), ("full_state", "env_state"), ("action", "action")):
    np.testing.assert_array_equal(raw[key], _cat(eps, feature))
  _check_frames(raw["img"], eps, "top")
  tasks = os.path.join(dst, "meta", "tasks.jsonl" if version == "v2.1" else "tasks.parquet")
  assert os.path.isfile(tasks)


@pytest.mark.slow
def test_a_lerobot_copy_trains_exactly_as_its_zarr(tmp_path):
  """The same teacher, step for step, from a zarr and from its LeRobot copy (obs=state reads
  data/full_state and observation.environment_state)."""
  eps = ds.robot_episodes(episodes=6, length=16, seed=5)
  for e in eps:
    e["camera:top"] = np.zeros((len(e["action"]), IMAGE, IMAGE, 3), np.uint8)
  src = _zarr_with_camera(str(tmp_path / "demo.zarr"), eps)
  dst = _converter().convert(src, str(tmp_path / "demo_lerobot"), version="v3.0")
  losses = []
  for path in (src, dst):
    c = configs.load("teacher", "tiny")
    c.data.path, c.obs = path, "state"
    workdir = tmp_path / os.path.basename(path)
    training.train(c, str(workdir))
    losses.append([json.loads(l)["loss"] for l in open(workdir / "metrics.jsonl")])
  assert len(losses[0]) == 4 and losses[0] == losses[1]
