"""ConditionalUnet1D with FiLM (Diffusion Policy / DP3), channel-last (B, L, C), CPU-friendly:
its convolutions run the kernels of `nets.kernels` over their live taps (`nets.live_taps`),
and policies hold every kernel output-major (`inference_layout`). Parameter semantics match
PyTorch, so a DP3 / SDM-Policy state dict maps onto them: Conv1d weight (C_out, C_in, k) ->
kernel (k, C_in, C_out); ConvTranspose1d weight (C_in, C_out, k) -> kernel (k, C_in, C_out)
with output o = stride * i + j - padding.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpolicy.nets.kernels import (
  _conv_im2col,
  _dot_out_major,
  conv_transpose_s2,
  group_norm_mish,
  group_norm_mish_plain,
  mish,
  sinusoidal_embedding,
)


class GroupNormMish(nn.Module):
  """`group_norm_mish` with flax GroupNorm's parameters (`scale`, `bias`); `fused=False`
  computes it with `group_norm_mish_plain` (same params, same values)."""

  num_groups: int
  epsilon: float = 1e-5
  fused: bool = True

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    if c % self.num_groups:
      raise ValueError(f"{c} channels do not split into {self.num_groups} groups")
    scale = self.param("scale", nn.initializers.ones_init(), (c,))
    bias = self.param("bias", nn.initializers.zeros_init(), (c,))
    norm = group_norm_mish if self.fused else group_norm_mish_plain
    return norm(x, scale, bias, self.num_groups, self.epsilon)


def _kernel_param(module: nn.Module, shape, bound: float):
  """The kernel, created at full shape on init; on apply it may be a pruned slice."""
  if module.has_variable("params", "kernel"):
    return module.get_variable("params", "kernel")
  init = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)
  return module.param("kernel", init, shape)


class Conv1d(nn.Module):
  features: int
  kernel_size: int
  stride: int = 1

  @nn.compact
  def __call__(self, x):
    cin = x.shape[-1]
    bound = 1.0 / math.sqrt(cin * self.kernel_size)  # PyTorch's default init
    out_major = self.has_variable("params", "kernel_nk")
    kernel = (
      self.get_variable("params", "kernel_nk")
      if out_major
      else _kernel_param(self, (self.kernel_size, cin, self.features), bound)
    )
    init = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)
    bias = self.param("bias", init, (self.features,))
    y = _conv_im2col(x, kernel, self.kernel_size, self.stride, out_major)
    return y + bias.astype(x.dtype)


class Upsample1d(nn.Module):
  """ConvTranspose1d(dim, dim, 4, stride 2, padding 1): length L -> 2L."""

  features: int

  @nn.compact
  def __call__(self, x):
    cin = x.shape[-1]
    bound = 1.0 / math.sqrt(self.features * 4)
    out_major = self.has_variable("params", "kernel_nk")
    kernel = (
      self.get_variable("params", "kernel_nk")
      if out_major
      else _kernel_param(self, (4, cin, self.features), bound)
    )
    init = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)
    bias = self.param("bias", init, (self.features,))
    y = conv_transpose_s2(x, kernel.astype(x.dtype), out_major)
    return y + bias.astype(x.dtype)


class Dense(nn.Module):
  """flax's `nn.Dense` (same parameters and initialisation) that also reads an
  output-major `kernel_nk` (`inference_layout`)."""

  features: int

  @nn.compact
  def __call__(self, x):
    if self.has_variable("params", "kernel_nk"):
      y = _dot_out_major(x, self.get_variable("params", "kernel_nk"))
    else:
      kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
      y = x @ kernel.astype(x.dtype)
    return y + self.param("bias", nn.initializers.zeros_init(), (self.features,)).astype(x.dtype)


class Conv1dBlock(nn.Module):
  features: int
  kernel_size: int
  n_groups: int = 8
  fused_norm: bool = True

  @nn.compact
  def __call__(self, x):
    x = Conv1d(self.features, self.kernel_size, name="conv")(x)
    return GroupNormMish(self.n_groups, fused=self.fused_norm, name="norm")(x)


class ConditionalResidualBlock1D(nn.Module):
  """Two conv blocks with FiLM (scale * h + bias) from the global condition in between."""

  features: int
  kernel_size: int = 5
  n_groups: int = 8
  fused_norm: bool = True

  @nn.compact
  def __call__(self, x, cond=None, film=None):
    """x (B, L, Cin) -> (B, L, C). `film` (B, 2C): the FiLM projection of `cond`, if already
    computed; with x None the block returns just that projection."""
    project = lambda: Dense(2 * self.features, name="cond_encoder")(mish(cond))
    if x is None:
      return project()
    block = lambda name: Conv1dBlock(
      self.features, self.kernel_size, self.n_groups, self.fused_norm, name=name
    )
    h = block("block0")(x)
    if film is None:
      film = project()
    scale, bias = film[:, None, : self.features], film[:, None, self.features :]
    h = scale * h + bias
    h = block("block1")(h)
    res = x if x.shape[-1] == self.features else Conv1d(self.features, 1, name="residual_conv")(x)
    return h + res


class ConditionalUnet1D(nn.Module):
  """x (B, H, A), timestep (B,), global_cond (B, G) -> (B, H, A).

  The timestep and the global condition enter only through each residual block's FiLM
  projection, so the network splits in two: `films = unet.apply(p, None, t, cond)` gives
  those projections ({block name: (B, 2C)}) and `unet.apply(p, x, films=films)` the rest.
  A k-step sampler computes the k steps' projections in one batched pass outside its loop
  (docs/design.md, "Timestep conditioning once per call"). The full call projects in each block,
  where the projection is used: it compiles to the same program as before the split. All
  forms are one function.

  `time_inputs=2` adds a second time input (`timestep2`, MeanFlow's interval t - r) with
  its own embedding MLP (`step_mlp_h*`) summed with the first's; `fused_norm=False` runs
  the plain GroupNorm + Mish (`group_norm_mish_plain`), which `jax.jvp` differentiates.
  The defaults build exactly the network (params, program) every other method trains.
  """

  out_dim: int
  down_dims: Sequence[int] = (64, 128, 256)
  kernel_size: int = 5
  n_groups: int = 8
  step_embed_dim: int = 128
  fused_norm: bool = True
  time_inputs: int = 1

  def block_dims(self) -> list[tuple[str, int]]:
    """(name, channels) of the residual blocks, in the order the trunk runs them."""
    dims = list(self.down_dims)
    out = []
    for i, d in enumerate(dims):
      out += [(f"down{i}_res0", d), (f"down{i}_res1", d)]
    out += [("mid0", dims[-1]), ("mid1", dims[-1])]
    for i, d in enumerate(reversed(dims[:-1])):
      out += [(f"up{i}_res0", d), (f"up{i}_res1", d)]
    return out

  def _embed(self, t, dtype, prefix: str):
    e = sinusoidal_embedding(t, self.step_embed_dim).astype(dtype)
    e = Dense(self.step_embed_dim * 4, name=f"{prefix}0")(e)
    return Dense(self.step_embed_dim, name=f"{prefix}1")(mish(e))

  @nn.compact
  def __call__(self, x, timestep=None, global_cond=None, films=None, timestep2=None):
    # the inputs' dtype is the compute dtype (float32; bfloat16 for bf16 inference, see Nets)
    blocks = {
      name: ConditionalResidualBlock1D(
        d, self.kernel_size, self.n_groups, self.fused_norm, name=name
      )
      for name, d in self.block_dims()
    }
    if (timestep2 is not None) != (self.time_inputs == 2 and films is None):
      raise ValueError(
        f"this U-Net has {self.time_inputs} time input(s): pass timestep2 "
        "exactly when it has 2 (and no films)"
      )
    if films is None:
      dtype = (global_cond if x is None else x).dtype
      e = self._embed(timestep, dtype, "step_mlp")
      if self.time_inputs == 2:
        e = e + self._embed(timestep2, dtype, "step_mlp_h")
      cond = jnp.concatenate([e, global_cond.astype(e.dtype)], axis=-1)
      if x is None:
        return {name: block(None, cond) for name, block in blocks.items()}
      films = dict.fromkeys(blocks)  # the whole call: each block projects where it uses it
    else:
      cond, dtype = None, next(iter(films.values())).dtype
    x = x.astype(dtype)
    in_order = iter(blocks.items())  # block_dims' order is the order the trunk runs them

    def res(x):
      name, block = next(in_order)
      return block(x, cond, films[name])

    dims = list(self.down_dims)
    skips = []
    for i, d in enumerate(dims):
      x = res(res(x))
      skips.append(x)
      if i < len(dims) - 1:
        x = Conv1d(d, 3, stride=2, name=f"down{i}_downsample")(x)
    x = res(res(x))
    for i, d in enumerate(reversed(dims[:-1])):
      x = res(res(jnp.concatenate([x, skips.pop()], axis=-1)))
      x = Upsample1d(d, name=f"up{i}_upsample")(x)
    x = Conv1dBlock(dims[0], self.kernel_size, self.n_groups, self.fused_norm, name="final_block")(
      x
    )
    return Conv1d(self.out_dim, 1, name="final_conv")(x)


def check_horizon(horizon: int, n_levels: int):
  """The U-Net halves the length n_levels - 1 times and doubles it back."""
  if horizon % (2 ** (n_levels - 1)) != 0:
    raise ValueError(
      f"horizon {horizon} must be divisible by 2**(len(down_dims)-1) = {2 ** (n_levels - 1)}"
    )


def conditioning_params(params) -> dict:
  """The params (a U-Net's "params" dict) that only the timestep conditioning reads: the
  step MLP and every block's FiLM layer, which a k-step sampler reads once per call."""
  return {k: v for k, v in params.items() if k.startswith("step_mlp")} | {
    k: v["cond_encoder"] for k, v in params.items() if isinstance(v, dict) and "cond_encoder" in v
  }


def inference_layout(params):
  """U-Net params with every kernel stored output-major, as policies use them: a conv's
  (k, C_in, C_out) as `kernel_nk` (C_out, k, C_in), an upsample's (taps, C_in, C_out) as
  (taps, C_out, C_in), a dense (C_in, C_out) as (C_out, C_in). The same function (the
  modules read either); checkpoints and `torch_bridge` keep the PyTorch-shaped `kernel`."""

  def walk(tree, parent):
    out = {}
    for k, v in tree.items():
      if hasattr(v, "items"):
        out[k] = walk(v, k)
      elif k == "kernel" and v.ndim in (2, 3):
        perm = (1, 0) if v.ndim == 2 else (0, 2, 1) if parent.endswith("_upsample") else (2, 0, 1)
        out["kernel_nk"] = jnp.transpose(v, perm)
      else:
        out[k] = v
    return out

  return walk(params, "")
