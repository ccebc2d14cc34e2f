"""Policy-call latency per method: compile time, median/p90, Hz, FLOPs, floor, vs PyTorch.

    python -m benchmarks.latency [--preset=tiny|quick|paper] [--batch=1,20] [--out=FILE.json]
                                 [--iters=N] [--torch] [--policies=teacher_ddim10,sdm_1step]
                                 [--dtype=float32|bfloat16] [--obs=state|rgb]

Every policy of every registered method, built from random weights through the real code
path, timed as one compiled call (normalise -> encode -> sample -> unnormalise) against the
floor max(bytes / bandwidth, FLOPs / peak) measured on this device; CPU and GPU alike. What
the floor counts, and the published figures: docs/speed.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import re
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import configs
from benchmarks import common
from jaxpolicy import methods
from jaxpolicy import nets as nets_lib
from jaxpolicy import obs as obs_lib
from jaxpolicy.nets import unet1d
from jaxpolicy.data.normalizer import MinMax, Normalizer
from jaxpolicy.policy import PolicySpec, build_policy

ACTION_DIM = 4
OBS_SHAPES = {"full_state": (39,)}


# --- what is measured --------------------------------------------------------------------


def load_config(method: str, preset: str, obs: str = "state"):
  config = configs.load(method, preset)
  config.obs = obs
  return config


def obs_shapes_of(config) -> dict:
  """Per-frame observation shapes measured: MetaWorld's state, or the config's camera
  frames (uint8 (H, W, 3)) and the 9-d robot state."""
  if not obs_lib.kind(config.obs).images:
    return dict(OBS_SHAPES)
  size = tuple(config.rgb.image_size)
  return {**{k: size + (3,) for k in obs_lib.camera_keys(config.rgb.cameras)}, "agent_pos": (9,)}


def random_teacher_state(preset: str, rng, obs: str = "state", edit=None):
  """A random teacher state (distillation methods copy its params at init)."""
  tconfig = load_config("teacher", preset, obs)
  if edit is not None:
    edit(tconfig)
  return methods.get("teacher").init(
    tconfig, nets_lib.build_nets(tconfig, ACTION_DIM), obs_shapes_of(tconfig), rng
  )


@dataclasses.dataclass
class Candidate:
  """A policy to measure, before it is built (specs hold the full-shape params)."""

  name: str
  method: str
  config: object
  nets: nets_lib.Nets
  spec: PolicySpec
  torch_sampler: tuple | None
  obs_shapes: dict = dataclasses.field(default_factory=lambda: dict(OBS_SHAPES))


def identity_normalizer(obs_shapes=OBS_SHAPES, action_dim=ACTION_DIM) -> Normalizer:
  ident = lambda n: MinMax(np.ones(n, np.float32), np.zeros(n, np.float32))
  fields = {"action": ident(action_dim)}
  fields.update(
    {k: ident(s[-1]) for k, s in obs_shapes.items() if not obs_lib.is_image_key(k)}
  )  # camera frames have no normaliser
  return Normalizer(fields)


def candidates(
  preset: str,
  method_names=None,
  seed: int = 0,
  wanted=None,
  dtype: str = "float32",
  obs: str = "state",
  edit=None,
) -> list[Candidate]:
  """Every registered method's policies (`make_policies` plus its INFO.baselines, e.g. the
  teacher's DDIM-1/2 from noise), from random states; one random teacher is shared.
  `edit(config)` changes every config first (e.g. the horizon)."""
  rng = jax.random.PRNGKey(seed)
  teacher_state = None
  out = []
  for i, name in enumerate(method_names or methods.names()):
    method = methods.get(name)
    info = method.INFO
    config = load_config(name, preset, obs)
    if edit is not None:
      edit(config)
    shapes = obs_shapes_of(config)
    nets = nets_lib.build_nets(config, ACTION_DIM)
    if info.needs_teacher and teacher_state is None:
      teacher_state = random_teacher_state(preset, jax.random.fold_in(rng, 1000), obs, edit)
    state = method.init(config, nets, shapes, jax.random.fold_in(rng, i), teacher_state)
    if name == "teacher" and teacher_state is None:
      teacher_state = state
    if "step" in config and config.step.eval_baselines:  # measured once, as the teacher's
      with config.unlocked():
        config.step.eval_baselines = False
    nets = nets.with_compute_dtype(dtype)  # the policies' dtype (params are cast in build)
    specs = dict(method.make_policies(config, nets, state, identity_normalizer()))
    if info.baselines is not None:
      specs.update(info.baselines(config, nets, state))
    for pname, spec in specs.items():
      if wanted and pname not in wanted:
        continue
      ts = info.torch_reference(config, pname) if info.torch_reference else None
      out.append(Candidate(pname, name, config, nets, spec, ts, shapes))
    del state
  return out


# --- measuring ---------------------------------------------------------------------------


def _unet_params(sampler_params):
  if isinstance(sampler_params, dict) and "unet" in sampler_params:
    return sampler_params["unet"]
  return sampler_params


_UNET_COSTS: dict = {}


def unet_cost(nets, unet_params, batch: int) -> dict:
  """XLA cost of one U-Net evaluation (the params as the policy runs them) at `batch`, and
  under "trunk" the cost of the evaluation given its conditioning (what a k-step sampler's
  loop runs k times; `nets.Denoiser`)."""
  shapes = tuple(
    (jax.tree_util.keystr(k), tuple(v.shape))
    for k, v in jax.tree_util.tree_flatten_with_path(unet_params)[0]
  )
  key = (repr(nets.unet), nets.compute_dtype, nets.horizon, nets.action_dim, batch, shapes)
  if key not in _UNET_COSTS:
    _UNET_COSTS[key] = _unet_cost(nets, unet_params, batch)
  return _UNET_COSTS[key]


def _unet_cost(nets, unet_params, batch: int) -> dict:
  S = jax.ShapeDtypeStruct
  p = unet_params["params"]
  # the global condition: cond_encoder's input minus the step embedding (policies hold
  # output-major kernels, `unet1d.inference_layout`)
  film = p["down0_res0"]["cond_encoder"]
  film_in = film["kernel"].shape[0] if "kernel" in film else film["kernel_nk"].shape[1]
  cond_dim = film_in - p["step_mlp1"]["bias"].shape[0]
  x = S((batch, nets.horizon, nets.action_dim), jnp.float32)
  t, cond = S((batch,), jnp.int32), S((batch, cond_dim), jnp.float32)
  two = getattr(nets.unet, "time_inputs", 1) == 2  # MeanFlow's (t, t - r)
  compiled = (
    jax.jit(lambda p, x, t, c: nets.denoiser(p, c)(x, t, t if two else None))
    .lower(unet_params, x, t, cond)
    .compile()
  )
  films = jax.eval_shape(
    lambda p, t, c: nets.denoiser(p, c).conditioning(t[None], t[None] if two else None),
    unet_params,
    t,
    cond,
  )
  trunk = (
    jax.jit(
      lambda p, x, f, c: nets.denoiser(p, c).with_conditioning(
        x, jax.tree_util.tree_map(lambda v: v[0], f)
      )
    )
    .lower(unet_params, x, films, cond)
    .compile()
  )
  return dict(common.program_cost(compiled), trunk=common.program_cost(trunk))


def steady_program(policy, obs, carry):
  """The policy's call compiled with a mid-episode `carry` as constants: XLA folds a carried
  sampler's branch on the carry (STEP: `calls == 0`) and keeps only the steady call."""
  const = jax.tree_util.tree_map(np.asarray, carry)
  return (
    jax.jit(lambda p, o, rng: policy.apply(p, o, const, rng)[0])
    .lower(policy.params, obs, jax.random.PRNGKey(0))
    .compile()
  )


