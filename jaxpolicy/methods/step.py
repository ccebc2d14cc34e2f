"""STEP: a spatiotemporal predictor warm-starts k DDIM steps of the unchanged teacher.

Training (`train_step`): the predictor maps the teacher encoder's observation tokens and the
chunk n_action_steps earlier to the window's chunk (MSE). Inference (`step_sampler`), one
jitted function with a carry per environment: an episode's first call is the teacher's own
sampler from noise; later calls warm-start the grid `step_grid` gives from the predictor's
chunk, and a stalled call (`stalled`) gets excitation added (`excite`). The equations, the
k = 1 and t0 choices, what a stall is per action kind, and why trailing spacing is refused:
docs/methods.md, "STEP".
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxpolicy.diffusion import samplers
from jaxpolicy import suites
from jaxpolicy.errors import ConfigError
from jaxpolicy.methods import state as state_lib
from jaxpolicy.methods.common import (
  MethodInfo,
  ddim_baselines,
  ddim_sampler,
  policy_params,
  schedule_of,
  teacher_params,
)
from jaxpolicy.nets.predictor import Predictor
from jaxpolicy.policy import PolicySpec


def _sweep_settings(config):
  # The grid compares main policies (k = 2); the other k and the pure-noise DDIM-k baselines
  # (STEP's own ablation, configs/step.py) would multiply each cell's evaluation time.
  config.step.eval_baselines = False
  config.step.ks = (2,)


INFO = MethodInfo(
  name="step",
  label="STEP (k = 2)",
  main_policy="step_k2",
  needs_teacher=True,
  style=("tab:red", "D", ":", 4),
  sweep_settings=_sweep_settings,
)
ACTION_KINDS = ("auto", "absolute", "delta")


@flax.struct.dataclass
class StepState:
  predictor: state_lib.TrainState
  teacher: dict  # frozen {"encoder", "unet"} params of the teacher


def check_config(config):
  s = config.step
  T = config.diffusion.num_train_timesteps
  if s.mode not in ("absolute", "residual"):
    raise ConfigError(f"step.mode must be 'absolute' or 'residual', got {s.mode!r}")
  if any(k < 0 for k in s.ks):
    raise ConfigError(f"step.ks must be >= 0, got {tuple(s.ks)}")
  if s.spacing == "trailing":
    raise ConfigError(
      "step.spacing='trailing' starts every k-step grid at t = 99, where "
      "sqrt(abar) ~ 5e-4 erases the warm start (STEP would be DDIM-k from "
      "noise); use 'leading', or set step.t0 to start the grid elsewhere"
    )
  if s.spacing != "leading":
    raise ConfigError(f"step.spacing must be 'leading', got {s.spacing!r}")
  if s.t0 >= 0:
    for k in s.ks:
      if k > 0 and not k - 1 <= s.t0 < T:
        raise ConfigError(
          f"step.t0 = {s.t0} leaves no {k}-step grid (k = {k} in step.ks "
          f"needs {k - 1} <= t0 < {T}); -1 uses the leading grid"
        )
  if s.get("action_kind", "auto") not in ACTION_KINDS:
    raise ConfigError(f"step.action_kind must be one of {ACTION_KINDS}, got {s.action_kind!r}")
  for name in ("eps_stall", "eps_stall_delta", "sigma_stall", "sigma"):
    if s.get(name, 0.0) < 0:
      raise ConfigError(f"step.{name} must be >= 0, got {s[name]}")
  if s.get("delta_dims", 3) < 1:
    raise ConfigError(f"step.delta_dims must be >= 1, got {s.delta_dims}")
  if not 0 <= t0_k1(config) < T:
    raise ConfigError(
      f"step.t0_k1 (where k = 1 warm-starts) must be in [0, {T}), got {t0_k1(config)}"
    )


def t0_k1(config) -> int:
  """The warm-start time of k = 1 on the default grids (step.t0 = -1)."""
  return config.step.get("t0_k1", 50)  # also for runs saved before the field (theirs: 0)


def action_kind(config) -> str:
  """'absolute' or 'delta': step.action_kind, where 'auto' is the suite's (delta when its
  leading action dimensions are deltas, as MetaWorld's xyz; a dataset of your own,
  data.path, is taken as absolute)."""
  kind = config.step.get("action_kind", "auto")
  if kind == "auto":
    own = bool(config.get("data", {}).get("path", ""))
    task = config.get("task")
    if own or task not in suites.tasks():
      return "absolute"
    return "delta" if suites.suite_of(task).action_kind[0] == "delta" else "absolute"
  return kind


def make_predictor(config, action_dim: int) -> Predictor:
  s = config.step
  return Predictor(
    action_dim,
    s.dim,
    s.heads,
    s.blocks,
    s.mlp_dim,
    s.mode == "residual",
    config.policy.n_action_steps,
  )


def predict(nets, pred, params, tokens, prev_action):
  """The predictor's chunk, computed in the nets' compute dtype (float32 out)."""
  return pred.apply(nets.cast(params), nets.cast(tokens), nets.cast(prev_action)).astype(
    jnp.float32
  )


def obs_tokens(nets, enc_params, obs):
  """One token per observed frame: the teacher encoder's per-frame features."""
  cond = nets.encode(enc_params, obs)
  return cond.reshape(cond.shape[0], nets.n_obs_steps, -1)


