"""CD: consistency distillation of the teacher (ManiCM / Consistency Policy style).

Online and target U-Nets start from the teacher; the target is an EMA of the online net.
Per step (`cd_loss`) a demonstration chunk is noised at t_n, one DDIM step of the frozen
teacher (`solver_step`) goes to t_n - k, and the online consistency function
(`consistency_fn`, with `boundary_scalings`) at t_n is regressed onto the target's at
t_n - k. Evaluation: one step at t = T - 1 from noise, `cd_1step` (NFE 1). The equations and
the fix to the released solver step: docs/methods.md, "CD".
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from jaxpolicy.diffusion import samplers
from jaxpolicy.diffusion.schedule import timesteps
from jaxpolicy.errors import ConfigError
from jaxpolicy.methods import state as state_lib
from jaxpolicy.methods.common import MethodInfo, schedule_of, teacher_params
from jaxpolicy.policy import PolicySpec

INFO = MethodInfo(
  name="cd",
  label="CD (1 step)",
  main_policy="cd_1step",
  needs_teacher=True,
  style=("tab:orange", "s", "--", 7),
)


@flax.struct.dataclass
class CDState:
  online: state_lib.TrainState
  target: dict  # EMA of online (the evaluated network)
  real: dict  # frozen teacher U-Net: the ODE solver
  encoder: dict  # frozen teacher encoder


def check_config(config):
  c = config.cd
  T = config.diffusion.num_train_timesteps
  if not 1 <= c.skip < T or T % c.skip:
    raise ConfigError(f"cd.skip must divide T = {T} and lie in [1, {T}), got {c.skip}")
  if config.diffusion.prediction_type != "sample":
    raise ConfigError(
      "CD's one-step evaluation at t = 99 needs diffusion.prediction_type="
      "'sample': from an epsilon prediction, x0 = (x - sqrt(1 - abar) eps) / "
      "sqrt(abar_99) divides by sqrt(abar_99) ~ 5e-4 and pins the actions at "
      "+-1"
    )
  if not 0.0 <= c.target_decay < 1.0:
    raise ConfigError(f"cd.target_decay must be in [0, 1), got {c.target_decay}")


def init(config, nets, obs_shapes, rng, teacher_state) -> CDState:
  del nets, obs_shapes, rng
  c = config.cd
  tparams = teacher_params(teacher_state, use_ema=True)
  tx = state_lib.make_optimizer(
    c.lr, config.train.steps, c.warmup_steps, c.weight_decay, *c.betas, grad_clip=c.grad_clip
  )
  online = state_lib.create(None, state_lib.copy(tparams["unet"]), tx, ema=False)
  return CDState(
    online,
    state_lib.copy(tparams["unet"]),
    state_lib.copy(tparams["unet"]),
    state_lib.copy(tparams["encoder"]),
  )


def boundary_scalings(config, t):
  """(c_skip, c_out) of shape (B, 1, 1); t clamped at 0 where c_skip = 1, c_out = 0."""
  c = config.cd
  st = c.timestep_scaling * jnp.maximum(t, 0).astype(jnp.float32)
  c_skip = c.sigma_data**2 / (st**2 + c.sigma_data**2)
  c_out = st / jnp.sqrt(st**2 + c.sigma_data**2)
  return c_skip[:, None, None], c_out[:, None, None]


def consistency_fn(config, nets, params, x, t, cond):
  schedule = schedule_of(config)
  t_model = jnp.maximum(t, 0)
  x0, _ = samplers.split_prediction(schedule, x, nets.denoiser(params, cond)(x, t_model), t_model)
  c_skip, c_out = boundary_scalings(config, t)
  return c_skip * x + c_out * x0


def solver_step(config, nets, real_params, x_t, t, prev_t, cond):
  """One DDIM step of the frozen teacher (epsilon derived from its x0 prediction)."""
  schedule = schedule_of(config)
  return samplers.ddim_step(schedule, x_t, nets.denoiser(real_params, cond)(x_t, t), t, prev_t)


def sample_tn(config, rng, batch):
  T, k = config.diffusion.num_train_timesteps, config.cd.skip
  grid = jnp.asarray(timesteps(T, T // k, "trailing"))  # {k-1, 2k-1, ..., T-1}
  return grid[jax.random.randint(rng, (batch,), 0, grid.shape[0])]


def cd_loss(config, nets, online_params, state: CDState, x0, cond, rng):
  schedule = schedule_of(config)
  k_t, k_n = jax.random.split(rng)
  t = sample_tn(config, k_t, x0.shape[0])
  prev_t = t - config.cd.skip
  x_t = samplers.add_noise(schedule, x0, jax.random.normal(k_n, x0.shape), t)
  x_prev = jax.lax.stop_gradient(solver_step(config, nets, state.real, x_t, t, prev_t, cond))
  target = jax.lax.stop_gradient(consistency_fn(config, nets, state.target, x_prev, prev_t, cond))
  pred = consistency_fn(config, nets, online_params, x_t, t, cond)
  return jnp.mean((pred - target) ** 2)


def train_step(config, nets, state: CDState, batch, rng):
  cond = jax.lax.stop_gradient(nets.encode(state.encoder, batch["obs"]))
  loss, grads = jax.value_and_grad(cd_loss, argnums=2)(
    config, nets, state.online.params, state, batch["action"], cond, rng
  )
  online = state.online.apply_gradients(grads=grads)
  d = config.cd.target_decay
  target = jax.tree_util.tree_map(
    lambda tp, op: d * tp + (1.0 - d) * op, state.target, online.params
  )
  return state.replace(online=online, target=target), {"loss": loss}


def one_step_sampler(config, nets):
  T = config.diffusion.num_train_timesteps

  def sample(params, cond, rng):
    z = jax.random.normal(rng, (cond.shape[0], nets.horizon, nets.action_dim))
    t = jnp.full((cond.shape[0],), T - 1, jnp.int32)
    return jnp.clip(consistency_fn(config, nets, params, z, t, cond), -1.0, 1.0)

  return sample, 1


def make_policies(config, nets, state: CDState, normalizer):
  del normalizer
  sample, nfe = one_step_sampler(config, nets)
  params = state.target if config.cd.eval_target else state.online.params
  return {"cd_1step": PolicySpec(sample, state.encoder, params, nfe)}
