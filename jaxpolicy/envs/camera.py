"""The CPU camera sensor: MetaWorld's cameras rendered to uint8 RGB frames (obs="rgb").

`sensor = make_camera_sensor(config)`, then `sensor(env) -> {policy key: (H, W, 3) uint8}`
(`sensor.keys`: "img" for one camera, "img_<camera>" for several) with a MetaWorld env or
anything with `.model` and `.data`; cameras by name (`config.rgb.cameras`), moved inside the
sensor (`config.rgb.camera_pos`), never in the env's model. MuJoCo's offscreen renderer
draws them (EGL on a headless machine: `MUJOCO_GL=egl` is set here unless already set);
the CPU only, as MJX has no rasteriser. Use a sensor from one thread. Backends, render
modes and their speed: docs/cameras.md, "Rendering (MetaWorld, CPU)".
"""

from __future__ import annotations

import copy
import dataclasses
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco picks its GL backend at import

import mujoco  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from jaxpolicy import obs as obs_lib  # pylint: disable=g-import-not-at-top
from jaxpolicy.envs.pointcloud import model_signature  # pylint: disable=g-import-not-at-top


class CameraError(ValueError):
  """A camera the model lacks, a camera that cannot be moved, or no renderer."""


@dataclasses.dataclass(frozen=True)
class CameraSpec:
  cameras: tuple  # camera names, in key order
  image_size: tuple  # (height, width) of every frame
  camera_pos: tuple = ()  # ((camera, (x, y, z)), ...): fixed world cameras moved there
  render: str = "fast"  # "fast" | "full" (MuJoCo's default shadows, reflections, MSAA)

  @property
  def keys(self) -> tuple:
    return obs_lib.camera_keys(self.cameras)

  def position(self, camera: str):
    return dict(self.camera_pos).get(camera, ())

  def to_dict(self) -> dict:
    return {
      "cameras": list(self.cameras),
      "image_size": list(self.image_size),
      "camera_pos": {c: list(p) for c, p in self.camera_pos},
      "render": self.render,
    }


RENDER_MODES = ("fast", "full")


def camera_spec(config) -> CameraSpec:
  """The sensor definition of `config.rgb` (validated by `jaxpolicy.validate.check_rgb`)."""
  r = config.rgb
  if r.get("cameras") is None:
    raise CameraError(
      "config.rgb.cameras is unset (None: the task's suite fills it); pass "
      "the config through jaxpolicy.validate.resolve"
    )
  size = r.image_size
  size = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
  cams = tuple(str(c) for c in r.cameras)
  moves = tuple(
    (c, tuple(float(x) for x in r.camera_pos[c]))
    for c in cams
    if c in r.camera_pos and len(tuple(r.camera_pos[c]))
  )
  render = r.get("render", "fast")
  if render not in RENDER_MODES:
    raise CameraError(f"config.rgb.render must be one of {RENDER_MODES}, got {render!r}")
  return CameraSpec(cams, size, moves, render)


@dataclasses.dataclass
class _Entry:
  renderer: mujoco.Renderer
  model: mujoco.MjModel
  cameras: list  # per camera: (MjvCamera, static pose or None)


