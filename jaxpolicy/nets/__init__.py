"""Networks shared by every method: observation encoders and the conditional U-Net."""

from __future__ import annotations

import dataclasses
import functools
import logging as _logging

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpolicy import obs as obs_lib
from jaxpolicy.runtime import host
from jaxpolicy.nets import vision
from jaxpolicy.nets.encoders import DP3Encoder, StateEncoder, encode_history
from jaxpolicy.nets.live_taps import LiveTaps, live_tap_ranges, prune_params
from jaxpolicy.nets.unet1d import ConditionalUnet1D, check_horizon, inference_layout


def make_encoder(config) -> nn.Module:
  """DP3's point-cloud encoder for point-cloud observations, DP's image encoder for camera
  frames (`vision.RGBEncoder`), else the state MLP on the kind's one key."""
  kind = obs_lib.kind(config.obs)
  if kind.point_cloud:
    return DP3Encoder(out_dim=config.model.encoder_out)
  if kind.images:
    r = config.rgb
    vision.check_variant(r.encoder, r.pooling)
    return vision.RGBEncoder(
      camera_keys=obs_lib.camera_keys(r.cameras),
      variant=r.encoder,
      pooling=r.pooling,
      num_kp=r.num_keypoints,
      feature_dim=r.feature_dim,
    )
  return StateEncoder(
    hidden_dims=tuple(config.model.encoder_hidden),
    out_dim=config.model.encoder_out,
    key=kind.keys[0],
  )


def make_unet(config, action_dim: int) -> ConditionalUnet1D:
  """The config's U-Net. `model.fused_norm` and `model.time_inputs` exist only in configs
  that need them (MeanFlow: False and 2); elsewhere the defaults, the network every other
  method trains."""
  m = config.model
  check_horizon(config.policy.horizon, len(m.down_dims))
  return ConditionalUnet1D(
    out_dim=action_dim,
    down_dims=tuple(m.down_dims),
    kernel_size=m.kernel_size,
    n_groups=m.n_groups,
    step_embed_dim=m.step_embed_dim,
    fused_norm=m.get("fused_norm", True),
    time_inputs=m.get("time_inputs", 1),
  )


COMPUTE_DTYPES = ("float32", "bfloat16")


def check_compute_dtype(dtype: str) -> str:
  if dtype not in COMPUTE_DTYPES:
    raise ValueError(
      f"eval.dtype (the policy's compute dtype) must be one of {COMPUTE_DTYPES}, got {dtype!r}"
    )
  return dtype


@functools.lru_cache(maxsize=None)
def native_bf16() -> bool:
  """Whether this device computes bfloat16 matmuls natively: GPUs and TPUs do; a CPU only
  with AVX512-BF16 or AMX (Intel Sapphire Rapids and later, AMD Zen 4 and later). Elsewhere
  XLA emulates bf16 with conversions around float32 kernels, slower than float32."""
  if jax.default_backend() != "cpu":
    return True
  return bool({"avx512_bf16", "amx_bf16"} & host.cpu_flags())


@functools.lru_cache(maxsize=2)  # once per process and kind of CPU
def _warn_cpu_bf16(native: bool):
  if native:
    _logging.getLogger("jaxpolicy").warning(
      "bfloat16 inference on this CPU (AVX512-BF16/AMX) is no faster than float32: "
      "about float32's speed for paper-size networks (XLA's CPU bf16 dots stream the "
      "half-size weights no faster; SDM at batch 1: 11.4 ms bf16, 12.1 ms float32 on an "
      "AMD EPYC with AVX512-BF16), 1.7-3.8x slower for quick-size ones, whose weights stay "
      "in cache; it halves the weights' memory"
    )
  else:
    _logging.getLogger("jaxpolicy").warning(
      "bfloat16 inference on a CPU without AVX512-BF16/AMX is emulated: XLA converts the "
      "weights to float32 on every call, slower than float32 (paper-size SDM: ~7x on an "
      "AVX2 CPU); keep eval.dtype=float32 on this machine"
    )


def cast_floating(tree, dtype):
  """The tree with its floating-point leaves cast to `dtype` (others unchanged)."""
  return jax.tree_util.tree_map(
    lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree
  )


