"""What a result ran on: the CPU's model and the vector units that set its speed, and the
code's git commit.

CPUs sold under one model name can differ severalfold in matmul rate (AVX2 against AVX-512
with AVX512-BF16), and bfloat16 runs natively only with AVX512-BF16 or AMX, so every recorded
measurement names the units along with the model (docs/speed.md, "How it is measured").
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess

CPUINFO = "/proc/cpuinfo"

# /proc/cpuinfo flag -> how a reader knows it, most capable first within each family
_UNITS = (
  ("amx_bf16", "AMX-BF16"),
  ("avx512_bf16", "AVX512-BF16"),
  ("avx512f", "AVX-512"),
  ("avx2", "AVX2"),
  ("asimd", "NEON"),
  ("sve", "SVE"),
)


def _cpuinfo_field(name: str) -> str | None:
  try:
    with open(CPUINFO) as f:
      for line in f:
        if line.split(":", 1)[0].strip() == name:
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return None


@functools.lru_cache(maxsize=None)
def cpu_flags() -> frozenset:
  """The CPU's feature flags (x86 `flags`, Arm `Features`); empty where unreadable."""
  return frozenset((_cpuinfo_field("flags") or _cpuinfo_field("Features") or "").split())


def cpu_model() -> str:
  return _cpuinfo_field("model name") or platform.processor() or platform.machine()


def cpu_units() -> list[str]:
  """The matmul-relevant vector units present, e.g. ['AVX512-BF16', 'AVX-512', 'AVX2']."""
  flags = cpu_flags()
  return [label for flag, label in _UNITS if flag in flags]


def describe() -> str:
  """e.g. 'AMD EPYC (AVX512-BF16, AVX-512, AVX2), 2 CPUs'."""
  units = cpu_units()
  return f"{cpu_model()}{' (' + ', '.join(units) + ')' if units else ''}, {os.cpu_count()} CPUs"


@functools.lru_cache(maxsize=None)
def code_version() -> str | None:
  """The git commit of the jaxpolicy checkout running (short hash, '+changes' when tracked
  files differ from it); None for an installed copy or without git."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  if not os.path.isdir(os.path.join(root, ".git")):
    return None
  try:
    run = lambda *a: subprocess.run(
      ["git", "-C", root, *a], capture_output=True, text=True, timeout=10
    )
    head = run("rev-parse", "--short", "HEAD")
    if head.returncode:
      return None
    changed = run("diff", "--quiet", "HEAD", "--", ".").returncode != 0
  except (OSError, subprocess.SubprocessError):
    return None
  return head.stdout.strip() + ("+changes" if changed else "")
