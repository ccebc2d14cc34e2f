"""Quick train step (state observations) with flax GroupNorm + Mish (before) and the fused
`unet1d.group_norm_mish` (after), compiled in one process and timed interleaved: 5 calls
(of the preset's 10 steps each) per variant per round.

    PYTHONPATH=. python benchmarks/results/group_norm_mish_quick_cpu_2026-12-03/interleaved_ab.py 12 teacher
"""
import sys, time
import numpy as np, jax, flax.linen as nn
from jaxpolicy.nets import unet1d
from jaxpolicy import training, methods
from jaxpolicy.runtime import sharding
from benchmarks import training as bt
New = unet1d.Conv1dBlock
class Old(nn.Module):
  features: int
  kernel_size: int
  n_groups: int = 8
  @nn.compact
  def __call__(self, x):
    x = unet1d.Conv1d(self.features, self.kernel_size, name="conv")(x)
    x = nn.GroupNorm(num_groups=self.n_groups, epsilon=1e-5, name="norm")(x)
    return unet1d.mish(x)
method = sys.argv[2] if len(sys.argv) > 2 else "teacher"
def build(variant):
  unet1d.Conv1dBlock = Old if variant == "flax_gn" else New
  config, nets, state = bt.init_states([method], "quick")[method]
  windows = bt.synthetic_windows(config)
  mesh = sharding.make_mesh(0)
  per = config.train.get("steps_per_call", 1)
  step = training.make_train_step(config, methods.get(method), nets, mesh, per)
  state = sharding.put_replicated(state, mesh)
  state, _ = training.live_state(config, nets, state, mesh)
  windows = sharding.put_replicated(windows, mesh)
  c = step.lower(state, windows, np.int32(0)).compile()
  return [c, state, windows, per]
V = {v: build(v) for v in ("flax_gn", "fused")}
res = {v: [] for v in V}
for rep in range(int(sys.argv[1])):
  for v, s in V.items():
    c, state, w, per = s
    state, m = c(state, w, np.int32(0)); jax.block_until_ready(state)
    t = time.perf_counter()
    for i in range(5):
      state, m = c(state, w, np.int32(i))
    jax.block_until_ready(state)
    res[v].append((time.perf_counter() - t) / (5 * per) * 1e3)
    s[1] = state
for v, r in res.items(): print(method, v, "ms/step median", np.median(r).round(2), "all", np.round(r, 1))
