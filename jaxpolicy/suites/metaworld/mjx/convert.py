"""MetaWorld v3 task models converted at load time so that MuJoCo MJX accepts them.

`convert_model(task)` loads the task's own MJCF from the installed `metaworld` package
through `mujoco.MjSpec` (no edited XML copies) and changes it in four ways: cylinders become
16-sided prisms keeping their bodies' mass and inertia, margins and gaps become 0,
collidable meshes keep at most 32 hull vertices, and MetaWorld's mocap welds are written as
its reset writes them. `converted_geom_frames(task)` keeps the cylinders' original frames
for observations. Each change, why, and how bodies are matched: docs/environments.md,
"MetaWorld in MJX" (The conversion); the summary is in docs/design.md.
"""

from __future__ import annotations

import copy
import functools

import mujoco
import numpy as np


PRISM_SIDES = 16
MAX_HULL_VERTICES = 32
# The conversion's steps; a subset gives a C-MuJoCo-only model that isolates one step's effect
# on the physics (scripts/diagnose_mjx_gap.py). mjx.put_model needs all of them.
STEPS = ("prisms", "margins", "hulls")
# MetaWorld's weld data: anchor 0, relative pose (0, 0, 0, -1, 0, 0, 0), torque scale 5.
WELD_DATA = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 5.0])


def model_path(task: str) -> str:
  """Path of the MJCF file MetaWorld itself loads for `task`."""
  from metaworld.env_dict import ALL_V3_ENVIRONMENTS  # pylint: disable=g-import-not-at-top

  cls = ALL_V3_ENVIRONMENTS[f"{task}-v3"]
  return cls.model_name.fget(None)


def _depth_first(body, out):
  out.append(body)
  for child in body.bodies:
    _depth_first(child, out)
  return out


def _collidable(geom) -> bool:
  return bool(geom.contype or geom.conaffinity)


def prism_vertices(radius: float, half_height: float, sides: int = PRISM_SIDES) -> np.ndarray:
  """Vertices (2 * sides, 3) of a regular prism with the cross-section area of the circle."""
  # area of a regular n-gon with circumradius R: n/2 R^2 sin(2 pi / n) = pi r^2
  circum = radius * np.sqrt(2.0 * np.pi / (sides * np.sin(2.0 * np.pi / sides)))
  ang = 2.0 * np.pi * np.arange(sides) / sides
  ring = np.stack([circum * np.cos(ang), circum * np.sin(ang)], -1)
  top = np.concatenate([ring, np.full((sides, 1), half_height)], -1)
  bottom = np.concatenate([ring, np.full((sides, 1), -half_height)], -1)
  return np.concatenate([top, bottom]).astype(np.float64)


def keep_inertia(body, original: mujoco.MjModel, body_id: int):
  """Pins a spec body's inertial to its compiled original (mass, centre of mass, principal
  inertia), so that replacing its geoms does not change its dynamics."""
  body.explicitinertial = True
  body.mass = float(original.body_mass[body_id])
  body.ipos = original.body_ipos[body_id].copy()
  body.iquat = original.body_iquat[body_id].copy()
  body.inertia = original.body_inertia[body_id].copy()
  body.fullinertia = np.full(6, np.nan)


def _check_steps(steps) -> tuple:
  unknown = set(steps) - set(STEPS)
  if unknown:
    raise ValueError(f"unknown conversion steps {sorted(unknown)}; known: {STEPS}")
  return tuple(s for s in STEPS if s in steps)


