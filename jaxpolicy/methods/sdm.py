"""SDM: Score and Distribution Matching distillation into a one-step generator.

Three U-Nets share the teacher's frozen encoder and normaliser, all starting from the
teacher: P, the frozen real score; D, the trainable fake score, denoising the generator's
stop-gradient samples on every step (`fake_loss`); G, the generator, z -> action chunk at the
constant timestep T, moved along D's and P's difference every `sdm.gen_every`-th step
(`generator_loss`, `generator_direction`). G and D have separate AdamW optimisers.
Evaluation: one step, `sdm_1step`. The step's equations and where it differs from the
released code: docs/methods.md, "SDM".
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from jaxpolicy.diffusion import losses, samplers
from jaxpolicy.diffusion.schedule import timesteps
from jaxpolicy.errors import ConfigError
from jaxpolicy.methods import state as state_lib
from jaxpolicy.methods.common import (
  MethodInfo,
  ddim_sampler,
  policy_params,
  schedule_of,
  teacher_params,
)
from jaxpolicy.policy import PolicySpec


def _torch_reference(config, name):
  return ("one_step", config.diffusion.num_train_timesteps) if name == "sdm_1step" else None


INFO = MethodInfo(
  name="sdm",
  label="SDM (1 step)",
  main_policy="sdm_1step",
  needs_teacher=True,
  style=("tab:green", "^", "-.", 6),
  torch_reference=_torch_reference,
)


@flax.struct.dataclass
class SDMState:
  gen: state_lib.TrainState  # G: U-Net params (+ EMA)
  fake: state_lib.TrainState  # D: U-Net params
  real: dict  # P: frozen teacher U-Net params
  encoder: dict  # frozen teacher encoder params
  step: jax.Array  # SDM steps taken (D updates)


def check_config(config):
  s = config.sdm
  if config.diffusion.prediction_type != "sample":
    raise ConfigError(
      "SDM's generator outputs the action chunk directly; it needs "
      "diffusion.prediction_type='sample'"
    )
  if s.normalizer not in ("dmd", "anchor"):
    raise ConfigError(f"sdm.normalizer must be 'dmd' or 'anchor', got {s.normalizer!r}")
  if s.t_mode not in ("grid", "uniform"):
    raise ConfigError(f"sdm.t_mode must be 'grid' or 'uniform', got {s.t_mode!r}")
  if s.init not in ("ema", "params"):
    raise ConfigError(f"sdm.init must be 'ema' or 'params', got {s.init!r}")
  if s.gen_every < 1:
    raise ConfigError(f"sdm.gen_every must be >= 1, got {s.gen_every}")
  T = config.diffusion.num_train_timesteps
  if not 0 <= s.t_min <= s.t_max < T:
    raise ConfigError(f"need 0 <= sdm.t_min <= sdm.t_max < {T}")


def _optimizer(config, lr, updates):
  s = config.sdm
  return state_lib.make_optimizer(
    lr, updates, s.warmup_steps, s.weight_decay, *s.betas, grad_clip=s.grad_clip
  )


def init(config, nets, obs_shapes, rng, teacher_state) -> SDMState:
  del nets, obs_shapes, rng
  s = config.sdm
  tparams = teacher_params(teacher_state, use_ema=s.init == "ema")
  steps = config.train.steps
  gen = state_lib.create(
    None,
    state_lib.copy(tparams["unet"]),
    _optimizer(config, s.gen_lr, -(-steps // s.gen_every)),
    ema=config.train.ema,
  )
  fake = state_lib.create(
    None, state_lib.copy(tparams["unet"]), _optimizer(config, s.fake_lr, steps), ema=False
  )
  return SDMState(
    gen=gen,
    fake=fake,
    real=state_lib.copy(tparams["unet"]),
    encoder=state_lib.copy(tparams["encoder"]),
    step=jnp.zeros((), jnp.int32),
  )


def sample_t(config, rng, batch: int):
  """Timesteps for the distribution-matching and fake-score losses."""
  s = config.sdm
  if s.t_mode == "grid":  # the anchor's {9, 19, ..., 99} for 10 steps on T = 100
    grid = jnp.asarray(timesteps(config.diffusion.num_train_timesteps, s.t_grid_steps, "trailing"))
    return grid[jax.random.randint(rng, (batch,), 0, grid.shape[0])]
  return jax.random.randint(rng, (batch,), s.t_min, s.t_max + 1)


def generate(config, nets, gen_params, cond, z):
  """G's action chunk (normalised, unclipped) for noise z at the constant timestep T."""
  T = jnp.full((z.shape[0],), config.diffusion.num_train_timesteps, jnp.int32)
  return nets.denoiser(gen_params, cond)(z, T)


