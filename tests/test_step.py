"""STEP: previous-chunk alignment, the warm start at t0, and when the perturbation fires."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import step as step_configs
from jaxpolicy import nets as nets_lib
from jaxpolicy.data import storage
from jaxpolicy.data.dataset import load_demos
from jaxpolicy.diffusion import samplers
from jaxpolicy.diffusion.schedule import Schedule
from jaxpolicy.methods import step, teacher


def test_previous_chunk_alignment_matches_the_inference_cache(tmp_path):
  """In training, window t's previous chunk is window (t - n_action_steps)'s chunk: the
  chunk the policy produced at its previous call, n_action_steps env steps earlier."""
  L, n_act = 23, 3
  acts = np.stack([np.arange(L), np.arange(L) * 10], 1).astype(np.float32)
  path = str(tmp_path / "d.zarr")
  storage.write_episodes(path, [{"action": acts, "full_state": np.zeros((L, 39), np.float32),
                                 "state": np.zeros((L, 9), np.float32)}])
  data = load_demos(path, ("full_state",), horizon=4, n_obs_steps=2, n_action_steps=n_act,
                    val_episodes=0)
  w = data.train
  un = lambda x: np.round(data.normalizer["action"].unnormalize(np.asarray(x)))[..., 0]
  for t in range(0, L - 3, n_act):          # policy calls at env steps 0, 3, 6, ...
    row = t                                  # row t holds the window whose obs ends at t
    cur = w.take(np.array([row]))
    chunk = un(cur["action"])[0]
    assert chunk[1] == t                     # executed actions start at env step t
    if t >= n_act:
      prev_call = un(w.take(np.array([row - n_act]))["action"])[0]
      np.testing.assert_array_equal(un(cur["prev_action"])[0], prev_call)
    else:                                    # episode start: edge-padded first action
      np.testing.assert_array_equal(un(cur["prev_action"])[0], [0, 0, 0, 0])


class Spy:
  """Wraps the U-Net and records (x, t) of every evaluation, also under jit/scan."""
  def __init__(self, unet):
    self.unet, self.calls = unet, []

  def apply(self, params, x, t, cond):
    jax.debug.callback(lambda xx, tt: self.calls.append((np.asarray(xx), np.asarray(tt))), x, t)
    return self.unet.apply(params, x, t, cond)


def _setup(spacing, **step_overrides):
  c = step_configs.get_config("tiny")
  c.step.spacing = spacing
  for k, v in step_overrides.items():
    c.step[k] = v
  nets = nets_lib.build_nets(c, 4)
  tstate = teacher.init(c, nets, {"full_state": (39,)}, jax.random.PRNGKey(0))
  state = step.init(c, nets, {"full_state": (39,)}, jax.random.PRNGKey(1), tstate)
  spy = Spy(nets.unet)
  return c, dataclasses.replace(nets, unet=spy), state, spy


@pytest.mark.parametrize("spacing,expected", [("leading", {1: 0, 2: 50, 4: 75}),
                                              ("trailing", {1: 99, 2: 99, 4: 99})])
def test_warm_start_at_t0(spacing, expected):
  c, nets, state, spy = _setup(spacing)
  schedule = Schedule(100)
  B = 3
  cond = jax.random.normal(jax.random.PRNGKey(2), (B, 2 * c.model.encoder_out))
  prev = jax.random.uniform(jax.random.PRNGKey(3), (B, 4, 4), minval=-1, maxval=1)
  exec_prev = prev[:, 1:4]
  carry = {"prev": prev, "exec_prev": exec_prev, "exec_prev2": exec_prev + 0.5,
           "first": jnp.zeros((), bool), "stalled": jnp.zeros((B,), bool)}
  params = {"predictor": state.predictor.params, "unet": state.teacher["unet"]}
  pred = step.make_predictor(c, 4)
  a_hat = np.asarray(pred.apply(state.predictor.params,
                                cond.reshape(B, 2, -1), prev), np.float64)
  for k, t0 in expected.items():
    spy.calls.clear()
    sample, nfe = step.step_sampler(c, nets, k)
    rng = jax.random.PRNGKey(10 + k)
    x, new = jax.jit(sample)(params, cond, carry, rng)
    jax.effects_barrier()
    assert nfe == k and len(spy.calls) == k
    ts = [int(call[1][0]) for call in spy.calls]
    assert ts[0] == t0 and ts == samplers.ddim_grid(schedule, k, spacing)[0].tolist()
    noise = np.asarray(jax.random.normal(jax.random.split(rng)[1], a_hat.shape), np.float64)
    abar = schedule.alphas_cumprod[t0]
    want = np.sqrt(abar) * a_hat + np.sqrt(1 - abar) * noise        # s = sigma = 1
    np.testing.assert_allclose(spy.calls[0][0], want, atol=2e-5)
    assert not np.any(np.asarray(new["stalled"]))
    np.testing.assert_array_equal(np.asarray(new["prev"]), np.asarray(x))   # the cache


def test_perturbation_fires_exactly_when_executed_actions_stall():
  c, nets, state, spy = _setup("leading", eps_stall=0.01, s_stall=0.5, sigma_stall=0.1)
  schedule = Schedule(100)
  B = 4
  cond = jax.random.normal(jax.random.PRNGKey(2), (B, 2 * c.model.encoder_out))
  prev = jax.random.uniform(jax.random.PRNGKey(3), (B, 4, 4), minval=-1, maxval=1)
  e1 = prev[:, 1:4]
  # RMS change per env: 0 (stalled), 0.009 (stalled), 0.011 (moving), 0.5 (moving)
  delta = jnp.array([0.0, 0.009, 0.011, 0.5])[:, None, None] * jnp.ones_like(e1)
  carry = {"prev": prev, "exec_prev": e1, "exec_prev2": e1 - delta,
           "first": jnp.zeros((), bool), "stalled": jnp.zeros((B,), bool)}
  params = {"predictor": state.predictor.params, "unet": state.teacher["unet"]}
  sample, _ = step.step_sampler(c, nets, 2)
  rng = jax.random.PRNGKey(5)
  x, new = jax.jit(sample)(params, cond, carry, rng)
  jax.effects_barrier()
  assert np.asarray(new["stalled"]).tolist() == [True, True, False, False]
  a_hat = np.asarray(step.make_predictor(c, 4).apply(state.predictor.params,
                                                     cond.reshape(B, 2, -1), prev), np.float64)
  noise = np.asarray(jax.random.normal(jax.random.split(rng)[1], a_hat.shape), np.float64)
  abar = schedule.alphas_cumprod[50]
  s = np.array([0.5, 0.5, 1.0, 1.0])[:, None, None]
  sigma = np.array([0.1, 0.1, 1.0, 1.0])[:, None, None]
  np.testing.assert_allclose(spy.calls[0][0], np.sqrt(abar) * s * a_hat +
                             np.sqrt(1 - abar) * sigma * noise, atol=2e-5)
  # the new carry compares this call's executed actions with the previous call's
  np.testing.assert_array_equal(np.asarray(new["exec_prev2"]), np.asarray(e1))
  np.testing.assert_array_equal(np.asarray(new["exec_prev"]), np.asarray(x[:, 1:4]))


def test_first_call_is_pure_noise_ddim_of_the_teacher():
  c, nets, state, spy = _setup("leading")
  sample, _ = step.step_sampler(c, nets, 2)
  init = step.init_carry_fn(c, nets)(2)
  cond = jnp.zeros((2, 2 * c.model.encoder_out))
  params = {"predictor": state.predictor.params, "unet": state.teacher["unet"]}
  x, new = jax.jit(sample)(params, cond, init, jax.random.PRNGKey(0))
  jax.effects_barrier()
  ts = [int(call[1][0]) for call in spy.calls]
  assert ts == list(range(90, -1, -10))      # the teacher's DDIM-10, not the warm start
  assert not bool(new["first"]) and not np.any(np.asarray(new["stalled"]))
