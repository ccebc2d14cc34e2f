"""The point-cloud sensor in MJX: `mjx.ray` under vmap against the sensor's geometry set.

The same sensor as `jaxpolicy.envs.pointcloud` (same spec, camera, crop and farthest-point
sampling), pure, jittable and vmap-able: `MjxSensor(spec, mj_model)(mjx_model, mjx_data)
-> (P, 3)`. `mjx_form(sensor)` gives the MJX evaluator the form of a CPU sensor it is handed,
so one config gives one sensor on both backends. See the CPU module for the definition.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
from mujoco import mjx
import numpy as np

from jaxpolicy.envs import pointcloud as pc


def supports(spec: pc.SensorSpec) -> bool:
  """Whether MJX can afford the spec's geometry: the "light" set (see the CPU module)."""
  return spec.geoms == "light"


class MjxSensor:
  """The MJX sensor: `sensor(mx, dx) -> (num_points, 3)`; pure, jittable, vmap-able.

  Casts one ray per pixel with `mujoco.mjx.ray` (chunks of `ray_chunk` rays vectorised at
  once, to bound memory on meshes) against the spec's geometry set, plus analytic
  intersections with the visible sites, then back-projects, crops and samples exactly as
  the CPU sensor. Built from the `mujoco.MjModel` that `mx` was made from (the geometry
  set, camera and site list are fixed when the sensor is built).
  """

  def __init__(self, spec: pc.SensorSpec, model: mujoco.MjModel, ray_chunk: int = 256):
    self.spec = spec
    self.cam_id = pc.camera_id(model, spec)
    self.pose = pc.static_camera_pose(model, spec, self.cam_id)
    h, w = spec.image_size
    self.dirs = pc.pixel_directions(h, w, float(model.cam_fovy[self.cam_id])).astype(np.float32)
    self.near, self.far = pc.depth_range(model)
    self.geom_group = np.where(pc.sensor_geoms(model, spec), 0, pc.HIDDEN_GROUP).astype(
      model.geom_group.dtype
    )
    self.sites = pc.visible_sites(model, spec)
    bad = [
      int(model.site_type[s])
      for s in self.sites
      if model.site_type[s] not in (mujoco.mjtGeom.mjGEOM_SPHERE, mujoco.mjtGeom.mjGEOM_ELLIPSOID)
    ]
    if bad:
      raise NotImplementedError(
        f"visible sites of geom types {sorted(set(bad))}; the MJX "
        f"sensor intersects sphere/ellipsoid sites only (or set "
        f"config.pointcloud.sites=False)"
      )
    size = np.asarray(model.site_size[self.sites], np.float32)
    sphere = model.site_type[self.sites] == mujoco.mjtGeom.mjGEOM_SPHERE
    self.site_radii = np.where(sphere[:, None], size[:, :1], size)  # (S, 3) semi-axes
    self.ray_chunk = int(ray_chunk)

  def __call__(self, mx, dx):
    return self.cloud(mx, dx)[0]

  def camera_pose(self, dx):
    """World (pos (3,), xmat (3, 3)); from the model for world cameras, else from dx
    (then dx needs camera poses, e.g. from mjx.forward)."""
    if self.pose is not None:
      return jnp.asarray(self.pose[0], jnp.float32), jnp.asarray(self.pose[1], jnp.float32)
    return dx.cam_xpos[self.cam_id], dx.cam_xmat[self.cam_id].reshape(3, 3)

  def depth(self, mx, dx):
    """(H, W) z-depth in metres; +inf where no surface lies between near and far."""
    pos, xmat = self.camera_pose(dx)
    vecs = jnp.asarray(self.dirs) @ xmat.T  # world directions, z-depth scaled
    mray = mx.replace(geom_group=self.geom_group)
    group = tuple(int(i == 0) for i in range(mujoco.mjNGROUP))

    def cast(vec):
      dist, _ = mjx.ray(mray, dx, pos, vec, geomgroup=group)
      return jnp.where(dist < 0, jnp.inf, dist)

    dist = jax.lax.map(cast, vecs, batch_size=self.ray_chunk)
    if len(self.sites):
      dist = jnp.minimum(dist, self._site_depth(dx, pos, vecs))
    dist = jnp.where((dist > self.near) & (dist < self.far * pc.FAR_FRACTION), dist, jnp.inf)
    return dist.reshape(self.spec.image_size)

  def _site_depth(self, dx, pos, vecs):
    """(R,) nearest ray parameter over the visible sites (ellipsoids; +inf if missed)."""
    centre = dx.site_xpos[self.sites]  # (S, 3)
    rot = dx.site_xmat[self.sites].reshape(-1, 3, 3)  # (S, 3, 3)
    inv = 1.0 / jnp.asarray(self.site_radii)  # (S, 3)
    p = jnp.einsum("sji,sj->si", rot, pos - centre) * inv  # (S, 3) local, scaled
    v = jnp.einsum("sji,rj->rsi", rot, vecs) * inv  # (R, S, 3)
    a = jnp.sum(v * v, -1)
    b = jnp.sum(v * p, -1)
    c = jnp.sum(p * p, -1) - 1.0
    disc = b * b - a * c
    sq = jnp.sqrt(jnp.maximum(disc, 0.0))
    t0, t1 = (-b - sq) / a, (-b + sq) / a
    t = jnp.where(t0 >= 0, t0, t1)
    t = jnp.where((disc >= 0) & (t >= 0), t, jnp.inf)
    return jnp.min(t, axis=-1)

  def candidates(self, mx, dx):
    """((H*W, 3) points, (H*W,) keep mask), as `RenderSensor.candidates`."""
    depth = self.depth(mx, dx).reshape(-1)
    pos, xmat = self.camera_pose(dx)
    finite = jnp.isfinite(depth)
    d = jnp.where(finite, depth, 0.0)
    pts = pos + (jnp.asarray(self.dirs) * d[:, None]) @ xmat.T
    mask = finite & pc.crop_mask(pts, self.spec.crop_low, self.spec.crop_high)
    return pts, mask

  def cloud(self, mx, dx):
    """((P, 3) points, (P,) distinct-valid flags)."""
    pts, mask = self.candidates(mx, dx)
    return pc.sample_cloud(pts, mask, self.spec.num_points)


def make_mjx_sensor(config, model: mujoco.MjModel, ray_chunk: int = 256) -> MjxSensor:
  """The MJX point-cloud sensor of `config` for MJX models made from `model`."""
  return MjxSensor(pc.sensor_spec(config), model, ray_chunk)


# MJX sensors by (spec, MjModel): every evaluation of a run with the same CPU sensor gets the
# same form, so the MJX programs compiled around it are reused
_FORMS: dict = {}


def mjx_form(sensor):
  """The MJX form of a CPU sensor (`jaxpolicy.envs.pointcloud.RenderSensor`, anything with a
  `.spec`): `form(mjx_env, state) -> (P, 3)`; None when MJX cannot afford its geometry."""
  if not supports(sensor.spec):
    return None

  def form(env, state):
    key = (sensor.spec, id(env.mj_model))
    hit = _FORMS.get(key)
    if hit is None or hit[0] is not env.mj_model:
      hit = (env.mj_model, MjxSensor(sensor.spec, env.mj_model))
      _FORMS[key] = hit
    return hit[1](env.model, state.data)

  return form