def measure_policy(c: Candidate, batch: int, args, probe: dict, torch_on: bool) -> dict:
  policy = build_policy(
    c.name, c.config, c.nets, identity_normalizer(c.obs_shapes), c.spec, c.obs_shapes
  )
  compile_s, compiled = policy.compiled_cost(batch)
  obs_np = random_obs(c.obs_shapes, batch, c.nets.n_obs_steps, np.random.default_rng(batch))
  obs = {k: jnp.asarray(v) for k, v in obs_np.items()}
  # The steady state: a mid-episode carry (two calls into an episode), as every call after
  # an episode's first sees it; a carried sampler's first call (STEP: the teacher's sampler
  # from noise) is timed apart from a fresh carry.
  fresh = policy.init_carry(batch)
  carry = fresh
  for i in range(2):
    _, carry = compiled(policy.params, obs, carry, jax.random.PRNGKey(i))
  call = common.blocking(compiled, policy.params, obs, carry, jax.random.PRNGKey(0))
  t = common.time_calls(call, args.iters, args.warmup, args.max_seconds)
  first_call = None
  if policy.nfe_first is not None:
    first_call = common.time_calls(
      common.blocking(compiled, policy.params, obs, fresh, jax.random.PRNGKey(0)),
      args.iters,
      args.warmup,
      args.max_seconds,
    )

  # XLA counts a lax.cond as its costlier branch: a carried sampler's steady call is costed
  # on its own (STEP's first call, the teacher's sampler, would otherwise be counted)
  cost = common.program_cost(
    compiled if policy.nfe_first is None else steady_program(policy, obs, carry)
  )
  unet_run = _unet_params(policy.sampler_params)
  per_nfe = unet_cost(c.nets, unet_run, batch)
  trunk = per_nfe["trunk"]
  # the sampler runs every step's conditioning before its loop, and XLA counts a loop's
  # body once: how many evaluations of the rest did it count?
  cond_flops = per_nfe["flops"] - trunk["flops"]
  counted = int(
    np.clip(
      np.floor((cost["flops"] - policy.nfe * cond_flops) / max(trunk["flops"], 1.0) + 0.5),
      1,
      policy.nfe,
    )
  )
  extra = policy.nfe - counted
  flops = cost["flops"] + extra * trunk["flops"]
  unet_bytes = common.tree_bytes(unet_run)
  cond_bytes = common.tree_bytes(unet1d.conditioning_params(unet_run["params"]))
  other_bytes = common.tree_bytes(policy.params) - unet_bytes
  io_bytes = sum(v.nbytes for v in obs_np.values()) + 4 * batch * c.nets.horizon * c.nets.action_dim
  # the conditioning's weights are read once per call, the rest once per evaluation
  floor_bytes = (
    policy.nfe * (unet_bytes - cond_bytes)
    + min(policy.nfe, 1) * cond_bytes
    + other_bytes
    + io_bytes
  )
  fl = common.floor_ms(flops, floor_bytes, probe["bandwidth_Bps"], probe["peak_flops"])
  row = {
    "policy": c.name,
    "method": c.method,
    "batch": batch,
    "nfe": policy.nfe,
    "horizon": c.nets.horizon,
    "down_dims": list(c.config.model.down_dims),
    "unet_params": common.tree_size(_unet_params(c.spec.sampler_params)),
    "unet_params_run": common.tree_size(unet_run),
    "compile_s": compile_s,
    **t,
    "hz": 1e3 / t["median_ms"],
    "samples_per_s": batch * 1e3 / t["median_ms"],
    "flops": flops,
    "flops_xla": cost["flops"],
    "flops_per_nfe": per_nfe["flops"],
    "bytes_accessed_xla": cost["bytes_accessed"] + extra * trunk["bytes_accessed"],
    "xla_counted_nfe": counted,
    "while_loops": cost["while_loops"],
    "argument_bytes": cost.get("argument_bytes"),
    "floor_bytes": floor_bytes,
    **fl,
    "achieved_over_floor": t["median_ms"] / fl["floor_ms"] if fl["floor_ms"] > 0 else None,
    "torch": None,
    "jax_over_torch": None,
    "nfe_first_call": policy.nfe_first,
    "first_call_median_ms": first_call["median_ms"] if first_call else None,
  }
  del policy, compiled, call
  if torch_on and c.torch_sampler is not None:
    row["torch"] = measure_torch(c, batch, obs_np, args)
    row["jax_over_torch"] = t["median_ms"] / row["torch"]["median_ms"]
  return row


