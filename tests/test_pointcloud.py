"""Point-cloud observations (DP3): farthest-point sampling, the CPU and MJX sensors, zarr
datasets with point clouds (ours and DP3's layout), the DP3 encoder, and a tiny point-cloud
teacher trained end to end on the real MetaWorld."""

import json
import os
import types

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
import zarr

from configs import common
from configs import teacher as teacher_configs
from jaxpolicy import nets as nets_lib
from jaxpolicy.data import storage
from jaxpolicy.data.dataset import load_demos
from jaxpolicy.envs import fps
from jaxpolicy.envs import pointcloud
from jaxpolicy.envs.mjx import pointcloud as mjx_pointcloud
from jaxpolicy.suites.metaworld import env as mw
from jaxpolicy.validate import resolve
from jaxpolicy.nets.encoders import DP3Encoder, encode_history

pytestmark = pytest.mark.xdist_group("test_pointcloud")  # its module fixture: one worker


# ------------------------------------------------------------------------------------------
# farthest-point sampling


def numpy_fps(points, k, mask=None, start=0):
  """Plain FPS: start at `start` (or the first valid point), take the farthest each time."""
  points = np.asarray(points, np.float32)
  mask = np.ones(len(points), bool) if mask is None else np.asarray(mask)
  cur = start if mask[start] else int(np.argmax(mask))
  dist = np.where(mask, np.inf, -np.inf).astype(np.float32)
  out = []
  for _ in range(k):
    out.append(cur)
    dist = np.minimum(dist, ((points - points[cur]) ** 2).sum(1))
    cur = int(np.argmax(dist))
  return np.asarray(out)


@pytest.mark.parametrize("n,k,frac_valid", [(300, 64, 1.0), (500, 100, 0.4), (64, 64, 1.0)])
def test_fps_matches_numpy(n, k, frac_valid):
  rng = np.random.default_rng(n)
  pts = rng.normal(size=(n, 3)).astype(np.float32)
  mask = rng.random(n) < frac_valid
  idx, valid = fps.farthest_point_sampling(pts, k, mask)
  np.testing.assert_array_equal(np.asarray(idx), numpy_fps(pts, k, mask))
  assert np.asarray(valid).all() and mask[np.asarray(idx)].all()
  assert len(set(np.asarray(idx).tolist())) == k
  # FPS covering property: every valid point lies within the picks' minimum separation
  sel = pts[np.asarray(idx)]
  sep = np.linalg.norm(sel[:, None] - sel[None], axis=-1)
  sep = sep[~np.eye(k, dtype=bool)].min()
  cover = np.linalg.norm(pts[mask][:, None] - sel[None], axis=-1).min(1).max()
  assert cover <= sep + 1e-6


def test_fps_start_and_random_start():
  rng = np.random.default_rng(1)
  pts = rng.normal(size=(200, 3)).astype(np.float32)
  mask = np.ones(200, bool)
  mask[:10] = False
  idx, _ = fps.farthest_point_sampling(pts, 16, mask, start=50)
  np.testing.assert_array_equal(np.asarray(idx), numpy_fps(pts, 16, mask, start=50))
  idx, _ = fps.farthest_point_sampling(pts, 16, mask, start=3)  # masked start -> first valid
  assert int(idx[0]) == 10
  firsts = {
    int(fps.farthest_point_sampling(pts, 4, mask, rng=jax.random.PRNGKey(s))[0][0])
    for s in range(8)
  }
  assert len(firsts) > 1 and all(mask[f] for f in firsts)


def test_fps_fewer_valid_points_than_samples():
  rng = np.random.default_rng(2)
  pts = rng.normal(size=(100, 3)).astype(np.float32)
  mask = np.zeros(100, bool)
  mask[rng.choice(100, 7, replace=False)] = True
  idx, valid = fps.farthest_point_sampling(pts, 20, mask)
  idx, valid = np.asarray(idx), np.asarray(valid)
  np.testing.assert_array_equal(valid, np.arange(20) < 7)
  assert set(idx[:7]) == set(np.nonzero(mask)[0])  # every valid point once ...
  assert mask[idx].all()  # ... then repeats, never fakes
  np.testing.assert_array_equal(idx[:7], numpy_fps(pts, 7, mask))
  idx, valid = fps.farthest_point_sampling(pts, 5, np.zeros(100, bool))
  assert not np.asarray(valid).any() and (np.asarray(idx) == 0).all()


