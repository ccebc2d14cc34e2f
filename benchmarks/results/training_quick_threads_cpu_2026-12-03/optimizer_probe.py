"""The quick teacher's AdamW + EMA update alone, per parameter leaf vs on one flat vector.

    PYTHONPATH=. python benchmarks/results/training_quick_threads_cpu_2026-12-03/optimizer_probe.py

The live-tap teacher state of `benchmarks.training` (random, quick preset), the update the
train step runs (`methods.state.apply_update`) jitted alone with the state donated, medians
of 50 calls; then the same AdamW + EMA on the parameters raveled into one vector, with the
gradients raveled inside the call (what a flat state would pay) and already flat.
"""
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from benchmarks import training as bt
from jaxpolicy import training
from jaxpolicy.methods import state as state_lib
from jaxpolicy.runtime import sharding


def median_ms(f, carry, grads, n=50):
  carry = jax.block_until_ready(f(carry, grads))
  ts = []
  for _ in range(n):
    t = time.perf_counter()
    carry = jax.block_until_ready(f(carry, grads))
    ts.append(time.perf_counter() - t)
  return float(np.median(ts) * 1e3)


config, nets, st = bt.init_states(["teacher"], "quick")["teacher"]
st, _ = training.live_state(config, nets, st, sharding.make_mesh(1))
model = st.model
leaves = jax.tree_util.tree_leaves(model.params)
print(f"live params {sum(x.size for x in leaves)} in {len(leaves)} leaves")
grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 1e-3), model.params)
flat0 = ravel_pytree(model.params)[0]   # before the per-leaf update donates the params
tree = jax.jit(lambda m, g: state_lib.apply_update(m, g, 0.75, 0.9999), donate_argnums=(0,))
compiled = tree.lower(model, grads).compile()
print(f"per leaf: {median_ms(tree, model, grads):.2f} ms, "
      f"{compiled.as_text().count('fusion(')} fusions")

tx = model.tx


def flat_update(carry, g):
  p, o, e, step = carry
  g = ravel_pytree(g)[0] if isinstance(g, dict) else g
  upd, o = tx.update(g, o, p)
  p, step = p + upd, step + 1
  d = state_lib.ema_decay(step)
  return p, o, d * e + (1 - d) * p, step


def fresh():
  return flat0 + 0.0, tx.init(flat0), flat0 + 1.0, jnp.zeros((), jnp.int32)


f = jax.jit(flat_update, donate_argnums=(0,))
print(f"flat, gradients raveled in the call: {median_ms(f, fresh(), grads):.2f} ms")
print(f"flat, gradients flat: {median_ms(f, fresh(), ravel_pytree(grads)[0]):.2f} ms")