def random_obs(obs_shapes: dict, batch: int, n_obs: int, rng) -> dict:
  """Random observations: uint8 camera frames, standard-normal float32 otherwise."""
  return {
    k: (
      rng.integers(0, 256, (batch, n_obs) + tuple(s), dtype=np.uint8)
      if obs_lib.is_image_key(k)
      else rng.normal(size=(batch, n_obs) + tuple(s)).astype(np.float32)
    )
    for k, s in obs_shapes.items()
  }


def measure_torch(c: Candidate, batch: int, obs_np, args) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  from benchmarks import torch_reference as ref  # pylint: disable=g-import-not-at-top

  device = "cuda" if (torch.cuda.is_available() and jax.devices()[0].platform == "gpu") else "cpu"
  d = c.config.diffusion
  unet = ref.unet_from_jax(_unet_params(c.spec.sampler_params), c.config.model.n_groups)
  if c.nets.image_crop:  # DP's image encoder with the same weights; frames in as uint8
    keys = tuple(k for k in c.obs_shapes if obs_lib.is_image_key(k))
    enc = ref.image_encoder_from_jax(
      c.spec.encoder_params, keys, c.config.rgb.image_size, c.nets.image_crop, c.config.rgb.pooling
    ).eval()
    tp = ref.TorchPolicy(
      enc,
      unet,
      identity_normalizer(c.obs_shapes),
      c.nets.horizon,
      c.nets.action_dim,
      c.torch_sampler,
      d.num_train_timesteps,
      d.prediction_type,
      d.clip_sample,
      device,
      obs_key=None,
    )
  else:
    tp = ref.TorchPolicy(
      ref.state_encoder_from_jax(c.spec.encoder_params),
      unet,
      identity_normalizer(),
      c.nets.horizon,
      c.nets.action_dim,
      c.torch_sampler,
      d.num_train_timesteps,
      d.prediction_type,
      d.clip_sample,
      device,
    )
  if args.torch_threads:
    torch.set_num_threads(args.torch_threads)
  if len(obs_np) == 1:
    obs = torch.from_numpy(next(iter(obs_np.values()))).to(device)
  else:
    obs = {k: torch.from_numpy(v).to(device) for k, v in obs_np.items()}
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def call():
    tp(obs)
    sync()

  t = common.time_calls(call, args.iters, args.warmup, args.max_seconds)
  return {
    **t,
    "hz": 1e3 / t["median_ms"],
    "device": device,
    "threads": torch.get_num_threads(),
    "sampler": list(c.torch_sampler),
    "version": torch.__version__,
  }


