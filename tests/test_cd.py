"""Consistency distillation: the teacher's solver step, the boundary scalings, the target
EMA, and that CD learns the teacher's ODE end point on a toy whose end point is known."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import cd as cd_configs
from helpers import toys
from jaxpolicy import nets as nets_lib
from jaxpolicy.diffusion.schedule import Schedule, timesteps
from jaxpolicy.methods import cd, teacher
from jaxpolicy.methods import state as state_lib
from jaxpolicy.errors import ConfigError


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
  got = cd.solver_step(
    c,
    nets,
    {"x0": jnp.asarray(x0, jnp.float32)},
    jnp.asarray(x_t, jnp.float32),
    jnp.asarray(t),
    jnp.asarray(prev),
    None,
  )
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
  np.testing.assert_allclose(c_skip[2:], 0.25 / (st**2 + 0.25), rtol=1e-5)
  np.testing.assert_allclose(c_out[2:], st / np.sqrt(st**2 + 0.25), rtol=1e-5)


@pytest.mark.slow
def test_target_is_the_ema_of_online_and_the_teacher_stays_frozen():
  c = cd_configs.get_config("tiny")
  nets = nets_lib.build_nets(c, 4)
  obs_shapes = {"full_state": (39,)}
  tstate = teacher.from_params(nets.init(jax.random.PRNGKey(0), obs_shapes))
  state = cd.init(c, nets, obs_shapes, jax.random.PRNGKey(1), tstate)
  batch = {
    "obs": {"full_state": jax.random.normal(jax.random.PRNGKey(2), (8, 2, 39))},
    "action": jax.random.uniform(jax.random.PRNGKey(3), (8, 4, 4), minval=-1, maxval=1),
  }
  step = jax.jit(lambda s, k: cd.train_step(c, nets, s, batch, k))
  real0 = jax.tree_util.tree_leaves(state.real)
  for i in range(3):
    old_target = state.target
    state, m = step(state, jax.random.PRNGKey(10 + i))
    for tp, op, np_ in zip(
      jax.tree_util.tree_leaves(old_target),
      jax.tree_util.tree_leaves(state.online.params),
      jax.tree_util.tree_leaves(state.target),
    ):
      np.testing.assert_allclose(
        np.asarray(np_), 0.95 * np.asarray(tp) + 0.05 * np.asarray(op), rtol=1e-6, atol=1e-7
      )
    assert np.isfinite(float(m["loss"]))
  for a, b in zip(real0, jax.tree_util.tree_leaves(state.real)):  # the teacher is frozen
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  sample, nfe = cd.one_step_sampler(c, nets)
  x = sample(state.target, jnp.zeros((2, 2 * c.model.encoder_out)), jax.random.PRNGKey(0))
  assert nfe == 1 and x.shape == (2, 4, 4) and float(jnp.abs(x).max()) <= 1.0


def test_epsilon_prediction_is_refused():
  c = cd_configs.get_config("tiny")
  c.diffusion.prediction_type = "epsilon"
  with pytest.raises(ConfigError, match="sqrt\\(abar_99\\) ~ 5e-4"):
    cd.check_config(c)


def _manicm_solver_step(config, nets, real_params, x_t, t, prev_t, cond):
  """The released ManiCM solver: the teacher's x0 fed in where epsilon belongs."""
  abar = jnp.asarray(Schedule(100).abar_with_one(), jnp.float32)
  ab = abar[jnp.where(prev_t < 0, -1, prev_t)][:, None, None]
  x0 = nets.denoiser(real_params, cond)(x_t, t)
  return jnp.sqrt(ab) * jnp.clip(x0, -1, 1) + jnp.sqrt(1 - ab) * x0


MU, S = np.array([0.3, -0.2]), np.array([0.2, 0.3])


def _train_cd_toy(steps=3000, lr=1e-2):
  """CD's own train_step on Gaussian data with the exact teacher; online/target start from
  the teacher (per-timestep affine x0 models). Returns (initial state, trained, losses)."""
  c = cd_configs.get_config("tiny")
  c.train.steps = steps
  nets, enc, batch_of = toys.toy_nets(2)
  init = toys.posterior_affine(MU, S)
  tx = state_lib.make_optimizer(lr, steps, 20, 0.0, *c.cd.betas)
  state = cd.CDState(state_lib.create(None, init, tx, ema=False), init, toys.gaussian(MU, S), enc)
  data = jnp.asarray(MU + S * np.random.default_rng(0).standard_normal((4096, 1, 2)), jnp.float32)

  def one(s, k):
    k_rows, k_step = jax.random.split(k)
    batch = dict(batch_of(256), action=data[jax.random.randint(k_rows, (256,), 0, 4096)])
    return cd.train_step(c, nets, s, batch, k_step)

  trained, metrics = jax.jit(
    lambda s: jax.lax.scan(one, s, jax.random.split(jax.random.PRNGKey(0), steps))
  )(state)
  return c, nets, state, trained, np.asarray(metrics["loss"])


@pytest.mark.slow
@pytest.mark.parametrize("broken", [False, True])
def test_cd_learns_the_teachers_ode_end_point(broken, monkeypatch):
  """On Gaussian data the teacher's deterministic skip-10 DDIM chain from x_99 has a known
  end point (float64 numpy). CD starts from the teacher, whose one step from noise gives
  about the data mean; trained, its one-step output lands on the chain's end point. With
  the released ManiCM solver bug (x0 as epsilon) it does not."""
  if broken:
    monkeypatch.setattr(cd, "solver_step", _manicm_solver_step)
  c, nets, state, trained, losses = _train_cd_toy()
  z = np.random.default_rng(1).standard_normal((512, 1, 2))
  ts = timesteps(100, 10, "trailing")
  end = toys.ddim_chain_f64(MU, S, z, ts, ts - 10)
  t99 = jnp.full((512,), 99, jnp.int32)
  err = lambda p: float(
    np.abs(
      np.asarray(cd.consistency_fn(c, nets, p, jnp.asarray(z, jnp.float32), t99, None)) - end
    ).mean()
  )
  before, after = err(state.target), err(trained.target)
  assert before > 0.1  # the teacher's one step collapses to the mean
  if broken:
    assert after > 0.5 * before, (before, after)
  else:
    assert after < 0.02 * before, (before, after)
    assert losses[-100:].mean() < 0.01 * losses[:20].mean()