def init(config, nets, obs_shapes, rng, teacher_state) -> StepState:
  tparams = teacher_params(teacher_state, use_ema=True)
  pred = make_predictor(config, nets.action_dim)
  S = jax.ShapeDtypeStruct
  # the token width is what the teacher's encoder emits per frame (the DP3 encoder adds
  # its state features to encoder_out), read from the encoder itself
  obs = {k: S((1, nets.n_obs_steps) + tuple(v), jnp.float32) for k, v in obs_shapes.items()}
  feat = jax.eval_shape(lambda p, o: obs_tokens(nets, p, o), tparams["encoder"], obs).shape[-1]
  params = jax.jit(
    lambda r: pred.lazy_init(
      r,
      S((1, nets.n_obs_steps, feat), jnp.float32),
      S((1, nets.horizon, nets.action_dim), jnp.float32),
    )
  )(rng)
  t = config.train
  tx = state_lib.make_optimizer(
    t.lr, t.steps, t.warmup_steps, t.weight_decay, *t.betas, grad_clip=t.grad_clip or None
  )
  return StepState(state_lib.create(None, params, tx, ema=t.ema), state_lib.copy(tparams))


def train_step(config, nets, state: StepState, batch, rng):
  del rng
  pred = make_predictor(config, nets.action_dim)
  tokens = jax.lax.stop_gradient(obs_tokens(nets, state.teacher["encoder"], batch["obs"]))

  def loss_fn(p):
    out = predict(nets, pred, p, tokens, batch["prev_action"])
    return jnp.mean((out - batch["action"]) ** 2)

  loss, grads = jax.value_and_grad(loss_fn)(state.predictor.params)
  model = state_lib.apply_update(
    state.predictor, grads, config.train.ema_power, config.train.ema_max
  )
  return state.replace(predictor=model), {"loss": loss}


def warm_start(schedule, a_hat, noise, t0: int, s, sigma):
  """x_t0 = sqrt(abar_t0) s a_hat + sqrt(1 - abar_t0) sigma noise; s, sigma: scalars or
  per-sample (B,) values."""
  abar = float(schedule.alphas_cumprod[t0])
  per_sample = lambda v: jnp.reshape(jnp.asarray(v, jnp.float32), (-1, 1, 1))
  return jnp.sqrt(abar) * per_sample(s) * a_hat + jnp.sqrt(1.0 - abar) * per_sample(sigma) * noise


