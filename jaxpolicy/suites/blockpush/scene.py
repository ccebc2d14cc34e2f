"""The blockpush scene: a pusher and two blocks on a plane, two targets, as one MJCF model.

The pusher is a sphere on two slide joints, driven by position actuators (kp 60, kv 6);
each block slides on x and y and turns about z, with viscous joint damping standing in for
floor friction (the blocks do not touch the floor, so the scene has no floor contacts and
only pusher-block and block-block contacts, which MJX handles as sphere-box and box-box).
A control step is SUBSTEPS physics steps of 5 ms: 10 Hz.
"""

from __future__ import annotations

import functools

import mujoco
import numpy as np

TARGETS = np.array([[-0.12, 0.15], [0.12, 0.15]], np.float32)  # target centres (m)
TARGET_RADIUS = 0.04  # a block whose centre is this close to a target is in it
BLOCK_HALF = 0.025  # half the side of a block (m)
PUSHER_RADIUS = 0.015
ACTION_SCALE = 0.02  # an action of 1 moves the actuator set point 2 cm from the pusher
WORKSPACE = 0.35  # the pusher's set points stay in [-WORKSPACE, WORKSPACE]^2
TIMESTEP = 0.005
SUBSTEPS = 20
CONTROL_HZ = 1.0 / (TIMESTEP * SUBSTEPS)
# qpos layout: pusher x, y | block0 x, y, yaw | block1 x, y, yaw
PUSHER, BLOCK0, BLOCK1 = slice(0, 2), slice(2, 5), slice(5, 8)

_BLOCK = """
    <body name="block{i}" pos="0 0 {half}">
      <joint name="block{i}_x" type="slide" axis="1 0 0" damping="3"/>
      <joint name="block{i}_y" type="slide" axis="0 1 0" damping="3"/>
      <joint name="block{i}_yaw" type="hinge" axis="0 0 1" damping="0.01"/>
      <geom name="block{i}" type="box" size="{half} {half} {half}" mass="0.1" rgba="{rgba}"/>
    </body>"""

_TARGET = """
    <site name="target{i}" type="ellipsoid" size="{r} {r} 0.004" pos="{x} {y} 0.004"
          rgba="{rgba}"/>"""


def xml() -> str:
  blocks = "".join(
    _BLOCK.format(i=i, half=BLOCK_HALF, rgba=c)
    for i, c in enumerate(("0.85 0.2 0.15 1", "0.15 0.3 0.85 1"))
  )
  targets = "".join(
    _TARGET.format(i=i, r=TARGET_RADIUS, x=x, y=y, rgba=c)
    for i, ((x, y), c) in enumerate(zip(TARGETS, ("0.3 0.75 0.3 0.7", "0.85 0.75 0.2 0.7")))
  )
  return f"""
<mujoco model="blockpush">
  <option timestep="{TIMESTEP}" iterations="8" ls_iterations="8"/>
  <visual><global offwidth="640" offheight="480"/></visual>
  <default><geom contype="1" conaffinity="1" friction="0.6 0.005 0.0001" solref="0.01 1"/>
  </default>
  <worldbody>
    <light pos="0 0 1.5" dir="0 0 -1" directional="true"/>
    <geom name="floor" type="plane" size="0.5 0.5 0.01" rgba="0.9 0.9 0.88 1" contype="0"
          conaffinity="0"/>
    <camera name="overhead" pos="0 -0.55 0.75" xyaxes="1 0 0 0 0.8 0.6" fovy="50"/>
    <camera name="top" pos="0 0 0.9" xyaxes="1 0 0 0 1 0" fovy="45"/>{targets}
    <body name="pusher" pos="0 0 0.02">
      <joint name="pusher_x" type="slide" axis="1 0 0" range="-{WORKSPACE} {WORKSPACE}"/>
      <joint name="pusher_y" type="slide" axis="0 1 0" range="-{WORKSPACE} {WORKSPACE}"/>
      <geom name="pusher" type="sphere" size="{PUSHER_RADIUS}" mass="0.2" rgba="0.2 0.2 0.2 1"/>
    </body>{blocks}
  </worldbody>
  <actuator>
    <position name="pusher_x" joint="pusher_x" kp="60" kv="6" ctrlrange="-{WORKSPACE} {WORKSPACE}"/>
    <position name="pusher_y" joint="pusher_y" kp="60" kv="6" ctrlrange="-{WORKSPACE} {WORKSPACE}"/>
  </actuator>
</mujoco>"""


@functools.lru_cache(maxsize=1)
def model() -> mujoco.MjModel:
  return mujoco.MjModel.from_xml_string(xml())


# each task's spread of the initial configuration around its centre (1 = the full ranges)
SPREAD = {"blockpush": 1.0, "blockpush-narrow": 0.1}
_CENTRE = np.array([0.0, -0.245, -0.105, -0.07, 0.0, 0.105, -0.07, 0.0])
_HALF = np.array([0.05, 0.025, 0.055, 0.05, np.pi / 4, 0.055, 0.05, np.pi / 4])


def initial_qpos(rng: np.random.Generator, task: str = "blockpush") -> np.ndarray:
  """A random initial configuration: the pusher near the bottom centre, block 0 on the left
  and block 1 on the right of the lower half, turned up to 45 degrees; `blockpush-narrow`
  draws from a tenth of those ranges (+-5 mm, +-4.5 degrees), so that many demonstrations
  start from nearly the same observation and take different modes from it."""
  return _CENTRE + SPREAD[task] * rng.uniform(-_HALF, _HALF)