def test_fps_batched_equals_per_example():
  rng = np.random.default_rng(3)
  pts = rng.normal(size=(2, 3, 128, 3)).astype(np.float32)
  mask = rng.random((2, 3, 128)) < 0.7
  idx, valid = fps.batched_farthest_point_sampling(pts, 32, mask)
  assert idx.shape == (2, 3, 32) and valid.shape == (2, 3, 32)
  for a in range(2):
    for b in range(3):
      np.testing.assert_array_equal(np.asarray(idx[a, b]), numpy_fps(pts[a, b], 32, mask[a, b]))
  vm = jax.jit(jax.vmap(lambda p, m: fps.farthest_point_sampling(p, 32, m)))
  np.testing.assert_array_equal(np.asarray(vm(pts[0], mask[0])[0]), np.asarray(idx[0]))
  sampled, ok = fps.sample_points(np.concatenate([pts[0, 0], pts[0, 0]], -1), 32, mask[0, 0])
  np.testing.assert_array_equal(np.asarray(sampled)[:, :3], pts[0, 0][np.asarray(idx[0, 0])])
  assert sampled.shape == (32, 6) and np.asarray(ok).all()


# ------------------------------------------------------------------------------------------
# the CPU sensor on the real MetaWorld


def _config(preset="quick", **pc):
  """The preset's sensor with DP3's table in view unless `table` is given: the sensor tests
  check the chain DP3 uses (table points at z = 0 included)."""
  c = common.base_config(preset)
  pc.setdefault("table", "keep")
  for k, v in pc.items():
    setattr(c.pointcloud, k, v)
  resolve(c)  # the rest from the task's suite (MetaWorld's camera and crop)
  return c


@pytest.fixture(scope="module")
def sensor512():
  return pointcloud.make_sensor(_config(num_points=512))


def _run_expert(task, seed, steps):
  env = mw.make_env(task, seed=seed)
  expert = mw.expert_policy(task)
  state = mw.reset(env)
  for _ in range(steps):
    state, _ = mw.step(env, mw.expert_action(expert, state))
  return env, state


def _nearest(points, q):
  return float(np.linalg.norm(points - np.asarray(q), axis=-1).min())


@pytest.mark.slow
@pytest.mark.parametrize("task", ["drawer-open", "pick-place"])
def test_sensor_sees_table_gripper_object_goal(task, sensor512):
  env, state = _run_expert(task, seed=1, steps=30)
  cam_pos = env.model.cam_pos.copy()
  qpos = env.data.qpos.copy()
  obs = dict(sensor512(env), agent_pos=mw.agent_pos(env))
  pc, ap = obs["point_cloud"], obs["agent_pos"]
  spec = sensor512.spec
  assert pc.shape == (512, 3) and pc.dtype == np.float32
  assert np.all(pc >= np.asarray(spec.crop_low) - 1e-6)
  assert np.all(pc <= np.asarray(spec.crop_high) + 1e-6)
  assert len(np.unique(pc, axis=0)) == 512  # enough pixels: distinct points
  np.testing.assert_array_equal(sensor512(env)["point_cloud"], pc)  # deterministic
  # the sensor reads the env and never edits it (the camera move is the sensor's own)
  np.testing.assert_array_equal(env.model.cam_pos, cam_pos)
  np.testing.assert_array_equal(env.data.qpos, qpos)
  # points near the gripper (hand, both finger tips), the object and the goal marker
  assert _nearest(pc, ap[0:3]) < 0.06
  assert _nearest(pc, ap[3:6]) < 0.04 and _nearest(pc, ap[6:9]) < 0.04
  assert _nearest(pc, state[4:7]) < 0.035
  goal = env.data.site_xpos[mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_SITE, "goal")]
  assert _nearest(pc, goal) < 0.03
  # the table top is the plane z = 0 and covers much of the cloud
  assert np.mean(np.abs(pc[:, 2]) < 1e-3) > 0.3


@pytest.mark.slow
def test_labelled_cloud_says_what_each_point_hit(sensor512):
  """The segmentation labels line up with the points: the cloud is the observed one, points
  on the hand's bodies lie near the hand, on the goal site at the goal, on the table at z = 0."""
  env, state = _run_expert("drawer-open", seed=1, steps=30)
  m = env.unwrapped.model
  pts, valid, objtype, objid = sensor512.labelled_cloud(m, env.unwrapped.data)
  np.testing.assert_array_equal(pts, sensor512(env)["point_cloud"])
  assert valid.all() and len(objtype) == len(objid) == 512
  geom = objtype == int(mujoco.mjtObj.mjOBJ_GEOM)
  site = objtype == int(mujoco.mjtObj.mjOBJ_SITE)
  assert (geom | site).all()
  body = np.full(512, -1)
  body[geom] = m.geom_bodyid[objid[geom]]
  hand_bodies = [m.body(n).id for n in ("hand", "rightclaw", "rightpad", "leftclaw", "leftpad")]
  on_hand = np.isin(body, hand_bodies)
  assert on_hand.sum() >= 3
  assert np.linalg.norm(pts[on_hand] - state[0:3], axis=1).max() < 0.12
  on_goal = site & (objid == m.site("goal").id)
  goal = env.unwrapped.data.site_xpos[m.site("goal").id]
  assert on_goal.any() and np.linalg.norm(pts[on_goal] - goal, axis=1).max() < 0.025
  on_table = body == m.body("tablelink").id
  assert on_table.sum() > 100 and np.abs(pts[on_table, 2]).max() < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("task", ["drawer-open", "sweep-into"])  # sweep-into: top at z = 0.05
