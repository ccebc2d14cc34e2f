"""Training throughput per method: compile time, step time, steps/s, and how far from the floor.

    python -m benchmarks.training [--preset=tiny|quick|paper] [--out=FILE.json] [--iters=N]
                                  [--methods=teacher,sdm] [--obs=state,pointcloud]
                                  [--num_points=N] [--clouds=DATA.zarr]
                                  [--live_taps=on|off|both] [--steps_per_call=1,10] [--torch]

Times the train step `jaxpolicy/training.py` runs on synthetic windows (or a dataset's
clouds), against XLA's FLOP floor and, with --torch, eager PyTorch in the same process. What
is timed, how the floor is counted, and the published figures: docs/speed.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import configs
from benchmarks import common
from benchmarks.latency import ACTION_DIM
from jaxpolicy import methods, training
from jaxpolicy import nets as nets_lib
from jaxpolicy import obs as obs_lib
from jaxpolicy.data.dataset import Windows, load_demos, window_indices
from jaxpolicy.nets import encoders
from jaxpolicy.runtime import sharding

OBS_KINDS = ("state", "pointcloud", "rgb")
TORCH_METHODS = ("teacher", "sdm")  # the steps benchmarks/torch_reference.py implements


def bench_config(name: str, preset: str, obs: str, num_points: int | None, live_taps: bool):
  c = configs.load(name, preset)
  c.obs = obs
  if num_points:
    c.pointcloud.num_points = num_points
  for section in ("train", "teacher_train"):
    if section in c:
      c[section].live_taps = live_taps
  return c


def obs_shapes(config) -> dict:
  """Per-frame observation shapes of `config.obs`: MetaWorld's state, or a DP3 cloud."""
  kind = obs_lib.kind(config.obs)
  if kind.point_cloud:
    return {"point_cloud": (config.pointcloud.num_points, 3), "agent_pos": (9,)}
  if kind.images:
    size = tuple(config.rgb.image_size) + (3,)
    return {**{k: size for k in obs_lib.camera_keys(config.rgb.cameras)}, "agent_pos": (9,)}
  return {k: (39,) for k in kind.keys}


def synthetic_windows(config, episodes: int = 10, length: int = 100, seed: int = 0) -> Windows:
  """Device-resident normalised random data with DP-style padded window tables."""
  p = config.policy
  rng = np.random.default_rng(seed)
  n = episodes * length
  ends = np.arange(1, episodes + 1) * length
  obs = {
    k: jnp.asarray(rng.integers(0, 256, size=(n,) + tuple(s)), jnp.uint8)
    if obs_lib.is_image_key(k)
    else jnp.asarray(rng.uniform(-1, 1, size=(n,) + tuple(s)), jnp.float32)
    for k, s in obs_shapes(config).items()
  }
  action = jnp.asarray(rng.uniform(-1, 1, size=(n, ACTION_DIM)), jnp.float32)
  win = lambda shift: jnp.asarray(
    window_indices(ends, p.horizon, p.n_obs_steps - 1, p.n_action_steps - 1, shift=shift)
  )
  return Windows(obs, action, win(0), win(-p.n_action_steps), p.n_obs_steps)


def demo_windows(config, path: str) -> Windows:
  """Training windows of a DP3-layout point-cloud dataset (normalised as training does).

  Fewer points than the dataset's: each cloud's first N, which for a farthest-point-sampled
  cloud (picks in order) is its N-point FPS cloud."""
  p = config.policy
  data = load_demos(
    path, ("point_cloud", "agent_pos"), p.horizon, p.n_obs_steps, p.n_action_steps, val_episodes=0
  )
  points, want = data.obs_shapes["point_cloud"][0], config.pointcloud.num_points
  if points < want or data.action_dim != ACTION_DIM:
    raise SystemExit(
      f"--clouds {path}: {points}-point clouds and {data.action_dim}-d actions;"
      f" this run needs at least {want} points (--num_points) and "
      f"{ACTION_DIM}-d actions"
    )
  w = data.train
  obs = {**w.obs, "point_cloud": w.obs["point_cloud"][:, :want]}
  return dataclasses.replace(w, obs=obs)


