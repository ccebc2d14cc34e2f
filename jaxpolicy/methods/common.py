"""What the methods share: the declaration each method module makes (`MethodInfo`), the DDPM
schedule of a config, the teacher's DDIM sampler from noise and the params a policy runs."""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

import flax.struct
import jax
import optax

from jaxpolicy.diffusion import samplers
from jaxpolicy.diffusion.schedule import Schedule
from jaxpolicy.methods import state as state_lib
from jaxpolicy.policy import PolicySpec


@dataclasses.dataclass(frozen=True)
class MethodInfo:
  """What the rest of jaxpolicy needs to know about a method; its module declares `INFO`.

  The training loop, restore, the report, the leaderboard, the sweep and the benchmarks read
  only this (and the module's `init / train_step / make_policies`), so a new method is its
  own module, config and test (see `jaxpolicy.methods.register`).
  """

  name: str  # config.method
  label: str  # how tables and plots name its main policy, e.g. "SDM (1 step)"
  main_policy: str  # the policy it is reported by: a name, or the prefix of one
  # ("teacher_ddim" matches teacher_ddim10)
  needs_teacher: bool = False  # distils a trained teacher (trained first when missing)
  style: tuple = ("tab:gray", "x", "-", 5)  # learning curves: colour, marker, line, size
  # the grid's settings for this method's cells (launch.sweep), e.g. STEP evaluates k = 2
  # only: config -> None, editing the config in place
  sweep_settings: Callable | None = None
  # untrained baselines the honest protocol evaluates beside the main policy (the teacher's
  # DDIM-1/2 from noise): (config, nets, state) -> {policy name: PolicySpec}
  baselines: Callable | None = None
  # the PyTorch reference sampler of a policy, for benchmarks.latency --torch:
  # (config, policy name) -> ("ddim", k, spacing) | ("one_step", T) | None
  torch_reference: Callable | None = None
  # a config file outside configs/ (a method added elsewhere); "" = configs/<name>.py
  config_file: str = ""
  # its policies take inpainting guidance (an iterative sampler): real-time chunking
  guidable: bool = False

  def main_policy_of(self, names) -> str:
    """The main policy among a run's policy names."""
    matches = sorted(n for n in names if n == self.main_policy or n.startswith(self.main_policy))
    if not matches:
      raise KeyError(f"no {self.name} policy ({self.main_policy}...) among {sorted(names)}")
    return matches[0]


def schedule_of(config) -> Schedule:
  d = config.diffusion
  return Schedule(d.num_train_timesteps, d.prediction_type, d.clip_sample)


@flax.struct.dataclass
class TeacherState:
  """The teacher method's state, and all a distillation method reads of its teacher."""

  model: state_lib.TrainState  # params = {"encoder": ..., "unet": ...}


@flax.struct.dataclass
class ModelState:
  """The state of a method that trains one {encoder, unet} pair from the demonstrations
  alone, no teacher (bc, meanflow, mip)."""

  model: state_lib.TrainState  # params = {"encoder": ..., "unet": ...}


def init_model_state(config, nets, obs_shapes, rng) -> ModelState:
  """Fresh params for `nets` with the config's train.* optimiser (AdamW, cosine) and EMA."""
  t = config.train
  tx = state_lib.make_optimizer(
    t.lr, t.steps, t.warmup_steps, t.weight_decay, *t.betas, grad_clip=t.grad_clip or None
  )
  return ModelState(state_lib.create(None, nets.init(rng, obs_shapes), tx, ema=t.ema))


def fit_step(config, state: ModelState, loss_fn):
  """One optimiser (and EMA) step of `loss_fn(params) -> (loss, metrics)`."""
  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.model.params)
  model = state_lib.apply_update(state.model, grads, config.train.ema_power, config.train.ema_max)
  return ModelState(model), {"loss": loss, **metrics}


def teacher_from_params(params) -> TeacherState:
  """A TeacherState holding trained params and no optimiser (e.g. the abstract target a
  student's checkpoint restores into)."""
  return TeacherState(state_lib.create(None, params, optax.identity(), ema=False))


def policy_params(model: state_lib.TrainState, use_ema: bool = True):
  """The params a policy runs: the EMA copy when there is one and `use_ema`."""
  return model.ema_params if (use_ema and model.ema_params is not None) else model.params


def teacher_params(teacher_state: TeacherState, use_ema: bool = True):
  """A teacher's {encoder, unet} params (its EMA copy by default)."""
  return policy_params(teacher_state.model, use_ema)


def ddim_sampler(config, nets, num_steps: int | None = None, spacing: str | None = None):
  """(sample_fn(unet_params, cond, rng, guide=None) -> x0 chunk, nfe): the teacher's DDIM
  from noise (`guide`: inpainting targets and weights, samplers.ddim_step)."""
  schedule = schedule_of(config)
  k = num_steps or config.diffusion.num_inference_steps
  ts, prev = samplers.ddim_grid(schedule, k, spacing or config.diffusion.spacing)

  def sample(unet_params, cond, rng, guide=None):
    x = jax.random.normal(rng, (cond.shape[0], nets.horizon, nets.action_dim))
    return samplers.ddim_sample(schedule, nets.denoiser(unet_params, cond), x, ts, prev, guide)

  return sample, len(ts)


_BASELINE = re.compile(r"teacher_ddim(\d+)_(leading|trailing)$")


def baseline_label(name: str) -> str:
  """How tables name a policy of `ddim_baselines` (other names are returned unchanged)."""
  m = _BASELINE.match(name)
  return f"teacher DDIM-{m.group(1)} from noise ({m.group(2)})" if m else name


def ddim_baselines(config, nets, teacher_params, ks=(1, 2), spacings=("trailing",)) -> dict:
  """The teacher's k-step DDIM from noise, `teacher_ddim<k>_<spacing>` for each k and
  spacing: the "is distillation worth it?" baselines. teacher_params: {encoder, unet}."""
  out = {}
  for k in ks:
    for spacing in spacings:
      sample, nfe = ddim_sampler(config, nets, k, spacing)
      out[f"teacher_ddim{k}_{spacing}"] = PolicySpec(
        sample, teacher_params["encoder"], teacher_params["unet"], nfe, guidable=nfe > 1
      )
  return out
