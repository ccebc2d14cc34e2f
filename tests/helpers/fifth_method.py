"""A throwaway method, defined outside the library (tests/test_architecture.py adds it with
`jaxpolicy.methods.register`): the U-Net run once as a deterministic map from the
observation to the action chunk (input zeros, t = 0), trained by MSE against the
demonstrations (what the built-in `bc` does). One network evaluation per call."""

from __future__ import annotations

import os

import flax.struct
import jax
import jax.numpy as jnp

from jaxpolicy.methods import state as state_lib
from jaxpolicy.methods.common import MethodInfo, policy_params
from jaxpolicy.policy import PolicySpec

INFO = MethodInfo(
  name="fifth",
  label="Fifth (1 step)",
  main_policy="fifth_1step",
  style=("tab:gray", "v", "--", 5),
  config_file=os.path.join(os.path.dirname(__file__), "fifth_config.py"),
)


@flax.struct.dataclass
class BCState:
  model: state_lib.TrainState  # {"encoder", "unet"}


def init(config, nets, obs_shapes, rng, teacher_state=None) -> BCState:
  del teacher_state
  t = config.train
  tx = state_lib.make_optimizer(t.lr, t.steps, t.warmup_steps, t.weight_decay, *t.betas)
  return BCState(state_lib.create(None, nets.init(rng, obs_shapes), tx, ema=t.ema))


def _predict(nets, unet_params, cond):
  x = jnp.zeros((cond.shape[0], nets.horizon, nets.action_dim), jnp.float32)
  return nets.denoiser(unet_params, cond)(x, jnp.zeros((cond.shape[0],), jnp.int32))


def train_step(config, nets, state: BCState, batch, rng):
  del rng

  def loss_fn(params):
    cond = nets.encode(params["encoder"], batch["obs"])
    return jnp.mean((_predict(nets, params["unet"], cond) - batch["action"]) ** 2)

  loss, grads = jax.value_and_grad(loss_fn)(state.model.params)
  model = state_lib.apply_update(state.model, grads, config.train.ema_power, config.train.ema_max)
  return BCState(model), {"loss": loss}


def make_policies(config, nets, state: BCState, normalizer):
  del normalizer
  params = policy_params(state.model, config.eval.use_ema)
  sample = lambda unet_params, cond, rng: jnp.clip(_predict(nets, unet_params, cond), -1, 1)
  return {"fifth_1step": PolicySpec(sample, params["encoder"], params["unet"], 1)}
