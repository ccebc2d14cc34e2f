import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("XLA_FLAGS", "")
# MJX on CPU needs this flag before JAX starts (~35x slower steps without it), but it makes
# other programs compile ~2x slower: set it when the MJX tests are asked for by name.
if (any("test_mjx" in a for a in sys.argv)
    and "xla_cpu_use_fusion_emitters" not in os.environ["XLA_FLAGS"]):
  os.environ["XLA_FLAGS"] += " --xla_cpu_use_fusion_emitters=false"