def excite(chunk, stall, sigma_stall: float, noise):
  """clip(chunk + sigma_stall eps') where `stall` (B,), the chunk elsewhere: the stall
  excitation, in the actions' normalised units."""
  kick = jnp.where(stall, sigma_stall, 0.0)[:, None, None] * noise
  return jnp.clip(chunk + kick, -1.0, 1.0)


def stalled(config, carry, unnormalize):
  """Per-environment stall flags for this call (docs/methods.md, "STEP").

  `unnormalize` maps normalised actions to the action's own units (delta actions only).
  """
  s = config.step
  if action_kind(config) == "delta":
    moved = unnormalize(carry["exec_prev"])[..., : s.get("delta_dims", 3)]
    v, threshold = jnp.sqrt(jnp.mean(moved**2, axis=(1, 2))), s.get("eps_stall_delta", 0.05)
  else:
    v = jnp.sqrt(jnp.mean((carry["exec_prev"] - carry["exec_prev2"]) ** 2, axis=(1, 2)))
    threshold = s.eps_stall
  return (v < threshold) & (carry["calls"] >= 2)


def init_carry_fn(config, nets):
  def init_carry(batch):
    z = jnp.zeros((batch, nets.horizon, nets.action_dim))
    e = jnp.zeros((batch, config.policy.n_action_steps, nets.action_dim))
    return {
      "prev": z,
      "exec_prev": e,
      "exec_prev2": e,
      "calls": jnp.zeros((), jnp.int32),
      "stalled": jnp.zeros((batch,), bool),
    }

  return init_carry


def _executed(config, x):
  start = config.policy.n_obs_steps - 1
  return x[:, start : start + config.policy.n_action_steps]


def step_grid(config, k: int):
  """(ts, prev_ts) of STEP's k steps: the leading grid (k = 1: from step.t0_k1), or k steps
  from step.t0 exactly."""
  schedule = schedule_of(config)
  t0 = config.step.t0
  if t0 < 0 and k == 1:
    t0 = t0_k1(config)
  return samplers.ddim_grid(schedule, k, "leading", first_timestep=t0 if t0 >= 0 else None)


def step_sampler(config, nets, k: int, action_normalizer=None, perturb: bool = True):
  """(sample, nfe, nfe_first): the carried STEP sampler with k teacher DDIM steps.

  k = 0 is the predictor alone. `action_normalizer` (a MinMax; None = identity) gives the
  action's own units for delta-action stall detection. nfe = k network evaluations per
  call; nfe_first = the teacher sampler's steps run on an episode's first call.
  """
  schedule = schedule_of(config)
  s = config.step
  pred = make_predictor(config, nets.action_dim)
  cold, nfe_first = ddim_sampler(config, nets)  # first call: the teacher's own
  if action_normalizer is None:
    unnormalize = lambda x: x
  else:  # constants of the compiled program
    scale = np.asarray(action_normalizer.scale, np.float32)
    offset = np.asarray(action_normalizer.offset, np.float32)
    unnormalize = lambda x: (x - offset) / scale
  if k > 0:
    ts, prev_ts = step_grid(config, k)

  def sample(params, cond, carry, rng):
    k_cold, k_noise, k_excite = jax.random.split(rng, 3)
    tokens = cond.reshape(cond.shape[0], nets.n_obs_steps, -1)

    def warm(_):
      a_hat = predict(nets, pred, params["predictor"], tokens, carry["prev"])
      stall = stalled(config, carry, unnormalize)
      if not perturb:
        stall = jnp.zeros_like(stall)
      if k == 0:
        x = jnp.clip(a_hat, -1.0, 1.0)
      else:
        x = warm_start(
          schedule,
          a_hat,
          jax.random.normal(k_noise, a_hat.shape),
          int(ts[0]),
          jnp.where(stall, s.s_stall, s.s),
          s.sigma,
        )
        x = samplers.ddim_sample(schedule, nets.denoiser(params["unet"], cond), x, ts, prev_ts)
      return excite(x, stall, s.sigma_stall, jax.random.normal(k_excite, x.shape)), stall

    def first(_):
      return cold(params["unet"], cond, k_cold), jnp.zeros((cond.shape[0],), bool)

    x, stall = jax.lax.cond(carry["calls"] == 0, first, warm, None)
    new = {
      "prev": x,
      "exec_prev": _executed(config, x),
      "exec_prev2": carry["exec_prev"],
      "calls": carry["calls"] + 1,
      "stalled": stall,
    }
    return x, new

  return sample, k, nfe_first


