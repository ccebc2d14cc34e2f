"""ConditionalUnet1D with FiLM (Diffusion Policy / DP3), channel-last, CPU-friendly.

Layout (B, L, C). Every Conv1d is computed as im2col + one dot (XLA's CPU convolution is
several times slower for these shapes) and only over its *live* taps: at short horizons
most taps of a kernel only ever see zero padding (horizon 4: lengths 4 -> 2 -> 1). Which
taps are live depends on the static sequence length alone, so `prune_params` slices the
kernels once, outside `jit`, for inference, and the training loop steps a state split to
its live taps (`LiveTaps`); parameters and checkpoints keep their full PyTorch-shaped
kernels `(k, C_in, C_out)` and the module accepts either form.

Policies also store every kernel output-major (`inference_layout`: `kernel_nk`, each output
channel's weights contiguous). At batch 1 the dots multiply 1-16 rows by the weights, and
XLA's CPU dot reads an input-major (K, N) weight 1.6-2.4x slower than an output-major one
(2-core AVX2 CPU, 84 MB weight: 4 rows 19.0 vs 7.9 ms), and faster still with the weight as
the dot's left operand at 2-64 rows (`_dot_out_major`).

Parameter semantics match PyTorch so a DP3 / SDM-Policy state dict maps onto them:
Conv1d weight (C_out, C_in, k) -> kernel (k, C_in, C_out); ConvTranspose1d weight
(C_in, C_out, k) -> kernel (k, C_in, C_out) with output o = stride * i + j - padding.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


# Above this, tanh(softplus(x)) = 1 - 2 / (e^2x + 2e^x + 2) is 1 in float64, float32 and
# bfloat16.
_MISH_LINEAR_FROM = 20.0


@jax.custom_jvp
def mish(x):
  """x * tanh(softplus(x)) (PyTorch's Mish) from one exp: with e = exp(x) and n = e (e + 2),
  tanh(log(1 + e)) = n / (n + 2). Its derivative, tanh(sp) + x sech^2(sp) sigmoid(x), reuses
  the same exp (custom JVP). 3-4x faster forward + backward on CPU than composing tanh,
  softplus and their autodiff, as accurate against float64 (tests/test_unet.py)."""
  return _mish_and_slope(x)[0]


@mish.defjvp
def _mish_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  y, slope = _mish_and_slope(x)
  return y, slope * dx


def _mish_and_slope(x):
  half = x.dtype == jnp.float16   # e (e + 2) would overflow float16: compute in float32
  z = x.astype(jnp.float32) if half else x
  linear = z > _MISH_LINEAR_FROM
  e = jnp.exp(jnp.minimum(z, _MISH_LINEAR_FROM))
  n = e * (e + 2)
  t = n / (n + 2)
  y = jnp.where(linear, z, z * t)
  slope = jnp.where(linear, 1, t + z * (1 - t * t) * (e / (1 + e)))
  return y.astype(x.dtype), slope.astype(x.dtype)


def _group_stats(x, groups: int, eps: float):
  """x (B, L, C) -> (x as float32 (B, L, G, C/G), mean, 1/std) over each sample's group."""
  B, L, C = x.shape
  xr = x.astype(jnp.promote_types(x.dtype, jnp.float32)).reshape(B, L, groups, C // groups)
  mean = xr.mean((1, 3), keepdims=True)
  var = jnp.maximum((xr * xr).mean((1, 3), keepdims=True) - mean * mean, 0)
  return xr, mean, jax.lax.rsqrt(var + eps)


def _group_norm_mish_fwd(x, scale, bias, groups, eps):
  xr, mean, rstd = _group_stats(x, groups, eps)
  z = ((xr - mean) * rstd).reshape(x.shape) * scale + bias
  return mish(z).astype(x.dtype), (x, scale, bias, mean, rstd)


def _group_norm_mish_bwd(groups, eps, res, dy):
  x, scale, bias, mean, rstd = res
  B, L, C = x.shape
  xr = x.astype(mean.dtype).reshape(B, L, groups, C // groups)
  xhat = ((xr - mean) * rstd).reshape(B, L, C)
  _, slope = _mish_and_slope(xhat * scale + bias)
  dz = dy.astype(mean.dtype) * slope
  dscale, dbias = (dz * xhat).sum((0, 1)), dz.sum((0, 1))
  dxhat = (dz * scale).reshape(xr.shape)
  xhat = xhat.reshape(xr.shape)
  a = dxhat.mean((1, 3), keepdims=True)
  b = (dxhat * xhat).mean((1, 3), keepdims=True)
  dx = (rstd * (dxhat - a - xhat * b)).reshape(x.shape)
  return dx.astype(x.dtype), dscale.astype(scale.dtype), dbias.astype(bias.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def group_norm_mish(x, scale, bias, groups: int, eps: float = 1e-5):
  """mish(GroupNorm(x)) for x (B, L, C), as PyTorch's GroupNorm(groups, C) + Mish:
  statistics over each sample's (L, C / groups) in float32 (E[x^2] - E[x]^2, as flax's
  GroupNorm), then the per-channel affine `scale`, `bias`.

  One function with its own reverse-mode rule: the backward pass recomputes the normalised
  input from (x, mean, 1/std) and runs two group reductions and one elementwise pass,
  where autodiff of flax's GroupNorm and Mish left XLA's CPU backend a dozen separate
  passes over each activation (the quick teacher's train step: 48.5 -> 59.3 steps/s on a
  2-core CPU, 2026-12-03). Reverse mode only (no `jax.jvp` through it).
  """
  return _group_norm_mish_fwd(x, scale, bias, groups, eps)[0]


group_norm_mish.defvjp(_group_norm_mish_fwd, _group_norm_mish_bwd)


def group_norm_mish_plain(x, scale, bias, groups: int, eps: float = 1e-5):
  """The same function as `group_norm_mish` composed of plain ops, so every transformation
  applies (`jax.jvp` included: MeanFlow's training step); its gradient is autodiff's, slower
  to run than the fused rule."""
  return _group_norm_mish_fwd(x, scale, bias, groups, eps)[0]


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


def live_taps(length: int, kernel_size: int, stride: int = 1) -> tuple[int, int]:
  """[lo, hi) range of kernel taps that touch real input for a 'same'-padded conv."""
  pad = kernel_size // 2
  out_len = (length + 2 * pad - kernel_size) // stride + 1
  used = [j for j in range(kernel_size)
          if any(0 <= stride * i + j - pad < length for i in range(out_len))]
  return min(used), max(used) + 1


# Up to this many rows (and for a symbolic batch: an exported policy, deployed at batch 1)
# `_dot_out_major` puts the weight on the dot's left.
FEW_ROWS_MAX = 64


def _dot_out_major(x, kernel_nk):
  """x (..., K) @ kernel_nk (N, K).T -> (..., N).

  With few rows (a policy's call at a small batch) the weight is the dot's left operand and
  the (N, rows) product is transposed after an optimization barrier: XLA's CPU dot then
  streams the weight up to 1.7-2.4x faster at 2-32 rows (134 MB weight, 2-core AVX2 CPU: 4
  rows 14.0 -> 8.1 ms, 32 rows 44 -> 19 ms; equal at 1 and 80). Without the barrier XLA
  folds the transpose into the dot's layout and picks the slow form again.

  In bfloat16 the dot accumulates into and returns float32 (cast back after): XLA's CPU dot
  runs bf16 natively on AVX512-BF16 only for a float32 result, and at two rows or more; a
  bf16 result, or one row, takes an emulated path ~15x slower (2-core AMD EPYC with
  AVX512-BF16, a 4096 x 4096 weight: 1 row 23 ms, 2 rows 1.3 ms, float32 1.9 ms). So a
  single bf16 row gets a zero row beside it.
  """
  kernel_nk = kernel_nk.astype(x.dtype)
  bf16 = x.dtype == jnp.bfloat16
  pref = jnp.float32 if bf16 else None
  lead = x.shape[:-1]
  static = all(isinstance(d, int) for d in lead)
  if static and math.prod(lead) > FEW_ROWS_MAX:
    y = jax.lax.dot_general(x, kernel_nk, (((x.ndim - 1,), (1,)), ((), ())),
                            preferred_element_type=pref)
    return y.astype(x.dtype)
  pad = bf16 and not (static and math.prod(lead) > 1)
  if pad:   # one row (or a symbolic count): a zero row beside it, dropped after the dot
    rows = x.reshape(-1, x.shape[-1])
    x2 = jnp.concatenate([rows, jnp.zeros_like(rows[:1])], axis=0)
    y = jax.lax.dot_general(kernel_nk, x2, (((1,), (1,)), ((), ())),
                            preferred_element_type=pref)               # (N, rows + 1)
    y = jax.lax.optimization_barrier(y)[:, :-1]
    return y.T.reshape(*lead, kernel_nk.shape[0]).astype(x.dtype)
  y = jax.lax.dot_general(kernel_nk, x, (((1,), (x.ndim - 1,)), ((), ())),
                          preferred_element_type=pref)                   # (N, ...)
  return jnp.moveaxis(jax.lax.optimization_barrier(y), 0, -1).astype(x.dtype)


def _conv_im2col(x, kernel, full_k: int, stride: int = 1, out_major: bool = False):
  """'same'-padded strided cross-correlation of x (B, L, Cin) with kernel (k', Cin, Cout),
  or with kernel (Cout, k', Cin) when `out_major` (`inference_layout`).

  k' is either the full kernel size (sliced here to the live taps) or already the
  live-tap count produced by `prune_params` for this length.
  """
  length = x.shape[1]
  lo, hi = live_taps(length, full_k, stride)
  tap_axis = 1 if out_major else 0
  if kernel.shape[tap_axis] == full_k:
    kernel = jax.lax.slice_in_dim(kernel, lo, hi, axis=tap_axis)
  elif kernel.shape[tap_axis] != hi - lo:
    raise ValueError(f"kernel has {kernel.shape[tap_axis]} taps; expected {full_k} or the "
                     f"{hi - lo} live taps for length {length}")
  pad = full_k // 2
  out_len = (length + 2 * pad - full_k) // stride + 1
  # tap j reads x[stride * i + j - pad]; pad just enough for the live taps.
  left = max(0, pad - lo)
  right = max(0, stride * (out_len - 1) + (hi - 1) - pad - (length - 1))
  xp = jnp.pad(x, ((0, 0), (left, right), (0, 0)))
  cols = [xp[:, j - pad + left: j - pad + left + stride * (out_len - 1) + 1: stride]
          for j in range(lo, hi)]
  patches = jnp.concatenate(cols, axis=-1) if len(cols) > 1 else cols[0]
  if out_major:
    return _dot_out_major(patches, kernel.reshape(kernel.shape[0], -1))
  k = kernel.reshape(-1, kernel.shape[-1])
  return patches @ k.astype(x.dtype)


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
    kernel = (self.get_variable("params", "kernel_nk") if out_major else
              _kernel_param(self, (self.kernel_size, cin, self.features), bound))
    init = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)
    bias = self.param("bias", init, (self.features,))
    y = _conv_im2col(x, kernel, self.kernel_size, self.stride, out_major)
    return y + bias.astype(x.dtype)


# ConvTranspose1d(k=4, stride 2, padding 1): output o = 2 i + j - 1, so even o = 2m takes
# (x[m], tap 1) and (x[m-1], tap 3), odd o = 2m + 1 takes (x[m+1], tap 0) and (x[m], tap 2).
# At length 1 only taps 1 and 2 are live, and a pruned kernel holds just those two.

def _upsample_taps(x, kernel):
  """Every tap's product z[j] = x @ kernel[j] from one dot batched over the taps: it reads
  the kernel where it lies (slicing or concatenating taps copied the weights on every call,
  which at batch 1 cost more than the dot)."""
  B, L, cin = x.shape
  taps = kernel.shape[0]
  rows = jnp.broadcast_to(x.reshape(1, B * L, cin), (taps, B * L, cin))
  z = jnp.einsum("jmc,jcd->jmd", rows, kernel).reshape(taps, B, L, -1)
  return _interleave_taps(z)


def _interleave_taps(z):
  """Every tap's product z (taps, B, L, Cout) -> the (B, 2L, Cout) transposed conv."""
  taps, B, L = z.shape[:3]
  if taps == 2:
    even, odd = z[0], z[1]
  else:
    zp = jnp.pad(z, ((0, 0), (0, 0), (1, 1), (0, 0)))   # zp[:, :, m + 1] = z[:, :, m]
    even, odd = z[1] + zp[3, :, :L], zp[0, :, 2:] + z[2]
  return jnp.stack([even, odd], axis=2).reshape(B, 2 * L, -1)


def _upsample_pairs(x, kernel):
  """The same as two dots over tap pairs (each phase's taps concatenated): its gradient was
  1.2-1.8x faster than the batched form's at batch 128 (2-core CPU, 2026-12-02)."""
  B, L, _ = x.shape
  if kernel.shape[0] == 2:
    even, odd = x @ kernel[0], x @ kernel[1]
  else:
    xp = jnp.pad(x, ((0, 0), (1, 1), (0, 0)))
    prev, cur, nxt = xp[:, :L], xp[:, 1:L + 1], xp[:, 2:]
    even = jnp.concatenate([cur, prev], -1) @ jnp.concatenate([kernel[1], kernel[3]], 0)
    odd = jnp.concatenate([nxt, cur], -1) @ jnp.concatenate([kernel[0], kernel[2]], 0)
  return jnp.stack([even, odd], axis=2).reshape(B, 2 * L, -1)


# At most this many rows (batch x length) the upsample is weight-bound and uses the batched
# form; training batches use the tap-pair form, whose gradient is faster. An exported policy's
# symbolic batch (deployment: batch 1) takes the batched form.
UPSAMPLE_TAPS_MAX_ROWS = 64


def _upsample_out_major(x, kernel_nk):
  """`_upsample_taps` for an output-major (taps, Cout, Cin) kernel: every tap's product
  from one 2-D dot against the (taps * Cout, Cin) weights, read where they lie."""
  B, L, _ = x.shape
  taps, cout = kernel_nk.shape[:2]
  z = _dot_out_major(x, kernel_nk.reshape(taps * cout, -1))       # (B, L, taps * Cout)
  z = jnp.moveaxis(z.reshape(B, L, taps, cout), 2, 0)
  return _interleave_taps(z)


def conv_transpose_s2(x, kernel, out_major: bool = False):
  """(B, L, Cin) -> (B, 2L, Cout) for a (4 or live 2, Cin, Cout) kernel, or a (taps, Cout,
  Cin) one when `out_major` (`inference_layout`; inference, so the batched form)."""
  if kernel.shape[0] not in (2, 4):
    raise ValueError(f"upsample kernel has {kernel.shape[0]} taps; expected 4 or the 2 "
                     "live at length 1")
  if out_major:
    return _upsample_out_major(x, kernel)
  batch = x.shape[0]
  if not isinstance(batch, int) or batch * x.shape[1] <= UPSAMPLE_TAPS_MAX_ROWS:
    return _upsample_taps(x, kernel)
  return _upsample_pairs(x, kernel)


class Upsample1d(nn.Module):
  """ConvTranspose1d(dim, dim, 4, stride 2, padding 1): length L -> 2L."""
  features: int

  @nn.compact
  def __call__(self, x):
    cin = x.shape[-1]
    bound = 1.0 / math.sqrt(self.features * 4)
    out_major = self.has_variable("params", "kernel_nk")
    kernel = (self.get_variable("params", "kernel_nk") if out_major else
              _kernel_param(self, (4, cin, self.features), bound))
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
    block = lambda name: Conv1dBlock(self.features, self.kernel_size, self.n_groups,
                                     self.fused_norm, name=name)
    h = block("block0")(x)
    if film is None:
      film = project()
    scale, bias = film[:, None, :self.features], film[:, None, self.features:]
    h = scale * h + bias
    h = block("block1")(h)
    res = x if x.shape[-1] == self.features else Conv1d(self.features, 1, name="residual_conv")(x)
    return h + res


def sinusoidal_embedding(t, dim: int):
  half = dim // 2
  freqs = jnp.exp(jnp.arange(half) * -(math.log(10000.0) / (half - 1)))
  args = t.astype(jnp.float32)[:, None] * freqs[None]
  return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


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
    blocks = {name: ConditionalResidualBlock1D(d, self.kernel_size, self.n_groups,
                                               self.fused_norm, name=name)
              for name, d in self.block_dims()}
    if (timestep2 is not None) != (self.time_inputs == 2 and films is None):
      raise ValueError(f"this U-Net has {self.time_inputs} time input(s): pass timestep2 "
                       "exactly when it has 2 (and no films)")
    if films is None:
      dtype = (global_cond if x is None else x).dtype
      e = self._embed(timestep, dtype, "step_mlp")
      if self.time_inputs == 2:
        e = e + self._embed(timestep2, dtype, "step_mlp_h")
      cond = jnp.concatenate([e, global_cond.astype(e.dtype)], axis=-1)
      if x is None:
        return {name: block(None, cond) for name, block in blocks.items()}
      films = dict.fromkeys(blocks)   # the whole call: each block projects where it uses it
    else:
      cond, dtype = None, next(iter(films.values())).dtype
    x = x.astype(dtype)
    in_order = iter(blocks.items())   # block_dims' order is the order the trunk runs them

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
    x = Conv1dBlock(dims[0], self.kernel_size, self.n_groups, self.fused_norm,
                    name="final_block")(x)
    return Conv1d(self.out_dim, 1, name="final_conv")(x)


def check_horizon(horizon: int, n_levels: int):
  """The U-Net halves the length n_levels - 1 times and doubles it back."""
  if horizon % (2 ** (n_levels - 1)) != 0:
    raise ValueError(f"horizon {horizon} must be divisible by 2**(len(down_dims)-1) = "
                     f"{2 ** (n_levels - 1)}")


Path = tuple  # keys from the U-Net's "params" dict down to a kernel


def live_tap_ranges(horizon: int, down_dims: Sequence[int], kernel_size: int = 5
                    ) -> dict[Path, tuple[int, int, int]]:
  """{path of a kernel in the U-Net's params: (lo, hi, k)}: taps [lo, hi) of its k are live.

  Only kernels with dead taps are listed. Depends on the static shapes alone.
  """
  n = len(down_dims)
  lengths = [horizon // (2 ** i) for i in range(n)]   # sequence length per level
  out = {}

  def add(path, lo_hi, k):
    if lo_hi != (0, k):
      out[path] = (*lo_hi, k)

  def block(name, length):
    for sub in ("block0", "block1"):
      add((name, sub, "conv", "kernel"), live_taps(length, kernel_size), kernel_size)

  for i in range(n):
    for r in ("res0", "res1"):
      block(f"down{i}_{r}", lengths[i])
    if i < n - 1:
      add((f"down{i}_downsample", "kernel"), live_taps(lengths[i], 3, stride=2), 3)
  for m in ("mid0", "mid1"):
    block(m, lengths[n - 1])
  for i in range(n - 1):
    length = lengths[n - 1 - i]
    for r in ("res0", "res1"):
      block(f"up{i}_{r}", length)
    if length == 1:   # ConvTranspose1d(4, stride 2, padding 1) from length 1: taps 1 and 2
      add((f"up{i}_upsample", "kernel"), (1, 3), 4)
  add(("final_block", "conv", "kernel"), live_taps(horizon, kernel_size), kernel_size)
  return out


def _key_names(path) -> tuple:
  return tuple(getattr(k, "key", getattr(k, "name", getattr(k, "idx", None))) for k in path)


class LiveTaps:
  """Splits a training state into its live part and the U-Net's dead kernel taps.

  `split(tree)` slices every leaf whose key path ends in a kernel path of `ranges`
  (`live_tap_ranges`) -- the U-Net params of every network in a method's state, their
  optimiser moments and EMA copies alike -- to its live taps, and returns the dead taps
  apart; `join` puts them back. The training loop steps the live state: the same function
  and the same gradients on the live taps as full kernels, with no work on the dead ones,
  which keep their values. Checkpoints and policies see joined, full (PyTorch-shaped)
  kernels.
  """

  def __init__(self, ranges: dict):
    self.ranges = dict(ranges)

  def _range(self, path, leaf):
    names = _key_names(path)
    for p, (lo, hi, k) in self.ranges.items():
      if names[-len(p):] == p:
        if leaf.shape[0] != k:
          raise ValueError(f"{jax.tree_util.keystr(path)} has {leaf.shape[0]} taps, expected "
                           f"the full kernel's {k}: is this state already split?")
        return lo, hi
    return None

  def split(self, tree):
    """(live tree, {key path: (taps before, taps after)})."""
    dead = {}

    def cut(path, leaf):
      r = self._range(path, leaf) if getattr(leaf, "ndim", 0) == 3 else None
      if r is None:
        return leaf
      dead[jax.tree_util.keystr(path)] = (leaf[:r[0]], leaf[r[1]:])
      return leaf[r[0]:r[1]]

    return jax.tree_util.tree_map_with_path(cut, tree), dead

  def join(self, live, dead: dict):
    def paste(path, leaf):
      d = dead.get(jax.tree_util.keystr(path))
      return leaf if d is None else jnp.concatenate([d[0], leaf, d[1]], axis=0)
    return jax.tree_util.tree_map_with_path(paste, live)


def prune_params(params, horizon: int, down_dims: Sequence[int], kernel_size: int = 5):
  """Slices every conv kernel to the taps that are live at this static horizon.

  Exact: the pruned network computes the same function. Call once, outside `jit`, when
  a policy is built (training splits its whole state instead: `LiveTaps`).
  """
  return LiveTaps(live_tap_ranges(horizon, down_dims, kernel_size)).split(params)[0]


def conditioning_params(params) -> dict:
  """The params (a U-Net's "params" dict) that only the timestep conditioning reads: the
  step MLP and every block's FiLM layer, which a k-step sampler reads once per call."""
  return {k: v for k, v in params.items() if k.startswith("step_mlp")} | {
      k: v["cond_encoder"] for k, v in params.items()
      if isinstance(v, dict) and "cond_encoder" in v}


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
