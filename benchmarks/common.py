"""Timing and hardware helpers shared by the benchmarks.

* `time_calls`: warm-up calls, then timed calls (each ends in `block_until_ready`), the
  median / p90 / min in milliseconds; a time budget caps slow programs.
* `environment`: device, platform and package versions for the JSON.
* `probe_bandwidth`, `probe_peak_flops`: what this device sustains on a large copy and a
  large float32 matmul, the floor's denominators; `program_cost`: FLOPs, bytes and sizes of a
  compiled program from XLA's analyses; `floor_ms`: max(bytes / bandwidth, FLOPs / peak).
* `format_table`: a fixed-width table of dict rows.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxpolicy.runtime import host


def time_calls(
  fn: Callable[[], object], iters: int = 100, warmup: int = 3, max_seconds: float = 30.0
) -> dict:
  """Times `fn()` (which must block until its result is ready) after `warmup` calls.

  Stops early once `max_seconds` have been spent timing (at least 3 timed calls).
  Returns milliseconds: median, p90, mean, min and the number of calls.
  """
  for _ in range(warmup):
    fn()
  times = []
  start = time.perf_counter()
  for _ in range(max(1, iters)):
    t0 = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t0)
    if len(times) >= 3 and time.perf_counter() - start > max_seconds:
      break
  ms = np.asarray(times) * 1e3
  return {
    "median_ms": float(np.median(ms)),
    "p90_ms": float(np.percentile(ms, 90)),
    "mean_ms": float(ms.mean()),
    "min_ms": float(ms.min()),
    "calls": int(ms.size),
  }


def blocking(fn: Callable, *args) -> Callable[[], object]:
  """A no-argument closure that calls fn(*args) and waits for every output."""
  return lambda: jax.block_until_ready(fn(*args))


def _version(pkg: str) -> str | None:
  try:
    return importlib.metadata.version(pkg)
  except importlib.metadata.PackageNotFoundError:
    return None


def environment() -> dict:
  """Device and versions: what a number in the JSON was measured on."""
  dev = jax.devices()[0]
  return {
    "platform": dev.platform,
    "device_kind": dev.device_kind,
    "device_count": jax.device_count(),
    "cpu": host.cpu_model(),
    "cpu_units": host.cpu_units(),  # AVX2 / AVX-512 / bf16 units: they set the speed
    "cpu_count": os.cpu_count(),
    "code": host.code_version(),  # git commit of the checkout measured
    "python": platform.python_version(),
    "packages": {p: _version(p) for p in ("jax", "jaxlib", "flax", "optax", "numpy", "torch")},
    "jax_default_matmul_precision": str(jax.config.jax_default_matmul_precision),
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
    # a persistent compilation cache turns a compile into a cache read
    "compilation_cache_dir": jax.config.jax_compilation_cache_dir,
    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
  }


def default_probe_mb() -> int:
  """Probe array size: several times a CPU's last-level cache, or enough to saturate HBM."""
  return 256 if jax.devices()[0].platform == "cpu" else 1024


def probe_bandwidth(megabytes: int | None = None, repeats: int = 10) -> float:
  """Sustained memory bandwidth in bytes/s: best time of an in-place `x += 1` (donated).

  Counts one read and one write of the array per call. The buffer is donated so no call
  pays for a fresh output allocation (page faults made a plain copy read ~15x slow on CPU).
  """
  n = (megabytes or default_probe_mb()) * (1 << 20) // 4
  f = jax.jit(lambda x: x + 1.0, donate_argnums=0)
  x = jax.block_until_ready(f(jnp.zeros((n,), jnp.float32)))
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    x = jax.block_until_ready(f(x))
    best = min(best, time.perf_counter() - t0)
  del x
  return 2 * 4 * n / best


def probe_peak_flops(n: int | None = None, repeats: int = 10, dtype=jnp.float32) -> float:
  """Sustained matmul rate in FLOP/s in `dtype` (at the default matmul precision)."""
  n = n or (1024 if jax.devices()[0].platform == "cpu" else 8192)
  a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), dtype)
  f = jax.jit(lambda a: a @ a)
  jax.block_until_ready(f(a))
  best = min(_once(f, a) for _ in range(repeats))
  return 2.0 * n**3 / best