def test_hidden_table_leaves_what_stands_on_it(task):
  """table='hide': no point on the table body, more on the gripper; the MJX sensor hides the
  same geoms; a model without MetaWorld's table refuses it."""
  env, _ = _run_expert(task, seed=1, steps=30)
  m, d = env.unwrapped.model, env.unwrapped.data
  table = m.body("tablelink").id
  hand = [m.body(n).id for n in ("hand", "rightclaw", "rightpad", "leftclaw", "leftpad")]
  counts = {}
  for option in ("keep", "hide"):
    sensor = pointcloud.make_sensor(_config(num_points=256, table=option))
    _, _, objtype, objid = sensor.labelled_cloud(m, d)
    geom = objtype == int(mujoco.mjtObj.mjOBJ_GEOM)
    body = m.body_rootid[m.geom_bodyid[objid[geom]]]
    counts[option] = (np.sum(body == table), np.sum(np.isin(m.geom_bodyid[objid[geom]], hand)))
    sensor.close()
  assert counts["keep"][0] > 80 and counts["hide"][0] == 0
  assert counts["hide"][1] > counts["keep"][1]
  hidden = pointcloud.hidden_table(m, pointcloud.sensor_spec(_config(table="hide")))
  assert (
    hidden.sum() >= 3
    and not (
      pointcloud.sensor_geoms(m, pointcloud.sensor_spec(_config(table="hide"))) & hidden
    ).any()
  )
  plain = mujoco.MjModel.from_xml_string(
    "<mujoco><worldbody><geom size='1 1 .1' type='box'/></worldbody></mujoco>"
  )
  with pytest.raises(pointcloud.SensorConfigError, match="tablelink"):
    pointcloud.hidden_table(plain, pointcloud.sensor_spec(_config(table="hide")))


@pytest.mark.slow
def test_sensor_geometry_is_exact(sensor512):
  """Back-projected pixels land on the surfaces: the table at z = 0 to float precision,
  the goal sphere at its radius from its centre; the camera sits where configured."""
  env, _ = _run_expert("reach", seed=0, steps=0)
  pts, mask = sensor512.candidates(env.model, env.data)
  pts = pts[mask]
  table = np.abs(pts[:, 2]) < 0.01
  assert table.mean() > 0.5 and np.median(np.abs(pts[table, 2])) < 1e-4
  goal = env.data.site_xpos[mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_SITE, "goal")]
  d = np.linalg.norm(pts - goal, axis=1)
  on_goal = d < 0.03
  assert on_goal.sum() >= 2
  np.testing.assert_allclose(d[on_goal], 0.02, atol=2e-3)  # goal marker radius 2 cm
  pos, xmat = sensor512.camera_pose(env.model, env.data)
  np.testing.assert_allclose(pos, sensor512.spec.camera_pos)
  cid = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_CAMERA, "corner2")
  np.testing.assert_allclose(xmat.ravel(), env.data.cam_xmat[cid], atol=1e-6)  # corner2's view


def test_sensor_config_errors():
  for field, value, match in [
    ("num_points", 0, "num_points"),
    ("geoms", "mesh", "geoms"),
    ("table", "cut", "table"),
    ("crop_low", (1.0, 0.0, 0.0), "crop_low"),
    ("image_size", -4, "image_size"),
  ]:
    with pytest.raises(pointcloud.SensorConfigError, match=match):
      pointcloud.make_sensor(_config(**{field: value}))
  assert mjx_pointcloud.mjx_form(pointcloud.make_sensor(_config(geoms="visual"))) is None
  env = mw.make_env("reach", seed=0)
  mw.reset(env)
  with pytest.raises(pointcloud.SensorConfigError, match="no camera 'nope'"):
    pointcloud.make_sensor(_config(camera="nope"))(env)


# ------------------------------------------------------------------------------------------
# the MJX sensor against the CPU renderer on the same state


