"""Profile a paper-size policy call: per-op time from a jax.profiler trace."""
# usage: python profile_policy_call.py sdm_1step float32|bfloat16 sdm  (paper size, batch 1)
import collections, glob, gzip, json, os, sys, time
import jax, jax.numpy as jnp, numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
from benchmarks import latency
from jaxpolicy.policy import build_policy

pname = sys.argv[1]; dtype = sys.argv[2]; method = sys.argv[3]
cs = latency.candidates("paper", [method], wanted={pname}, dtype=dtype)
c = cs[0]
policy = build_policy(c.name, c.config, c.nets, latency.identity_normalizer(), c.spec, latency.OBS_SHAPES)
_, compiled = policy.compiled_cost(1)
obs = {"full_state": jnp.asarray(np.random.default_rng(0).normal(size=(1, c.nets.n_obs_steps, 39)).astype(np.float32))}
carry = policy.init_carry(1)
for i in range(2):
  _, carry = compiled(policy.params, obs, carry, jax.random.PRNGKey(i))
def call():
  out = compiled(policy.params, obs, carry, jax.random.PRNGKey(0)); jax.block_until_ready(out)
for _ in range(5): call()
ts = []
for _ in range(20):
  t0 = time.perf_counter(); call(); ts.append(time.perf_counter() - t0)
print("median ms", 1e3 * np.median(ts), "min", 1e3 * min(ts))
d = f"/tmp/jaxpolicy_trace_{pname}_{dtype}"
os.system(f"rm -rf {d}")
with jax.profiler.trace(d, create_perfetto_trace=True):
  for _ in range(10): call()
f = glob.glob(f"{d}/**/*.trace.json.gz", recursive=True)[0]
tr = json.load(gzip.open(f))
ev = [e for e in tr["traceEvents"] if e.get("ph") == "X"]
agg = collections.defaultdict(lambda: [0, 0.0])
for e in ev:
  agg[e["name"]][0] += 1; agg[e["name"]][1] += e["dur"]
rows = sorted(agg.items(), key=lambda kv: -kv[1][1])
for n, (k, dur) in rows[:45]:
  print(f"{dur/10/1e3:9.3f} ms/call  x{k/10:6.1f}  {n[:110]}")
if len(sys.argv) > 4:
  print(compiled.as_text()[:int(sys.argv[4])])
open(f"{d}/hlo.txt", "w").write(compiled.as_text())