def probe_device(args) -> dict:
  t0 = time.perf_counter()
  bw = common.probe_bandwidth(args.probe_mb)
  peak = common.probe_peak_flops(args.probe_n, dtype=args.dtype)
  return {
    "bandwidth_Bps": bw,
    "peak_flops": peak,
    "bandwidth_GBps": bw / 1e9,
    "peak_GFLOPs": peak / 1e9,
    "probe_mb": args.probe_mb or common.default_probe_mb(),
    "seconds": time.perf_counter() - t0,
  }


def summarise(rows) -> dict:
  by = {(r["policy"], r["batch"]): r for r in rows}
  out = {"sdm_over_teacher_speedup": {}, "jax_over_torch": {}}
  for (name, b), r in by.items():
    # the teacher's own sampler (teacher_ddim10), not its untrained DDIM-1/2 baselines
    if re.fullmatch(r"teacher_ddim\d+", name) and ("sdm_1step", b) in by:
      sdm = by[("sdm_1step", b)]["median_ms"]
      out["sdm_over_teacher_speedup"][f"batch{b}"] = r["median_ms"] / sdm
    if r.get("jax_over_torch") is not None:
      out["jax_over_torch"][f"{name}@batch{b}"] = r["jax_over_torch"]
  return out


COLUMNS = [
  ("policy", "policy"),
  ("B", "batch"),
  ("NFE", "nfe"),
  ("compile s", "compile_s"),
  ("median ms", "median_ms"),
  ("p90 ms", "p90_ms"),
  ("min ms", "min_ms"),
  ("Hz", "hz"),
  ("GFLOP", "gflop"),
  ("MB floor", "floor_mb"),
  ("floor ms", "floor_ms"),
  ("bound", "bound"),
  ("ach/floor", "achieved_over_floor"),
  ("torch ms", "torch_ms"),
  ("torch min", "torch_min_ms"),
  ("jax/torch", "jax_over_torch"),
  ("1st call ms", "first_call_median_ms"),
]


