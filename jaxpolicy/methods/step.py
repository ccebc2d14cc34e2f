"""STEP: a spatiotemporal predictor warm-starts k DDIM steps of the unchanged teacher.

Training: the predictor maps (observation tokens from the teacher's frozen encoder, the
ground-truth chunk that precedes the window by n_action_steps) to the window's chunk, MSE.
That is exactly the alignment at inference, where the previous input is the chunk the
policy produced one call (n_action_steps env steps) earlier.

Inference, one jitted function carrying (previous chunk, previous executed actions,
stall flag, first-call flag) per batch of environments:
  first call of an episode: pure-noise DDIM with the teacher's configured sampler;
  then a_hat = predictor(obs, previous chunk);
       stalled = RMS(executed_{t-1} - executed_{t-2}) < eps_stall (normalised units);
       (s, sigma) = (s_stall, sigma_stall) if stalled else (s, sigma);
       x_t0 = sqrt(abar_t0) * s * a_hat + sqrt(1 - abar_t0) * sigma * eps,
  t0 = the first timestep of the k-step grid, then that grid's k DDIM steps (k NFEs).
k = 0 is the predictor alone.
"""
from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from jaxpolicy.diffusion import samplers
from jaxpolicy.methods import teacher as teacher_lib
from jaxpolicy.nets.predictor import Predictor
from jaxpolicy.policy import PolicySpec
from jaxpolicy.train import state as state_lib
from jaxpolicy.train.validate import ConfigError

NEEDS_TEACHER = True


@flax.struct.dataclass
class StepState:
  predictor: state_lib.TrainState
  teacher: dict      # frozen {"encoder", "unet"} params of the teacher


def check_config(config):
  s = config.step
  if s.mode not in ("absolute", "residual"):
    raise ConfigError(f"step.mode must be 'absolute' or 'residual', got {s.mode!r}")
  if any(k < 0 for k in s.ks):
    raise ConfigError(f"step.ks must be >= 0, got {tuple(s.ks)}")
  if s.spacing not in ("leading", "trailing"):
    raise ConfigError(f"step.spacing must be 'leading' or 'trailing', got {s.spacing!r}")


def make_predictor(config, action_dim: int) -> Predictor:
  s = config.step
  return Predictor(action_dim, s.dim, s.heads, s.blocks, s.mlp_dim, s.mode == "residual")


def predict(nets, pred, params, tokens, prev_action):
  """The predictor's chunk, computed in the nets' compute dtype (float32 out)."""
  return pred.apply(nets.cast(params), nets.cast(tokens),
                    nets.cast(prev_action)).astype(jnp.float32)


def obs_tokens(nets, enc_params, obs):
  """One token per observed frame: the teacher encoder's per-frame features."""
  cond = nets.encode(enc_params, obs)
  return cond.reshape(cond.shape[0], nets.n_obs_steps, -1)


def init(config, nets, obs_shapes, rng, teacher_state) -> StepState:
  del obs_shapes
  tparams = teacher_lib.policy_params(config, teacher_state, use_ema=True)
  pred = make_predictor(config, nets.action_dim)
  feat = config.model.encoder_out
  S = jax.ShapeDtypeStruct
  params = jax.jit(lambda r: pred.lazy_init(
      r, S((1, nets.n_obs_steps, feat), jnp.float32),
      S((1, nets.horizon, nets.action_dim), jnp.float32)))(rng)
  t = config.train
  tx = state_lib.make_optimizer(t.lr, t.steps, t.warmup_steps, t.weight_decay, *t.betas,
                                grad_clip=t.grad_clip or None)
  copy = lambda tree: jax.tree_util.tree_map(jnp.array, tree)
  return StepState(state_lib.create(None, params, tx, ema=t.ema), copy(tparams))


def train_step(config, nets, state: StepState, batch, rng):
  del rng
  pred = make_predictor(config, nets.action_dim)
  tokens = jax.lax.stop_gradient(obs_tokens(nets, state.teacher["encoder"], batch["obs"]))

  def loss_fn(p):
    out = predict(nets, pred, p, tokens, batch["prev_action"])
    return jnp.mean((out - batch["action"]) ** 2)

  loss, grads = jax.value_and_grad(loss_fn)(state.predictor.params)
  model = state_lib.apply_update(state.predictor, grads, config.train.ema_power,
                                 config.train.ema_max)
  return state.replace(predictor=model), {"loss": loss}


def warm_start(schedule, a_hat, noise, t0: int, s, sigma):
  """x_t0 = sqrt(abar_t0) * s * a_hat + sqrt(1 - abar_t0) * sigma * noise (per-sample s, sigma)."""
  abar = float(schedule.alphas_cumprod[t0])
  s = jnp.reshape(s, (-1, 1, 1))
  sigma = jnp.reshape(sigma, (-1, 1, 1))
  return jnp.sqrt(abar) * s * a_hat + jnp.sqrt(1.0 - abar) * sigma * noise


def stalled(config, exec_prev, exec_prev2):
  """Per-environment stall flag: RMS change of consecutive executed action chunks."""
  v = jnp.sqrt(jnp.mean((exec_prev - exec_prev2) ** 2, axis=(1, 2)))
  return v < config.step.eps_stall


def init_carry_fn(config, nets):
  def init_carry(batch):
    z = jnp.zeros((batch, nets.horizon, nets.action_dim))
    e = jnp.zeros((batch, config.policy.n_action_steps, nets.action_dim))
    return {"prev": z, "exec_prev": e, "exec_prev2": e, "first": jnp.ones((), bool),
            "stalled": jnp.zeros((batch,), bool)}
  return init_carry


