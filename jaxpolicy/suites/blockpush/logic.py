"""blockpush's task logic, written once for numpy and jax.numpy (`xp`): observations,
targets reached, the episode's mode, and the scripted oracle.

Modes: an episode's mode is its first arrival, "b<block>t<target>" (block 0 or 1 first into
target 0 or 1; the other block then belongs in the other target), or "none" when no block
reached a target (e.g. a policy that pushes between the blocks). p1: a block was in a target
at some step; p2 (success): both blocks in different targets at the same step.
"""

from __future__ import annotations

import numpy as np

from jaxpolicy.suites.blockpush import scene

MODES = ("b0t0", "b0t1", "b1t0", "b1t1", "none")
NO_ARRIVAL = len(MODES) - 1
STATE_DIM = 14  # pusher xy | block0 xy, sin 4yaw, cos 4yaw | block1 (same) | targets xy


def observation(xp, qpos):
  """The 14-d state of one environment (a square block looks the same every quarter turn:
  its yaw enters as sin and cos of 4 yaw)."""

  def block(s):
    yaw = 4.0 * qpos[s.stop - 1]
    return [qpos[s.start : s.stop - 1], xp.stack([xp.sin(yaw), xp.cos(yaw)])]

  return xp.concatenate(
    [
      qpos[scene.PUSHER],
      *block(scene.BLOCK0),
      *block(scene.BLOCK1),
      xp.asarray(scene.TARGETS.reshape(-1)),
    ]
  ).astype(xp.float32)


def agent_pos(xp, qpos):
  """The robot's own state: the pusher's position."""
  return qpos[scene.PUSHER].astype(xp.float32)


def blocks_of(xp, qpos):
  """(2, 2): the blocks' centres (x, y)."""
  return xp.stack([qpos[2:4], qpos[5:7]])


def positions_of_state(xp, state):
  """(pusher (2,), blocks (2, 2)) from the 14-d state (what the oracle needs)."""
  return state[0:2], xp.stack([state[2:4], state[6:8]])


def in_targets(xp, blocks):
  """(2 blocks, 2 targets) bool: a block's centre is within TARGET_RADIUS of the target."""
  dist = xp.linalg.norm(blocks[:, None, :] - xp.asarray(scene.TARGETS)[None], axis=-1)
  return dist < scene.TARGET_RADIUS


def both_in(xp, inside):
  """Both blocks in different targets (p2)."""
  return (inside[0, 0] & inside[1, 1]) | (inside[0, 1] & inside[1, 0])


def first_arrival(xp, arrival, inside):
  """The episode's mode index after a step: kept once set, else the first (block, target)
  pair inside (block-major order when several arrive in one step), else NO_ARRIVAL."""
  flat = inside.reshape(4)
  now = xp.where(flat.any(), xp.argmax(flat), NO_ARRIVAL)
  return xp.where(arrival == NO_ARRIVAL, now, arrival)


def set_point(xp, qpos, action):
  """The actuators' set point for an action (a delta from where the pusher is)."""
  a = xp.clip(xp.asarray(action, xp.float32), -1.0, 1.0)
  return xp.clip(qpos[scene.PUSHER] + a * scene.ACTION_SCALE, -scene.WORKSPACE, scene.WORKSPACE)


def oracle_choice(seed: int) -> tuple[int, int]:
  """The oracle's (first block, its target) for an episode: uniform over the four modes."""
  rng = np.random.default_rng([int(seed), 7])
  return int(rng.integers(2)), int(rng.integers(2))


def _push(xp, pusher, block, target):
  """An action that brings the pusher behind `block` (seen from `target`) and pushes it
  there: behind and aligned -> push through the block's centre, correcting sideways drift;
  beside or in front -> go around the side it is on; else -> the point behind it."""
  d = target - block
  d = d / xp.maximum(xp.linalg.norm(d), 1e-6)
  perp = xp.stack([-d[1], d[0]])
  rel = pusher - block
  along, lat = xp.sum(rel * d), xp.sum(rel * perp)
  contact = scene.BLOCK_HALF + scene.PUSHER_RADIUS
  clear = 1.5 * scene.BLOCK_HALF + scene.PUSHER_RADIUS + 0.015
  behind = (along < -contact + 0.008) & (xp.abs(lat) < 0.02)
  side = xp.where(lat >= 0, 1.0, -1.0)
  waypoint = xp.where(
    behind,
    block + 0.02 * d - 1.5 * lat * perp,
    xp.where(
      along > -contact + 0.008, block + side * clear * perp - 0.5 * clear * d, block - clear * d
    ),
  )
  return xp.clip((waypoint - pusher) / scene.ACTION_SCALE, -1.0, 1.0)


def oracle_action(xp, pusher, blocks, first, first_target):
  """The oracle's action (one environment): push block `first` into target `first_target`,
  then the other block into the other target; hold (zero) when both are in."""
  inside = in_targets(xp, blocks)
  targets = xp.asarray(scene.TARGETS)
  first_in = inside[first, first_target]
  a_first = _push(xp, pusher, blocks[first], targets[first_target])
  a_second = _push(xp, pusher, blocks[1 - first], targets[1 - first_target])
  action = xp.where(first_in, a_second, a_first)
  return xp.where(both_in(xp, inside), 0.0 * action, action).astype(xp.float32)
