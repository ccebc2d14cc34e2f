"""Point-cloud observations (DP3): one fixed depth camera -> world points -> crop -> FPS.

One sensor definition, `config.pointcloud` (`sensor_spec`), serves demonstration
collection and evaluation on the CPU and, through `jaxpolicy.envs.mjx.pointcloud` and
`sensor.spec`, in MJX. CPU: `sensor = make_sensor(config)`, then
`sensor(env) -> {"point_cloud": (P, 3) float32}` for any env with `.model` and `.data`; use
a sensor from one thread (GL contexts are bound to threads).

The camera, back-projection, crop, sampling, geometry, sites and table options, and why:
docs/environments.md, "The point-cloud sensor".
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco picks its GL backend at import

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import mujoco  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from jaxpolicy.envs.fps import farthest_point_sampling

GEOM_SETS = ("light", "visual")
TABLE_OPTIONS = ("keep", "hide")
TABLE_BODY = "tablelink"  # MetaWorld's table
# primitives mjx.ray can intersect (it has no cylinder test: visual-only cylinders are left
# out of the light set; collidable ones are in it, and are prism meshes in MJX models)
PRIMITIVES = (
  mujoco.mjtGeom.mjGEOM_PLANE,
  mujoco.mjtGeom.mjGEOM_SPHERE,
  mujoco.mjtGeom.mjGEOM_CAPSULE,
  mujoco.mjtGeom.mjGEOM_ELLIPSOID,
  mujoco.mjtGeom.mjGEOM_BOX,
)
VISIBLE_GROUPS = 3  # MuJoCo's default mjvOption shows geom/site groups 0, 1, 2
HIDDEN_GROUP = 5  # where the light set's complement is moved for rendering
FAR_FRACTION = 0.999  # depth at the far plane = background


class SensorConfigError(ValueError):
  pass


@dataclasses.dataclass(frozen=True)
class SensorSpec:
  """The sensor definition, read from `config.pointcloud` (docs/environments.md, "The
  point-cloud sensor")."""

  num_points: int
  image_size: tuple  # (height, width)
  camera: str
  camera_pos: tuple  # () = the model's own camera position
  crop_low: tuple
  crop_high: tuple
  geoms: str  # "light" | "visual"
  sites: bool
  table: str = "keep"  # "keep" | "hide"

  def to_dict(self) -> dict:
    """JSON-friendly form, e.g. to record in a dataset's attributes. `table` is left out at
    "keep", so datasets named (by a hash of this) before the field existed keep their names."""
    d = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
    if d["table"] == "keep":
      del d["table"]
    return d


def sensor_spec(config) -> SensorSpec:
  """Validates `config.pointcloud` and returns the sensor definition.

  Raises SensorConfigError naming the bad field and the fix.
  """
  if "pointcloud" not in config:
    raise SensorConfigError(
      "config has no `pointcloud` section; point-cloud observations "
      "need one (see configs/common.py, c.pointcloud)"
    )
  pc = config.pointcloud
  unset = [f for f in ("camera", "camera_pos", "crop_low", "crop_high") if pc.get(f) is None]
  if unset:
    raise SensorConfigError(
      f"config.pointcloud.{unset[0]} is unset (None: the task's suite "
      f"fills it); pass the config through jaxpolicy.validate.resolve"
    )

  def bad(field, value, want):
    return SensorConfigError(f"config.pointcloud.{field} must be {want}, got {value!r}")

  n = pc.num_points
  if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
    raise bad("num_points", n, "a positive integer")
  size = pc.image_size
  size = (size, size) if isinstance(size, int) else tuple(size)
  if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
    raise bad("image_size", pc.image_size, "a positive integer or (height, width)")
  pos = tuple(float(x) for x in pc.camera_pos)
  if len(pos) not in (0, 3):
    raise bad("camera_pos", pc.camera_pos, "() or an (x, y, z) position")
  low, high = tuple(map(float, pc.crop_low)), tuple(map(float, pc.crop_high))
  if len(low) != 3 or len(high) != 3 or not all(a < b for a, b in zip(low, high)):
    raise bad(
      "crop_low/crop_high",
      (pc.crop_low, pc.crop_high),
      "two (x, y, z) corners with crop_low < crop_high",
    )
  if pc.geoms not in GEOM_SETS:
    raise bad("geoms", pc.geoms, f"one of {GEOM_SETS}")
  table = pc.get("table", "keep")
  if table not in TABLE_OPTIONS:
    raise bad("table", table, f"one of {TABLE_OPTIONS}")
  return SensorSpec(
    num_points=n,
    image_size=size,
    camera=str(pc.camera),
    camera_pos=pos,
    crop_low=low,
    crop_high=high,
    geoms=pc.geoms,
    sites=bool(pc.sites),
    table=table,
  )


# ---------------------------------------------------------------------------------------------
# Geometry shared by both sensors


def camera_id(model: mujoco.MjModel, spec: SensorSpec) -> int:
  cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, spec.camera)
  if cid < 0:
    names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
    raise SensorConfigError(
      f"config.pointcloud.camera: the model has no camera {spec.camera!r}; it has {names}"
    )
  if spec.camera_pos and (
    model.cam_bodyid[cid] != 0 or model.cam_mode[cid] != mujoco.mjtCamLight.mjCAMLIGHT_FIXED
  ):
    raise SensorConfigError(
      f"config.pointcloud.camera_pos can only move a fixed camera on the "
      f"world body; {spec.camera!r} is not one. Set camera_pos=()."
    )
  if model.cam_sensorsize[cid, 0] > 0:
    raise SensorConfigError(
      f"camera {spec.camera!r} uses sensor-size intrinsics, which this "
      f"sensor does not model; pick a fovy camera"
    )
  return cid