def init_states(
  method_names,
  preset: str,
  obs: str = "state",
  num_points=None,
  live_taps: bool = True,
  seed: int = 0,
) -> dict:
  """{method: (config, nets, state)} from random states; one random teacher is shared.

  Built before any step runs: a distillation method copies the teacher's params at init,
  and the teacher's own state is donated once its steps are timed.
  """
  teacher_state = None
  out = {}
  for name in method_names:
    method = methods.get(name)
    config = bench_config(name, preset, obs, num_points, live_taps)
    nets = nets_lib.build_nets(config, ACTION_DIM)
    shapes = obs_shapes(config)
    if method.INFO.needs_teacher and teacher_state is None:
      tconfig = bench_config("teacher", preset, obs, num_points, live_taps)
      teacher_state = methods.get("teacher").init(
        tconfig, nets_lib.build_nets(tconfig, ACTION_DIM), shapes, jax.random.PRNGKey(seed + 1000)
      )
    if name == "teacher" and teacher_state is not None:
      state = teacher_state  # distillation states hold copies (their init copies the params)
    else:
      state = method.init(config, nets, shapes, jax.random.PRNGKey(seed), teacher_state)
    if name == "teacher":
      teacher_state = state
    out[name] = (config, nets, state)
  return out


def measure(
  name: str,
  config,
  nets,
  state,
  iters: int,
  warmup: int,
  max_seconds: float,
  clouds: str | None = None,
) -> dict:
  """Times `name`'s train step on `state` (which is donated: do not reuse it), on synthetic
  windows or, for point clouds with `clouds`, on that dataset's."""
  method = methods.get(name)
  use_clouds = clouds and obs_lib.kind(config.obs).point_cloud
  windows = demo_windows(config, clouds) if use_clouds else synthetic_windows(config)
  mesh = sharding.make_mesh(config.train.get("num_devices", 0))
  per_call = config.train.get("steps_per_call", 1)  # steps per jitted call, as the loop
  step = training.make_train_step(config, method, nets, mesh, per_call)
  state = sharding.put_replicated(state, mesh)
  state, _ = training.live_state(config, nets, state, mesh)  # as the loop steps it
  windows = sharding.put_replicated(windows, mesh)
  key = np.int32  # the (first) step index; the step folds it into the run's rng

  t0 = time.perf_counter()
  compiled = step.lower(state, windows, key(0)).compile()
  compile_s = time.perf_counter() - t0
  # one step's cost: XLA counts a scan's body once, so a several-step call's count would
  # be one step's anyway; counted on the one-step program to say so plainly
  one = (
    compiled
    if per_call == 1
    else training.make_train_step(config, method, nets, mesh)
    .lower(state, windows, key(0))
    .compile()
  )
  cost = common.program_cost(one)
  selection = None
  if "point_cloud" in windows.obs:
    # XLA counts a loop's body once and a switch as its costliest branch: the FLOPs come
    # from the same step lowered without chunks (not compiled), with the point-cloud
    # encoder's backward pass at the mean gather size these clouds take (FLOPs are linear in
    # it: counted at two sizes and interpolated)
    selection = mean_gather_size(config, nets, windows)
    flops = {}
    lo, hi = selection["top"] // 2, selection["top"]
    for size in (lo, hi):
      with encoders.counting_selection(size):  # a new function each: jit caches traces
        whole = training.make_train_step(
          config, method, dataclasses.replace(nets, chunk_bytes=0), mesh
        )
        flops[size] = float(whole.lower(state, windows, key(0)).cost_analysis()["flops"])
    cost["flops"] = flops[lo] + (flops[hi] - flops[lo]) * (selection["mean"] - lo) / max(hi - lo, 1)

  i = 0
  for _ in range(max(1, warmup // per_call)):
    state, metrics = compiled(state, windows, key(i))
    i += per_call
  jax.block_until_ready((state, metrics))
  times, start = [], time.perf_counter()
  for _ in range(max(3, -(-iters // per_call))):  # each call waited on: per-step latency
    t = time.perf_counter()
    state, metrics = compiled(state, windows, key(i))
    jax.block_until_ready((state, metrics))
    times.append((time.perf_counter() - t) / per_call)
    i += per_call
    if len(times) >= 3 and time.perf_counter() - start > max_seconds:
      break
  calls = len(times)
  t = time.perf_counter()  # as many calls dispatched back to back: throughput
  for _ in range(calls):
    state, metrics = compiled(state, windows, key(i))
    i += per_call
  jax.block_until_ready((state, metrics))
  run_s = time.perf_counter() - t
  finite = all(bool(np.all(np.isfinite(np.asarray(v)))) for v in jax.device_get(metrics).values())
  ms = np.asarray(times) * 1e3
  n = calls * per_call
  steps_per_s = n / run_s
  bs = config.train.batch_size
  return {
    "method": name,
    "obs": config.obs,
    "num_points": config.pointcloud.num_points if obs_lib.uses_sensor(config) else None,
    "live_taps": bool(config.train.get("live_taps", True)),
    "batch_size": bs,
    "horizon": config.policy.horizon,
    "steps_per_call": per_call,
    "down_dims": list(config.model.down_dims),
    "unet_params": _unet_count(nets, config),
    "compile_s": compile_s,
    "median_ms": float(np.median(ms)),
    "p90_ms": float(np.percentile(ms, 90)),
    "min_ms": float(ms.min()),
    "steps_timed": n,
    "steps_per_s": steps_per_s,
    "samples_per_s": steps_per_s * bs,
    "flops_xla": cost["flops"],
    "bytes_accessed_xla": cost["bytes_accessed"],
    # XLA counts a lax.cond as its costlier branch on every step (SDM: G's update, which
    # runs on every c-th step only): then the floor is an upper bound, its ratio a lower one
    "conditionals": cost["conditionals"],
    "metrics_finite": finite,
    # point clouds: the points the encoder's backward pass gathers per frame
    "gather_size_mean": selection and selection["mean"],
    "gather_size_top": selection and selection["top"],
  }


def mean_gather_size(config, nets, windows, batches: int = 4) -> dict:
  """The mean number of points per frame `encoders.pointnet_max`'s backward pass gathers on
  `batches` training batches of `windows` (a fresh encoder, the training chunking: a chunk's
  selected points, padded to its row count, over its frames), and the most it could
  (min(points, channels))."""
  enc = nets.init(jax.random.PRNGKey(0), obs_shapes(config))["encoder"]["params"]
  dims = tuple(nets.encoder.point_dims)
  point = {k: v for k, v in enc.items() if k.startswith("point_") and k[-1].isdigit()}
  sizes = []
  for i in range(batches):
    cloud = windows.sample(jax.random.PRNGKey(i), config.train.batch_size)["obs"]["point_cloud"]
    frames = cloud.reshape((-1,) + cloud.shape[2:])[..., :3]
    fpc = nets.frames_per_chunk({"point_cloud": frames})
    sizes.append(np.asarray(encoders.gather_sizes(dims, point, frames, fpc)))
  return {"mean": float(np.mean(sizes)), "top": min(frames.shape[-2], dims[-1])}


def _unet_count(nets, config) -> int:
  p = jax.eval_shape(lambda: nets.init(jax.random.PRNGKey(0), obs_shapes(config)))
  return common.tree_size(p["unet"])


def torch_device() -> str:
  """PyTorch's device for comparisons: CUDA when JAX runs on a GPU and torch has CUDA."""
  import torch

  return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


def torch_step(name: str, config, threads: int | None = None, device: str = "cpu"):
  """(step, batch) of `name`'s training step in eager PyTorch with `config`'s shapes."""
  import torch
  from benchmarks import torch_reference as tr

  if threads:
    torch.set_num_threads(threads)
  torch.manual_seed(0)
  shapes = obs_shapes(config)
  p, m, bs = config.policy, config.model, config.train.batch_size
  gen = torch.Generator().manual_seed(0)
  if obs_lib.kind(config.obs).images:
    from jaxpolicy.nets import vision

    r = config.rgb
    encoder = tr.ImageEncoder(
      obs_lib.camera_keys(r.cameras),
      tuple(r.image_size),
      tuple(r.crop),
      vision.VARIANTS[r.encoder][0],
      r.pooling,
      r.num_keypoints,
      r.feature_dim,
    )
  else:
    encoder = tr.make_encoder(shapes, tuple(config.model.encoder_hidden), config.model.encoder_out)
  obs = {
    k: (
      torch.randint(0, 256, (bs, p.n_obs_steps) + tuple(v), generator=gen, dtype=torch.uint8)
      if obs_lib.is_image_key(k)
      else torch.rand((bs, p.n_obs_steps) + tuple(v), generator=gen) * 2 - 1
    )
    for k, v in shapes.items()
  }
  with torch.no_grad():
    feat = tr.encode_history(encoder, {k: v[:1] for k, v in obs.items()}).shape[-1]
  unet = tr.ConditionalUnet1D(
    ACTION_DIM, feat, tuple(m.down_dims), m.kernel_size, m.n_groups, m.step_embed_dim
  )
  action = torch.rand((bs, p.horizon, ACTION_DIM), generator=gen) * 2 - 1
  encoder, unet, action = encoder.to(device), unet.to(device), action.to(device)
  obs = {k: v.to(device) for k, v in obs.items()}
  T = config.diffusion.num_train_timesteps
  if name == "teacher":
    t = config.train
    step = tr.TeacherTrainStep(
      encoder, unet, T, t.lr, t.betas, t.weight_decay, t.ema, t.grad_clip or None
    )
  elif name == "sdm":
    s = config.sdm
    from jaxpolicy.diffusion.schedule import timesteps

    step = tr.SDMTrainStep(
      encoder,
      unet,
      T,
      s.gen_lr,
      s.fake_lr,
      s.betas,
      s.weight_decay,
      s.lam,
      s.gamma,
      s.gen_every,
      np.asarray(timesteps(T, s.t_grid_steps, "trailing")),
      config.train.ema,
      s.grad_clip or None,
    )
  else:
    raise ValueError(f"no PyTorch step for {name!r}; have {TORCH_METHODS}")
  return step, (obs, action)


def measure_torch(
  name: str, config, iters: int, warmup: int, max_seconds: float, threads: int | None = None
) -> dict:
  import torch

  device = torch_device()
  step, (obs, action) = torch_step(name, config, threads, device)
  sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

  def call():
    step(obs, action)
    sync()  # CPU ops finish before they return; CUDA's are waited for

  for _ in range(warmup):
    call()
  r = common.time_calls(call, iters, 0, max_seconds)
  return {
    "torch_median_ms": r["median_ms"],
    "torch_p90_ms": r["p90_ms"],
    "torch_steps_per_s": 1e3 / r["mean_ms"],
    "torch_steps_timed": r["calls"],
    "torch_threads": torch.get_num_threads(),
    "torch_device": device,
  }


COLUMNS = [
  ("method", "method"),
  ("obs", "obs"),
  ("points", "num_points"),
  ("live", "live_taps"),
  ("batch", "batch_size"),
  ("steps/call", "steps_per_call"),
  ("compile s", "compile_s"),
  ("step ms", "median_ms"),
  ("steps/s", "steps_per_s"),
  ("GFLOP", "gflop"),
  ("floor ms", "floor_ms"),
  ("x floor", "floor_ratio"),
  ("torch steps/s", "torch_steps_per_s"),
  ("jax/torch", "ratio"),
]


def run(
  preset: str = "quick",
  iters: int = 50,
  warmup: int = 3,
  max_seconds: float = 30.0,
  method_names=None,
  out: str | None = None,
  obs_kinds=("state",),
  num_points=None,
  live_taps=(True,),
  torch_on: bool = False,
  torch_threads: int | None = None,
  clouds: str | None = None,
  steps_per_call=(None,),
  log=print,
) -> dict:
  """Times the train step of every registered method (or of `method_names`) for each
  observation kind, live-tap setting and steps per call (None: the preset's); with
  `torch_on`, PyTorch's beside it."""
  env = common.environment()
  log(f"device: {env['device_kind']} ({env['platform']}), jax {env['packages']['jax']}")
  names = list(method_names or methods.names())
  unknown = sorted(set(names) - set(methods.names()))
  if unknown:
    raise SystemExit(f"unknown methods {unknown}; available: {list(methods.names())}")
  peak = common.probe_peak_flops()
  log(f"matmul probe: {peak / 1e9:.0f} GFLOP/s (float32)")
  rows = []
  for obs in obs_kinds:
    for live, per_call in itertools.product(live_taps, steps_per_call):
      t0 = time.perf_counter()
      states = init_states(names, preset, obs, num_points, live)
      log(
        f"[{obs}, live_taps={live}, steps_per_call={per_call or 'preset'}] initialised "
        f"{len(states)} random states in {time.perf_counter() - t0:.1f} s"
      )
      for name in names:
        config, nets, state = states.pop(name)
        if per_call:
          config.train.steps_per_call = per_call
        r = measure(name, config, nets, state, iters, warmup, max_seconds, clouds)
        del state
        r["gflop"] = r["flops_xla"] / 1e9
        r["floor_ms"] = 1e3 * r["flops_xla"] / peak
        r["floor_ratio"] = (1e3 / r["steps_per_s"]) / r["floor_ms"] if r["floor_ms"] else None
        if (
          torch_on
          and name in TORCH_METHODS
          and live == live_taps[0]
          and per_call == steps_per_call[0]
        ):
          r.update(measure_torch(name, config, iters, min(warmup, 2), max_seconds, torch_threads))
          r["ratio"] = r["steps_per_s"] / r["torch_steps_per_s"]
        log(
          f"  {name}: compile {r['compile_s']:.2f} s, {r['median_ms']:.2f} ms/step, "
          f"{r['steps_per_s']:.2f} steps/s, {r['floor_ratio']:.2f}x floor"
          + (
            f", torch {r['torch_steps_per_s']:.2f} steps/s ({r['ratio']:.2f}x)"
            if "ratio" in r
            else ""
          )
        )
        rows.append(r)
  result = {
    "benchmark": "training",
    "preset": preset,
    "environment": env,
    "settings": {
      "iters": iters,
      "warmup": warmup,
      "max_seconds": max_seconds,
      "action_dim": ACTION_DIM,
      "obs": list(obs_kinds),
      "num_points": num_points,
      "live_taps": list(live_taps),
      "torch": torch_on,
      "clouds": clouds,
      "steps_per_call": list(steps_per_call),
    },
    "peak_flops": peak,
    "results": rows,
  }
  log(common.format_table(rows, COLUMNS))
  common.write_json(out, result)
  if out:
    log(f"wrote {out}")
  return result


def parse_args(argv):
  p = argparse.ArgumentParser(
    prog="python -m benchmarks.training",
    description=__doc__,
    formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  p.add_argument("--preset", default="quick", choices=("tiny", "quick", "paper"))
  p.add_argument("--out", default=None, help="write the results here as JSON")
  p.add_argument(
    "--iters", type=int, default=50, help="timed steps per method (whole calls, at least 3)"
  )
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument(
    "--max_seconds",
    type=float,
    default=30.0,
    help="time budget for the timed steps of one method (at least 3)",
  )
  p.add_argument("--methods", default="", help="comma-separated methods (default: all)")
  p.add_argument("--obs", default="state", help=f"comma-separated, of {OBS_KINDS}")
  p.add_argument(
    "--num_points", type=int, default=0, help="points per cloud (default: the preset's)"
  )
  p.add_argument(
    "--clouds",
    default="",
    help="point clouds from this DP3-layout zarr instead of synthetic uniform "
    "ones (real scenes: the encoder's backward pass gathers fewer points); "
    "with fewer --num_points, each cloud's first ones (FPS order)",
  )
  p.add_argument(
    "--live_taps",
    default="on",
    choices=("on", "off", "both"),
    help="train.live_taps; 'both' measures on and off back to back",
  )
  p.add_argument(
    "--steps_per_call",
    default="",
    help="comma-separated train.steps_per_call values to measure back to back "
    "(default: the preset's)",
  )
  p.add_argument(
    "--torch", action="store_true", help="also time the PyTorch step (teacher and SDM; needs torch)"
  )
  p.add_argument(
    "--torch_threads",
    type=int,
    default=0,
    help="torch.set_num_threads (default: torch's own choice)",
  )
  a = p.parse_args(argv)
  if a.iters < 1:
    p.error("--iters must be >= 1")
  try:
    a.steps_per_call = tuple(int(v) for v in a.steps_per_call.split(",") if v) or (None,)
  except ValueError:
    p.error(f"--steps_per_call: integers, got {a.steps_per_call!r}")
  if any(v < 1 for v in a.steps_per_call if v):
    p.error("--steps_per_call values must be >= 1")
  a.obs = [o for o in a.obs.split(",") if o]
  bad = [o for o in a.obs if o not in OBS_KINDS]
  if bad:
    p.error(f"--obs: unknown {bad}; choose from {OBS_KINDS}")
  return a


def main(argv=None):
  a = parse_args(sys.argv[1:] if argv is None else argv)
  live = {"on": (True,), "off": (False,), "both": (True, False)}[a.live_taps]
  return run(
    a.preset,
    a.iters,
    a.warmup,
    a.max_seconds,
    [m for m in a.methods.split(",") if m] or None,
    a.out,
    tuple(a.obs),
    a.num_points or None,
    live,
    a.torch,
    a.torch_threads or None,
    a.clouds or None,
    a.steps_per_call,
  )


if __name__ == "__main__":
  main()