FLOOR_NOTE = (
  "floor = max(bytes / measured bandwidth, FLOPs / measured matmul peak in the "
  "policy's dtype), the "
  "U-Net's weights (as run, dead taps pruned) read once per network evaluation, "
  "its step MLP and FiLM layers once per call; a carried sampler's FLOPs are "
  "its steady call's; "
  "ach/floor below 1 means the weights stayed in cache between evaluations."
)


def table(rows) -> str:
  view = [
    dict(
      r,
      gflop=r["flops"] / 1e9,
      floor_mb=r["floor_bytes"] / 1e6,
      torch_ms=(r["torch"] or {}).get("median_ms"),
      torch_min_ms=(r["torch"] or {}).get("min_ms"),
    )
    for r in rows
  ]
  return common.format_table(view, COLUMNS)


def run(
  preset: str = "quick",
  batches=(1, 20),
  iters: int = 100,
  warmup: int = 3,
  max_seconds: float = 20.0,
  torch_on: bool = False,
  policies=None,
  probe_mb=None,
  probe_n=None,
  out: str | None = None,
  torch_threads: int = 0,
  method_names=None,
  dtype: str = "float32",
  log=print,
  obs: str = "state",
) -> dict:
  """Measures every registered policy (of `method_names`, default all) at each batch size;
  returns (and writes) the JSON."""
  args = argparse.Namespace(
    iters=iters,
    warmup=warmup,
    max_seconds=max_seconds,
    probe_mb=probe_mb,
    probe_n=probe_n,
    torch_threads=torch_threads,
    dtype=dtype,
  )
  env = common.environment()
  if torch_on:
    try:
      import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      raise SystemExit("--torch needs PyTorch: pip install torch==2.13.0") from None
  log(f"device: {env['device_kind']} ({env['platform']}), jax {env['packages']['jax']}")
  probe = probe_device(args)
  log(
    f"probe: {probe['bandwidth_GBps']:.1f} GB/s, {probe['peak_GFLOPs']:.1f} GFLOP/s "
    f"({dtype} matmul)"
  )
  t0 = time.perf_counter()
  cands = candidates(
    preset, method_names, wanted=set(policies) if policies else None, dtype=dtype, obs=obs
  )
  if policies:
    missing = sorted(set(policies) - {c.name for c in cands})
    if missing:
      raise SystemExit(
        f"unknown policies {missing}; available: "
        f"{sorted(c.name for c in candidates(preset, method_names))}"
      )
  log(f"built {len(cands)} policies from random states in {time.perf_counter() - t0:.1f} s")
  rows = []
  for c in cands:
    for b in batches:
      r = measure_policy(c, b, args, probe, torch_on)
      rows.append(r)
      tmsg = f", torch {r['torch']['median_ms']:.3f} ms" if r["torch"] else ""
      log(
        f"  {c.name} batch {b}: compile {r['compile_s']:.2f} s, median {r['median_ms']:.3f} ms"
        f" ({r['hz']:.1f} Hz), floor {r['floor_ms']:.4f} ms{tmsg}"
      )
      gc.collect()
  result = {
    "benchmark": "latency",
    "preset": preset,
    "environment": env,
    "probe": probe,
    "settings": {
      "batches": list(batches),
      "iters": iters,
      "warmup": warmup,
      "dtype": dtype,
      "max_seconds": max_seconds,
      "torch": torch_on,
      "torch_threads": torch_threads or None,
      "action_dim": ACTION_DIM,
      "obs": obs,
      "obs_shapes": {k: list(v) for k, v in (cands[0].obs_shapes if cands else OBS_SHAPES).items()},
    },
    "results": rows,
    "summary": summarise(rows),
  }
  log(table(rows))
  log(FLOOR_NOTE)
  other = sorted({r["torch"]["device"] for r in rows if r["torch"]} - {env["platform"]})
  if other:
    log(
      f"note: PyTorch ran on {', '.join(other)} while JAX ran on {env['platform']}; "
      f"jax/torch compares devices (install a CUDA build of torch to compare on the GPU)"
    )
  for k, v in result["summary"].items():
    for name, x in v.items():
      log(f"{k} {name}: {x:.3f}")
  common.write_json(out, result)
  if out:
    log(f"wrote {out}")
  return result


