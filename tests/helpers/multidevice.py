"""Trains a tiny teacher run on 8 fake CPU devices and on 1; prints the parameter diffs.

Run as a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=8 (the device
count is fixed when JAX starts). Usage: python tests/helpers/multidevice.py TMPDIR

Only the teacher: data parallelism lives in `training.make_train_step` (the global batch
sharded over the mesh, state replicated) and is the same for every method's train_step.
"""

import json
import os
import sys

import jax
import numpy as np

from configs import teacher as teacher_configs
from jaxpolicy import runs, training


def max_diff(a, b):
  return max(
    float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
  )


def main(tmp):
  assert jax.device_count() == 8, jax.devices()
  if os.environ.get("JAXPOLICY_CACHE_DIR"):  # the test session's cache (tests/conftest.py)
    jax.config.update("jax_compilation_cache_dir", os.environ["JAXPOLICY_CACHE_DIR"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  states = {}
  for n in (8, 1):
    c = teacher_configs.get_config("tiny")
    c.data.dir = os.path.join(tmp, "data")
    c.train.num_devices = n
    c.train.steps = 8
    c.eval.at_end = False  # parameters are compared, not success
    wd = os.path.join(tmp, f"teacher_{n}")
    training.train(c, wd)
    states[n] = runs.restore_run(wd).state
  out = {
    "teacher": max_diff(states[8], states[1]),
    "teacher_moved": max_diff(states[1].model.params, states[1].model.ema_params),
  }
  print("RESULT " + json.dumps(out))


if __name__ == "__main__":
  main(sys.argv[1])
