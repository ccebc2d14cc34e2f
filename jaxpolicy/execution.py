"""Executing action chunks in time that does not stop: the plan of actions per control step,
sync and async execution, stitching, and the schedule of a fixed delay (numpy or jax.numpy).

A chunk's `span` executed actions are laid on the plan from a base control step
(`install`); `action_at` gives a step's action or the hold command; `delay_steps` turns a
latency into control steps and `schedule` lists an episode's requests for a fixed delay;
`rtc_weights` is real-time chunking's guidance mask. Real-time evaluation and the robot
runner (jaxpolicy.robot) share it. The modes and stitchings: docs/realtime.md, "Chunks in
time".
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

MODES = ("sync", "async")
STITCHING = ("none", "ensemble", "rtc")
ENSEMBLE_M = 0.01  # ACT's temporal-ensembling decay


def delay_steps(latency_ms: float, control_hz: float) -> int:
  """Control steps that pass while a policy of `latency_ms` computes: ceil(L / period)."""
  if not (math.isfinite(latency_ms) and latency_ms >= 0):
    raise ValueError(f"latency must be a finite number of ms >= 0, got {latency_ms!r}")
  if not (math.isfinite(control_hz) and control_hz > 0):
    raise ValueError(f"control_hz must be > 0, got {control_hz!r}")
  return int(math.ceil(latency_ms * control_hz / 1000.0 - 1e-9))


@dataclasses.dataclass(frozen=True)
class Timing:
  """How chunks are executed: delay d (control steps), `span` actions per chunk, of which
  `n_action_steps` are executed per request, mode and stitching."""

  delay: int
  span: int
  n_action_steps: int
  mode: str = "sync"
  stitching: str = "none"

  def __post_init__(self):
    if self.mode not in MODES:
      raise ValueError(f"execution mode must be one of {MODES}, got {self.mode!r}")
    if self.stitching not in STITCHING:
      raise ValueError(f"stitching must be one of {STITCHING}, got {self.stitching!r}")
    if self.mode == "sync" and self.stitching != "none":
      raise ValueError(
        f"stitching {self.stitching!r} is for async execution; sync executes every chunk whole"
      )
    if self.delay < 0 or not 1 <= self.n_action_steps <= self.span:
      raise ValueError(f"need delay >= 0 and 1 <= n_action_steps <= span, got {self}")

  def check(self, episode_length: int) -> None:
    if self.delay >= episode_length:
      raise ValueError(
        f"a delay of {self.delay} control steps is not shorter than the "
        f"episode ({episode_length} steps): no action would ever execute"
      )

  @property
  def laid(self) -> int:
    """Actions of a chunk laid on the plan: sync executes n_action_steps, async offers all."""
    return self.n_action_steps if self.mode == "sync" else self.span


def schedule(timing: Timing, episode_length: int) -> list[tuple[int, int, int]]:
  """[(request step, arrival step, base step)] of every chunk of an episode with a fixed
  delay: sync requests when the previous chunk is used up, async every n_action_steps steps
  with one request in flight at a time."""
  d, s = timing.delay, timing.n_action_steps
  out, t = [], 0
  while t < episode_length:
    arrival = t + d
    out.append((t, arrival, arrival if timing.mode == "sync" else t))
    t = arrival + s if timing.mode == "sync" else max(t + s, arrival)
  return out


def rtc_weights(span: int, delay: int, n_action_steps: int) -> np.ndarray:
  """(span,) guidance weights of a new chunk (RTC's soft mask): 1 on the `delay` actions
  that execute while it computes (committed), decaying exponentially over the rest of the
  previous chunk's remaining actions, 0 on the new part (the last n_action_steps)."""
  w = np.zeros(span, np.float32)
  end = span - n_action_steps  # the previous chunk's actions run out here
  w[: min(delay, span)] = 1.0
  if end > delay:
    i = np.arange(delay, end)
    c = (end - i) / (end - delay + 1)
    w[delay:end] = c * np.expm1(c) / np.expm1(1.0)
  return w


def empty_plan(xp, batch: int, length: int, span: int, action_dim: int) -> dict:
  """Planned actions per control step (length + span slots), their ensembling weights and
  how many chunks planned each step."""
  return {
    "sum": xp.zeros((batch, length + span, action_dim), xp.float32),
    "weight": xp.zeros((length + span,), xp.float32),
    "count": xp.zeros((length + span,), xp.int32),
  }


def install(xp, plan: dict, chunk, base, now, timing: Timing) -> dict:
  """Lays `chunk` (B, span, A) on the plan from step `base`; steps before `now` (past) are
  skipped. `none` replaces what was planned from `now` on; `ensemble` adds it with ACT's
  weight (exp(-m i) for the i-th chunk planning a step)."""
  slots = plan["weight"].shape[0]
  steps = xp.arange(slots)
  laid = timing.laid
  new = (steps >= base) & (steps < base + laid) & (steps >= now)
  idx = xp.clip(steps - base, 0, chunk.shape[1] - 1)
  values = xp.take(chunk, idx, axis=1)  # (B, slots, A)
  m = new.astype(xp.float32)
  if timing.stitching == "ensemble":
    w = xp.exp(-ENSEMBLE_M * plan["count"].astype(xp.float32)) * m
    return {
      "sum": plan["sum"] + w[None, :, None] * values,
      "weight": plan["weight"] + w,
      "count": plan["count"] + new.astype(xp.int32),
    }
  past = steps < now  # replace: the old plan ends at `now`
  keep = past.astype(xp.float32)
  return {
    "sum": plan["sum"] * keep[None, :, None] + m[None, :, None] * values,
    "weight": plan["weight"] * keep + m,
    "count": plan["count"] * past.astype(xp.int32) + new.astype(xp.int32),
  }


def action_at(xp, plan: dict, t, hold):
  """(B, A) action of step t: the plan's (weighted mean), else `hold` (B, A)."""
  w = plan["weight"][t]
  planned = plan["sum"][:, t] / xp.maximum(w, 1e-12)
  return xp.where(w > 0, planned, hold), w > 0


def committed(xp, plan: dict, base, span: int):
  """((B, span, A) the plan's actions for steps base .. base + span - 1, (span,) whether
  the plan has one): what a new chunk requested at `base` must agree with (rtc)."""
  slots = plan["weight"].shape[0]
  idx = xp.clip(base + xp.arange(span), 0, slots - 1)
  w = plan["weight"][idx]
  values = xp.take(plan["sum"], idx, axis=1) / xp.maximum(w, 1e-12)[None, :, None]
  return values, w > 0