def _once(f, x) -> float:
  t0 = time.perf_counter()
  jax.block_until_ready(f(x))
  return time.perf_counter() - t0


def _cost_dict(compiled) -> dict:
  ca = compiled.cost_analysis()
  if isinstance(ca, (list, tuple)):  # older jax: one dict per computation
    ca = ca[0] if ca else {}
  return dict(ca or {})


def count_while_loops(compiled) -> int:
  """Number of XLA while loops left in a compiled program (lax.scan not unrolled)."""
  return _count_ops(compiled, "while")


def count_conditionals(compiled) -> int:
  """Number of XLA conditionals (lax.cond) in a compiled program."""
  return _count_ops(compiled, "conditional")


def _count_ops(compiled, op: str) -> int:
  try:
    text = compiled.as_text()
  except Exception:  # pylint: disable=broad-except
    return 0
  return len(re.findall(rf"\b{op}\(", text))


def program_cost(compiled) -> dict:
  """XLA's view of a compiled program: flops, bytes accessed, argument/output bytes.

  Note: XLA's cost analysis counts the body of a while loop (a `lax.scan`) once, not
  once per trip, and a conditional (a `lax.cond`) as its costlier branch on every call;
  `while_loops` and `conditionals` say how many of each the program has.
  """
  ca = _cost_dict(compiled)
  out = {
    "flops": float(ca.get("flops", 0.0)),
    "bytes_accessed": float(ca.get("bytes accessed", 0.0)),
    "transcendentals": float(ca.get("transcendentals", 0.0)),
    "while_loops": count_while_loops(compiled),
    "conditionals": count_conditionals(compiled),
  }
  try:
    ma = compiled.memory_analysis()
    out["argument_bytes"] = int(ma.argument_size_in_bytes)
    out["output_bytes"] = int(ma.output_size_in_bytes)
    out["temp_bytes"] = int(ma.temp_size_in_bytes)
  except Exception:  # pylint: disable=broad-except
    pass
  return out


def tree_bytes(tree) -> int:
  return int(
    sum(np.prod(np.shape(x)) * np.dtype(x.dtype).itemsize for x in jax.tree_util.tree_leaves(tree))
  )


def tree_size(tree) -> int:
  return int(sum(np.prod(np.shape(x)) for x in jax.tree_util.tree_leaves(tree)))


def floor_ms(flops: float, nbytes: float, bandwidth: float, peak_flops: float) -> dict:
  """The roofline floor: the larger of the memory time and the compute time (ms)."""
  mem = 1e3 * nbytes / bandwidth if bandwidth > 0 else 0.0
  comp = 1e3 * flops / peak_flops if peak_flops > 0 else 0.0
  return {
    "floor_ms": max(mem, comp),
    "memory_ms": mem,
    "compute_ms": comp,
    "bound": "memory" if mem >= comp else "compute",
  }


def fmt(v, digits: int = 3) -> str:
  if v is None:
    return "-"
  if isinstance(v, str):
    return v
  if isinstance(v, (int, np.integer)):
    return str(int(v))
  if not np.isfinite(v):
    return str(v)
  a = abs(v)
  if a == 0:
    return "0"
  if a >= 1e5 or a < 1e-3:
    return f"{v:.{digits - 1}e}"
  return f"{v:.{max(0, digits - 1 - int(np.floor(np.log10(a))))}f}"


def format_table(rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> str:
  """Fixed-width text table; columns are (header, key) pairs."""
  cells = [[h for h, _ in columns]] + [[fmt(r.get(k)) for _, k in columns] for r in rows]
  widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
  line = lambda c: "  ".join(
    x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(c, widths))
  )
  return "\n".join(
    [line(cells[0]), "  ".join("-" * w for w in widths)] + [line(c) for c in cells[1:]]
  )


def write_json(path: str | None, result: dict):
  if not path:
    return
  d = os.path.dirname(os.path.abspath(path))
  os.makedirs(d, exist_ok=True)
  with open(path, "w") as f:
    json.dump(result, f, indent=2)