def generator_direction(config, schedule, x, x_t, t, x0_real, x0_fake):
  """The distribution-matching direction g (gradient of loss_G w.r.t. x is lambda*g/N)."""
  mode = config.sdm.normalizer
  if mode == "dmd":
    w = 1.0 / jnp.maximum(jnp.mean(jnp.abs(x - x0_real), axis=(1, 2), keepdims=True), 1e-8)
    return (x0_fake - x0_real) * jax.lax.stop_gradient(w)
  # anchor: score space, s = -(x_t - sqrt(abar) x0) / (1 - abar), one batch-wide normaliser
  abar = jnp.asarray(schedule.alphas_cumprod, jnp.float32)[t][:, None, None]
  score = lambda x0: -(x_t - jnp.sqrt(abar) * x0) / (1.0 - abar)
  s_real, s_fake = score(x0_real), score(x0_fake)
  w = 1.0 / jnp.maximum(jnp.mean(jnp.abs(s_real)), 1e-8)
  return (s_fake - s_real) * jax.lax.stop_gradient(w)


def generator_loss(config, nets, gen_params, real_params, fake_params, cond, z, rng):
  schedule = schedule_of(config)
  k_t, k_n = jax.random.split(rng)
  x = generate(config, nets, gen_params, cond, z)
  t = sample_t(config, k_t, x.shape[0])
  x_t = samplers.add_noise(schedule, x, jax.random.normal(k_n, x.shape), t)
  x0_real, _ = samplers.split_prediction(schedule, x_t, nets.denoiser(real_params, cond)(x_t, t), t)
  x0_fake, _ = samplers.split_prediction(schedule, x_t, nets.denoiser(fake_params, cond)(x_t, t), t)
  g = generator_direction(config, schedule, x, x_t, t, x0_real, x0_fake)
  g = jax.lax.stop_gradient(g)
  loss = config.sdm.lam * 0.5 * jnp.mean((x - jax.lax.stop_gradient(x - g)) ** 2)
  return loss, x


def fake_loss(config, nets, fake_params, cond, x, rng):
  """D's denoising loss on stop-gradient generator samples."""
  schedule = schedule_of(config)
  k_t, k_l = jax.random.split(rng)
  t = sample_t(config, k_t, x.shape[0])
  return config.sdm.gamma * losses.denoising_loss(
    schedule, nets.denoiser(fake_params, cond), jax.lax.stop_gradient(x), k_l, t
  )


def train_step(config, nets, state: SDMState, batch, rng):
  k_z, k_g, k_d = jax.random.split(rng, 3)
  cond = jax.lax.stop_gradient(nets.encode(state.encoder, batch["obs"]))
  z = jax.random.normal(k_z, batch["action"].shape)
  s = config.sdm

  def update_gen(gen):
    (loss, _), grads = jax.value_and_grad(generator_loss, argnums=2, has_aux=True)(
      config, nets, gen.params, state.real, state.fake.params, cond, z, k_g
    )
    return state_lib.apply_update(gen, grads, config.train.ema_power, config.train.ema_max), loss

  def skip_gen(gen):
    return gen, jnp.zeros(())

  gen, loss_g = jax.lax.cond(state.step % s.gen_every == 0, update_gen, skip_gen, state.gen)
  x = generate(config, nets, gen.params, cond, z)
  loss_d, grads_d = jax.value_and_grad(fake_loss, argnums=2)(
    config, nets, state.fake.params, cond, x, k_d
  )
  fake = state.fake.apply_gradients(grads=grads_d)
  new = state.replace(gen=gen, fake=fake, step=state.step + 1)
  updated = (state.step % s.gen_every == 0).astype(jnp.float32)
  return new, {"loss_d": loss_d, "loss_g": loss_g, "loss_g_mask": updated}


def one_step_sampler(config, nets):
  """True one-step inference: a = clip(G(z, T)). NFE = 1."""

  def sample(gen_params, cond, rng):
    z = jax.random.normal(rng, (cond.shape[0], nets.horizon, nets.action_dim))
    return jnp.clip(generate(config, nets, gen_params, cond, z), -1.0, 1.0)

  return sample, 1


def make_policies(config, nets, state: SDMState, normalizer):
  del normalizer
  gen = policy_params(state.gen, config.eval.use_ema)
  sample, nfe = one_step_sampler(config, nets)
  out = {"sdm_1step": PolicySpec(sample, state.encoder, gen, nfe)}
  if config.sdm.eval_anchor_steps:
    # The released code's evaluation: k DDIM steps of the teacher's sampler through G.
    k = config.sdm.eval_anchor_steps
    anchor, nfe_a = ddim_sampler(config, nets, k, config.diffusion.spacing)
    out[f"sdm_anchor_ddim{nfe_a}"] = PolicySpec(anchor, state.encoder, gen, nfe_a)
  return out