def depth_range(model: mujoco.MjModel) -> tuple[float, float]:
  """MuJoCo's near and far clipping distances (metres), as its renderer uses them."""
  extent = model.stat.extent
  return float(model.vis.map.znear * extent), float(model.vis.map.zfar * extent)


def static_camera_pose(model: mujoco.MjModel, spec: SensorSpec, cid: int):
  """(pos (3,), xmat (3, 3)) of a fixed camera on the world body, else None.

  Such a camera's pose is a model constant (its `cam_pos`, or `spec.camera_pos`, and the
  rotation of its `cam_quat`); both sensors use it directly instead of MjData's `cam_xpos`
  / `cam_xmat`, so they never depend on whether the simulator computed camera poses.
  Columns of xmat are the camera's x (right), y (up) and z (backwards) axes in the world.
  """
  if model.cam_bodyid[cid] != 0 or model.cam_mode[cid] != mujoco.mjtCamLight.mjCAMLIGHT_FIXED:
    return None
  xmat = np.zeros(9)
  mujoco.mju_quat2Mat(xmat, model.cam_quat[cid])
  pos = spec.camera_pos or tuple(model.cam_pos[cid])
  return np.asarray(pos, np.float64), xmat.reshape(3, 3)


def pixel_directions(height: int, width: int, fovy_deg: float) -> np.ndarray:
  """(H*W, 3) camera-frame ray directions through pixel centres, scaled to z = -1.

  MuJoCo cameras look along -z with +y up; row 0 is the top of the image. A point at
  z-depth d along pixel p's direction is d * dirs[p].
  """
  f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2)
  u = (np.arange(width) + 0.5 - width / 2) / f
  v = -(np.arange(height) + 0.5 - height / 2) / f
  uu, vv = np.meshgrid(u, v)
  return np.stack([uu, vv, -np.ones_like(uu)], -1).reshape(-1, 3)


def sensor_geoms(model: mujoco.MjModel, spec: SensorSpec) -> np.ndarray:
  """(ngeom,) bool: the geoms the sensor sees (its geometry set, less the table if hidden)."""
  include = light_geoms(model) if spec.geoms == "light" else visual_geoms(model)
  return include & ~hidden_table(model, spec)


def hidden_table(model: mujoco.MjModel, spec: SensorSpec) -> np.ndarray:
  """(ngeom,) bool: the table body's geoms when spec.table == "hide", else none."""
  if spec.table == "keep":
    return np.zeros(model.ngeom, bool)
  body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, TABLE_BODY)
  if body < 0:
    raise SensorConfigError(
      f"config.pointcloud.table='hide' hides the body {TABLE_BODY!r} "
      f"(MetaWorld's table); this model has none. Use table='keep'."
    )
  return model.body_rootid[model.geom_bodyid] == body


def light_geoms(model: mujoco.MjModel) -> np.ndarray:
  """(ngeom,) bool: the light geometry set, collision geoms + visible primitives."""
  visible = _visible_geoms(model)
  collidable = (model.geom_contype != 0) | (model.geom_conaffinity != 0)
  primitive = np.isin(model.geom_type, [int(t) for t in PRIMITIVES])
  return visible & (collidable | (primitive & (model.geom_group < VISIBLE_GROUPS)))


def visual_geoms(model: mujoco.MjModel) -> np.ndarray:
  """(ngeom,) bool: what MuJoCo's default visual options draw (groups 0-2, not transparent)."""
  return _visible_geoms(model) & (model.geom_group < VISIBLE_GROUPS)


