"""The diffusion-policy teacher (DP / DP3): DDPM training, DDIM k-step sampling."""
from __future__ import annotations

import flax.struct
import jax
import optax

from jaxpolicy import nets as nets_lib
from jaxpolicy.diffusion import losses, samplers
from jaxpolicy.diffusion.schedule import Schedule
from jaxpolicy.policy import PolicySpec
from jaxpolicy.train import state as state_lib


@flax.struct.dataclass
class TeacherState:
  model: state_lib.TrainState  # params = {"encoder": ..., "unet": ...}


def schedule_of(config) -> Schedule:
  d = config.diffusion
  return Schedule(d.num_train_timesteps, d.prediction_type, d.clip_sample)


NEEDS_TEACHER = False


def init(config, nets: nets_lib.Nets, obs_shapes, rng, teacher_state=None) -> TeacherState:
  del teacher_state
  t = config.train
  tx = state_lib.make_optimizer(t.lr, t.steps, t.warmup_steps, t.weight_decay, *t.betas,
                                grad_clip=t.grad_clip or None)
  params = nets.init(rng, obs_shapes)
  return TeacherState(state_lib.create(None, params, tx, ema=t.ema))


def train_step(config, nets: nets_lib.Nets, state: TeacherState, batch, rng):
  schedule = schedule_of(config)

  def loss_fn(params):
    cond = nets.encode(params["encoder"], batch["obs"])
    return losses.denoising_loss(schedule, nets.denoiser(params["unet"], cond), batch["action"], rng)

  loss, grads = jax.value_and_grad(loss_fn)(state.model.params)
  model = state_lib.apply_update(state.model, grads, config.train.ema_power, config.train.ema_max)
  return TeacherState(model), {"loss": loss}


def from_params(params) -> TeacherState:
  """A TeacherState holding trained params and no optimiser: all a student reads of its
  teacher (e.g. the abstract target a student's checkpoint restores into)."""
  return TeacherState(state_lib.create(None, params, optax.identity(), ema=False))


def policy_params(config, state: TeacherState, use_ema: bool = True):
  m = state.model
  return m.ema_params if (use_ema and m.ema_params is not None) else m.params


def ddim_sampler(config, nets: nets_lib.Nets, num_steps: int | None = None,
                 spacing: str | None = None):
  """(sample_fn(unet_params, cond, rng) -> x0 chunk, nfe) from pure noise."""
  schedule = schedule_of(config)
  k = num_steps or config.diffusion.num_inference_steps
  ts, prev = samplers.ddim_grid(schedule, k, spacing or config.diffusion.spacing)

  def sample(unet_params, cond, rng):
    x = jax.random.normal(rng, (cond.shape[0], nets.horizon, nets.action_dim))
    return samplers.ddim_sample(schedule, nets.denoiser(unet_params, cond), x, ts, prev)

  return sample, len(ts)


def make_policies(config, nets: nets_lib.Nets, state: TeacherState, normalizer):
  """{name: PolicySpec} evaluated for this method: DDIM with the configured k and spacing."""
  del normalizer
  params = policy_params(config, state, config.eval.use_ema)
  sample, nfe = ddim_sampler(config, nets)
  return {f"teacher_ddim{nfe}": PolicySpec(sample, params["encoder"], params["unet"], nfe)}
