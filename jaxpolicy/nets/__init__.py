"""Networks shared by every method: observation encoders and the conditional U-Net."""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpolicy.nets.encoders import StateEncoder, encode_history
from jaxpolicy.nets.unet1d import ConditionalUnet1D, check_horizon, prune_params

OBS_KEYS = {"state": ("full_state",), "pointcloud": ("point_cloud", "agent_pos")}


def obs_keys(obs_type: str) -> tuple[str, ...]:
  if obs_type not in OBS_KEYS:
    raise ValueError(f"obs must be one of {sorted(OBS_KEYS)}, got {obs_type!r}")
  return OBS_KEYS[obs_type]


def make_encoder(config) -> nn.Module:
  if config.obs == "state":
    return StateEncoder(hidden_dims=tuple(config.model.encoder_hidden),
                        out_dim=config.model.encoder_out)
  if config.obs == "pointcloud":
    from jaxpolicy.nets.encoders import DP3Encoder  # pylint: disable=g-import-not-at-top
    return DP3Encoder(out_dim=config.model.encoder_out)
  raise ValueError(f"obs must be one of {sorted(OBS_KEYS)}, got {config.obs!r}")


def make_unet(config, action_dim: int) -> ConditionalUnet1D:
  check_horizon(config.policy.horizon, len(config.model.down_dims))
  return ConditionalUnet1D(out_dim=action_dim, down_dims=tuple(config.model.down_dims),
                           kernel_size=config.model.kernel_size, n_groups=config.model.n_groups,
                           step_embed_dim=config.model.step_embed_dim)


@dataclasses.dataclass(frozen=True)
class Nets:
  """The encoder and U-Net modules of a policy (stateless; params live in TrainStates)."""
  encoder: nn.Module
  unet: ConditionalUnet1D
  horizon: int
  n_obs_steps: int
  action_dim: int
  _init_cache: dict = dataclasses.field(default_factory=dict, init=False, compare=False,
                                       repr=False)

  def encode(self, enc_params, obs):
    return encode_history(self.encoder, enc_params, obs)

  def denoiser(self, unet_params, cond):
    """A `denoise(x_t, t)` closure over params and the global condition."""
    return lambda x, t: self.unet.apply(unet_params, x, t, cond)

  def init(self, rng, obs_shapes: dict):
    """Fresh {'encoder', 'unet'} params for the given per-frame observation shapes.

    One jitted program of the initialisers only (`lazy_init`: the forward pass is traced
    for shapes, never run), several times faster than Flax's eager init on CPU.
    """
    S = jax.ShapeDtypeStruct

    def init_fn(rng):
      k1, k2 = jax.random.split(rng)
      frame = {k: S((1,) + tuple(s), jnp.float32) for k, s in obs_shapes.items()}
      enc = self.encoder.lazy_init(k1, frame)
      feat = jax.eval_shape(lambda p, o: self.encoder.apply(p, o), enc, frame).shape[-1]
      cond = S((1, self.n_obs_steps * feat), jnp.float32)
      unet = self.unet.lazy_init(k2, S((1, self.horizon, self.action_dim), jnp.float32),
                                 S((1,), jnp.int32), cond)
      return {"encoder": enc, "unet": unet}

    key = tuple(sorted((k, tuple(v)) for k, v in obs_shapes.items()))
    if key not in self._init_cache:
      self._init_cache[key] = jax.jit(init_fn)
    return self._init_cache[key](rng)


def build_nets(config, action_dim: int) -> Nets:
  return Nets(make_encoder(config), make_unet(config, action_dim), config.policy.horizon,
              config.policy.n_obs_steps, action_dim)


def inference_unet_params(unet_params, config):
  """Full-shape U-Net params -> dead-tap-pruned params for this horizon (exact)."""
  return {"params": prune_params(unet_params["params"], config.policy.horizon,
                                 tuple(config.model.down_dims), config.model.kernel_size)}
