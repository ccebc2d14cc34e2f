import time, sys, numpy as np, jax, jax.numpy as jnp
from jax import lax
N, K = 1024, 4096
L = 16  # distinct weights per call so they do not stay in cache (16 x 8 MB bf16)
rng = np.random.default_rng(0)
def t(f, *a):
  f = jax.jit(f); o = f(*a); jax.block_until_ready(o)
  ts = []
  for _ in range(30):
    t0 = time.perf_counter(); jax.block_until_ready(f(*a)); ts.append(time.perf_counter() - t0)
  return 1e3 * np.median(ts) / L
for dt in (jnp.float32, jnp.bfloat16):
  Wnk = [jnp.asarray(rng.normal(size=(N, K)), dt) for _ in range(L)]
  Wkn = [jnp.asarray(rng.normal(size=(K, N)), dt) for _ in range(L)]
  mb = N * K * jnp.dtype(dt).itemsize / 1e6
  for rows in (1, 2, 4, 8, 16):
    x = jnp.asarray(rng.normal(size=(rows, K)), dt)
    def wl(W, x):  # out-major: W[N,K] . x[R,K] -> [N,R]
      return [jnp.tanh(lax.dot_general(w, x, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)) for w in W]
    def xl(W, x):  # x[R,K] @ W[K,N]
      return [jnp.tanh(lax.dot_general(x, w, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)) for w in W]
    def xlt(W, x):  # x[R,K] . W[N,K] -> [R,N]
      return [jnp.tanh(lax.dot_general(x, w, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)) for w in W]
    def wlk(W, x):  # W[K,N] contracted dim 0 with x -> [N,R]
      return [jnp.tanh(lax.dot_general(w, x, (((0,), (1,)), ((), ())), preferred_element_type=jnp.float32)) for w in W]
    r = {n: t(f, W, x) for n, f, W in (("wl", wl, Wnk), ("xl", xl, Wkn), ("xlt", xlt, Wnk), ("wlk", wlk, Wkn))}
    print(jnp.dtype(dt).name, rows, " ".join(f"{n} {v:.3f}ms ({mb/v:.0f}GB/s)" for n, v in r.items()), flush=True)