@pytest.mark.slow
def test_mjx_sensor_matches_cpu_sensor():
  """MJX ray casting on the MJX-converted model == the CPU renderer on MetaWorld's model."""
  from mujoco import mjx  # pylint: disable=g-import-not-at-top
  from jaxpolicy.suites.metaworld.mjx.convert import convert_model  # pylint: disable=g-import-not-at-top

  config = _config(image_size=32, num_points=128)
  env, _ = _run_expert("drawer-open", seed=0, steps=30)
  m0 = env.model
  d0 = mujoco.MjData(m0)
  d0.qpos[:], d0.mocap_pos[:], d0.mocap_quat[:] = (
    env.data.qpos,
    env.data.mocap_pos,
    env.data.mocap_quat,
  )
  mujoco.mj_forward(m0, d0)
  cm = convert_model("drawer-open")
  cm.body_pos[:], cm.body_quat[:], cm.site_pos[:] = m0.body_pos, m0.body_quat, m0.site_pos
  cd = mujoco.MjData(cm)
  cd.qpos[:], cd.mocap_pos[:], cd.mocap_quat[:] = d0.qpos, d0.mocap_pos, d0.mocap_quat
  mujoco.mj_forward(cm, cd)

  cpu = pointcloud.make_sensor(config)
  sensor = mjx_pointcloud.make_mjx_sensor(config, cm)
  mx, dx = mjx.put_model(cm), mjx.put_data(cm, cd)

  # the CPU sensor's MJX form, as jaxpolicy.envs.mjx.evaluator calls it: form(env, state)
  env_like = types.SimpleNamespace(mj_model=cm, model=mx)

  @jax.jit
  def observe(mx, dx):
    hook = mjx_pointcloud.mjx_form(cpu)(env_like, types.SimpleNamespace(data=dx))
    return sensor.depth(mx, dx), sensor.cloud(mx, dx), hook

  depth_mjx, (cloud_mjx, valid_mjx), hook = jax.device_get(observe(mx, dx))
  np.testing.assert_array_equal(hook, cloud_mjx)
  depth_cpu = cpu.depth(m0, d0)
  hit_cpu = depth_cpu < pointcloud.depth_range(m0)[1] * 0.999
  hit_mjx = np.isfinite(depth_mjx)
  assert np.mean(hit_cpu == hit_mjx) > 0.99
  both = hit_cpu & hit_mjx
  err = np.abs(depth_cpu - depth_mjx)[both]
  assert np.mean(err < 1e-3) > 0.98  # same surfaces, pixel by pixel
  cloud_cpu, valid_cpu = cpu.cloud(m0, d0)
  assert cloud_mjx.shape == cloud_cpu.shape == (128, 3) and valid_mjx.all() and valid_cpu.all()
  dist = np.linalg.norm(cloud_cpu[:, None] - cloud_mjx[None], axis=-1)
  chamfer = 0.5 * (dist.min(0).mean() + dist.min(1).mean())
  assert chamfer < 0.005, chamfer
  # and it batches: vmap over two copies of the state gives the same cloud twice
  both_dx = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), dx)
  batched = jax.jit(jax.vmap(sensor, in_axes=(None, 0)))(mx, both_dx)
  np.testing.assert_allclose(np.asarray(batched[1]), cloud_mjx, atol=1e-5)


# ------------------------------------------------------------------------------------------
# datasets


def _episodes(rng, lengths, p=32, channels=3):
  return [
    {
      "action": rng.uniform(-1, 1, (n, 4)).astype(np.float32),
      "state": rng.normal(size=(n, 9)).astype(np.float32),
      "full_state": rng.normal(size=(n, 39)).astype(np.float32),
      "point_cloud": rng.normal(size=(n, p, channels)).astype(np.float32),
    }
    for n in lengths
  ]


def test_zarr_roundtrip_with_point_clouds(tmp_path):
  rng = np.random.default_rng(0)
  eps = _episodes(rng, [12, 9, 15])
  path = str(tmp_path / "pc.zarr")
  storage.write_episodes(path, eps, attrs={"obs_type": "pointcloud"})
  out, ends = storage.read_episodes(path, ("point_cloud", "state", "action"))
  np.testing.assert_array_equal(ends, [12, 21, 36])
  for k in ("point_cloud", "state", "action"):
    np.testing.assert_array_equal(out[k], np.concatenate([e[k] for e in eps]))
  assert zarr.open_group(path, mode="r").metadata.zarr_format == 2  # DP3's tools read it
  data = load_demos(
    path, ("point_cloud", "agent_pos"), horizon=4, n_obs_steps=2, n_action_steps=3, val_episodes=1
  )
  assert data.obs_shapes == {"point_cloud": (32, 3), "agent_pos": (9,)}
  pc = np.asarray(data.train.obs["point_cloud"])
  starts = np.r_[0, ends[:-1]]
  rows = np.concatenate([np.arange(starts[i], ends[i]) for i in data.train_episodes])
  flat = pc[rows].reshape(-1, 3)
  np.testing.assert_allclose(flat.min(0), -1, atol=1e-5)  # per-channel min/max -> [-1, 1]
  np.testing.assert_allclose(flat.max(0), 1, atol=1e-5)
  batch = data.train.sample(jax.random.PRNGKey(0), 5)
  assert batch["obs"]["point_cloud"].shape == (5, 2, 32, 3)


