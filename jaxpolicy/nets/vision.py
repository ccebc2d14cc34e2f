"""Diffusion Policy's image encoder: a ResNet-18 with GroupNorm per camera, spatial softmax.

Per camera (own weights, as DP's default): torchvision's ResNet-18 convolutions (stem 7x7/2,
max-pool 3x3/2, four stages of two BasicBlocks) with every BatchNorm replaced by
GroupNorm(channels // 16) as DP's `replace_bn_with_gn`; then robomimic's SpatialSoftmax
(1x1 conv to 32 keypoints, softmax over the map, expected (x, y) in [-1, 1]) and a linear
layer to `feature_dim` (64), or global average pooling (the backbone's width, no layer).
Camera features are concatenated with the robot state, which passes through unchanged.
`resnet18_small` is the same network at a quarter of the width (16-32-64-128), for CPUs.
Frames arrive uint8 (H, W, 3); `preprocess` crops and scales them inside the compiled step.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# name -> (stage widths, BasicBlocks per stage); the stem has the first stage's width
VARIANTS = {
  "resnet18": ((64, 128, 256, 512), (2, 2, 2, 2)),
  "resnet18_small": ((16, 32, 64, 128), (2, 2, 2, 2)),
}
POOLINGS = ("spatial_softmax", "avg")
GN_CHANNELS_PER_GROUP = 16  # DP's replace_bn_with_gn: num_groups = channels // 16
GN_EPS = 1e-5  # PyTorch's GroupNorm epsilon
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check_variant(variant: str, pooling: str) -> None:
  if variant not in VARIANTS:
    raise ValueError(f"rgb.encoder must be one of {sorted(VARIANTS)}, got {variant!r}")
  if pooling not in POOLINGS:
    raise ValueError(f"rgb.pooling must be one of {POOLINGS}, got {pooling!r}")


def feature_map_size(crop: tuple) -> tuple:
  """(h, w) of the trunk's last feature map for (h, w) input frames: the stem's stride-2 7x7
  conv and 3x3 max-pool, then stages 2-4's stride-2 3x3 convs (each padded)."""

  def one(n):
    n = (n + 2 * 3 - 7) // 2 + 1
    for _ in range(4):  # max-pool, then the first block of stages 2, 3, 4
      n = (n + 2 - 3) // 2 + 1
    return n

  return tuple(one(int(n)) for n in crop)


