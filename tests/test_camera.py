"""The CPU camera sensor on the real MetaWorld: MetaWorld's cameras by name, DP3's move of
corner2 (the frame DP3's own way of moving it, editing the model's cam_pos, renders), one and
several cameras, and one line for a camera the model lacks, an immovable camera, no GL."""

import copy
import os
import subprocess
import sys

import mujoco
import numpy as np
import pytest

import configs
from jaxpolicy import validate
from jaxpolicy.envs import camera
from jaxpolicy.suites.metaworld import env as mw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(cameras=("corner2",), size=(48, 40), **moves):
  c = configs.load("teacher", "tiny")
  c.obs = "rgb"
  c.rgb.cameras = cameras
  c.rgb.image_size = size
  for cam, pos in moves.items():
    c.rgb.camera_pos[cam] = pos
  validate.resolve(c)  # the suite's moves of the cameras not given here
  return c


@pytest.fixture(scope="module")
def env():
  e = mw.make_env("drawer-open", 0)
  e.seed(3)
  mw.reset(e)
  return e


def test_frames_of_one_and_several_cameras(env):
  one = camera.make_camera_sensor(_config())
  frames = one(env)
  assert one.keys == ("img",) and set(frames) == {"img"}
  img = frames["img"]
  assert img.dtype == np.uint8 and img.shape == (48, 40, 3)
  assert img.std() > 20  # a scene, not a blank frame
  two = camera.make_camera_sensor(_config(("corner2", "topview")))
  both = two(env)
  assert two.keys == ("img_corner2", "img_topview")
  np.testing.assert_array_equal(both["img_corner2"], img)  # same camera, same frame
  assert np.abs(both["img_topview"].astype(int) - img).mean() > 10
  # the arm moves: the frame changes; the env's own model is never edited
  cam_pos = env.unwrapped.model.cam_pos.copy()
  for _ in range(15):
    mw.step(env, np.array([0.0, 1.0, -1.0, 1.0]))
  moved = one(env)["img"]
  assert np.abs(moved.astype(int) - img).mean() > 1
  np.testing.assert_array_equal(env.unwrapped.model.cam_pos, cam_pos)
  one.close()
  two.close()


def _dp3_render(env, pos, size, fast=True):
  """corner2 rendered DP3's way: a model whose cam_pos of corner2 is set to `pos`."""
  m = copy.copy(env.unwrapped.model)
  cid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, "corner2")
  m.cam_pos[cid] = pos
  if fast:
    m.vis.quality.shadowsize = 0
    m.vis.quality.offsamples = 0
  d = mujoco.MjData(m)
  d.qpos[:], d.qvel[:] = env.unwrapped.data.qpos, env.unwrapped.data.qvel
  d.mocap_pos[:], d.mocap_quat[:] = env.unwrapped.data.mocap_pos, env.unwrapped.data.mocap_quat
  mujoco.mj_forward(m, d)
  r = mujoco.Renderer(m, *size)
  r.update_scene(d, "corner2")
  if fast:
    r.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    r.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
  out = r.render()
  r.close()
  return out


def test_corner2_is_moved_as_dp3_moves_it(env):
  sensor = camera.make_camera_sensor(_config())  # the default: DP3's (0.6, 0.295, 0.8)
  got = sensor(env)["img"]
  want = _dp3_render(env, (0.6, 0.295, 0.8), (48, 40))
  assert np.mean(got != want) < 0.01, np.mean(got != want)  # a few edge pixels at most
  model_own = camera.make_camera_sensor(_config(corner2=()))(env)["img"]
  np.testing.assert_array_equal(
    model_own, _dp3_render(env, env.unwrapped.model.cam_pos[2], (48, 40))
  )
  assert np.abs(model_own.astype(int) - got).mean() > 10  # the move changes the view
  # the pose the sensor reports is the moved camera's
  pos, xmat, fovy = sensor.camera_pose(env.unwrapped.model, "corner2")
  np.testing.assert_allclose(pos, (0.6, 0.295, 0.8))
  assert fovy == 60.0 and np.allclose(xmat @ xmat.T, np.eye(3), atol=1e-9)
  full = camera.make_camera_sensor(_config(size=(48, 40)))
  full.spec = camera.CameraSpec(
    full.spec.cameras, full.spec.image_size, full.spec.camera_pos, "full"
  )
  np.testing.assert_array_equal(
    full(env)["img"], _dp3_render(env, (0.6, 0.295, 0.8), (48, 40), fast=False)
  )


def test_a_camera_the_model_lacks_lists_its_cameras(env):
  sensor = camera.make_camera_sensor(_config(("corner2", "wrist")))
  with pytest.raises(
    camera.CameraError,
    match=r"no camera 'wrist'; it has \['topview', "
    r"'corner', 'corner2'",
  ):
    sensor(env)


def test_a_camera_on_a_moving_body_cannot_be_moved(env):
  sensor = camera.make_camera_sensor(_config(("gripperPOV",), gripperPOV=(0.0, 0.5, 1.0)))
  with pytest.raises(
    camera.CameraError,
    match=r"camera_pos.gripperPOV can only move a fixed "
    r"camera on the world body",
  ):
    sensor(env)
  frames = camera.make_camera_sensor(_config(("gripperPOV",)))(env)  # unmoved: fine
  assert frames["img"].std() > 5


def test_no_renderer_is_one_line_naming_mujoco_gl():
  code = (
    "import configs\nfrom jaxpolicy.envs import camera\n"
    "from jaxpolicy.suites.metaworld import env as mw\n"
    "from jaxpolicy import validate\n"
    "c = configs.load('teacher', 'tiny'); c.obs = 'rgb'; validate.resolve(c)\n"
    "camera.make_camera_sensor(c)(mw.make_env('reach', 0))\n"
  )
  out = subprocess.run(
    [sys.executable, "-c", code],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env=dict(os.environ, MUJOCO_GL="disable"),
  )
  assert out.returncode != 0
  last = out.stderr.strip().splitlines()[-1]  # the traceback's last line, the whole message
  assert last.startswith("jaxpolicy.envs.camera.CameraError: no renderer for the camera sensor"), (
    out.stderr[-2000:]
  )
  assert "MUJOCO_GL=disable" in last and "set MUJOCO_GL=egl (or osmesa)" in last
