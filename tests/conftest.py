import os
import tempfile

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("XLA_FLAGS", "")
if "xla_cpu_use_fusion_emitters" not in os.environ["XLA_FLAGS"]:  # MJX on CPU (test_mjx.py)
  os.environ["XLA_FLAGS"] += " --xla_cpu_use_fusion_emitters=false"
# One persistent XLA cache for the session (and the subprocesses the tests start): the
# same tiny programs are compiled by many tests.
os.environ.setdefault("JAXPOLICY_CACHE_DIR", tempfile.mkdtemp(prefix="jaxpolicy_test_xla_"))

import jax  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

jax.config.update("jax_compilation_cache_dir", os.environ["JAXPOLICY_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
