"""The diffusion-policy teacher (DP / DP3): DDPM training, DDIM k-step sampling."""

from __future__ import annotations

import jax

from jaxpolicy import nets as nets_lib
from jaxpolicy.diffusion import losses
from jaxpolicy.methods import state as state_lib
from jaxpolicy.methods.common import (
  MethodInfo,
  TeacherState,
  ddim_baselines,
  ddim_sampler,
  schedule_of,
  teacher_from_params,
  teacher_params,
)
from jaxpolicy.policy import PolicySpec


def _torch_reference(config, name):
  k = config.diffusion.num_inference_steps
  return ("ddim", k, config.diffusion.spacing) if name == f"teacher_ddim{k}" else None


def _baselines(config, nets, state):
  return ddim_baselines(config, nets, _params(config, state))


INFO = MethodInfo(
  name="teacher",
  label="teacher (DDIM-10)",
  main_policy="teacher_ddim",
  style=("tab:blue", "o", "-", 9),
  baselines=_baselines,
  torch_reference=_torch_reference,
  guidable=True,
)


def init(config, nets: nets_lib.Nets, obs_shapes, rng, teacher_state=None) -> TeacherState:
  del teacher_state
  t = config.train
  tx = state_lib.make_optimizer(
    t.lr, t.steps, t.warmup_steps, t.weight_decay, *t.betas, grad_clip=t.grad_clip or None
  )
  params = nets.init(rng, obs_shapes)
  return TeacherState(state_lib.create(None, params, tx, ema=t.ema))


def train_step(config, nets: nets_lib.Nets, state: TeacherState, batch, rng):
  schedule = schedule_of(config)

  # camera frames: a random crop per frame (DP's augmentation) from a key of its own
  k_crop, rng = jax.random.split(rng) if nets.augments else (None, rng)

  def loss_fn(params):
    cond = nets.encode(params["encoder"], batch["obs"], k_crop)
    return losses.denoising_loss(
      schedule, nets.denoiser(params["unet"], cond), batch["action"], rng
    )

  loss, grads = jax.value_and_grad(loss_fn)(state.model.params)
  model = state_lib.apply_update(state.model, grads, config.train.ema_power, config.train.ema_max)
  return TeacherState(model), {"loss": loss}


from_params = teacher_from_params


def _params(config, state: TeacherState):
  return teacher_params(state, config.eval.use_ema)


def make_policies(config, nets: nets_lib.Nets, state: TeacherState, normalizer):
  """{name: PolicySpec} evaluated for this method: DDIM with the configured k and spacing."""
  del normalizer
  params = _params(config, state)
  sample, nfe = ddim_sampler(config, nets)
  return {
    f"teacher_ddim{nfe}": PolicySpec(
      sample, params["encoder"], params["unet"], nfe, guidable=nfe > 1
    )
  }