def _executed(config, x):
  start = config.policy.n_obs_steps - 1
  return x[:, start:start + config.policy.n_action_steps]


def step_sampler(config, nets, k: int, spacing: str | None = None, perturb: bool = True):
  """The carried STEP sampler with k teacher DDIM steps (k = 0: predictor alone)."""
  schedule = teacher_lib.schedule_of(config)
  s = config.step
  pred = make_predictor(config, nets.action_dim)
  cold, _ = teacher_lib.ddim_sampler(config, nets)   # first call: the teacher's own sampler
  if k > 0:
    ts, prev_ts = samplers.ddim_grid(schedule, k, spacing or s.spacing)
    if s.t0 >= 0:
      ts, prev_ts = samplers.ddim_grid(schedule, k, spacing or s.spacing, first_timestep=s.t0)
  def sample(params, cond, carry, rng):
    k_cold, k_noise = jax.random.split(rng)
    tokens = cond.reshape(cond.shape[0], nets.n_obs_steps, -1)

    def warm(_):
      a_hat = predict(nets, pred, params["predictor"], tokens, carry["prev"])
      stall = stalled(config, carry["exec_prev"], carry["exec_prev2"])
      if not perturb:
        stall = jnp.zeros_like(stall)
      if k == 0:
        return a_hat, stall
      coef_s = jnp.where(stall, s.s_stall, s.s)
      coef_sigma = jnp.where(stall, s.sigma_stall, s.sigma)
      x = warm_start(schedule, a_hat, jax.random.normal(k_noise, a_hat.shape), int(ts[0]),
                     coef_s, coef_sigma)
      return samplers.ddim_sample(schedule, nets.denoiser(params["unet"], cond), x, ts,
                                  prev_ts), stall

    def first(_):
      return cold(params["unet"], cond, k_cold), jnp.zeros((cond.shape[0],), bool)

    x, stall = jax.lax.cond(carry["first"], first, warm, None)
    new = {"prev": x, "exec_prev": _executed(config, x), "exec_prev2": carry["exec_prev"],
           "first": jnp.zeros((), bool), "stalled": stall}
    return x, new

  return sample, k


def carry_from_batch_fn(config, nets):
  """The carry a policy has mid-episode, from a data batch's ground-truth previous chunk."""
  def carry_from_batch(batch):
    prev = batch["prev_action"]
    e = _executed(config, prev)
    return {"prev": prev, "exec_prev": e, "exec_prev2": e + 1.0,  # not stalled
            "first": jnp.zeros((), bool), "stalled": jnp.zeros((prev.shape[0],), bool)}
  return carry_from_batch


def make_policies(config, nets, state: StepState):
  s = config.step
  pred_params = state.predictor.ema_params if (config.eval.use_ema and
                                               state.predictor.ema_params is not None) \
      else state.predictor.params
  params = {"predictor": pred_params, "unet": state.teacher["unet"]}
  enc = state.teacher["encoder"]
  init_carry = init_carry_fn(config, nets)
  from_batch = carry_from_batch_fn(config, nets)
  out = {}
  for k in s.ks:
    sample, nfe = step_sampler(config, nets, k)
    name = "step_predictor_only" if k == 0 else f"step_k{k}"
    out[name] = PolicySpec(sample, enc, params, nfe, init_carry, from_batch)
  if s.eval_baselines:  # the teacher from pure noise with the same k, both spacings
    for k in s.ks:
      if k == 0:
        continue
      for spacing in ("leading", "trailing"):
        sample, nfe = teacher_lib.ddim_sampler(config, nets, k, spacing)
        out[f"ddim_k{k}_{spacing}"] = PolicySpec(sample, enc, state.teacher["unet"], nfe)
  return out


def final_metrics(config, nets, state, data, policies):
  """The predictor's MSE against the teacher's full-step output on held-out windows."""
  if data.val is None:
    return {}
  policy = policies[next(n for n in policies if n.startswith("step_"))]
  nets = policy.nets   # in the policies' compute dtype: the metric is the policy's own
  teacher_sample, _ = teacher_lib.ddim_sampler(config, nets)
  pred = make_predictor(config, nets.action_dim)
  pred_params = policy.sampler_params["predictor"]

  @jax.jit
  def errs(batch, rng):
    cond = nets.encode(state.teacher["encoder"], batch["obs"])
    tokens = cond.reshape(cond.shape[0], nets.n_obs_steps, -1)
    a_hat = predict(nets, pred, pred_params, tokens, batch["prev_action"])
    full = teacher_sample(state.teacher["unet"], cond, rng)
    return (jnp.sum(jnp.mean((a_hat - full) ** 2, axis=(1, 2))),
            jnp.sum(jnp.mean((a_hat - batch["action"]) ** 2, axis=(1, 2))))

  n = data.val.num_windows
  tot_t = tot_d = 0.0
  for i, start in enumerate(range(0, n, 256)):
    rows = jnp.arange(start, min(start + 256, n))
    et, ed = errs(data.val.take(rows), jax.random.PRNGKey(i))
    tot_t += float(et)
    tot_d += float(ed)
  extra = {"predictor_mse_vs_teacher": tot_t / n, "predictor_mse_vs_demo": tot_d / n}
  return {name: dict(extra) for name in policies if name.startswith("step_")}
