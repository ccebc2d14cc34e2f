"""Per-task observation layout and success predicates of the MetaWorld v3 tasks, in JAX.

Each task's `TaskSpec` names the objects that fill the 14 object slots of MetaWorld's 18-d
frame and computes `evaluate_state(...)["success"]` from the observation, the target and
simulator quantities (`Sim`, over an `mjx.Data`), reading them where MetaWorld reads them
from `mujoco.MjData`. All 50 were checked against MetaWorld on identical states;
`tests/test_mjx.py` repeats it for a few. Where the ports follow `evaluate_state` rather
than the reward, and stick-push's contact forces: docs/environments.md, "MetaWorld in MJX"
(Resets and success).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp
import mujoco
import numpy as np

OBJ_SLOTS = 14  # MetaWorld's `_obs_obj_max_len`
FRAME_DIM = 18  # hand (3) + gripper opening (1) + object slots (14)
OBS_DIM = 39  # current frame + previous frame + goal (3)


@dataclasses.dataclass(frozen=True)
class Pos:
  """An object position: `kind` in body (xpos; gymnasium's get_body_com), geom (geom_xpos),
  site (site_xpos) or dial (the dial-turn knob's push point), plus a constant offset."""

  kind: str
  name: str
  offset: tuple = (0.0, 0.0, 0.0)


@dataclasses.dataclass(frozen=True)
class Quat:
  """An object orientation: body (MuJoCo xquat, w first), body_mat / geom_mat / site_mat
  (scipy's `Rotation.from_matrix(xmat).as_quat()`, x y z w), or const (`value`)."""

  kind: str
  name: str = ""
  value: tuple = ()


ZERO_QUAT = Quat("const", value=(0.0, 0.0, 0.0, 0.0))


class Sim:
  """Named read access to an `mjx.Data` (ids resolved once from the MjModel).

  geom_frames: {geom id: (pos, rotation)} original body-frame poses of converted geoms
  (convert.converted_geom_frames): their frames are read as MetaWorld's cylinder had them.
  """

  def __init__(self, model: mujoco.MjModel, data, geom_frames=None):
    self._m, self.d = model, data
    self._frames = geom_frames or {}

  def _geom_frame(self, name):
    g = self._m.geom(name).id
    if g not in self._frames:
      return self.d.geom_xpos[g], self.d.geom_xmat[g].reshape(3, 3)
    pos, rot = self._frames[g]
    b = self._m.geom_bodyid[g]
    bmat = self.d.xmat[b].reshape(3, 3)
    return self.d.xpos[b] + bmat @ jnp.asarray(pos, jnp.float32), bmat @ jnp.asarray(
      rot, jnp.float32
    )

  def body_pos(self, name):
    return self.d.xpos[self._m.body(name).id]

  def body_quat(self, name):
    return self.d.xquat[self._m.body(name).id]

  def body_mat(self, name):
    return self.d.xmat[self._m.body(name).id]

  def geom_pos(self, name):
    return self._geom_frame(name)[0]

  def geom_mat(self, name):
    return self._geom_frame(name)[1]

  def site_pos(self, name):
    return self.d.site_xpos[self._m.site(name).id]

  def pad_force(self, pad: str, obj: str):
    """MetaWorld's `touching_object` sum for one pad: the constraint force at `efc_address`
    of every contact between geoms `pad` and `obj` (needs `mjx.forward`, not kinematics).
    MJX's contact list has a fixed size; its entries out of range carry zero force."""
    g1, g2 = self.d.contact.geom[:, 0], self.d.contact.geom[:, 1]
    a, b = self._m.geom(pad).id, self._m.geom(obj).id
    pair = ((g1 == a) & (g2 == b)) | ((g1 == b) & (g2 == a))
    addr = self.d.contact.efc_address
    force = self.d.efc_force[jnp.clip(addr, 0, None)]
    return jnp.sum(jnp.where(pair & (addr >= 0), force, 0.0))

  def touching(self, obj: str):
    """MetaWorld's `touching_object`: both gripper pads push on geom `obj`."""
    return (self.pad_force("leftpad_geom", obj) > 0) & (self.pad_force("rightpad_geom", obj) > 0)

  def site_mat(self, name):
    return self.d.site_xmat[self._m.site(name).id]

  def qpos(self, joint):
    return self.d.qpos[self._m.joint(joint).qposadr[0]]

  def tcp_center(self):
    return (self.site_pos("rightEndEffector") + self.site_pos("leftEndEffector")) / 2.0


def quat_from_matrix(mat):
  """scipy's `Rotation.from_matrix(m).as_quat()` (x, y, z, w; same branch and sign rule).

  Where two branches tie exactly (e.g. a 90-degree turn about one axis) float32 rounding
  can pick the other one, giving -q: the same rotation with the opposite sign."""
  m = jnp.reshape(mat, (3, 3))
  trace = m[0, 0] + m[1, 1] + m[2, 2]
  cands = []
  for i in range(3):
    j, k = (i + 1) % 3, (i + 2) % 3
    q = [None] * 4
    q[i] = 1.0 - trace + 2.0 * m[i, i]
    q[j] = m[j, i] + m[i, j]
    q[k] = m[k, i] + m[i, k]
    q[3] = m[k, j] - m[j, k]
    cands.append(jnp.stack(q))
  cands.append(jnp.stack([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1], 1.0 + trace]))
  choice = jnp.argmax(jnp.stack([m[0, 0], m[1, 1], m[2, 2], trace]))
  q = jnp.stack(cands)[choice]
  return q / jnp.linalg.norm(q)


def object_pos(sim: Sim, spec: Pos):
  off = jnp.asarray(spec.offset, jnp.float32)
  if spec.kind == "body":
    return sim.body_pos(spec.name) + off
  if spec.kind == "geom":
    return sim.geom_pos(spec.name) + off
  if spec.kind == "site":
    return sim.site_pos(spec.name) + off
  if spec.kind == "dial":  # SawyerDialTurnEnvV3._get_pos_objects
    angle = sim.qpos("knob_Joint_1")
    offset = jnp.stack([jnp.sin(angle), -jnp.cos(angle), 0.0 * angle])
    return sim.body_pos(spec.name) + 0.05 * offset
  raise ValueError(f"unknown position kind {spec.kind!r}")


def object_quat(sim: Sim, spec: Quat):
  if spec.kind == "body":
    return sim.body_quat(spec.name)
  if spec.kind == "body_mat":
    return quat_from_matrix(sim.body_mat(spec.name))
  if spec.kind == "geom_mat":
    return quat_from_matrix(sim.geom_mat(spec.name))
  if spec.kind == "site_mat":
    return quat_from_matrix(sim.site_mat(spec.name))
  if spec.kind == "const":
    return jnp.asarray(spec.value, jnp.float32)
  raise ValueError(f"unknown orientation kind {spec.kind!r}")


def current_frame(sim: Sim, objects) -> jnp.ndarray:
  """MetaWorld's `_get_curr_obs_combined_no_goal`: the 18-d current frame."""
  hand = sim.body_pos("hand")
  fingers = jnp.linalg.norm(sim.body_pos("rightclaw") - sim.body_pos("leftclaw"))
  gripper = jnp.clip(fingers / 0.1, 0.0, 1.0)
  parts = []
  for pos, quat in objects:
    parts += [object_pos(sim, pos), object_quat(sim, quat)]
  obj = jnp.concatenate(parts)
  obj = jnp.pad(obj, (0, OBJ_SLOTS - obj.shape[0]))
  return jnp.concatenate([hand, gripper[None], obj]).astype(jnp.float32)


# --- success predicates: (obs (39,), target (3,), sim) -> bool -----------------------------


def _dist(scale=(1.0, 1.0, 1.0), thr=0.05, offset=(0.0, 0.0, 0.0), strict=False):
  """||(obs[4:7] + offset - target) * scale|| <= thr (`<` when strict)."""

  def pred(obs, target, sim):
    del sim
    e = (obs[4:7] + jnp.asarray(offset) - target) * jnp.asarray(scale)
    d = jnp.linalg.norm(e)
    return d < thr if strict else d <= thr

  return pred


def _axis(axis, thr):
  """|obs[4 + axis] - target[axis]| <= thr."""

  def pred(obs, target, sim):
    del sim
    return jnp.abs(obs[4 + axis] - target[axis]) <= thr

  return pred


def _tcp_reach(obs, target, sim):
  del obs
  return jnp.linalg.norm(sim.tcp_center() - target) <= 0.05


def _basketball(obs, target, sim):
  del sim
  goal = target.at[2].set(0.3)  # "slightly above the hoop"
  return jnp.linalg.norm((obs[4:7] - goal) * jnp.asarray([1.0, 1.0, 2.0])) <= 0.08


def _assembly(obs, target, sim):
  del obs
  err = target - sim.site_pos("RoundNut")
  return (jnp.linalg.norm(err[:2]) < 0.02) & (err[2] > 0.0)


def _disassemble(obs, target, sim):
  del sim
  return obs[6] > target[2]


def _hammer(obs, target, sim):
  del obs, target
  return sim.qpos("NailSlideJoint") > 0.09


def _lever(obs, target, sim):
  del obs, target
  return jnp.abs(-sim.qpos("LeverAxis") - np.pi / 2.0) <= np.pi / 24.0


def _peg_insert(obs, target, sim):
  del obs
  e = (sim.site_pos("pegHead") - target) * jnp.asarray([1.0, 2.0, 2.0])
  return jnp.linalg.norm(e) <= 0.07


def _stick_pull(obs, target, sim):
  handle = obs[11:14]
  end = sim.site_pos("stick_end")
  inserted = (
    (end[0] >= handle[0])
    & (jnp.abs(end[1] - handle[1]) <= 0.04)
    & (jnp.abs(end[2] - handle[2]) <= 0.06)
  )
  return (jnp.linalg.norm(handle - target) <= 0.12) & inserted


# MetaWorld's stick_init_pos height (init_config["stick_init_pos"][2]; x, y are random but
# only the height enters the predicate)
STICK_PUSH_INIT_Z = 0.02


def _stick_push(obs, target, sim):
  stick, container = obs[4:7], obs[11:14]
  placed = jnp.linalg.norm(container - target) <= 0.12
  grasped = sim.touching("objGeom") & (obs[3] > 0) & (stick[2] - 0.01 > STICK_PUSH_INIT_Z)
  return placed & grasped


def _sweep_into(obs, target, sim):
  del sim
  goal = jnp.stack([target[0], target[1], obs[6]])
  return jnp.linalg.norm(obs[4:7] - goal) <= 0.05


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  objects: tuple  # ((Pos, Quat), ...)
  success: Callable  # (obs, target, sim) -> bool
  needs_forward: bool = False  # success reads constraint forces: observe after mjx.forward


def _one(pos, quat, success):
  return TaskSpec(((pos, quat),), success)


_OBJ_GEOM = (Pos("body", "obj"), Quat("geom_mat", "objGeom"))
_PUCK = (Pos("geom", "puck"), Quat("geom_mat", "puck"))
_PLACE = _dist(thr=0.07)

SPECS = {
  "assembly": _one(Pos("site", "RoundNut-8"), Quat("body", "RoundNut"), _assembly),
  "basketball": _one(Pos("body", "bsktball"), Quat("body", "bsktball"), _basketball),
  "bin-picking": _one(Pos("body", "obj"), Quat("body", "obj"), _dist(thr=0.05)),
  "box-close": _one(
    Pos("body", "top_link"), Quat("body", "top_link"), _dist(thr=0.08, strict=True)
  ),
  "button-press": _one(
    Pos("body", "button", (0.0, -0.193, 0.0)), Quat("body", "button"), _axis(1, 0.02)
  ),
  "button-press-topdown": _one(
    Pos("body", "button", (0.0, 0.0, 0.193)), Quat("body", "button"), _axis(2, 0.024)
  ),
  "button-press-topdown-wall": _one(
    Pos("body", "button", (0.0, 0.0, 0.193)), Quat("body", "button"), _axis(2, 0.024)
  ),
  "button-press-wall": _one(
    Pos("body", "button", (0.0, -0.193, 0.0)), Quat("body", "button"), _axis(1, 0.03)
  ),
  "coffee-button": _one(
    Pos("site", "buttonStart"), Quat("const", value=(1.0, 0.0, 0.0, 0.0)), _axis(1, 0.02)
  ),
  "coffee-pull": _one(Pos("body", "obj"), Quat("geom_mat", "mug"), _PLACE),  # unscaled
  "coffee-push": _one(Pos("body", "obj"), Quat("geom_mat", "mug"), _PLACE),  # unscaled
  "dial-turn": _one(Pos("dial", "dial"), Quat("body", "dial"), _dist(thr=0.07)),
  "disassemble": _one(Pos("site", "RoundNut-8"), Quat("body", "RoundNut"), _disassemble),
  "door-close": _one(Pos("geom", "handle"), Quat("geom_mat", "handle"), _dist(thr=0.08)),
  "door-lock": _one(Pos("site", "lockStartLock"), Quat("body", "door_link"), _axis(2, 0.02)),
  "door-open": _one(Pos("geom", "handle"), Quat("geom_mat", "handle"), _axis(0, 0.08)),
  "door-unlock": _one(Pos("site", "lockStartUnlock"), Quat("body", "door_link"), _axis(0, 0.02)),
  "drawer-close": _one(
    Pos("body", "drawer_link", (0.0, -0.16, 0.05)), ZERO_QUAT, _dist(thr=0.05 + 0.015)
  ),
  "drawer-open": _one(
    Pos("body", "drawer_link", (0.0, -0.16, 0.0)), Quat("body", "drawer_link"), _dist(thr=0.03)
  ),
  "faucet-close": _one(
    Pos("site", "handleStartClose", (0.0, 0.0, -0.01)), Quat("body", "faucetBase"), _dist(thr=0.07)
  ),
  "faucet-open": _one(
    Pos("site", "handleStartOpen", (0.0, 0.0, -0.01)),
    Quat("body", "faucetBase"),
    _dist(thr=0.07, offset=(-0.04, 0.0, 0.03)),
  ),
  "hammer": TaskSpec(
    (
      (Pos("body", "hammer"), Quat("body", "hammer")),
      (Pos("body", "nail_link"), Quat("body", "nail_link")),
    ),
    _hammer,
  ),
  "hand-insert": _one(Pos("body", "obj"), Quat("body", "obj"), _dist(thr=0.05)),
  "handle-press": _one(Pos("site", "handleStart"), ZERO_QUAT, _axis(2, 0.02)),
  "handle-press-side": _one(Pos("site", "handleStart"), ZERO_QUAT, _axis(2, 0.02)),
  "handle-pull": _one(Pos("site", "handleRight"), ZERO_QUAT, _axis(2, 0.05)),
  "handle-pull-side": _one(Pos("site", "handleCenter"), ZERO_QUAT, _dist(thr=0.08)),
  "lever-pull": _one(Pos("site", "leverStart"), Quat("geom_mat", "objGeom"), _lever),
  "peg-insert-side": _one(Pos("site", "pegGrasp"), Quat("site_mat", "pegGrasp"), _peg_insert),
  "peg-unplug-side": _one(Pos("site", "pegEnd"), Quat("body", "plug1"), _PLACE),
  "pick-out-of-hole": _one(Pos("body", "obj"), Quat("body", "obj"), _PLACE),
  "pick-place": TaskSpec((_OBJ_GEOM,), _PLACE),
  "pick-place-wall": _one(Pos("geom", "objGeom"), Quat("geom_mat", "objGeom"), _PLACE),
  "plate-slide": TaskSpec((_PUCK,), _PLACE),
  "plate-slide-back": TaskSpec((_PUCK,), _PLACE),
  "plate-slide-back-side": TaskSpec((_PUCK,), _PLACE),
  "plate-slide-side": TaskSpec((_PUCK,), _PLACE),
  "push": TaskSpec((_OBJ_GEOM,), _dist(thr=0.05)),
  "push-back": _one(Pos("geom", "objGeom"), Quat("geom_mat", "objGeom"), _PLACE),
  "push-wall": _one(Pos("geom", "objGeom"), Quat("geom_mat", "objGeom"), _PLACE),
  "reach": TaskSpec((_OBJ_GEOM,), _tcp_reach),
  "reach-wall": TaskSpec((_OBJ_GEOM,), _tcp_reach),
  "shelf-place": TaskSpec((_OBJ_GEOM,), _PLACE),
  "soccer": _one(Pos("body", "soccer_ball"), Quat("body_mat", "soccer_ball"), _PLACE),
  "stick-pull": TaskSpec(
    ((Pos("body", "stick"), Quat("body_mat", "stick")), (Pos("site", "insertion"), ZERO_QUAT)),
    _stick_pull,
  ),
  "stick-push": TaskSpec(
    (
      (Pos("body", "stick"), Quat("body_mat", "stick")),
      (Pos("site", "insertion", (0.0, 0.09, 0.0)), ZERO_QUAT),
    ),
    _stick_push,
    needs_forward=True,
  ),
  "sweep": _one(Pos("body", "obj"), Quat("body", "obj"), _dist(thr=0.05)),
  "sweep-into": TaskSpec((_OBJ_GEOM,), _sweep_into),
  "window-close": _one(Pos("site", "handleCloseStart"), ZERO_QUAT, _axis(0, 0.05)),
  "window-open": _one(Pos("site", "handleOpenStart"), ZERO_QUAT, _axis(0, 0.05)),
}


def spec(task: str) -> TaskSpec:
  """The task's observation layout and success predicate."""
  return SPECS[task]