def _norm(channels: int, name: str) -> nn.GroupNorm:
  return nn.GroupNorm(
    num_groups=max(1, channels // GN_CHANNELS_PER_GROUP), epsilon=GN_EPS, name=name
  )


def _conv(features: int, k: int, stride: int, name: str, bias: bool = False) -> nn.Conv:
  return nn.Conv(
    features,
    (k, k),
    strides=(stride, stride),
    padding=[(k // 2, k // 2)] * 2,
    use_bias=bias,
    name=name,
  )


class BasicBlock(nn.Module):
  """torchvision's BasicBlock: conv3x3(stride)-norm-relu-conv3x3-norm, plus the input
  (through a strided 1x1 conv and norm where the shape changes), relu."""

  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    h = nn.relu(_norm(self.features, "bn1")(_conv(self.features, 3, self.stride, "conv1")(x)))
    h = _norm(self.features, "bn2")(_conv(self.features, 3, 1, "conv2")(h))
    if self.stride != 1 or x.shape[-1] != self.features:
      x = _norm(self.features, "downsample_norm")(
        _conv(self.features, 1, self.stride, "downsample_conv")(x)
      )
    return nn.relu(h + x)


class ResNetGN(nn.Module):
  """ResNet trunk without its pooling and classifier: (N, H, W, 3) -> (N, H/32, W/32, C)."""

  widths: Sequence[int] = VARIANTS["resnet18"][0]
  blocks: Sequence[int] = VARIANTS["resnet18"][1]

  @nn.compact
  def __call__(self, x):
    x = nn.relu(_norm(self.widths[0], "bn1")(_conv(self.widths[0], 7, 2, "conv1")(x)))
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, (width, n) in enumerate(zip(self.widths, self.blocks)):
      for j in range(n):
        x = BasicBlock(width, 2 if (i > 0 and j == 0) else 1, name=f"layer{i + 1}_{j}")(x)
    return x


class SpatialSoftmax(nn.Module):
  """robomimic's SpatialSoftmax: a 1x1 conv to `num_kp` maps, a softmax over each map's
  pixels (temperature 1), and each map's expected (x, y) on a [-1, 1] grid:
  (N, H, W, C) -> (N, 2 * num_kp) as x0, y0, x1, y1, ..."""

  num_kp: int = 32

  @nn.compact
  def __call__(self, x):
    n, h, w, _ = x.shape
    x = nn.Conv(self.num_kp, (1, 1), name="keypoints")(x)
    att = jax.nn.softmax(x.reshape(n, h * w, self.num_kp).astype(jnp.float32), axis=1)
    pos_x, pos_y = np.meshgrid(np.linspace(-1.0, 1.0, w), np.linspace(-1.0, 1.0, h))
    grid = jnp.asarray(np.stack([pos_x.reshape(-1), pos_y.reshape(-1)], -1), jnp.float32)
    kp = jnp.einsum("npk,pd->nkd", att, grid)  # (N, K, 2)
    return kp.reshape(n, 2 * self.num_kp).astype(x.dtype)


class VisualCore(nn.Module):
  """One camera: ResNet trunk, then spatial softmax + linear, or global average pooling."""

  variant: str = "resnet18"
  pooling: str = "spatial_softmax"
  num_kp: int = 32
  feature_dim: int = 64

  @nn.compact
  def __call__(self, x):
    widths, blocks = VARIANTS[self.variant]
    x = ResNetGN(tuple(widths), tuple(blocks), name="backbone")(x)
    if self.pooling == "avg":
      return jnp.mean(x, axis=(1, 2))
    x = SpatialSoftmax(self.num_kp, name="pool")(x)
    return nn.Dense(self.feature_dim, name="out")(x)


class RGBEncoder(nn.Module):
  """DP's multi-camera image encoder: one `VisualCore` per camera key (`camera_<key>`),
  their features concatenated, then the robot state (`state_key`) as it is."""

  camera_keys: Sequence[str] = ("img",)
  variant: str = "resnet18"
  pooling: str = "spatial_softmax"
  num_kp: int = 32
  feature_dim: int = 64
  state_key: str = "agent_pos"

  @nn.compact
  def __call__(self, obs):
    feats = [
      VisualCore(self.variant, self.pooling, self.num_kp, self.feature_dim, name=f"camera_{k}")(
        obs[k]
      )
      for k in self.camera_keys
    ]
    return jnp.concatenate(feats + [obs[self.state_key].astype(feats[0].dtype)], axis=-1)


def crop_offsets(rng, frames: int, size: tuple, crop: tuple):
  """(frames, 2) int32 top-left corners: uniform over every valid position (rng given, one
  draw per frame, as DP's CropRandomizer), else the centre ((H - h) // 2, (W - w) // 2)."""
  (H, W), (h, w) = size, crop
  if rng is None:
    return jnp.broadcast_to(jnp.asarray([(H - h) // 2, (W - w) // 2], jnp.int32), (frames, 2))
  return jax.random.randint(rng, (frames, 2), 0, jnp.asarray([H - h + 1, W - w + 1]), jnp.int32)


def preprocess(images, crop: tuple, rng=None, imagenet: bool = False):
  """uint8 frames (..., H, W, 3) -> float32 (..., h, w, 3): a random crop (rng given: each
  frame its own) or the centre crop, then [0, 255] -> [-1, 1] (DP's image normaliser), or
  ImageNet's mean and std on [0, 1] (`imagenet`, for torchvision's pretrained weights)."""
  lead, (H, W, C) = images.shape[:-3], images.shape[-3:]
  h, w = crop
  flat = images.reshape((-1, H, W, C))
  if (h, w) != (H, W):
    corners = crop_offsets(rng, flat.shape[0], (H, W), (h, w))
    flat = jax.vmap(lambda im, c: jax.lax.dynamic_slice(im, (c[0], c[1], 0), (h, w, C)))(
      flat, corners
    )
  x = flat.astype(jnp.float32) / 255.0
  if imagenet:
    x = (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
  else:
    x = x * 2.0 - 1.0
  return x.reshape(lead + (h, w, C))


def check_frames(key: str, shape, dtype, want: tuple, error=ValueError) -> None:
  """Refuses camera frames that are not uint8 (..., H, W, 3) of the expected (H, W, 3),
  with one line naming the fault: a float dtype, channel-first (CHW) frames, another size."""
  shape, want = tuple(shape), tuple(want)
  if np.dtype(dtype) != np.uint8:
    raise error(
      f"observation {key!r} must be uint8 camera frames (values 0-255), got "
      f"{np.dtype(dtype)}; pass the camera's raw frames (the policy scales them), "
      f"not float images"
    )
  if shape[-3:] == (want[2],) + want[:2] and shape[-3:] != want:
    raise error(
      f"observation {key!r} has shape {shape}: channel-first (..., 3, H, W) frames; "
      f"give channel-last (..., {', '.join(map(str, want))}) frames, e.g. "
      f"np.moveaxis(frames, -3, -1)"
    )
  if shape[-3:] != want:
    raise error(
      f"observation {key!r} must be (..., {', '.join(map(str, want))}) uint8 frames "
      f"(height, width, RGB), got shape {shape}"
    )
