import collections, glob, gzip, json, os, sys, time, re
# usage: python profile_train_step.py [teacher|sdm]  (quick preset, state, 10 steps per call)
import jax, numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
from benchmarks import training as bt
from jaxpolicy import training, methods
from jaxpolicy.runtime import sharding
name = sys.argv[1] if len(sys.argv) > 1 else "teacher"
st = bt.init_states([name], "quick", "state")
config, nets, state = st[name]
windows = bt.synthetic_windows(config)
mesh = sharding.make_mesh(0)
step = training.make_train_step(config, methods.get(name), nets, mesh, 10)
state = sharding.put_replicated(state, mesh)
state, _ = training.live_state(config, nets, state, mesh)
windows = sharding.put_replicated(windows, mesh)
compiled = step.lower(state, windows, np.int32(0)).compile()
i = 0
for _ in range(3):
  state, m = compiled(state, windows, np.int32(i)); i += 10
jax.block_until_ready(state)
ts = []
for _ in range(20):
  t0 = time.perf_counter(); state, m = compiled(state, windows, np.int32(i)); i += 10
  jax.block_until_ready((state, m)); ts.append((time.perf_counter() - t0) / 10)
print("ms/step median", 1e3 * np.median(ts), "min", 1e3 * min(ts))
d = f"/tmp/jaxpolicy_trace_train_{name}"
os.system(f"rm -rf {d}")
with jax.profiler.trace(d, create_perfetto_trace=True):
  for _ in range(2):
    state, m = compiled(state, windows, np.int32(i)); i += 10
  jax.block_until_ready((state, m))
open(f"{d}/hlo.txt", "w").write(compiled.as_text())
f = glob.glob(f"{d}/**/*.trace.json.gz", recursive=True)[0]
ev = [e for e in json.load(gzip.open(f))["traceEvents"] if e.get("ph") == "X"]
skip = ("$", "ThunkExecutor", "Pjit", "Slinky", "CommonPjRt", "Parse", "Handle", "DevicePut", "end:")
ops = [e for e in ev if not e["name"].startswith(skip)]
nsteps = 20
agg = collections.defaultdict(lambda: [0, 0.0])
for e in ops:
  k = re.sub(r"\.\d+$", "", e["name"])
  agg[k][0] += 1; agg[k][1] += e["dur"]
tot = sum(v[1] for v in agg.values())
print(f"op time per step {tot/nsteps/1e3:.2f} ms, ops per step {sum(v[0] for v in agg.values())/nsteps:.0f}")
for n, (k, dur) in sorted(agg.items(), key=lambda kv: -kv[1][1])[:30]:
  print(f"{dur/nsteps/1e3:8.3f} ms  x{k/nsteps:6.1f}  {n}")
thr = collections.defaultdict(float)
for e in ops: thr[e["tid"]] += e["dur"]
print("per-thread op ms/step", sorted((v / nsteps / 1e3 for v in thr.values()), reverse=True)[:4])
