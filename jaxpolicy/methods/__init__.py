"""Training methods. Each module provides:

  NEEDS_TEACHER: bool
  init(config, nets, obs_shapes, rng, teacher_state) -> state  (a flax.struct dataclass)
  train_step(config, nets, state, batch, rng) -> (state, metrics)
  make_policies(config, nets, state, normalizer) -> {name: jaxpolicy.policy.PolicySpec}
                                      (normalizer: the run's, for samplers that need units)
  final_metrics(config, nets, state, data, policies) -> {policy name: {metric: value}}
                                                           (optional, after the final eval)

`teacher_state` is the trained teacher's state (a TeacherState) for distillation methods.
"""
from __future__ import annotations

import importlib

METHODS = ("teacher", "sdm", "cd", "step")


def get(name: str):
  if name not in METHODS:
    raise ValueError(f"unknown method {name!r}; choose one of {METHODS}")
  return importlib.import_module(f"jaxpolicy.methods.{name}")