def convert_spec(
  spec: mujoco.MjSpec, original: mujoco.MjModel | None = None, steps=STEPS
) -> mujoco.MjSpec:
  """Applies the conversion to `spec` in place (see the module docstring); returns it.

  `original`: the spec compiled unchanged (compiled here when not given). `steps`: which of
  STEPS to apply ("prisms": cylinders to prisms, "margins": margin and gap to 0, "hulls":
  collidable mesh hulls capped at MAX_HULL_VERTICES)."""
  steps = _check_steps(steps)
  original = original if original is not None else spec.compile()
  bodies = _depth_first(spec.worldbody, [])
  if len(bodies) != original.nbody:
    raise RuntimeError(f"spec has {len(bodies)} bodies, the compiled model {original.nbody}")
  geom_id = 0
  collidable_meshes = set()
  n_prisms = 0
  for body_id, body in enumerate(bodies):
    if body.name != original.body(body_id).name:
      raise RuntimeError(
        f"body order mismatch at {body_id}: {body.name!r} vs {original.body(body_id).name!r}"
      )
    converted = False
    for geom in body.geoms:
      if geom.name and geom.name != original.geom(geom_id).name:
        raise RuntimeError(f"geom order mismatch at {geom_id}: {geom.name!r}")
      if "margins" in steps:
        geom.margin = 0.0
        geom.gap = 0.0
      if _collidable(geom) and geom.type == mujoco.mjtGeom.mjGEOM_MESH:
        collidable_meshes.add(geom.meshname)
      if "prisms" in steps and _collidable(geom) and geom.type == mujoco.mjtGeom.mjGEOM_CYLINDER:
        radius, half_height = original.geom_size[geom_id][:2]
        name = f"mjx_prism_{n_prisms}"
        n_prisms += 1
        spec.add_mesh(name=name, uservert=prism_vertices(radius, half_height).ravel().tolist())
        geom.type = mujoco.mjtGeom.mjGEOM_MESH
        geom.meshname = name
        geom.pos = original.geom_pos[geom_id].copy()
        geom.quat = original.geom_quat[geom_id].copy()
        converted = True
      geom_id += 1
    if converted and body_id > 0:
      keep_inertia(body, original, body_id)
  if geom_id != original.ngeom:
    raise RuntimeError(f"visited {geom_id} geoms, the compiled model has {original.ngeom}")
  for mesh in spec.meshes:
    if "hulls" in steps and mesh.name in collidable_meshes:
      mesh.maxhullvert = MAX_HULL_VERTICES
  return spec


def set_mocap_welds(model: mujoco.MjModel) -> mujoco.MjModel:
  """MetaWorld's `reset_mocap_welds`: every weld's data = WELD_DATA (in place)."""
  for i in range(model.neq):
    if model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
      model.eq_data[i, : WELD_DATA.size] = WELD_DATA
  return model


@functools.lru_cache(maxsize=None)
def _original(path: str) -> mujoco.MjModel:
  return mujoco.MjModel.from_xml_path(path)


@functools.lru_cache(maxsize=None)
def _compiled(
  path: str, max_contact_points: int, max_geom_pairs: int, steps: tuple = STEPS
) -> mujoco.MjModel:
  spec = convert_spec(mujoco.MjSpec.from_file(path), _original(path), steps)
  # MJX reads these custom numerics: keep the closest geom pairs / contact points only
  if max_contact_points > 0:
    spec.add_numeric(name="max_contact_points", data=[float(max_contact_points)])
  if max_geom_pairs > 0:
    spec.add_numeric(name="max_geom_pairs", data=[float(max_geom_pairs)])
  return set_mocap_welds(spec.compile())


def convert_model(
  task: str, max_contact_points: int = 0, max_geom_pairs: int = 0, steps=STEPS
) -> mujoco.MjModel:
  """The MJX-ready `mujoco.MjModel` of a MetaWorld v3 task (e.g. "drawer-open").

  Accepted by `mujoco.mjx.put_model`; body masses and inertias equal the original model's.
  `max_contact_points` / `max_geom_pairs` > 0 add MJX's optional limits (the closest contact
  points per condim group / geom pairs per collision function are kept; exact while fewer
  are active, much smaller constraint problems); 0 keeps every candidate (the default).
  `steps`: a subset of STEPS gives a partly converted model for C MuJoCo (diagnostics; MJX
  refuses most of them). Returns a fresh copy on every call (cached per file and settings).
  """
  return copy.copy(
    _compiled(model_path(task), int(max_contact_points), int(max_geom_pairs), _check_steps(steps))
  )


@functools.lru_cache(maxsize=None)
def converted_geom_frames(task: str) -> dict:
  """{geom id: (pos (3,), rotation (3, 3))}: the original body-frame pose of every geom that
  became a prism mesh. MuJoCo re-centres and re-orients meshes on their principal axes, so
  a prism's compiled frame can differ from the cylinder's (e.g. reach-wall's object);
  observations that read a geom's frame use these (jaxpolicy.envs.mjx.tasks.Sim)."""
  path = model_path(task)
  conv, orig = _compiled(path, 0, 0), _original(path)
  out = {}
  for g in np.nonzero(conv.geom_type != orig.geom_type)[0]:
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, orig.geom_quat[g])
    out[int(g)] = (orig.geom_pos[g].copy(), mat.reshape(3, 3))
  return out


def original_model(task: str) -> mujoco.MjModel:
  """The unconverted task model as MetaWorld loads it (welds set), a fresh copy."""
  return set_mocap_welds(copy.copy(_original(model_path(task))))
