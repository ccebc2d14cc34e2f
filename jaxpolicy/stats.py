"""Statistics of evaluations, shared by both evaluators (numpy only, no JAX)."""

from __future__ import annotations

import numpy as np


def latency_summary(ms) -> dict:
  """Per-call latency of an evaluation (ms, in call order from an episode's start): the
  steady state (every call after the first: mean, p90) and the first call apart (STEP's
  first call runs the teacher's sampler from noise)."""
  ms = np.asarray(ms, np.float64)
  steady = ms[1:] if len(ms) > 1 else ms
  return {
    "latency_ms": float(steady.mean()),
    "latency_ms_p90": float(np.percentile(steady, 90)),
    "latency_first_call_ms": float(ms[0]),
  }


def calls_until_success(first_success_step, request_steps, calls: int) -> np.ndarray:
  """Per episode, the policy calls it made while running: an episode ends at its first
  success (success is "at any step"), so its calls are those requested at or before that
  step (`request_steps`: the control steps of the calls, in order); all `calls` if it
  never succeeded."""
  first = np.asarray(first_success_step)
  steps = np.sort(np.asarray(list(request_steps), np.int64))
  return np.where(first >= 0, np.searchsorted(steps, first, side="right"), int(calls))


def stall_summary(stall_calls, calls) -> dict:
  """How often a carried sampler's stall branch fired: per episode, the fraction of its
  calls (`calls`: per episode, `calls_until_success`, or one count for all)."""
  frac = np.asarray(stall_calls, np.float64) / np.maximum(np.asarray(calls, np.float64), 1)
  return {"stall_fraction": float(frac.mean()), "stall_fraction_per_episode": frac.tolist()}


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
  """The Wilson score interval of a success rate (95 % by default); (nan, nan) for n = 0."""
  if n <= 0:
    return float("nan"), float("nan")
  p = successes / n
  denom = 1.0 + z * z / n
  centre = (p + z * z / (2 * n)) / denom
  half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
  # the exact ends at 0 / n and n / n (rounding left 1 - 1e-16 at 200 of 200)
  lo = 0.0 if successes <= 0 else max(0.0, centre - half)
  hi = 1.0 if successes >= n else min(1.0, centre + half)
  return float(lo), float(hi)


def bootstrap_mean_interval(
  values, n_boot: int = 10_000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
  """(mean, low, high): the mean of `values` with a percentile bootstrap interval
  (resampling the values, e.g. one per task and seed, with replacement)."""
  v = np.asarray(values, np.float64)
  v = v[np.isfinite(v)]
  if len(v) == 0:
    return float("nan"), float("nan"), float("nan")
  idx = np.random.default_rng(seed).integers(0, len(v), size=(n_boot, len(v)))
  means = v[idx].mean(axis=1)
  a = (1.0 - level) / 2
  return float(v.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def sign_test(a_only: int, b_only: int) -> float:
  """Two-sided exact sign test on paired successes: the probability, were both policies
  equally good, of a split of the discordant episodes (a succeeds and b fails: `a_only`; the
  reverse: `b_only`) at least this uneven. 1.0 without discordant episodes."""
  n, k = a_only + b_only, min(a_only, b_only)
  if n == 0:
    return 1.0
  from math import comb  # pylint: disable=g-import-not-at-top

  return float(min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2**n))
