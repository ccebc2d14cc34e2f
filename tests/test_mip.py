"""MIP: two clipped evaluations at tau = 0 and t*, and the second step's pull onto the data:
on a two-mode target it lands on the likelier mode where regression lands between them."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import bc as bc_configs
from configs import mip as mip_configs
from helpers import toys
from jaxpolicy import nets as nets_lib
from jaxpolicy.errors import ConfigError
from jaxpolicy.methods import bc, mip

OBS = {"full_state": (39,)}


def test_two_steps_zeros_at_0_then_the_first_output_at_t_star():
  c = mip_configs.get_config("tiny")
  nets = nets_lib.build_nets(c, 4)
  state = mip.init(c, nets, OBS, jax.random.PRNGKey(0))
  calls = []
  unet = nets.unet

  class Counting:
    def apply(self, params, x, t, cond, **k):
      calls.append((np.asarray(x), np.asarray(t)))
      return unet.apply(params, x, t, cond, **k)

  big = jax.tree_util.tree_map(lambda a: a * 30.0, state.model.params)
  spec = mip.make_policies(
    c,
    dataclasses.replace(nets, unet=Counting()),
    state.replace(model=state.model.replace(ema_params=big)),
    None,
  )["mip_2step"]
  assert spec.nfe == 2
  obs = {"full_state": jax.random.normal(jax.random.PRNGKey(1), (3, 2, 39))}
  cond = nets.encode(big["encoder"], obs)
  x = spec.sample(spec.sampler_params, cond, jax.random.PRNGKey(0))
  assert len(calls) == 2
  (x1, t1), (x2, t2) = calls
  assert not x1.any() and not t1.any()  # zeros at tau = 0
  np.testing.assert_array_equal(t2, np.full(3, 0.9 * c.diffusion.num_train_timesteps))
  first = unet.apply(big["unet"], jnp.zeros((3, 4, 4)), jnp.zeros(3), cond)
  np.testing.assert_allclose(x2, np.asarray(first), atol=1e-6)  # the first step's output
  raw = np.asarray(unet.apply(big["unet"], first, jnp.asarray(t2), cond))
  assert np.abs(raw).max() > 1.5
  np.testing.assert_allclose(np.asarray(x), np.clip(raw, -1, 1), atol=1e-5)


@pytest.mark.parametrize("t_star", [0.0, 1.0])
def test_t_star_outside_the_open_interval_is_refused(t_star):
  c = mip_configs.get_config("tiny")
  c.mip.t_star = t_star
  with pytest.raises(ConfigError, match="mip.t_star"):
    mip.check_config(c)


M1, M2, P1, SD = np.array([0.3, 0.3]), np.array([-0.3, -0.3]), 0.7, 0.02
MEAN = P1 * M1 + (1 - P1) * M2


def posterior_mean(i, t_star):
  """E[a | t* a + (1 - t*) z = i] for a ~ P1 N(M1, SD^2) + (1 - P1) N(M2, SD^2), float64."""
  var = (t_star * SD) ** 2 + (1 - t_star) ** 2
  logp = [
    np.log(p) - np.sum((i - t_star * m) ** 2) / (2 * var) for p, m in ((P1, M1), (1 - P1, M2))
  ]
  w = np.exp(np.array(logp) - max(logp))
  w /= w.sum()
  gain = t_star * SD**2 / var
  return sum(wk * (m + gain * (i - t_star * m)) for wk, m in zip(w, (M1, M2)))


@pytest.mark.parametrize("variant", ["mip", "noise_free_second_step", "bc"])
def test_the_second_step_lands_on_the_likelier_mode(variant, monkeypatch):
  """A 2-D target with modes M1 (p 0.7) and M2 = -M1 (p 0.3), obs-free, a small MLP. The
  first step regresses onto t* E[a]; the second, trained to denoise t* a + (1 - t*) z, maps
  it to E[a | that input], which for this target is M1 (float64 posterior mean, computed at
  the network's own first output): MIP's two steps land within 0.03 of it. Trained without
  the noise (broken) the second step never sees an input between the modes and returns the
  mean, like regression (bc): both stay within 0.03 of E[a], 0.25 from M1."""
  if variant == "noise_free_second_step":
    monkeypatch.setattr(mip, "second_step_input", lambda config, a, rng: config.mip.t_star * a)
  mod = bc if variant == "bc" else mip
  c = (bc_configs if variant == "bc" else mip_configs).get_config("tiny")
  c.train.steps, c.train.lr, c.train.warmup_steps = 1500, 3e-3, 50
  nets, batch_of = toys.mlp_nets(2)
  state = mod.init(c, nets, {"full_state": (3,)}, jax.random.PRNGKey(0))

  def one(s, k):
    k_m, k_n, k_s = jax.random.split(k, 3)
    first = jax.random.uniform(k_m, (256, 1, 1)) < P1
    a = jnp.where(first, jnp.asarray(M1, jnp.float32), jnp.asarray(M2, jnp.float32))
    a = a + SD * jax.random.normal(k_n, (256, 1, 2))
    return mod.train_step(c, nets, s, batch_of(a), k_s)

  keys = jax.random.split(jax.random.PRNGKey(100), c.train.steps)
  state, _ = jax.jit(lambda s: jax.lax.scan(one, s, keys))(state)
  spec = mod.make_policies(c, nets, state, None)[mod.INFO.main_policy]
  cond = nets.encode(spec.encoder_params, batch_of(jnp.zeros((2, 1, 2)))["obs"])
  out = np.asarray(spec.sample(spec.sampler_params, cond, jax.random.PRNGKey(0)), np.float64)[0, 0]
  if variant == "bc":
    assert np.linalg.norm(out - MEAN) < 0.03, out
    return
  first = np.asarray(mip.first_step(c, nets, spec.sampler_params, cond), np.float64)[0, 0]
  np.testing.assert_allclose(first, c.mip.t_star * MEAN, atol=0.03)
  want = posterior_mean(first, c.mip.t_star)
  assert np.linalg.norm(want - M1) < 0.01  # the answer: the likelier mode
  on_mode = np.linalg.norm(out - want) < 0.03
  assert on_mode == (variant == "mip"), (variant, out, want)
  if variant != "mip":
    assert np.linalg.norm(out - MEAN) < 0.03, out