@dataclasses.dataclass(frozen=True)
class Nets:
  """The encoder and U-Net modules of a policy (stateless; params live in TrainStates).

  `compute_dtype` is the dtype the encoder and U-Net compute in: float32 (training and the
  default), or bfloat16 for bf16 inference (`Nets.with_compute_dtype`; the policy stores its
  params in that dtype, see `policy.build_policy`). Inputs and outputs stay float32, so the
  samplers' DDIM arithmetic is float32 either way.
  """

  encoder: nn.Module
  unet: ConditionalUnet1D
  horizon: int
  n_obs_steps: int
  action_dim: int
  compute_dtype: str = "float32"
  chunk_bytes: int = 0  # > 0: encode point clouds in chunks of frames (CPU caches)
  image_crop: tuple = ()  # camera frames: the (h, w) crop the encoder sees
  imagenet_norm: bool = False  # camera frames: ImageNet mean/std instead of [-1, 1]

  def with_compute_dtype(self, dtype: str) -> Nets:
    check_compute_dtype(dtype)
    if dtype == "bfloat16" and jax.default_backend() == "cpu":
      _warn_cpu_bf16(native_bf16())
    return self if dtype == self.compute_dtype else dataclasses.replace(self, compute_dtype=dtype)

  def cast(self, tree):
    """`tree`'s floating leaves in the compute dtype (unchanged in float32)."""
    return tree if self.compute_dtype == "float32" else cast_floating(tree, self.compute_dtype)

  def encode(self, enc_params, obs, rng=None):
    """(B, n_obs_steps, ...) observations -> (B, n_obs_steps * feat) global condition.

    Camera frames (uint8) are cropped and scaled here, inside the caller's compiled
    program (`vision.preprocess`): `rng` given, a random crop per frame (training
    augmentation), else the centre crop (evaluation, frozen encoders)."""
    obs = self.preprocess(obs, rng)
    cond = encode_history(
      self.encoder, self.cast(enc_params), self.cast(obs), self.frames_per_chunk(obs)
    )
    return cond.astype(jnp.float32)

  @property
  def augments(self) -> bool:
    """Whether `encode` takes an rng (camera frames: random crops in training)."""
    return bool(self.image_crop)

  def preprocess(self, obs, rng=None):
    """`obs` with its camera frames cropped and scaled to float32 (`vision.preprocess`);
    several cameras draw independent crops."""
    keys = [k for k in obs if obs_lib.is_image_key(k)]
    if not keys:
      return obs
    out = dict(obs)
    for i, k in enumerate(keys):
      key = None if rng is None else jax.random.fold_in(rng, i)
      out[k] = vision.preprocess(obs[k], self.image_crop, key, self.imagenet_norm)
    return out

  def encoder_frame_shapes(self, obs_shapes: dict) -> dict:
    """Per-frame shapes the encoder module sees: camera frames at the crop size."""
    out = {}
    for k, s in obs_shapes.items():
      if obs_lib.is_image_key(k):
        h, w = self.image_crop
        if len(s) != 3 or s[2] != 3:
          raise ValueError(
            f"camera frames {k!r} must be (height, width, 3) per frame, got {tuple(s)}"
          )
        if s[0] < h or s[1] < w:
          raise ValueError(
            f"camera frames {k!r} of shape {tuple(s)} are smaller than the "
            f"crop config.rgb.crop = {(h, w)}; lower the crop or render larger "
            f"frames (config.rgb.image_size)"
          )
        s = (h, w, s[2])
      out[k] = tuple(s)
    return out

  def frames_per_chunk(self, obs) -> int:
    """Frames per chunk for the point-cloud encoder (0: all at once).

    With `chunk_bytes` (CPU), the PointNet's widest per-point activations of a chunk fit in
    that many bytes: its LayerNorms and max-pool are memory-bound passes, and over a whole
    batch (frames x points x 256 floats: 134 MB at batch 128, 2 frames, 512 points) they
    ran from DRAM (what chunks bought: docs/speed.md, "What each optimisation is").
    """
    if not self.chunk_bytes or "point_cloud" not in obs:
      return 0
    points = obs["point_cloud"].shape[-2]
    widest = max(getattr(self.encoder, "point_dims", (256,)))
    return max(1, self.chunk_bytes // (points * widest * 4))

  def denoiser(self, unet_params, cond) -> "Denoiser":
    """`denoise(x_t, t)` over params and the global condition (`Denoiser`)."""
    return Denoiser(self, self.cast(unet_params), self.cast(cond))

  def live_taps(self) -> LiveTaps:
    """Splits training states into the U-Net's live kernel taps at this horizon and the
    dead ones (`live_taps.LiveTaps`)."""
    u = self.unet
    return LiveTaps(live_tap_ranges(self.horizon, tuple(u.down_dims), u.kernel_size))

  def init(self, rng, obs_shapes: dict):
    """Fresh {'encoder', 'unet'} params for the given per-frame observation shapes.

    One jitted program of the initialisers only (`lazy_init`: the forward pass is traced
    for shapes, never run), several times faster than Flax's eager init on CPU.
    """
    S = jax.ShapeDtypeStruct

    def init_fn(rng):
      k1, k2 = jax.random.split(rng)
      frame = {
        k: S((1,) + tuple(s), jnp.float32) for k, s in self.encoder_frame_shapes(obs_shapes).items()
      }
      enc = self.encoder.lazy_init(k1, frame)
      feat = jax.eval_shape(lambda p, o: self.encoder.apply(p, o), enc, frame).shape[-1]
      cond = S((1, self.n_obs_steps * feat), jnp.float32)
      t = S((1,), jnp.int32)
      second = {"timestep2": t} if getattr(self.unet, "time_inputs", 1) == 2 else {}
      unet = self.unet.lazy_init(
        k2, S((1, self.horizon, self.action_dim), jnp.float32), t, cond, **second
      )
      return {"encoder": enc, "unet": unet}

    # one compiled initialiser per architecture and observation shapes in a process: the
    # program compiles slowly on CPU (seconds; a random draw per parameter) and every run,
    # teacher, student and restore builds its own Nets
    key = (
      repr(self.encoder),
      repr(self.unet),
      self.horizon,
      self.n_obs_steps,
      self.action_dim,
      self.image_crop,
      tuple(sorted((k, tuple(v)) for k, v in obs_shapes.items())),
    )
    if key not in _INIT_FNS:
      _INIT_FNS[key] = jax.jit(init_fn)
    return _INIT_FNS[key](rng)


_INIT_FNS: dict = {}


class Denoiser:
  """`denoise(x_t, t) -> model output` over fixed U-Net params and global condition.

  It also offers the U-Net's two stages apart (`unet1d.ConditionalUnet1D`):
  `conditioning(ts)` gives the FiLM projections for timesteps `ts` of shape (k, B), in one
  batched pass, and `with_conditioning(x_t, c)` the rest for one of them (`c` a (B, ...)
  slice), so a k-step sampler reads the projection weights once per call instead of k
  times (`samplers.ddim_sample`). A U-Net with two time inputs takes the second as `t2`.
  """

  def __init__(self, nets: Nets, params, cond):
    self.nets, self.params, self.cond = nets, params, cond

  def __call__(self, x, t, t2=None):
    second = {} if t2 is None else {"timestep2": t2}
    return self.nets.unet.apply(self.params, self.nets.cast(x), t, self.cond, **second).astype(
      x.dtype
    )

  def conditioning(self, ts, ts2=None):
    k, b = ts.shape
    cond = jnp.broadcast_to(self.cond[None], (k,) + self.cond.shape).reshape(
      (k * b,) + self.cond.shape[1:]
    )
    second = {} if ts2 is None else {"timestep2": ts2.reshape(k * b)}
    films = self.nets.unet.apply(self.params, None, ts.reshape(k * b), cond, **second)
    return jax.tree_util.tree_map(lambda f: f.reshape((k, b) + f.shape[1:]), films)

  def with_conditioning(self, x, films):
    return self.nets.unet.apply(self.params, self.nets.cast(x), films=films).astype(x.dtype)


CPU_CHUNK_BYTES = 2 << 20  # the PointNet's activations per chunk of frames on a CPU


def build_nets(config, action_dim: int) -> Nets:
  chunk = (
    CPU_CHUNK_BYTES
    if (obs_lib.kind(config.obs).point_cloud and jax.default_backend() == "cpu")
    else 0
  )
  crop, imagenet = (), False
  if obs_lib.kind(config.obs).images:
    crop, imagenet = tuple(int(x) for x in config.rgb.crop), bool(config.rgb.imagenet_norm)
  return Nets(
    make_encoder(config),
    make_unet(config, action_dim),
    config.policy.horizon,
    config.policy.n_obs_steps,
    action_dim,
    chunk_bytes=chunk,
    image_crop=crop,
    imagenet_norm=imagenet,
  )


def inference_unet_params(unet_params, config):
  """Full-shape U-Net params -> the params a policy runs: dead-tap-pruned for this horizon
  and output-major (`unet1d.inference_layout`); the same function."""
  pruned = prune_params(
    unet_params["params"],
    config.policy.horizon,
    tuple(config.model.down_dims),
    config.model.kernel_size,
  )
  return {"params": inference_layout(pruned)}