def _visible_geoms(model):
  """Not fully transparent (the rule mjx.ray applies: rgba alpha, or the material's)."""
  matid = model.geom_matid
  has_mat = matid >= 0
  mat_alpha = model.mat_rgba[np.maximum(matid, 0), 3] if model.nmat else np.ones(model.ngeom)
  return (has_mat | (model.geom_rgba[:, 3] != 0)) & (~has_mat | (mat_alpha != 0))


def visible_sites(model: mujoco.MjModel, spec: SensorSpec) -> np.ndarray:
  """Ids of the sites drawn into the cloud (empty unless spec.sites)."""
  if not spec.sites:
    return np.zeros((0,), np.int32)
  keep = (model.site_rgba[:, 3] > 0) & (model.site_group < VISIBLE_GROUPS)
  return np.nonzero(keep)[0].astype(np.int32)


def crop_mask(points, low, high):
  """(N,) bool: points inside the closed box [low, high] (numpy or jax)."""
  xp = jnp if isinstance(points, jax.Array) else np
  return xp.all((points >= xp.asarray(low)) & (points <= xp.asarray(high)), axis=-1)


def sample_cloud(points, mask, num_points: int):
  """((P, 3) farthest-point samples of the kept points, (P,) distinct-valid flags)."""
  idx, valid = farthest_point_sampling(points, num_points, mask)
  return points[idx], valid


# ---------------------------------------------------------------------------------------------
# CPU: MuJoCo's renderer


def model_signature(model: mujoco.MjModel) -> str:
  """Hash of everything a render context depends on (geometry, meshes, textures)."""
  h = hashlib.sha1()
  for a in (
    model.geom_type,
    model.geom_dataid,
    model.geom_size,
    model.geom_group,
    model.geom_contype,
    model.geom_conaffinity,
    model.geom_rgba,
    model.geom_matid,
    model.site_type,
    model.site_size,
    model.site_group,
    model.site_rgba,
    model.mesh_vertnum,
    model.mesh_facenum,
    model.mesh_vert,
    model.mesh_face,
    model.cam_fovy,
    model.tex_width,
    model.tex_height,
  ):
    h.update(np.ascontiguousarray(a).tobytes())
  h.update(np.asarray([model.stat.extent, model.vis.map.znear, model.vis.map.zfar]).tobytes())
  return h.hexdigest()


@dataclasses.dataclass
class _RenderEntry:
  model: mujoco.MjModel  # private copy: light-set groups, tiny shadow/offscreen buffers
  renderer: mujoco.Renderer
  option: mujoco.MjvOption
  camera: mujoco.MjvCamera
  cam_id: int
  pose: tuple | None  # static (pos, xmat) of a world camera, else None
  dirs: np.ndarray  # (H*W, 3) camera-frame directions
  near: float
  far: float