class CameraSensor:
  """`sensor(env) -> {key: (H, W, 3) uint8}`: every camera of the spec, one renderer per
  model geometry; the env's model and data are only read."""

  def __init__(self, spec: CameraSpec):
    self.spec = spec
    self.keys = spec.keys
    self._by_id: dict[int, tuple] = {}
    self._by_sig: dict[str, _Entry] = {}

  def __call__(self, env) -> dict:
    env = getattr(env, "unwrapped", env)
    return self.observe(env.model, env.data)

  def observe(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict:
    e = self._entry(model)
    return {k: self._render(e, data, cam) for k, cam in zip(self.keys, e.cameras)}

  def _render(self, e: _Entry, data, cam) -> np.ndarray:
    camera, pose = cam
    e.renderer.update_scene(data, camera)
    if pose is not None:  # the moved camera (both eyes at it: mono rendering averages them)
      pos, xmat = pose
      for c in e.renderer.scene.camera:
        c.pos[:] = pos
        c.forward[:] = -xmat[:, 2]
        c.up[:] = xmat[:, 1]
    return e.renderer.render()

  def _entry(self, model) -> _Entry:
    hit = self._by_id.get(id(model))
    if hit is None or hit[0] is not model:
      hit = (model, model_signature(model))
      self._by_id[id(model)] = hit
    if hit[1] not in self._by_sig:
      self._by_sig[hit[1]] = self._make_entry(model)
    return self._by_sig[hit[1]]

  def _make_entry(self, model) -> _Entry:
    cameras = [self._camera(model, name) for name in self.spec.cameras]
    h, w = self.spec.image_size
    fast = self.spec.render == "fast"
    if fast or model.vis.global_.offwidth < w or model.vis.global_.offheight < h:
      model = copy.copy(model)  # the sensor's own: buffer size, no shadow map or MSAA
      model.vis.global_.offwidth = max(w, model.vis.global_.offwidth)
      model.vis.global_.offheight = max(h, model.vis.global_.offheight)
      if fast:
        model.vis.quality.shadowsize = 0
        model.vis.quality.offsamples = 0
    check_gl(w, h)
    renderer = mujoco.Renderer(model, h, w)
    if fast:
      for f in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
        renderer.scene.flags[f] = 0
    return _Entry(renderer, model, cameras)

  def _camera(self, model, name: str):
    cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    if cid < 0:
      names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
      raise CameraError(f"config.rgb.cameras: the model has no camera {name!r}; it has {names}")
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
    camera.fixedcamid = cid
    pos = self.spec.position(name)
    if not pos:
      return camera, None
    if model.cam_bodyid[cid] != 0 or model.cam_mode[cid] != mujoco.mjtCamLight.mjCAMLIGHT_FIXED:
      raise CameraError(
        f"config.rgb.camera_pos.{name} can only move a fixed camera on the world "
        f"body; {name!r} is not one. Set it to ()."
      )
    xmat = np.zeros(9)
    mujoco.mju_quat2Mat(xmat, model.cam_quat[cid])
    return camera, (np.asarray(pos, np.float64), xmat.reshape(3, 3))

  def camera_pose(self, model, name: str):
    """(world position (3,), rotation (3, 3) with the camera's x, y, z axes as columns, fovy
    in degrees) of camera `name` as this sensor renders it (moved or the model's own)."""
    cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)
    _, pose = self._camera(model, name)
    if pose is None:
      data = mujoco.MjData(model)
      mujoco.mj_kinematics(model, data)
      mujoco.mj_camlight(model, data)
      pose = (data.cam_xpos[cid].copy(), data.cam_xmat[cid].reshape(3, 3).copy())
    return pose[0], pose[1], float(model.cam_fovy[cid])

  def close(self):
    for e in self._by_sig.values():
      e.renderer.close()
    self._by_sig.clear()
    self._by_id.clear()


def check_gl(width: int = 8, height: int = 8) -> None:
  """Raises CameraError (one line naming MUJOCO_GL) when MuJoCo cannot open an offscreen
  OpenGL context in this process (checked before a Renderer, whose half-built destructor
  would bury the cause)."""
  global _GL_OK
  if _GL_OK:
    return
  gl = os.environ.get("MUJOCO_GL", "")
  try:
    from mujoco import gl_context  # pylint: disable=g-import-not-at-top

    ctx = gl_context.GLContext(width, height)
    try:
      ctx.make_current()
      mujoco.MjrContext(
        mujoco.MjModel.from_xml_string("<mujoco/>"), mujoco.mjtFontScale.mjFONTSCALE_150
      ).free()
    finally:
      ctx.free()
  except Exception as e:  # pylint: disable=broad-except  (GL failures take several types)
    cause = str(e).splitlines()[0] if str(e) else ""
    raise CameraError(
      f"no renderer for the camera sensor: MuJoCo could not open an OpenGL "
      f"context with MUJOCO_GL={gl or '(unset)'} ({type(e).__name__}: {cause});"
      f" set MUJOCO_GL=egl (or osmesa) before anything imports mujoco"
    ) from None
  _GL_OK = True


_GL_OK = False


def make_camera_sensor(config) -> CameraSensor:
  """The CPU camera sensor of `config.rgb` (collection and CPU evaluation share it)."""
  return CameraSensor(camera_spec(config))
