import os
import tempfile

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("XLA_FLAGS", "")
if "xla_cpu_use_fusion_emitters" not in os.environ["XLA_FLAGS"]:  # MJX on CPU (test_mjx.py)
  os.environ["XLA_FLAGS"] += " --xla_cpu_use_fusion_emitters=false"
# The suite is mostly compile-bound (tiny programs, few steps), but its learning tests run
# hundreds of steps. LLVM's level 1 compiles nearly as fast as level 0 and runs nearly as fast
# as the default: tests/test_sdm.py + test_cd.py 44 s at level 0, 50 s at 1; the rgb
# learning test's train step 0.18 steps/s at level 0, 3.5 at 1, 3.9 at the default.
# Subprocesses inherit it, so runs compared across processes use the same code.
if "xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=1"
# One persistent XLA cache for the session (and the subprocesses the tests start): the
# same tiny programs are compiled by many tests.
os.environ.setdefault("JAXPOLICY_CACHE_DIR", tempfile.mkdtemp(prefix="jaxpolicy_test_xla_"))

import jax  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

jax.config.update("jax_compilation_cache_dir", os.environ["JAXPOLICY_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

# The point-mass suite of tests/helpers is registered for every test and, through
# JAXPOLICY_SUITES, for the commands the tests start: the fast environment of the pipeline
# tests (tests/test_suites.py shows a suite joining and leaving from its own files).
_TESTS = os.path.dirname(os.path.abspath(__file__))
os.environ["JAXPOLICY_SUITES"] = "helpers.pointmass"
os.environ["PYTHONPATH"] = os.pathsep.join(
  p for p in (_TESTS, os.environ.get("PYTHONPATH", "")) if p
)

from helpers import pointmass  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from jaxpolicy import suites  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

suites.register(pointmass.INFO)
