"""Live-tap training: one optimiser step on the live kernel taps equals one on full kernels.

For every method that trains a U-Net (teacher, SDM's G and D, CD's online net and its EMA
target, bc, MeanFlow's through its jvp, MIP) one train step from the same state and key is
taken twice: on the full state, and on the state the training loop steps with
`train.live_taps` (split to the live taps, `training.live_state`), then joined back. On
the live taps, params, AdamW moments and EMA must agree to float tolerance; the dead taps
keep their values under live-tap training (full-kernel AdamW only shrinks them by its
weight decay: their gradients are exactly zero), and the joined state has full,
PyTorch-shaped kernels for checkpoints.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import configs
from jaxpolicy import methods, training
from jaxpolicy import nets as nets_lib
from jaxpolicy.nets import live_taps as live_taps_lib
from jaxpolicy.runtime import sharding

OBS = {"full_state": (39,)}
ACTION_DIM = 4


def _config(method, horizon):
  c = configs.load(method, "tiny")
  c.model.down_dims = (8, 16, 32)  # three levels, as the quick and paper presets
  c.policy.horizon = horizon
  # a large weight decay and no warm-up: the dead taps' treatment is visible in one step
  for section in (c.train, c.get("sdm"), c.get("cd")):
    if section is not None and "weight_decay" in section:
      section.weight_decay, section.warmup_steps = 0.1, 0
  c.train.ema_power = 0.1  # a visible EMA step
  if method == "sdm":
    c.sdm.gen_every = 1  # G updates on this step too
  return c


def _batch(horizon, n_obs, seed=0):
  r = np.random.default_rng(seed)
  return {
    "obs": {"full_state": jnp.asarray(r.normal(size=(16, n_obs, 39)), jnp.float32)},
    "action": jnp.asarray(r.uniform(-1, 1, size=(16, horizon, ACTION_DIM)), jnp.float32),
  }


def _kernel_range(path, ranges):
  """The live range of the leaf at `path` when it is a U-Net kernel with dead taps."""
  names = tuple(getattr(k, "key", getattr(k, "name", None)) for k in path)
  for p, r in ranges.items():
    if names[-len(p) :] == p:
      return r
  return None


# compiles two programs per case: the slow tier
@pytest.mark.slow
@pytest.mark.parametrize(
  "method,horizon",
  [("teacher", 4), ("teacher", 16), ("sdm", 4), ("cd", 4), ("bc", 4), ("meanflow", 4), ("mip", 4)],
)
def test_one_step_equals_full_kernels_on_live_taps(method, horizon):
  ranges = live_taps_lib.live_tap_ranges(horizon, (8, 16, 32))
  # horizon 4: lengths 4, 2, 1 -- dead taps at 2 and 1. At 16 (DP's
  # setting, 16, 8, 4) every tap of a 5-wide kernel sees data: live = full, nothing sliced.
  assert (len(ranges) > 0) == (horizon < 16)
  tc = _config("teacher", horizon)
  teacher = methods.get("teacher").init(
    tc, nets_lib.build_nets(tc, ACTION_DIM), OBS, jax.random.PRNGKey(0)
  )
  c = _config(method, horizon)
  nets = nets_lib.build_nets(c, ACTION_DIM)
  mod = methods.get(method)
  before = (
    teacher if method == "teacher" else mod.init(c, nets, OBS, jax.random.PRNGKey(1), teacher)
  )
  before = jax.tree_util.tree_map(np.asarray, before)  # host copies, never donated
  step = jax.jit(lambda s, b, k: mod.train_step(c, nets, s, b, k))
  batch, key = _batch(horizon, c.policy.n_obs_steps), jax.random.PRNGKey(7)

  full, m_full = step(before, batch, key)
  split, join = training.live_state(c, nets, before, sharding.make_mesh(1))
  jax.tree_util.tree_map(np.testing.assert_array_equal, join(split), before)  # lossless
  live, m_live = step(split, batch, key)
  live = join(live)
  for k in m_full:
    np.testing.assert_allclose(m_live[k], m_full[k], rtol=1e-5, atol=1e-7)

  leaves = lambda t: jax.tree_util.tree_flatten_with_path(t)[0]
  n_sliced = n_moved = 0
  for (path, a_full), (_, a_live), (_, a_old) in zip(leaves(full), leaves(live), leaves(before)):
    a_full, a_live, a_old = (np.asarray(a, np.float64) for a in (a_full, a_live, a_old))
    assert a_full.shape == a_live.shape, jax.tree_util.keystr(path)  # full shapes kept
    r = _kernel_range(path, ranges) if a_full.ndim == 3 else None
    if r is None:
      np.testing.assert_allclose(
        a_live, a_full, rtol=2e-5, atol=1e-7, err_msg=jax.tree_util.keystr(path)
      )
      continue
    lo, hi, _ = r
    n_sliced += 1
    np.testing.assert_allclose(
      a_live[lo:hi], a_full[lo:hi], rtol=2e-5, atol=1e-7, err_msg=jax.tree_util.keystr(path)
    )
    dead = np.ones(a_full.shape[0], bool)
    dead[lo:hi] = False
    np.testing.assert_array_equal(a_live[dead], a_old[dead])  # untouched
    n_moved += int(np.any(a_live[lo:hi] != a_old[lo:hi]))
  if horizon < 16:
    assert n_sliced > 0 and n_moved > 0
  else:
    assert jax.tree_util.tree_structure(split) == jax.tree_util.tree_structure(before)
