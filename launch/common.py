"""Shared set-up for the entry points: logging, compilation cache, clean error exits."""
from __future__ import annotations

import os
import sys

from absl import logging


def setup():
  """Environment defaults, jaxpolicy's INFO log on stderr (libraries' only from WARNING)."""
  os.environ.setdefault("MUJOCO_GL", "egl")
  logging.set_verbosity(logging.WARNING)
  import logging as py_logging  # pylint: disable=g-import-not-at-top
  log = py_logging.getLogger("jaxpolicy")
  if not log.handlers:
    handler = py_logging.StreamHandler(sys.stderr)
    handler.setFormatter(py_logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
  log.setLevel(py_logging.INFO)
  log.propagate = False
  import jax  # pylint: disable=g-import-not-at-top
  cache = os.environ.get("JAXPOLICY_CACHE_DIR",
                         os.path.join(os.path.expanduser("~"), ".cache", "jaxpolicy", "xla"))
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def run_guarded(fn):
  """Runs fn; known bad-input errors exit non-zero with one line, not a traceback."""
  from jaxpolicy.data.storage import DatasetError  # pylint: disable=g-import-not-at-top
  from jaxpolicy.train.checkpoint import CheckpointError  # pylint: disable=g-import-not-at-top
  from jaxpolicy.train.loop import NonFiniteLoss  # pylint: disable=g-import-not-at-top
  try:
    return fn()
  except (ValueError, FileNotFoundError, DatasetError, CheckpointError, NonFiniteLoss) as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
