import time, sys, os, numpy as np, jax, jax.numpy as jnp
def bench(f, *a, n=30):
    f(*a).block_until_ready(); f(*a).block_until_ready()
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(*a).block_until_ready(); ts.append(time.perf_counter() - t)
    return round(1e3 * float(np.median(ts)), 2)
def wl(x, w, pref):   # weight left: (N,K) x (rows,K) -> (N, rows) -> transpose
    y = jax.lax.dot_general(w, x, (((1,), (1,)), ((), ())), preferred_element_type=pref)
    return jax.lax.optimization_barrier(y).T
def xl(x, w, pref):
    return jax.lax.dot_general(x, w, (((1,), (1,)), ((), ())), preferred_element_type=pref)
rng = np.random.default_rng(0)
N, K = int(os.environ.get("N", 4096)), int(os.environ.get("K", 4096))
w32 = jnp.asarray(rng.standard_normal((N, K), np.float32)); w16 = w32.astype(jnp.bfloat16)
print(os.environ.get("XLA_FLAGS", ""), N, K)
for rows in (1, 2, 4, 8):
    x32 = jnp.asarray(rng.standard_normal((rows, K), np.float32)); x16 = x32.astype(jnp.bfloat16)
    r = {"f32 wl": bench(jax.jit(lambda x, w: wl(x, w, jnp.float32)), x32, w32),
         "f32 xl": bench(jax.jit(lambda x, w: xl(x, w, jnp.float32)), x32, w32),
         "bf16 wl": bench(jax.jit(lambda x, w: wl(x, w, jnp.float32)), x16, w16),
         "bf16 xl": bench(jax.jit(lambda x, w: xl(x, w, jnp.float32)), x16, w16)}
    print(rows, r, flush=True)