def test_dp3_layout_zarr_written_by_plain_zarr_loads(tmp_path):
  """A dataset in DP3's layout (zarr 2, Blosc-compressed, xyz+rgb clouds, extra keys)."""
  import numcodecs  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(1)
  n, p = 30, 64
  path = str(tmp_path / "metaworld_dp3.zarr")
  root = zarr.open_group(path, mode="w", zarr_format=2)
  data, meta = root.create_group("data"), root.create_group("meta")
  blosc = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=1)
  cloud = np.concatenate([rng.normal(size=(n, p, 3)), rng.uniform(0, 255, (n, p, 3))], -1)
  arrays = {
    "point_cloud": cloud.astype(np.float32),
    "state": rng.normal(size=(n, 9)).astype(np.float32),
    "action": rng.uniform(-1, 1, (n, 4)).astype(np.float32),
    "depth": rng.uniform(0, 2, (n, 16, 16)).astype(np.float32),
    "img": rng.integers(0, 255, (n, 16, 16, 3)).astype(np.uint8),
  }
  for k, v in arrays.items():
    arr = data.create_array(
      k, shape=v.shape, dtype=v.dtype, chunks=(10,) + v.shape[1:], compressors=blosc
    )
    arr[...] = v
  ends = np.array([10, 18, 30], np.int64)
  meta.create_array("episode_ends", shape=ends.shape, dtype=ends.dtype)[...] = ends

  demo = load_demos(
    path, ("point_cloud", "agent_pos"), horizon=4, n_obs_steps=2, n_action_steps=3, val_episodes=1
  )
  assert demo.num_episodes == 3 and demo.obs_shapes["point_cloud"] == (p, 6)
  np.testing.assert_array_equal(demo.raw["point_cloud"], arrays["point_cloud"])
  np.testing.assert_array_equal(demo.raw["state"], arrays["state"])
  pc = np.asarray(demo.train.obs["point_cloud"])
  starts = np.r_[0, ends[:-1]]
  rows = np.concatenate([np.arange(starts[i], ends[i]) for i in demo.train_episodes])
  xyz = pc[rows, :, :3].reshape(-1, 3)  # fitted on training episodes
  np.testing.assert_allclose(xyz.min(0), -1, atol=1e-5)
  np.testing.assert_allclose(xyz.max(0), 1, atol=1e-5)
  np.testing.assert_array_equal(pc[..., 3:], arrays["point_cloud"][..., 3:])  # rgb untouched
  batch = demo.train.sample(jax.random.PRNGKey(0), 4)
  enc = DP3Encoder(out_dim=64)
  frame = jax.tree_util.tree_map(lambda x: x[:, 0], batch["obs"])
  params = jax.jit(enc.init)(jax.random.PRNGKey(0), frame)
  feat = jax.jit(lambda p, o: encode_history(enc, p, o))(params, batch["obs"])
  assert feat.shape == (4, 2 * 128) and np.all(np.isfinite(np.asarray(feat)))


# ------------------------------------------------------------------------------------------
# the DP3 encoder


