"""A 134 MB float32 weight W (8192 x 4096, output-major) times 2-32 rows, four ways.

    python benchmarks/results/latency_paper_mulreduce_rejected_cpu_2026-12-03/few_rows_dot_probe.py

Medians of 20 calls: W . x (the weight-left dot `unet1d._dot_out_major` uses), x . W.T,
an elementwise multiply summed over K, and the einsum at the highest precision; the read
rate of W.sum() as the bandwidth reference. Each form is checked against numpy.
"""
import time, numpy as np, jax, jax.numpy as jnp
N, K = 8192, 4096
W = jnp.asarray(np.random.default_rng(0).normal(size=(N, K)).astype(np.float32))
def bench(f, x, n=20):
  jax.block_until_ready(f(W, x))
  ts=[]
  for _ in range(n):
    t=time.perf_counter(); jax.block_until_ready(f(W, x)); ts.append(time.perf_counter()-t)
  return np.median(ts)*1e3
# probe: read bandwidth via sum
s = jax.jit(lambda W: W.sum())
jax.block_until_ready(s(W)); ts=[]
for _ in range(20):
  t=time.perf_counter(); jax.block_until_ready(s(W)); ts.append(time.perf_counter()-t)
print("sum read ms", np.median(ts)*1e3, "GB/s", W.nbytes/np.median(ts)/1e9)
variants = {
 "Wx_dot": jax.jit(lambda W, x: jnp.dot(W, x.T)),
 "xWT_dot": jax.jit(lambda W, x: x @ W.T),
 "mulreduce": jax.jit(lambda W, x: (W[None, :, :] * x[:, None, :]).sum(-1)),
 "einsum_hi": jax.jit(lambda W, x: jnp.einsum("nk,rk->rn", W, x, precision="highest")),
}
for rows in (2, 4, 8, 16, 32):
  x = jnp.asarray(np.random.default_rng(1).normal(size=(rows, K)).astype(np.float32))
  ref = np.asarray(W) @ np.asarray(x).T
  line=[f"rows={rows}"]
  for name, f in variants.items():
    out = np.asarray(f(W, x)); out = out if out.shape==ref.shape else out.T
    err = np.abs(out-ref).max()
    line.append(f"{name} {bench(f,x):.1f}ms err{err:.1e}")
  print(" | ".join(line), flush=True)