def carry_from_batch_fn(config, nets):
  """The carry a policy has mid-episode, from a data batch's ground-truth previous chunk."""

  def carry_from_batch(batch):
    prev = batch["prev_action"]
    e = _executed(config, prev)
    return {
      "prev": prev,
      "exec_prev": e,
      "exec_prev2": e + 1.0,  # absolute: not stalled
      "calls": jnp.full((), 2, jnp.int32),
      "stalled": jnp.zeros((prev.shape[0],), bool),
    }

  return carry_from_batch


def make_policies(config, nets, state: StepState, normalizer):
  s = config.step
  params = {
    "predictor": policy_params(state.predictor, config.eval.use_ema),
    "unet": state.teacher["unet"],
  }
  enc = state.teacher["encoder"]
  init_carry = init_carry_fn(config, nets)
  from_batch = carry_from_batch_fn(config, nets)
  out = {}
  for k in s.ks:
    sample, nfe, nfe_first = step_sampler(config, nets, k, normalizer["action"])
    name = "step_predictor_only" if k == 0 else f"step_k{k}"
    out[name] = PolicySpec(sample, enc, params, nfe, init_carry, from_batch, nfe_first)
  if s.eval_baselines:  # the teacher from pure noise with the same k, both spacings (but
    # DDIM-1 leading: the teacher at t = 0 on pure noise is no sampler)
    out.update(
      ddim_baselines(config, nets, state.teacher, [k for k in s.ks if k > 0], ("trailing",))
    )
    out.update(
      ddim_baselines(config, nets, state.teacher, [k for k in s.ks if k > 1], ("leading",))
    )
  return out


def final_metrics(config, nets, state, data, policies):
  """The predictor's MSE against the teacher's full-step output on held-out windows."""
  if data.val is None:
    return {}
  policy = policies[next(n for n in policies if n.startswith("step_"))]
  nets = policy.nets  # in the policies' compute dtype: the metric is the policy's own
  teacher_sample, _ = ddim_sampler(config, nets)
  pred = make_predictor(config, nets.action_dim)
  pred_params = policy.sampler_params["predictor"]

  @jax.jit
  def errs(batch, rng):
    cond = nets.encode(state.teacher["encoder"], batch["obs"])
    tokens = cond.reshape(cond.shape[0], nets.n_obs_steps, -1)
    a_hat = predict(nets, pred, pred_params, tokens, batch["prev_action"])
    full = teacher_sample(state.teacher["unet"], cond, rng)
    return (
      jnp.sum(jnp.mean((a_hat - full) ** 2, axis=(1, 2))),
      jnp.sum(jnp.mean((a_hat - batch["action"]) ** 2, axis=(1, 2))),
    )

  n = data.val.num_windows
  tot_t = tot_d = 0.0
  for i, start in enumerate(range(0, n, 256)):
    rows = jnp.arange(start, min(start + 256, n))
    et, ed = errs(data.val.take(rows), jax.random.PRNGKey(i))
    tot_t += float(et)
    tot_d += float(ed)
  extra = {"predictor_mse_vs_teacher": tot_t / n, "predictor_mse_vs_demo": tot_d / n}
  return {name: dict(extra) for name in policies if name.startswith("step_")}
