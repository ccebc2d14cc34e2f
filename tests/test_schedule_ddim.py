"""Schedule and DDIM against an independent float64 implementation of diffusers' formulas."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpolicy.diffusion import samplers
from jaxpolicy.diffusion.schedule import Schedule, timesteps


def ref_alphas_cumprod(T):
  f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
  betas = [min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)]
  out, acc = [], 1.0
  for b in betas:
    acc *= 1 - b
    out.append(acc)
  return np.array(out)


def ref_ddim_step(abar, x, out, t, prev_t, pred, clip):
  a_t = abar[t]
  a_prev = abar[prev_t] if prev_t >= 0 else 1.0
  if pred == "sample":
    x0 = out
    eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1 - a_t)
  else:
    eps = out
    x0 = (x - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t)
  if clip:
    x0 = np.clip(x0, -1, 1)
  return math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * eps


def test_alphas_cumprod_float64_reference():
  s = Schedule(100)
  np.testing.assert_allclose(s.alphas_cumprod, ref_alphas_cumprod(100), rtol=1e-12)
  assert s.alphas_cumprod[-1] > 0 and np.all(np.diff(s.alphas_cumprod) < 0)


@pytest.mark.parametrize(
  "k,spacing,expected",
  [
    (10, "leading", [90, 80, 70, 60, 50, 40, 30, 20, 10, 0]),
    (4, "leading", [75, 50, 25, 0]),
    (2, "leading", [50, 0]),
    (1, "leading", [0]),
    (4, "trailing", [99, 74, 49, 24]),
    (2, "trailing", [99, 49]),
    (1, "trailing", [99]),
    (10, "trailing", [99, 89, 79, 69, 59, 49, 39, 29, 19, 9]),
  ],
)
def test_timestep_grids_match_diffusers(k, spacing, expected):
  assert timesteps(100, k, spacing).tolist() == expected


@pytest.mark.parametrize("pred", ["sample", "epsilon"])
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("k,spacing", [(10, "leading"), (4, "trailing"), (2, "leading")])
def test_ddim_sampler_matches_float64(pred, clip, k, spacing):
  schedule = Schedule(100, pred, clip)
  abar = ref_alphas_cumprod(100)
  rng = np.random.default_rng(0)
  W = rng.normal(size=(3, 3)) * 0.7
  model = lambda x, t: np.tanh(x @ W) * (1 + t / 100.0)  # any fixed nonlinear function
  x_init = rng.normal(size=(2, 4, 3))
  ts, prev = samplers.ddim_grid(schedule, k, spacing)
  # float64 reference loop
  x = x_init.copy()
  for t, p in zip(ts, prev):
    x = ref_ddim_step(abar, x, model(x, t), int(t), int(p), pred, clip)
  denoise = lambda xx, tt: (
    jnp.tanh(xx @ jnp.asarray(W, jnp.float32)) * (1 + tt[:, None, None] / 100.0)
  )
  got = jax.jit(lambda x0: samplers.ddim_sample(schedule, denoise, x0, ts, prev))(
    jnp.asarray(x_init, jnp.float32)
  )
  np.testing.assert_allclose(np.asarray(got), x, atol=2e-5, rtol=1e-4)


def test_add_noise_and_x0_roundtrip():
  s = Schedule(100, "epsilon")
  rng = np.random.default_rng(1)
  x0, eps = rng.normal(size=(5, 4, 2)), rng.normal(size=(5, 4, 2))
  t = np.array([0, 10, 50, 90, 99])
  abar = ref_alphas_cumprod(100)[t][:, None, None]
  xt_ref = np.sqrt(abar) * x0 + np.sqrt(1 - abar) * eps
  xt = samplers.add_noise(
    s, jnp.asarray(x0, jnp.float32), jnp.asarray(eps, jnp.float32), jnp.asarray(t)
  )
  np.testing.assert_allclose(np.asarray(xt), xt_ref, atol=1e-5)
  x0_hat, eps_hat = samplers.split_prediction(s, xt, jnp.asarray(eps, jnp.float32), jnp.asarray(t))
  np.testing.assert_allclose(np.asarray(eps_hat), eps, atol=1e-6)
  np.testing.assert_allclose(np.asarray(x0_hat)[:4], x0[:4], atol=1e-3)  # t=99 amplifies


def test_matches_diffusers_when_installed():
  diffusers = pytest.importorskip("diffusers")
  torch = pytest.importorskip("torch")
  for pred in ("sample", "epsilon"):
    for spacing, k in (("leading", 10), ("trailing", 4)):
      ref = diffusers.DDIMScheduler(
        num_train_timesteps=100,
        beta_schedule="squaredcos_cap_v2",
        clip_sample=True,
        set_alpha_to_one=True,
        steps_offset=0,
        prediction_type=pred,
        timestep_spacing=spacing,
      )
      ref.set_timesteps(k)
      schedule = Schedule(100, pred, True)
      ts, prev = samplers.ddim_grid(schedule, k, spacing)
      assert ref.timesteps.tolist() == ts.tolist()
      np.testing.assert_allclose(
        ref.alphas_cumprod.double().numpy(), schedule.alphas_cumprod, rtol=1e-6, atol=1e-9
      )  # diffusers works in float32
      rng = np.random.default_rng(2)
      x = rng.normal(size=(2, 4, 3)).astype(np.float32)
      out = rng.normal(size=(2, 4, 3)).astype(np.float32)
      for t, p in zip(ts, prev):
        want = ref.step(torch.from_numpy(out), int(t), torch.from_numpy(x), eta=0.0).prev_sample
        got = samplers.ddim_step(
          schedule, jnp.asarray(x), jnp.asarray(out), jnp.full((2,), t), jnp.full((2,), p)
        )
        np.testing.assert_allclose(np.asarray(got), want.numpy(), atol=1e-5, rtol=1e-5)
        x = want.numpy()
