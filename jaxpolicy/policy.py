"""A policy: observation history -> normalised obs -> encoder -> sampler -> actions.

One jitted function per policy covers the whole call. Methods only provide the sampler,
`sample(sampler_params, cond, carry, rng) -> (normalised action chunk, carry)`, where
`carry` is per-environment state a sampler keeps between calls (STEP's previous chunk and
stall flag; an empty tuple for stateless samplers). The pure form, `Policy.apply`, is what a
compiled rollout (e.g. MJX) puts inside its `lax.scan`; `Policy.__call__` keeps the carry on
the host for Python loops such as the real-MetaWorld evaluator (call `reset(batch)` first).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxpolicy import obs as obs_lib
from jaxpolicy.data.dataset import normalize_obs
from jaxpolicy.data.normalizer import Normalizer
from jaxpolicy.nets import Nets, inference_unet_params, vision


@dataclasses.dataclass
class Policy:
  name: str
  nfe: int
  nets: Nets
  normalizer: Normalizer
  sample: Callable  # (sampler_params, cond, carry, rng) -> ((B, H, A) normalised, carry)
  encoder_params: Any
  sampler_params: Any
  obs_shapes: dict
  n_action_steps: int
  init_carry: Callable = lambda batch: ()  # batch -> initial carry of an episode
  carry_from_batch: Callable | None = None  # data batch -> carry (for action_mse)
  nfe_first: int | None = None  # an episode's first call, when it differs
  guidable: bool = False  # its sampler takes inpainting guidance (rtc)

  def __post_init__(self):
    self._jit = jax.jit(self.apply)
    self._carry = None
    if self.carry_from_batch is None:
      self.carry_from_batch = lambda batch: self.init_carry(batch["action"].shape[0])

  def apply(self, params, obs, carry, rng, guide=None):
    """Pure: (params, raw obs history, carry, rng) -> (unnormalised chunk, new carry).

    `guide` (real-time chunking): (target (B, span, A) unnormalised actions of the executed
    positions n_obs - 1 .., weights (B, span) in [0, 1]); the chunk is generated to agree
    with the target where the weights say (a guidable sampler only)."""
    if guide is not None:
      guide = self.normalized_guide(*guide)
    x, carry = self.apply_normalized(params, normalize_obs(self.normalizer, obs), carry, rng, guide)
    return self.normalizer["action"].unnormalize(x), carry

  def normalized_guide(self, target, weights):
    """The sampler's (x0 target, weight) over the whole horizon, in normalised units."""
    pad = self.nets.n_obs_steps - 1
    target = self.normalizer["action"].normalize(target)
    target = jnp.pad(target, ((0, 0), (pad, 0), (0, 0)))
    weights = jnp.pad(jnp.asarray(weights, jnp.float32), ((0, 0), (pad, 0)))[..., None]
    return target, weights

  def apply_normalized(self, params, obs_norm, carry, rng, guide=None):
    """Pure, in normalised units: (params, normalised obs history, carry, rng) -> (x, carry)."""
    enc_params, sampler_params = params
    cond = self.nets.encode(enc_params, obs_norm)
    if guide is None:
      return self.sample(sampler_params, cond, carry, rng)
    if not self.guidable:
      raise ValueError(
        f"policy {self.name} cannot be guided (rtc stitching needs an "
        f"iterative sampler, NFE >= 2): use stitching 'none' or 'ensemble'"
      )
    return self.sample(sampler_params, cond, carry, rng, guide=guide)

  def action_mse(self, windows, rng, batch_size: int = 256) -> float:
    """Mean squared error (normalised units, whole chunk) against demonstration windows.

    Stateful samplers get the carry they would have had: built from the window's
    ground-truth previous chunk by `carry_from_batch`.
    """
    f = jax.jit(
      lambda p, batch, key: jnp.sum(
        jnp.mean(
          (
            self.apply_normalized(p, batch["obs"], self.carry_from_batch(batch), key)[0]
            - batch["action"]
          )
          ** 2,
          axis=(1, 2),
        )
      )
    )
    total, n = 0.0, windows.num_windows
    for i, start in enumerate(range(0, n, batch_size)):
      rows = np.arange(start, min(start + batch_size, n))
      total += float(f(self.params, windows.take(rows), jax.random.fold_in(rng, i)))
    return total / n

  def nfe_report(self, episode_length: int, calls=None) -> dict:
    """NFE per call in steady state and on an episode's first call, and amortised per call
    over an episode (STEP's first call runs the teacher): over the recorded calls of each
    episode (`calls`: per episode, e.g. until its first success), else over a full episode
    of `episode_length` env steps. `policy_calls`: the mean calls per episode."""
    full = -(-int(episode_length) // self.n_action_steps)
    calls = np.maximum(np.asarray(full if calls is None else calls, np.float64), 1)
    first = self.nfe if self.nfe_first is None else self.nfe_first
    amortised = (first + (calls - 1) * self.nfe) / calls
    return {
      "nfe": int(self.nfe),
      "nfe_first_call": int(first),
      "nfe_amortised": float(np.mean(amortised)),
      "policy_calls": float(np.mean(calls)),
    }

  @staticmethod
  def stall_flags(carry):
    """The per-environment stall flags a carried sampler reports (STEP), else None."""
    return carry.get("stalled") if isinstance(carry, dict) else None

  def executed(self, chunk):
    """The actions an environment executes from a chunk: [n_obs-1, n_obs-1+n_action)."""
    start = self.nets.n_obs_steps - 1
    return chunk[:, start : start + self.n_action_steps]

  def reset(self, batch: int):
    """Starts new episodes for the host-side carry used by `__call__`."""
    # committed to the params' device, like the carries the policy returns (committed and
    # uncommitted arguments compile separately)
    sharding = jax.tree_util.tree_leaves(self.params)[0].sharding
    self._carry = jax.device_put(self.init_carry(batch), sharding)

  @property
  def carry(self):
    """The host-side carry `__call__` advances (None before the first `reset`)."""
    return self._carry

  @property
  def params(self):
    return (self.encoder_params, self.sampler_params)

  def check_obs(self, obs: dict):
    n = self.nets.n_obs_steps
    if set(obs) != set(self.obs_shapes):
      raise ValueError(
        f"policy {self.name} expects observation keys {sorted(self.obs_shapes)}, got {sorted(obs)}"
      )
    for k, shape in self.obs_shapes.items():
      got = tuple(np.shape(obs[k]))
      if obs_lib.is_image_key(k):  # uint8 (H, W, 3): dtype and channel order named
        dtype = obs[k].dtype if hasattr(obs[k], "dtype") else np.asarray(obs[k]).dtype
        vision.check_frames(k, got, dtype, tuple(shape))
      if len(got) != len(shape) + 2 or got[1] != n or got[2:] != tuple(shape):
        raise ValueError(
          f"observation {k!r} must have shape (batch, {n}, "
          f"{', '.join(map(str, shape))}) (n_obs_steps={n}), got {got}"
        )

  def chunk(self, obs: dict, rng, guide=None) -> jax.Array:
    """The full predicted chunk (B, horizon, A), unnormalised; advances the host carry.
    `guide`: see `apply`."""
    self.check_obs(obs)
    if guide is not None and not self.guidable:
      raise ValueError(
        f"policy {self.name} cannot be guided (rtc stitching needs an "
        f"iterative sampler, NFE >= 2): use stitching 'none' or 'ensemble'"
      )
    batch = np.shape(next(iter(obs.values())))[0]
    if self._carry is None or _batch_of(self._carry, batch) != batch:
      self.reset(batch)
    out, self._carry = self._jit(self.params, as_inputs(obs), self._carry, rng, guide)
    return out

  @property
  def span(self) -> int:
    """Actions of a chunk from the first executed position to the horizon's end."""
    return self.nets.horizon - self.nets.n_obs_steps + 1

  def executable(self, chunk):
    """The chunk's actions from the first executed position on (B, span, A)."""
    return chunk[:, self.nets.n_obs_steps - 1 :]

  def __call__(self, obs: dict, rng) -> np.ndarray:
    """The executed actions (B, n_action_steps, A)."""
    return np.asarray(self.executed(self.chunk(obs, rng)))

  def latency_b1(self, calls: int = 50) -> dict:
    """Batch-1 latency on zero observations, after warm-up: the steady state (calls after
    an episode's first, a mid-episode carry; median) and an episode's first call apart
    (STEP's runs the teacher's sampler from noise). Resets the carry."""
    obs = {
      k: np.zeros((1, self.nets.n_obs_steps) + tuple(s), input_dtype(k))
      for k, s in self.obs_shapes.items()
    }
    self.reset(1)
    for i in range(3):
      self(obs, jax.random.PRNGKey(i))
    firsts = []
    for i in range(5):
      self.reset(1)
      t0 = time.perf_counter()
      self(obs, jax.random.PRNGKey(50 + i))
      firsts.append(time.perf_counter() - t0)
    self(obs, jax.random.PRNGKey(60))  # the carry is now mid-episode
    times = []
    for i in range(calls):
      t0 = time.perf_counter()
      self(obs, jax.random.PRNGKey(100 + i))
      times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    return {
      "latency_ms_b1": 1e3 * med,
      "hz_b1": 1.0 / med,
      "policy": self.name,
      "first_call_ms_b1": 1e3 * float(np.median(firsts)),
    }

  def compiled_cost(self, batch: int):
    """(compile seconds, compiled executable) for a batch size, compiled apart.

    The executable takes (params, obs, carry, rng)."""
    obs = {
      k: jax.ShapeDtypeStruct((batch, self.nets.n_obs_steps) + tuple(s), input_dtype(k))
      for k, s in self.obs_shapes.items()
    }
    t0 = time.perf_counter()
    lowered = self._jit.lower(self.params, obs, self.init_carry(batch), jax.random.PRNGKey(0))
    compiled = lowered.compile()
    return time.perf_counter() - t0, compiled


@dataclasses.dataclass(frozen=True)
class PolicySpec:
  """What a method hands over to build a Policy (see `methods.make_policies`).

  sampler_params: U-Net params, or a dict with a "unet" entry plus other networks' params.
  init_carry: None for a stateless `sample(params, cond, rng)`; else the carried form.
  """

  sample: Callable
  encoder_params: Any
  sampler_params: Any
  nfe: int
  init_carry: Callable | None = None
  carry_from_batch: Callable | None = None
  nfe_first: int | None = None  # network evaluations of an episode's first call, if not nfe
  guidable: bool = False  # sample takes guide=(target, weights) (real-time chunking)


def input_dtype(key: str):
  """The dtype a policy takes observation `key` in: uint8 camera frames, else float32."""
  return np.uint8 if obs_lib.is_image_key(key) else np.float32


def as_inputs(obs: dict) -> dict:
  """Observations as the policy's compiled call takes them (`input_dtype`)."""
  return {k: jnp.asarray(v, input_dtype(k)) for k, v in obs.items()}


def _batch_of(carry, default: int) -> int:
  """The batch size of a carry: the leading dim of its first non-scalar leaf."""
  leaves = [x for x in jax.tree_util.tree_leaves(carry) if np.ndim(x) > 0]
  return leaves[0].shape[0] if leaves else default


def stateless(sample):
  """Adapts `sample(params, cond, rng[, guide=...]) -> x` to the carried form."""

  def carried(params, cond, carry, rng, **guide):
    return sample(params, cond, rng, **guide), carry

  return carried


def _sampler_params(config, spec: PolicySpec, prune: bool):
  """The spec's sampler params, with the U-Net's dead kernel taps pruned (exact)."""
  unet_params = spec.sampler_params
  if not prune:
    return unet_params
  if isinstance(unet_params, dict) and "unet" in unet_params:
    return dict(unet_params, unet=inference_unet_params(unet_params["unet"], config))
  return inference_unet_params(unet_params, config)


def build_policy(
  name,
  config,
  nets: Nets,
  normalizer,
  spec: PolicySpec,
  obs_shapes,
  prune: bool = True,
  reuse: Policy | None = None,
) -> Policy:
  """A Policy from a method's spec; prunes the U-Net's dead kernel taps once, here.

  `reuse`: a policy built earlier from the same method and config; it gets the new
  params and keeps its compiled function (periodic evaluations do not recompile).
  `nets.compute_dtype` bfloat16 stores the params in bfloat16 (bf16 inference).
  """
  # stored in the compute dtype once here, not converted on every call
  sampler_params = nets.cast(_sampler_params(config, spec, prune))
  encoder_params = nets.cast(spec.encoder_params)
  if reuse is not None:
    reuse.encoder_params, reuse.sampler_params = encoder_params, sampler_params
    reuse.reset(1)
    return reuse
  sample, init_carry = spec.sample, spec.init_carry
  if init_carry is None:
    sample, init_carry = stateless(sample), (lambda batch: ())
  return Policy(
    name,
    spec.nfe,
    nets,
    normalizer,
    sample,
    encoder_params,
    sampler_params,
    dict(obs_shapes),
    config.policy.n_action_steps,
    init_carry,
    spec.carry_from_batch,
    spec.nfe_first,
    spec.guidable,
  )
