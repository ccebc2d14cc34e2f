"""Noise schedule and timestep grids (diffusers `DDIMScheduler` semantics, >= 0.12).

Everything here is plain numpy computed once in float64 and handed to JAX as
float32 constants, so a schedule is a static value of a compiled program.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

SPACINGS = ("leading", "trailing")
PREDICTION_TYPES = ("sample", "epsilon")


def cosine_betas(num_train_timesteps: int, max_beta: float = 0.999) -> np.ndarray:
  """`squaredcos_cap_v2`: betas of the cosine alpha-bar schedule, capped."""

  def alpha_bar(t):
    return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

  n = num_train_timesteps
  return np.array(
    [min(1.0 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)],
    dtype=np.float64,
  )


@dataclasses.dataclass(frozen=True)
class Schedule:
  """The training schedule: T steps and their cumulative alpha products."""

  num_train_timesteps: int = 100
  prediction_type: str = "sample"
  clip_sample: bool = True

  def __post_init__(self):
    if self.prediction_type not in PREDICTION_TYPES:
      raise ValueError(
        f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}"
      )
    if self.num_train_timesteps < 2:
      raise ValueError("num_train_timesteps must be >= 2")

  @property
  def alphas_cumprod(self) -> np.ndarray:
    """alpha-bar_t for t = 0..T-1, float64."""
    return np.cumprod(1.0 - cosine_betas(self.num_train_timesteps))

  def abar_with_one(self) -> np.ndarray:
    """alpha-bar with a final entry 1.0, so index -1 (prev_t < 0) is `set_alpha_to_one`."""
    return np.concatenate([self.alphas_cumprod, [1.0]])


def timesteps(num_train_timesteps: int, num_steps: int, spacing: str = "leading") -> np.ndarray:
  """The k-step DDIM grid, descending, as diffusers' `set_timesteps` builds it."""
  T, k = num_train_timesteps, num_steps
  if not 1 <= k <= T:
    raise ValueError(f"num_steps must be in [1, {T}], got {k}")
  if spacing == "leading":
    ratio = T // k
    ts = (np.arange(0, k) * ratio).round()[::-1]
  elif spacing == "trailing":
    ratio = T / k
    ts = np.round(np.arange(T, 0, -ratio)) - 1
  else:
    raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
  return ts.astype(np.int32)


def prev_timesteps(ts: np.ndarray, num_train_timesteps: int, num_steps: int) -> np.ndarray:
  """diffusers' DDIM: prev_t = t - T // k (negative means alpha-bar = 1)."""
  return (np.asarray(ts) - num_train_timesteps // num_steps).astype(np.int32)
