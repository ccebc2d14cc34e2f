"""Consistency distillation: the teacher's solver step, the boundary scalings, the target EMA."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from configs import cd as cd_configs
from jaxpolicy import nets as nets_lib
from jaxpolicy.diffusion.schedule import Schedule
from jaxpolicy.methods import cd, teacher


class OracleUnet:
  """Predicts the true x0 it is given as params (an x0-prediction 'teacher')."""
  def apply(self, params, x, t, cond):
    del x, t, cond
    return params["x0"]


def test_solver_step_uses_the_derived_epsilon():
  """On the exact trajectory of x0 and eps, one DDIM step lands on x_prev exactly:
  x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps. Feeding x0 in as epsilon (the
  released ManiCM bug) does not."""
  c = cd_configs.get_config("tiny")
  nets = dataclasses.replace(nets_lib.build_nets(c, 2), unet=OracleUnet())
  abar = Schedule(100).alphas_cumprod
  rng = np.random.default_rng(0)
  x0 = rng.uniform(-0.9, 0.9, size=(4, 4, 2))
  eps = rng.normal(size=(4, 4, 2))
  t = np.array([99, 59, 19, 9])
  prev = t - 10
  a = abar[t][:, None, None]
  x_t = np.sqrt(a) * x0 + np.sqrt(1 - a) * eps
  got = cd.solver_step(c, nets, {"x0": jnp.asarray(x0, jnp.float32)},
                       jnp.asarray(x_t, jnp.float32), jnp.asarray(t), jnp.asarray(prev), None)
  a_prev = np.where(prev >= 0, abar[np.maximum(prev, 0)], 1.0)[:, None, None]
  want = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-4)
  anchor_bug = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * x0
  assert np.abs(np.asarray(got) - anchor_bug)[:3].max() > 0.1


def test_boundary_scalings():
  c = cd_configs.get_config("tiny")
  t = jnp.array([-1, 0, 9, 99])
  c_skip, c_out = cd.boundary_scalings(c, t)
  c_skip, c_out = np.asarray(c_skip).ravel(), np.asarray(c_out).ravel()
  np.testing.assert_allclose(c_skip[:2], 1.0)
  np.testing.assert_allclose(c_out[:2], 0.0)
  st = 10.0 * np.array([9, 99])
  np.testing.assert_allclose(c_skip[2:], 0.25 / (st ** 2 + 0.25), rtol=1e-5)
  np.testing.assert_allclose(c_out[2:], st / np.sqrt(st ** 2 + 0.25), rtol=1e-5)


def test_target_is_the_ema_of_online_and_loss_learns():
  c = cd_configs.get_config("tiny")
  nets = nets_lib.build_nets(c, 4)
  obs_shapes = {"full_state": (39,)}
  tstate = teacher.init(c, nets, obs_shapes, jax.random.PRNGKey(0))
  state = cd.init(c, nets, obs_shapes, jax.random.PRNGKey(1), tstate)
  batch = {"obs": {"full_state": jax.random.normal(jax.random.PRNGKey(2), (8, 2, 39))},
           "action": jax.random.uniform(jax.random.PRNGKey(3), (8, 4, 4), minval=-1, maxval=1)}
  step = jax.jit(lambda s, k: cd.train_step(c, nets, s, batch, k))
  real0 = jax.tree_util.tree_leaves(state.real)
  for i in range(3):
    old_target = state.target
    state, m = step(state, jax.random.PRNGKey(10 + i))
    for tp, op, np_ in zip(jax.tree_util.tree_leaves(old_target),
                           jax.tree_util.tree_leaves(state.online.params),
                           jax.tree_util.tree_leaves(state.target)):
      np.testing.assert_allclose(np.asarray(np_), 0.95 * np.asarray(tp) + 0.05 * np.asarray(op),
                                 rtol=1e-6, atol=1e-7)
    assert np.isfinite(float(m["loss"]))
  for a, b in zip(real0, jax.tree_util.tree_leaves(state.real)):   # the teacher is frozen
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  sample, nfe = cd.one_step_sampler(c, nets)
  x = sample(state.target, jnp.zeros((2, 2 * c.model.encoder_out)), jax.random.PRNGKey(0))
  assert nfe == 1 and x.shape == (2, 4, 4) and float(jnp.abs(x).max()) <= 1.0