class RenderSensor:
  """The CPU sensor: `sensor(env) -> {"point_cloud": (num_points, 3) float32}` world points.

  One `mujoco.Renderer` per distinct model geometry (created on first use; all envs of a
  task share it), drawing into the sensor's own scene from the env's `MjData`: the env's
  model and data are never modified.
  """

  keys = ("point_cloud",)

  def __init__(self, spec: SensorSpec):
    self.spec = spec
    self._by_id: dict[int, tuple[mujoco.MjModel, str]] = {}
    self._by_sig: dict[str, _RenderEntry] = {}

  def __call__(self, env) -> dict:
    env = getattr(env, "unwrapped", env)
    return {"point_cloud": self.observe(env.model, env.data)}

  def observe(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    points, _ = self.cloud(model, data)
    return points

  def cloud(self, model, data):
    """((P, 3) float32 points, (P,) bool distinct-valid flags)."""
    points, valid, _ = self._sample(*self.candidates(model, data))
    return points, valid

  def labelled_cloud(self, model, data):
    """The cloud with what each point hit: ((P, 3) points, (P,) valid flags, (P,) mjtObj
    type (geom or site), (P,) that geom's or site's id). For diagnostics (which points fall
    on the gripper, the object, the goal); the observation is `cloud`."""
    pts, mask = self.candidates(model, data)
    points, valid, pixel = self._sample(pts, mask)
    e = self._entry(model)
    e.renderer.enable_segmentation_rendering()  # the scene `candidates` just drew
    try:
      seg = e.renderer.render().reshape(-1, 2)
    finally:
      e.renderer.enable_depth_rendering()
    return points, valid, seg[pixel, 1], seg[pixel, 0]

  def _sample(self, pts, mask):
    """FPS over the kept pixels only, padded to a power of two (few compiled shapes). Order
    is preserved, so the result equals FPS over all pixels with the mask. Returns the
    points, their valid flags and their pixel indices."""
    pixel = np.nonzero(mask)[0]
    size = max(self.spec.num_points, 256)
    while size < len(pixel):
      size *= 2
    padded = np.zeros((size, 3), np.float32)
    padded[: len(pixel)] = pts[pixel]
    idx, valid = farthest_point_sampling(padded, self.spec.num_points, np.arange(size) < len(pixel))
    idx = np.asarray(idx)  # only kept pixels are picked (all 0 when none is kept)
    return padded[idx], np.asarray(valid), (pixel[idx] if len(pixel) else idx)

  def candidates(self, model, data):
    """All back-projected pixels and their keep mask: ((H*W, 3) float32, (H*W,) bool)."""
    entry = self._entry(model)
    depth = self.depth(model, data).reshape(-1)
    pos, xmat = self.camera_pose(model, data)
    pts = pos + (entry.dirs * depth[:, None]) @ xmat.T
    mask = (depth > entry.near) & (depth < entry.far * FAR_FRACTION)
    mask &= crop_mask(pts, self.spec.crop_low, self.spec.crop_high)
    return pts.astype(np.float32), mask

  def camera_pose(self, model, data):
    """World position (3,) and rotation (3, 3) (camera axes as columns) of the sensor camera."""
    e = self._entry(model)
    if e.pose is not None:
      return e.pose
    return (
      np.asarray(data.cam_xpos[e.cam_id], np.float64),
      np.asarray(data.cam_xmat[e.cam_id], np.float64).reshape(3, 3),
    )

  def depth(self, model, data) -> np.ndarray:
    """(H, W) float32 z-depth image in metres (the far distance where nothing is hit)."""
    e = self._entry(model)
    scene = e.renderer.scene
    mujoco.mjv_updateScene(
      e.model, data, e.option, None, e.camera, mujoco.mjtCatBit.mjCAT_ALL, scene
    )
    if e.pose is not None:
      # the sensor's own camera pose (both eyes at the camera: mono rendering averages them)
      pos, xmat = e.pose
      for c in scene.camera:
        c.pos[:] = pos
        c.forward[:] = -xmat[:, 2]
        c.up[:] = xmat[:, 1]
    return e.renderer.render()

  def _entry(self, model) -> _RenderEntry:
    hit = self._by_id.get(id(model))
    if hit is None or hit[0] is not model:
      hit = (model, model_signature(model))
      self._by_id[id(model)] = hit
    sig = hit[1]
    if sig not in self._by_sig:
      self._by_sig[sig] = self._make_entry(model)
    return self._by_sig[sig]

  def _make_entry(self, model) -> _RenderEntry:
    spec = self.spec
    cid = camera_id(model, spec)
    h, w = spec.image_size
    rmodel = copy.copy(model)
    rmodel.vis.quality.shadowsize = 0
    rmodel.vis.quality.offsamples = 0
    rmodel.vis.global_.offwidth = max(w, 1)
    rmodel.vis.global_.offheight = max(h, 1)
    option = mujoco.MjvOption()
    if spec.geoms == "light":
      rmodel.geom_group[:] = np.where(sensor_geoms(model, spec), 0, HIDDEN_GROUP)
      option.geomgroup[:] = 0
      option.geomgroup[0] = 1
    else:  # MuJoCo's default groups, less a hidden table
      rmodel.geom_group[:] = np.where(hidden_table(model, spec), HIDDEN_GROUP, model.geom_group)
    option.sitegroup[:] = 0
    if spec.sites:
      option.sitegroup[:VISIBLE_GROUPS] = 1
    try:
      renderer = mujoco.Renderer(rmodel, h, w)
    except mujoco.FatalError as e:
      raise RuntimeError(
        f"cannot create a MuJoCo renderer for the point-cloud sensor ({e}). "
        f"Set MUJOCO_GL=egl (or osmesa) before anything imports mujoco."
      ) from e
    renderer.enable_depth_rendering()
    flags = renderer.scene.flags
    for f in (
      mujoco.mjtRndFlag.mjRND_SHADOW,
      mujoco.mjtRndFlag.mjRND_REFLECTION,
      mujoco.mjtRndFlag.mjRND_SKYBOX,
      mujoco.mjtRndFlag.mjRND_FOG,
      mujoco.mjtRndFlag.mjRND_HAZE,
    ):
      flags[f] = 0
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
    camera.fixedcamid = cid
    near, far = depth_range(model)
    return _RenderEntry(
      rmodel,
      renderer,
      option,
      camera,
      cid,
      static_camera_pose(model, spec, cid),
      pixel_directions(h, w, float(model.cam_fovy[cid])),
      near,
      far,
    )

  def close(self):
    for e in self._by_sig.values():
      e.renderer.close()
    self._by_sig.clear()
    self._by_id.clear()


def make_sensor(config) -> RenderSensor:
  """The CPU point-cloud sensor of `config` (collection and CPU evaluation share it)."""
  return RenderSensor(sensor_spec(config))