def _percentiles(seconds) -> dict:
  ms = np.asarray(seconds) * 1e3
  return {
    "median_ms": float(np.median(ms)),
    "p90_ms": float(np.percentile(ms, 90)),
    "p99_ms": float(np.percentile(ms, 99)),
    "calls": int(ms.size),
  }


def _time_end_to_end(call, iters: int, warmup: int) -> dict:
  """Batch-1 calls as a control loop makes them: NumPy in, NumPy actions out."""
  for _ in range(warmup):
    call()
  times = []
  for _ in range(iters):
    t0 = time.perf_counter()
    call()
    times.append(time.perf_counter() - t0)
  return _percentiles(times)


def measure_exported(
  directory: str, iters: int = 200, warmup: int = 5, in_process: bool = True, log=print
) -> dict:
  """An exported policy's batch-1 latency through `jaxpolicy.exported` (loading and the
  first call, which compiles, apart), and the in-process policy of the run it came from."""
  from jaxpolicy.exported import load_exported  # pylint: disable=g-import-not-at-top

  t0 = time.perf_counter()
  policy = load_exported(directory)
  load_s = time.perf_counter() - t0
  m = policy.manifest
  obs = {k: np.zeros((1, policy.n_obs_steps) + s, np.float32) for k, s in policy.obs_shapes.items()}
  if "point_cloud" in obs:  # a spread-out cloud, so cropping and sampling do real work
    obs["point_cloud"] = (
      np.random.default_rng(0).uniform(-0.5, 0.5, obs["point_cloud"].shape).astype(np.float32)
    )
  state = [policy.initial_state(1)]
  t0 = time.perf_counter()
  policy.act(obs, state[0], 0)
  first_s = time.perf_counter() - t0

  def act():
    _, state[0] = policy.act(obs, state[0], 0)

  row = {
    "policy": m["policy"],
    "method": m["method"],
    "nfe": m["nfe"],
    "mode": "exported",
    "load_s": load_s,
    "first_call_s": first_s,
    **_time_end_to_end(act, iters, warmup),
  }
  rows = [row]
  workdir = m.get("workdir")
  if in_process and workdir and os.path.isdir(workdir):
    from jaxpolicy import load_policy  # pylint: disable=g-import-not-at-top

    pol = load_policy(workdir, m["policy"])
    raw = m.get("point_cloud")
    obs_in = {
      k: np.zeros((1, pol.nets.n_obs_steps) + tuple(s), np.float32)
      for k, s in pol.obs_shapes.items()
    }
    pol.reset(1)
    t0 = time.perf_counter()
    pol(obs_in, jax.random.PRNGKey(0))
    first_in = time.perf_counter() - t0
    rows.append(
      {
        "policy": m["policy"],
        "method": m["method"],
        "nfe": m["nfe"],
        "mode": "in-process" + (" (sampled cloud given)" if raw else ""),
        "load_s": None,
        "first_call_s": first_in,
        **_time_end_to_end(lambda: pol(obs_in, jax.random.PRNGKey(0)), iters, warmup),
      }
    )
  for r in rows:
    log(
      f"  {r['policy']} {r['mode']}: median {r['median_ms']:.3f} ms, p90 {r['p90_ms']:.3f}, "
      f"p99 {r['p99_ms']:.3f} (first call {r['first_call_s']:.2f} s)"
    )
  return {
    "benchmark": "latency_exported",
    "artifact": os.path.abspath(directory),
    "environment": common.environment(),
    "results": rows,
  }


