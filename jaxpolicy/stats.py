"""Statistics of evaluations, shared by both evaluators (numpy only, no JAX)."""
from __future__ import annotations

import numpy as np


def latency_summary(ms) -> dict:
  """Per-call latency of an evaluation (ms, in call order from an episode's start): the
  steady state (every call after the first: mean, p90) and the first call apart (STEP's
  first call runs the teacher's sampler from noise)."""
  ms = np.asarray(ms, np.float64)
  steady = ms[1:] if len(ms) > 1 else ms
  return {"latency_ms": float(steady.mean()), "latency_ms_p90": float(np.percentile(steady, 90)),
          "latency_first_call_ms": float(ms[0])}


def stall_summary(stall_calls, calls: int) -> dict:
  """How often a carried sampler's stall branch fired: per episode, the fraction of calls."""
  frac = np.asarray(stall_calls, np.float64) / max(int(calls), 1)
  return {"stall_fraction": float(frac.mean()), "stall_fraction_per_episode": frac.tolist()}
