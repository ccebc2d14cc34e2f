"""The U-Net before (b9d6c42's unet1d.py, loaded from a file) and after (this tree) in one
process, timed in alternating rounds on the same params and inputs: the one-step call (one
U-Net evaluation; the same compiled program both sides, so its difference is the probe's
resolution), teacher DDIM-10 and a 2-step DDIM as STEP k = 2 runs it (before: per-step
conditioning inside the scan; after: all steps' conditioning hoisted before it,
`nets.Denoiser`).

  PYTHONPATH=. python benchmarks/results/hoisted_conditioning_cpu_2026-12-04/paired_probe.py \
      /tmp/before/jaxpolicy/nets/unet1d.py quick 1,20 > quick.json
"""
import importlib.util
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import configs
from jaxpolicy import nets as nets_lib
from jaxpolicy.diffusion import samplers
from jaxpolicy.methods.common import schedule_of

old_file, preset, batches = sys.argv[1], sys.argv[2], [int(b) for b in sys.argv[3].split(",")]
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 7
spec = importlib.util.spec_from_file_location("unet1d_before", old_file)
old = sys.modules["unet1d_before"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(old)

c = configs.load("teacher", preset)
nets = nets_lib.build_nets(c, 4)
full = nets.init(jax.random.PRNGKey(0), {"full_state": (39,)})["unet"]
params = nets_lib.inference_unet_params(full, c)
new_unet = nets.unet
old_unet = old.ConditionalUnet1D(**{f: getattr(new_unet, f) for f in
                                    ("out_dim", "down_dims", "kernel_size", "n_groups",
                                     "step_embed_dim")})
p = params["params"]
film = p["down0_res0"]["cond_encoder"]["kernel_nk"]
cond_dim = film.shape[1] - p["step_mlp1"]["bias"].shape[0]
sched = schedule_of(c)
ts, prev = samplers.ddim_grid(sched, 10)
ts2, prev2 = samplers.ddim_grid(sched, 2, "trailing")


def programs(b):
  rng = np.random.default_rng(b)
  x = jnp.asarray(rng.normal(size=(b, c.policy.horizon, 4)), jnp.float32)
  cond = jnp.asarray(rng.normal(size=(b, cond_dim)), jnp.float32)
  t = jnp.full((b,), int(ts[0]), jnp.int32)
  before_den = lambda pp, cc: (lambda xx, tt: old_unet.apply(pp, xx, tt, cc))
  after_den = lambda pp, cc: nets_lib.Denoiser(nets, pp, cc)
  fns = {
      "one_eval_before": jax.jit(lambda pp, xx, cc: old_unet.apply(pp, xx, t, cc)),
      "one_eval_after": jax.jit(lambda pp, xx, cc: new_unet.apply(pp, xx, t, cc)),
      "ddim10_before": jax.jit(lambda pp, xx, cc: samplers.ddim_sample(
          sched, before_den(pp, cc), xx, ts, prev)),
      "ddim10_after": jax.jit(lambda pp, xx, cc: samplers.ddim_sample(
          sched, after_den(pp, cc), xx, ts, prev)),
      "ddim2_before": jax.jit(lambda pp, xx, cc: samplers.ddim_sample(
          sched, before_den(pp, cc), xx, ts2, prev2)),
      "ddim2_after": jax.jit(lambda pp, xx, cc: samplers.ddim_sample(
          sched, after_den(pp, cc), xx, ts2, prev2)),
  }
  outs = {k: np.asarray(f(params, x, cond)) for k, f in fns.items()}
  for k in ("one_eval", "ddim10", "ddim2"):
    np.testing.assert_allclose(outs[k + "_before"], outs[k + "_after"], atol=1e-5)
  return fns, (params, x, cond)


def time_ms(f, args, seconds=1.0):
  f(*args).block_until_ready()
  times, start = [], time.perf_counter()
  while time.perf_counter() - start < seconds or len(times) < 5:
    t0 = time.perf_counter()
    f(*args).block_until_ready()
    times.append(1e3 * (time.perf_counter() - t0))
  return float(np.median(times))


result = {"preset": preset, "rounds": rounds, "before": old_file, "rows": []}
for b in batches:
  fns, args = programs(b)
  per = {k: [] for k in fns}
  for r in range(rounds):
    order = list(fns) if r % 2 == 0 else list(fns)[::-1]
    for k in order:
      per[k].append(time_ms(fns[k], args))
  for k, v in per.items():
    result["rows"].append({"batch": b, "program": k, "median_of_round_medians_ms":
                           float(np.median(v)), "round_medians_ms": v})
    print(f"B={b:4d} {k:18s} {np.median(v):9.3f} ms  rounds {np.round(v, 3).tolist()}",
          file=sys.stderr)
print(json.dumps(result, indent=1))