def parse_args(argv):
  p = argparse.ArgumentParser(
    prog="python -m benchmarks.latency",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--preset", default="quick", choices=("tiny", "quick", "paper"))
  p.add_argument("--batch", default="1,20", help="comma-separated batch sizes")
  p.add_argument("--out", default=None, help="write the results here as JSON")
  p.add_argument("--iters", type=int, default=100, help="timed calls per measurement")
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument(
    "--max_seconds",
    type=float,
    default=20.0,
    help="time budget per measurement (at least 3 timed calls)",
  )
  p.add_argument("--torch", action="store_true", help="also time the PyTorch reference")
  p.add_argument(
    "--torch_threads",
    type=int,
    default=0,
    help="torch.set_num_threads for the reference (0: PyTorch's default)",
  )
  p.add_argument(
    "--methods", default="", help="comma-separated jaxpolicy.methods names (default: every method)"
  )
  p.add_argument("--policies", default="", help="comma-separated policy names (default: all)")
  p.add_argument(
    "--dtype",
    default="float32",
    choices=("float32", "bfloat16"),
    help="policy params and network compute dtype (bf16 inference); the "
    "PyTorch reference stays float32",
  )
  p.add_argument(
    "--obs",
    default="state",
    choices=("state", "rgb"),
    help="observations: MetaWorld's state, or the preset's camera frames + "
    "robot state (DP's image encoder)",
  )
  p.add_argument("--probe_mb", type=int, default=None, help="bandwidth probe size in MiB")
  p.add_argument("--probe_n", type=int, default=None, help="matmul probe size n (n x n)")
  p.add_argument(
    "--exported",
    default="",
    help="time an artifact of launch.export instead (batch 1, end to end, "
    "beside the in-process policy of its run when that is here)",
  )
  a = p.parse_args(argv)
  try:
    a.batches = tuple(int(x) for x in a.batch.split(",") if x.strip())
  except ValueError:
    p.error(f"--batch must be comma-separated integers, got {a.batch!r}")
  if not a.batches or min(a.batches) < 1:
    p.error("--batch needs positive batch sizes")
  if a.iters < 1:
    p.error("--iters must be >= 1")
  return a


def main(argv=None):
  a = parse_args(sys.argv[1:] if argv is None else argv)
  if a.exported:
    result = measure_exported(a.exported, iters=max(a.iters, 100), warmup=a.warmup)
    common.write_json(a.out, result)
    return result
  return run(
    a.preset,
    a.batches,
    a.iters,
    a.warmup,
    a.max_seconds,
    a.torch,
    [x for x in a.policies.split(",") if x] or None,
    a.probe_mb,
    a.probe_n,
    a.out,
    a.torch_threads,
    method_names=[x for x in a.methods.split(",") if x] or None,
    dtype=a.dtype,
    obs=a.obs,
  )


if __name__ == "__main__":
  main()