@pytest.mark.slow
def test_dp3_encoder_shapes_and_invariances():
  rng = np.random.default_rng(0)
  enc = DP3Encoder(out_dim=64)
  obs = {
    "point_cloud": jnp.asarray(rng.normal(size=(5, 100, 3)), jnp.float32),
    "agent_pos": jnp.asarray(rng.normal(size=(5, 9)), jnp.float32),
  }
  params = jax.jit(enc.init)(jax.random.PRNGKey(0), obs)
  shapes = jax.tree_util.tree_map(lambda x: x.shape, params["params"])
  assert [shapes[f"point_dense{i}"]["kernel"] for i in range(3)] == [(3, 64), (64, 128), (128, 256)]
  assert [tuple(shapes[f"point_norm{i}"]["scale"]) for i in range(3)] == [(64,), (128,), (256,)]
  assert shapes["point_out"]["kernel"] == (256, 64) and shapes["point_out_norm"]["scale"] == (64,)
  assert shapes["state_dense0"]["kernel"] == (9, 64)
  assert shapes["state_dense1"]["kernel"] == (64, 64)
  apply = jax.jit(enc.apply)
  out = apply(params, obs)
  assert out.shape == (5, 128)
  perm = {"point_cloud": obs["point_cloud"][:, rng.permutation(100)], "agent_pos": obs["agent_pos"]}
  np.testing.assert_allclose(apply(params, perm), out, atol=1e-5)  # max-pool: a set
  rgb = {
    "point_cloud": jnp.concatenate([obs["point_cloud"], jnp.ones((5, 100, 3))], -1),
    "agent_pos": obs["agent_pos"],
  }
  np.testing.assert_allclose(jax.jit(enc.apply)(params, rgb), out, atol=1e-6)  # xyz only
  # n_obs_steps frames are encoded separately and flattened into the global condition
  hist = {
    "point_cloud": jnp.stack([obs["point_cloud"], perm["point_cloud"]], 1),
    "agent_pos": jnp.stack([obs["agent_pos"]] * 2, 1),
  }
  cond = jax.jit(lambda p, o: encode_history(enc, p, o))(params, hist)
  np.testing.assert_allclose(cond, jnp.concatenate([out, out], -1), atol=1e-5)
  config = teacher_configs.get_config("tiny")
  config.obs = "pointcloud"
  assert isinstance(nets_lib.make_encoder(config), DP3Encoder)


# ------------------------------------------------------------------------------------------
# end to end: collect point-cloud demos, train the tiny teacher, evaluate with the sensor


@pytest.mark.slow
def test_tiny_pointcloud_teacher_end_to_end(tmp_path, monkeypatch):
  from jaxpolicy import demos, runs, training  # pylint: disable=g-import-not-at-top

  config = teacher_configs.get_config("tiny")
  config.obs = "pointcloud"
  config.data.dir = str(tmp_path / "data")
  config.eval.every = 10  # a periodic evaluation and the final one
  made, closed = [], []
  real_make = pointcloud.make_sensor

  def counting_make(cfg):
    sensor = real_make(cfg)
    made.append(sensor)
    real_close = sensor.close
    sensor.close = lambda: closed.append(sensor) or real_close()
    return sensor

  monkeypatch.setattr(pointcloud, "make_sensor", counting_make)
  results = training.train(config, str(tmp_path / "teacher"))
  # one sensor for collecting the demonstrations, one for every evaluation of the run;
  # both closed (their renderers released)
  assert len(made) == 2 and closed == made
  evals = [json.loads(l) for l in open(tmp_path / "teacher" / "evals.jsonl")]
  assert [e["step"] for e in evals] == [10, config.train.steps]
  r = results["drawer-open"]["teacher_ddim10"]
  assert r["episodes"] == config.eval.episodes == len(r["successes"])
  assert r["success_rate"] == np.mean(r["successes"])
  ev = json.load(open(tmp_path / "teacher" / "eval.json"))
  assert ev["obs"] == "pointcloud"
  path = demos.ensure_demo_data(config)  # named after the sensor settings; already there
  assert os.path.basename(path).startswith("metaworld_drawer-open_pointcloud_2ep_")
  assert storage.read_attrs(path)["sensor"]["num_points"] == config.pointcloud.num_points
  raw, ends = storage.read_episodes(str(path), ("point_cloud", "state", "action"))
  assert raw["point_cloud"].shape == (ends[-1], config.pointcloud.num_points, 3)
  lines = [json.loads(l) for l in open(tmp_path / "teacher" / "metrics.jsonl")]
  assert lines[-1]["step"] == config.train.steps and np.isfinite(lines[-1]["loss"])
  assert lines[-1]["loss"] < lines[0]["loss"]
  run = runs.restore_run(str(tmp_path / "teacher"))
  assert run.obs_shapes == {"point_cloud": (config.pointcloud.num_points, 3), "agent_pos": (9,)}
  assert os.path.isdir(path)

  # STEP on the point-cloud teacher: its predictor reads the DP3 encoder's tokens (point
  # feature + state feature per frame), trains and evaluates with the sensor
  from configs import step as step_configs  # pylint: disable=g-import-not-at-top

  sc = step_configs.get_config("tiny")
  sc.obs, sc.data.dir = "pointcloud", config.data.dir
  sc.teacher_workdir = str(tmp_path / "teacher")
  sc.step.eval_baselines = False
  res = training.train(sc, str(tmp_path / "step"))["drawer-open"]
  r = res["step_k2"]
  assert r["nfe"] == 2 and r["nfe_first_call"] == 10
  assert np.isclose(r["stall_fraction"], np.mean(r["stall_fraction_per_episode"]))
  assert 2 < r["nfe_amortised"] < 10 and np.isfinite(r["action_mse"])
  srun = runs.restore_run(str(tmp_path / "step"))
  tokens = srun.state.predictor.params["params"]["embed_obs"]["kernel"].shape[0]
  assert tokens == sc.model.encoder_out + 64  # point feature + the state MLP's 64


