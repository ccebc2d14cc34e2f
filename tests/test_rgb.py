"""RGB policies end to end: camera frames rendered on the real MetaWorld (scripted expert)
stored as uint8 zarr, a tiny teacher and SDM student trained on them offline and exported;
the artifact takes raw uint8 frames and acts as the in-process policy does; every method
runs on frames through the teacher's frozen encoder; bad frames and configs, one line each."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import zarr

import configs
from jaxpolicy import export, methods, runs, training, validate
from jaxpolicy import nets as nets_lib
from jaxpolicy import obs as obs_lib
from jaxpolicy.data import storage
from jaxpolicy.data.dataset import load_demos
from jaxpolicy.data.normalizer import MinMax, Normalizer
from jaxpolicy.errors import ConfigError
from jaxpolicy.exported import ExportError, load_exported
from jaxpolicy.policy import build_policy

pytestmark = pytest.mark.xdist_group("test_rgb")  # its module fixture: one worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

H, W = 40, 40  # the tiny preset's frames (cropped to 36x36)


def _rgb_config(method="sdm", preset="tiny"):
  c = configs.load(method, preset)
  c.obs = "rgb"
  validate.resolve(c)  # the suite's camera: MetaWorld's corner2, one camera -> "img"
  return c


@pytest.fixture(scope="module")
def frames_dataset(tmp_path_factory):
  """3 drawer-open expert episodes of 24 steps, corner2 frames from the camera sensor."""
  from jaxpolicy import suites  # pylint: disable=g-import-not-at-top
  from jaxpolicy.data import collect  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs import camera  # pylint: disable=g-import-not-at-top

  d = tmp_path_factory.mktemp("rgb")
  config = _rgb_config()
  validate.resolve(config)
  sensor = camera.make_camera_sensor(config)
  try:
    eps = collect.collect_episodes(
      suites.get("metaworld"),
      "drawer-open",
      3,
      episode_length=24,
      sensor=sensor,
      require_success=False,
    )
  finally:
    sensor.close()
  path = str(d / "drawer_rgb.zarr")
  storage.write_episodes(path, eps)
  return d, path, eps


@pytest.fixture(scope="module")
def rgb_run(frames_dataset):
  d, path, _ = frames_dataset
  c = _rgb_config()
  c.data.path, c.task = path, ""
  c.teacher_workdir = str(d / "teacher")
  results = training.train(c, str(d / "sdm"))
  return d, results


def test_frames_are_stored_uint8_chunked_compressed_and_stay_uint8_on_device(frames_dataset):
  _, path, eps = frames_dataset
  arr = zarr.open_group(path, mode="r")["data"]["img"]
  assert arr.dtype == np.uint8 and arr.shape == (72, H, W, 3)
  assert arr.chunks == (min(72, storage.IMAGE_CHUNK_BYTES // (H * W * 3)), H, W, 3)
  assert arr.metadata.compressor.cname == "zstd"
  np.testing.assert_array_equal(arr[...], np.concatenate([e["img"] for e in eps]))
  data = load_demos(path, obs_lib.keys_of(_rgb_config()), 4, 2, 3, val_episodes=1)
  assert data.train.obs["img"].dtype == jnp.uint8  # no float copy of the dataset
  assert "img" not in data.normalizer.fields  # frames are never min/max-fitted
  batch = data.train.sample(jax.random.PRNGKey(0), 5)
  assert batch["obs"]["img"].dtype == jnp.uint8 and batch["obs"]["img"].shape == (5, 2, H, W, 3)


@pytest.mark.slow
def test_rgb_teacher_and_sdm_train_on_real_frames_and_export_equal(rgb_run, tmp_path):
  d, res = rgb_run
  rows = res["drawer_rgb"]
  assert set(rows) == {"teacher_ddim10", "sdm_1step"}
  for r in rows.values():
    assert np.isfinite(r["action_mse"]) and r["latency_ms"] > 0
  run = runs.restore_run(str(d / "sdm"))
  teacher = runs.restore_run(str(d / "teacher"))
  assert run.obs_shapes == {"img": (H, W, 3), "agent_pos": (9,)}
  # the student's encoder is the teacher's, frozen
  jax.tree_util.tree_map(
    np.testing.assert_array_equal, run.state.encoder, teacher.state.model.ema_params["encoder"]
  )
  rng = np.random.default_rng(0)
  obs = {
    "img": rng.integers(0, 256, (3, 2, H, W, 3), dtype=np.uint8),
    "agent_pos": rng.normal(size=(3, 2, 9)).astype(np.float32),
  }
  for r, name in ((run, "sdm_1step"), (teacher, "teacher_ddim10")):
    out = str(tmp_path / name)
    m = export.export_run(r.workdir, name, out)
    assert m["obs_dtypes"] == {"img": "uint8", "agent_pos": "float32"}
    assert m["images"]["crop"] == [36, 36] and m["obs_shapes"]["img"] == [H, W, 3]
    policy = r.policies()[name]
    policy.reset(3)
    want = policy(obs, jax.random.PRNGKey(5))
    art = load_exported(out)
    got, _ = art.act(obs, art.initial_state(3), jax.random.PRNGKey(5))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.abs(want).max() > 0
    with pytest.raises(ExportError, match=r"'img' must be uint8 camera frames.*got float32"):
      art.act(dict(obs, img=obs["img"].astype(np.float32) / 255), art.initial_state(3))
    with pytest.raises(ExportError, match=r"'img' has shape \(3, 2, 3, 40, 40\): channel-first"):
      art.act(dict(obs, img=np.moveaxis(obs["img"], -1, -3)), art.initial_state(3))


def _random_policy(method, shapes):
  """A policy of `method` (tiny, obs=rgb) from random weights, through the real build path."""
  config = _rgb_config(method)
  if method == "step":
    config.step.eval_baselines = False
  nets = nets_lib.build_nets(config, 4)
  tstate = methods.common.teacher_from_params(nets.init(jax.random.PRNGKey(0), shapes))
  state = methods.get(method).init(config, nets, shapes, jax.random.PRNGKey(1), tstate)
  fields = {
    "action": MinMax(np.full(4, 0.5, np.float32), np.zeros(4, np.float32)),
    "agent_pos": MinMax(np.ones(9, np.float32), np.zeros(9, np.float32)),
  }
  specs = methods.get(method).make_policies(config, nets, state, Normalizer(fields))
  name = methods.info(method).main_policy_of(specs)
  spec = specs[name]
  return build_policy(name, config, nets, Normalizer(fields), spec, shapes), tstate, spec


@pytest.mark.parametrize(
  "method", [pytest.param(m, marks=pytest.mark.slow) for m in ("teacher", "step")] + ["cd"]
)
def test_every_method_acts_on_frames_through_the_teachers_encoder(method):
  shapes = {"img": (H, W, 3), "agent_pos": (9,)}
  policy, tstate, spec = _random_policy(method, shapes)
  if method != "teacher":  # a student acts through its teacher's encoder, as it is
    jax.tree_util.tree_map(
      np.testing.assert_array_equal, spec.encoder_params, tstate.model.params["encoder"]
    )
  rng = np.random.default_rng(1)
  obs = {
    "img": rng.integers(0, 256, (2, 2, H, W, 3), dtype=np.uint8),
    "agent_pos": rng.normal(size=(2, 2, 9)).astype(np.float32),
  }
  policy.reset(2)
  a = policy(obs, jax.random.PRNGKey(0))
  assert a.shape == (2, 3, 4) and np.isfinite(a).all()
  policy.reset(2)
  np.testing.assert_array_equal(policy(obs, jax.random.PRNGKey(0)), a)  # centre crop: no noise
  # the frames matter: another picture, other actions (same noise)
  policy.reset(2)
  other = policy(dict(obs, img=255 - obs["img"]), jax.random.PRNGKey(0))
  assert np.abs(other - a).max() > 1e-4
  # bad frames: one line each
  with pytest.raises(ValueError, match=r"'img' must be uint8 camera frames.*got float32"):
    policy(dict(obs, img=obs["img"].astype(np.float32)), jax.random.PRNGKey(0))
  with pytest.raises(
    ValueError,
    match=r"channel-first \(\.\.\., 3, H, W\) frames; give "
    r"channel-last \(\.\.\., 40, 40, 3\)",
  ):
    policy(dict(obs, img=np.moveaxis(obs["img"], -1, -3)), jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match=r"'img' must be \(\.\.\., 40, 40, 3\) uint8 frames"):
    policy(dict(obs, img=obs["img"][:, :, :30]), jax.random.PRNGKey(0))


def test_bad_frames_in_a_dataset_are_one_line_each(frames_dataset, tmp_path):
  _, _, eps = frames_dataset

  def write(name, edit):
    path = str(tmp_path / name)
    storage.write_episodes(path, [dict(e, img=edit(e["img"])) for e in eps])
    return path

  keys = obs_lib.keys_of(_rgb_config())
  with pytest.raises(
    storage.DatasetError,
    match=r"data/img has dtype float32; camera frames "
    r"must be uint8",
  ):
    load_demos(write("float.zarr", lambda x: x.astype(np.float32) / 255), keys, 4, 2, 3)
  with pytest.raises(
    storage.DatasetError,
    match=r"data/img has shape \(72, 3, 40, 40\), "
    r"channel-first frames",
  ):
    load_demos(write("chw.zarr", lambda x: np.moveaxis(x, -1, 1)), keys, 4, 2, 3)
  c = _rgb_config()
  c.rgb.cameras = ("corner2", "topview")  # two cameras: data/img_corner2, img_topview
  with pytest.raises(storage.DatasetError, match=r"lacks data/img_corner2, data/img_topview"):
    load_demos(write("one_cam.zarr", lambda x: x), obs_lib.keys_of(c), 4, 2, 3)


def test_rgb_configs_are_checked_in_one_line():
  def check(edit, match):
    c = _rgb_config()
    edit(c)
    with pytest.raises(ConfigError, match=match):
      validate.check_config(c)

  validate.check_config(_rgb_config())
  check(
    lambda c: setattr(c.eval, "backend", "mjx"),
    r"obs='rgb' policies cannot be evaluated in MJX: MJX has no rasteriser for camera "
    r"frames; set --config.eval.backend=cpu",
  )
  check(
    lambda c: setattr(c.rgb, "crop", (44, 36)),
    r"config.rgb.crop must be \(height, width\) "
    r"no larger than config.rgb.image_size",
  )
  check(
    lambda c: setattr(c.rgb, "crop", (32, 36)),
    r"config.rgb.crop \(32, 36\) leaves the "
    r"ResNet a 1x2 feature map, where spatial "
    r"softmax's keypoints are constant",
  )
  check(lambda c: setattr(c.rgb, "encoder", "resnet50"), r"config.rgb.encoder must be one of")
  check(lambda c: setattr(c.rgb, "pooling", "max"), r"config.rgb.pooling must be one of")
  check(
    lambda c: setattr(c.rgb, "cameras", ()),
    r"config.rgb.cameras must be a tuple of "
    r"distinct camera names",
  )
  with pytest.raises(ValueError, match="MJX has no rasteriser"):
    obs_lib.check_mjx("rgb")
  obs_lib.check_mjx("pointcloud")
  assert obs_lib.keys_of(_rgb_config()) == ("img", "agent_pos")
  c = _rgb_config()
  c.rgb.cameras = ("corner2", "topview")
  assert obs_lib.keys_of(c) == ("img_corner2", "img_topview", "agent_pos")
  nets = nets_lib.build_nets(_rgb_config(), 4)
  with pytest.raises(
    ValueError,
    match=r"camera frames 'img' of shape \(24, 24, 3\) are smaller "
    r"than the crop config.rgb.crop = \(36, 36\)",
  ):
    nets.init(jax.random.PRNGKey(0), {"img": (24, 24, 3), "agent_pos": (9,)})


def square_episodes(episodes: int = 24, length: int = 12, seed: int = 0, shuffle=False):
  """Episodes whose action is where an 8x8 square sits in a 40x40 noisy frame (constant per
  episode); the robot state says nothing. `shuffle`: frames given to other episodes' actions
  (the broken variant: nothing to learn)."""
  rng = np.random.default_rng(seed)
  eps = []
  for _ in range(episodes):
    r, c = rng.integers(0, H - 8, 2)
    frame = rng.integers(0, 60, (H, W, 3)).astype(np.uint8)
    frame[r : r + 8, c : c + 8] = (250, 200, 40)
    act = np.array([r / (H - 8) * 2 - 1, c / (W - 8) * 2 - 1], np.float32)
    eps.append(
      {
        "img": np.repeat(frame[None], length, 0),
        "state": np.zeros((length, 2), np.float32),
        "action": np.repeat(act[None], length, 0),
      }
    )
  if shuffle:
    perm = rng.permutation(episodes)
    eps = [dict(e, img=eps[p]["img"]) for e, p in zip(eps, perm)]
  return eps


@pytest.mark.slow
def test_rgb_teacher_learns_where_the_square_is(tmp_path):
  """Held-out square positions (6 of 24 episodes): the teacher's DDIM actions land within a
  few pixels (action MSE 0.028 in normalised units at 300 steps; 0.33 for the mean, about
  0.67 for a policy that ignores the frame). Broken variant, run by hand: frames shuffled
  across episodes -> the frames carry no answer and the error stays at chance."""
  path = str(tmp_path / "squares.zarr")
  storage.write_episodes(path, square_episodes())
  c = _rgb_config("teacher")
  c.data.path, c.task, c.data.val_episodes = path, "", 6
  t = c.train
  t.steps, t.batch_size, t.warmup_steps, t.lr, t.log_every, t.ckpt_every = 300, 32, 20, 1e-3, 100, 0
  res = training.train(c, str(tmp_path / "run"))
  assert res["squares"]["teacher_ddim10"]["action_mse"] < 0.1
