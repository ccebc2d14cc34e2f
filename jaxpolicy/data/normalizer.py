"""Per-channel min/max normaliser to [-1, 1] (Diffusion Policy's `LinearNormalizer`).

Channels whose range is below `range_eps` are shifted to 0 and not scaled. The fitted
values are plain lists, so a normaliser round-trips through JSON with the checkpoint.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class MinMax:
  scale: np.ndarray
  offset: np.ndarray

  @classmethod
  def fit(cls, x, range_eps: float = 1e-4) -> "MinMax":
    x = np.asarray(x, np.float64).reshape(-1, np.shape(x)[-1])
    lo, hi = x.min(0), x.max(0)
    rng = hi - lo
    const = rng < range_eps
    scale = np.where(const, 1.0, 2.0 / np.where(const, 1.0, rng))
    offset = np.where(const, -lo, -1.0 - scale * lo)
    return cls(scale.astype(np.float32), offset.astype(np.float32))

  def normalize(self, x):
    return x * self.scale + self.offset

  def unnormalize(self, y):
    return (y - self.offset) / self.scale

  def to_json(self):
    return {"scale": np.asarray(self.scale).tolist(), "offset": np.asarray(self.offset).tolist()}

  @classmethod
  def from_json(cls, d) -> "MinMax":
    return cls(np.asarray(d["scale"], np.float32), np.asarray(d["offset"], np.float32))


@dataclasses.dataclass(frozen=True)
class Normalizer:
  """One MinMax per field ("action" and each observation key)."""
  fields: dict

  def __getitem__(self, key) -> MinMax:
    return self.fields[key]

  def normalize_obs(self, obs: dict):
    return {k: self.fields[k].normalize(v) for k, v in obs.items()}

  def to_json(self):
    return {k: v.to_json() for k, v in self.fields.items()}

  @classmethod
  def from_json(cls, d) -> "Normalizer":
    return cls({k: MinMax.from_json(v) for k, v in d.items()})