@pytest.mark.slow
def test_chunked_point_cloud_encoding_is_the_same_function():
  """Encoding frames in cache-sized chunks (the CPU default) gives the same features and the
  same gradients as encoding the whole batch at once, frames in the same order."""
  from jaxpolicy.nets.encoders import DP3Encoder, encode_history

  r = np.random.default_rng(0)
  obs = {
    "point_cloud": jnp.asarray(r.uniform(-1, 1, (6, 2, 32, 3)), jnp.float32),
    "agent_pos": jnp.asarray(r.normal(size=(6, 2, 9)), jnp.float32),
  }
  enc = DP3Encoder(out_dim=16)
  params = enc.init(jax.random.PRNGKey(0), jax.tree_util.tree_map(lambda a: a[:, 0], obs))
  whole = lambda p: encode_history(enc, p, obs)
  chunked = lambda p: encode_history(enc, p, obs, frames_per_chunk=5)  # 12 frames -> 4s
  np.testing.assert_allclose(chunked(params), whole(params), rtol=1e-5, atol=1e-6)
  loss = lambda f: lambda p: jnp.sum(jnp.sin(f(p)) * jnp.arange(f(p).size).reshape(f(p).shape))
  g_whole, g_chunked = jax.grad(loss(whole))(params), jax.grad(loss(chunked))(params)
  for a, b in zip(jax.tree_util.tree_leaves(g_chunked), jax.tree_util.tree_leaves(g_whole)):
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b)), np.max(np.abs(a - b))


@pytest.mark.slow
def test_pointnet_gather_sizes_follow_each_chunks_selection_and_count_its_flops():
  """`gather_sizes` reports, per chunk of frames, the smallest row count holding all its
  frames' selected points (counted here in numpy from the argmax), per frame, so a cloud of
  20 points repeated (as FPS pads a small scene) costs less than uniform noise; a gradient
  traced under `counting_selection` has XLA count fewer FLOPs at a smaller size."""
  from jaxpolicy.nets import encoders  # pylint: disable=g-import-not-at-top

  r = np.random.default_rng(0)
  noise = r.uniform(-1, 1, (4, 128, 3))
  repeated = np.tile(r.uniform(-1, 1, (4, 20, 3)), (1, 7, 1))[:, :128]
  clouds = jnp.asarray(np.concatenate([noise, repeated]), jnp.float32)
  dims = (64, 128, 256)
  enc = DP3Encoder()
  p = enc.init(jax.random.PRNGKey(0), {"point_cloud": clouds, "agent_pos": jnp.zeros((8, 9))})
  point = {k: v for k, v in p["params"].items() if k.startswith("point_") and k[-1].isdigit()}
  got = np.asarray(encoders.gather_sizes(dims, point, clouds, 4))
  idx = np.asarray(jnp.argmax(encoders._point_mlp(dims, point, clouds), axis=-2))
  sizes = np.asarray(encoders.selection_sizes(4, 128, 256))
  assert sizes[-1] == 4 * 128 and len(sizes) <= encoders.MAX_SIZES
  need = [sum(len(np.unique(f)) for f in idx[c : c + 4]) for c in (0, 4)]
  want = [sizes[sizes >= n][0] / 4 for n in need]
  np.testing.assert_array_equal(got, want)
  assert need[1] <= 80 and got[1] <= 24 < got[0], (need, got)

  loss = lambda q: jnp.sum(encoders.pointnet_max(dims, q, clouds) ** 2)
  flops = {}
  for size in (32, 128):
    with encoders.counting_selection(size):
      flops[size] = jax.jit(jax.grad(loss)).lower(point).cost_analysis()["flops"]
  assert flops[32] < 0.8 * flops[128], flops


@pytest.mark.slow
def test_pointnet_gradient_through_the_selected_points_is_the_plain_gradient():
  """The encoder's backward pass recomputes the per-point MLP only on the points where some
  channel peaks (at most 256 of 300 here, with repeated points making ties): its features and
  gradients (parameters and points) equal plain autodiff of max-over-all-points, built here
  from flax's Dense/LayerNorm directly. Selecting other points gives other gradients, and
  undifferentiated (inference) the encoder does no selection at all."""
  import flax.linen as fnn  # pylint: disable=g-import-not-at-top
  from jaxpolicy.nets import encoders  # pylint: disable=g-import-not-at-top

  r = np.random.default_rng(1)
  pts = r.uniform(-1, 1, (4, 300, 3))
  pts[:, 250:] = pts[:, :50]  # repeated points, as FPS pads them
  obs = {
    "point_cloud": jnp.asarray(pts, jnp.float32),
    "agent_pos": jnp.asarray(r.normal(size=(4, 9)), jnp.float32),
  }
  enc = DP3Encoder(out_dim=16)
  params = enc.init(jax.random.PRNGKey(0), obs)
  p = params["params"]
  weights = jnp.asarray(r.normal(size=(4, 80)), jnp.float32)

  def plain(params, cloud):  # DP3's PointNet as written, autodiff through it
    q = params["params"]
    x = cloud
    for i, h in enumerate(enc.point_dims):
      x = fnn.Dense(h).apply({"params": q[f"point_dense{i}"]}, x)
      x = fnn.relu(fnn.LayerNorm(epsilon=1e-5).apply({"params": q[f"point_norm{i}"]}, x))
    x = fnn.Dense(16).apply({"params": q["point_out"]}, jnp.max(x, axis=-2))
    x = fnn.LayerNorm(epsilon=1e-5).apply({"params": q["point_out_norm"]}, x)
    s = fnn.relu(fnn.Dense(64).apply({"params": q["state_dense0"]}, obs["agent_pos"]))
    s = fnn.Dense(64).apply({"params": q["state_dense1"]}, s)
    return jnp.concatenate([x, s], -1)

  ours = lambda params, cloud: enc.apply(params, {**obs, "point_cloud": cloud})
  loss = lambda f: lambda params, cloud: jnp.sum(jnp.tanh(f(params, cloud)) * weights)
  np.testing.assert_allclose(
    ours(params, obs["point_cloud"]), plain(params, obs["point_cloud"]), rtol=1e-6, atol=1e-6
  )
  g_ours = jax.grad(loss(ours), argnums=(0, 1))(params, obs["point_cloud"])
  g_plain = jax.grad(loss(plain), argnums=(0, 1))(params, obs["point_cloud"])
  # a repeated point's gradient is split between its copies by autodiff and given to one
  # copy here: compare each point's total over its copies
  fold = lambda g: np.concatenate([g[:, :50] + g[:, 250:], g[:, 50:250]], 1)
  g_ours = (g_ours[0], fold(np.asarray(g_ours[1])))
  g_plain = (g_plain[0], fold(np.asarray(g_plain[1])))
  for a, b in zip(jax.tree_util.tree_leaves(g_ours), jax.tree_util.tree_leaves(g_plain)):
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b)), np.max(np.abs(a - b))

  # the check can fail: the backward pass on points that are not the argmax differs
  point_params = {k: v for k, v in p.items() if k.startswith("point_") and k[-1].isdigit()}
  dims = tuple(enc.point_dims)
  out, (_, x, idx) = encoders._pointnet_max_fwd(dims, point_params, obs["point_cloud"])
  g = jnp.asarray(r.normal(size=out.shape), jnp.float32)
  right = encoders._pointnet_max_bwd(dims, (point_params, x, idx), g)[0]
  wrong = encoders._pointnet_max_bwd(dims, (point_params, x, (idx + 1) % 300), g)[0]
  kernel = lambda t: np.asarray(t["point_dense0"]["kernel"])
  assert np.max(np.abs(kernel(right) - kernel(wrong))) > 0.1 * np.max(np.abs(kernel(right)))

  # every row count that holds the frames' selected points gives the same gradient (the
  # backward pass takes the smallest); one too small to hold them all does not
  mask, order, pos = encoders.selected_first(idx, 300)
  need = int(np.sum(mask))
  sizes = encoders.selection_sizes(4, 300, 256)
  assert sizes[0] < need < sizes[-1] == 4 * 256, (need, sizes)
  for size in [k for k in sizes if k >= need] + [need, 4 * 300]:
    got = encoders.selected_gradient(dims, point_params, x, idx, order, pos, size, g)[0]
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(right)):
      assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b)), (size, np.max(np.abs(a - b)))
  short = encoders.selected_gradient(dims, point_params, x, idx, order, pos, need - 8, g)[0]
  assert not np.allclose(kernel(short), kernel(right), rtol=1e-2, atol=0)

  # inference is the plain forward: no selection, no second pass over selected points
  prims = str(jax.make_jaxpr(ours)(params, obs["point_cloud"]))
  assert "scatter" not in prims and "cond" not in prims
  grad_prims = str(jax.make_jaxpr(jax.grad(loss(ours)))(params, obs["point_cloud"]))
  assert "scatter" in grad_prims and "cond" in grad_prims
