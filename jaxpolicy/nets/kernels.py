"""The U-Net's CPU kernels: Mish from one exp, GroupNorm + Mish fused with its own backward
pass (and a plain form `jax.jvp` can differentiate), convolutions as im2col + one dot over
their live taps, dots with output-major weights (the weight as the dot's left operand at
2-64 rows, faster at batch 1 on XLA's CPU), the stride-2 transposed convolution, and the
timestep embedding. Each is tested against float64 numpy or PyTorch (tests/test_unet.py);
docs/speed.md says what each bought.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp


# Above this, tanh(softplus(x)) = 1 - 2 / (e^2x + 2e^x + 2) is 1 in float64, float32 and
# bfloat16.
_MISH_LINEAR_FROM = 20.0


@jax.custom_jvp
def mish(x):
  """x * tanh(softplus(x)) (PyTorch's Mish) from one exp: with e = exp(x) and n = e (e + 2),
  tanh(log(1 + e)) = n / (n + 2). Its derivative, tanh(sp) + x sech^2(sp) sigmoid(x), reuses
  the same exp (custom JVP). Faster forward + backward on CPU than composing tanh,
  softplus and their autodiff, as accurate against float64 (tests/test_unet.py)."""
  return _mish_and_slope(x)[0]


@mish.defjvp
def _mish_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  y, slope = _mish_and_slope(x)
  return y, slope * dx


def _mish_and_slope(x):
  half = x.dtype == jnp.float16  # e (e + 2) would overflow float16: compute in float32
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
  passes over each activation (a faster train step on CPUs: docs/speed.md, "What each
  optimisation is"). Reverse mode only (no `jax.jvp` through it).
  """
  return _group_norm_mish_fwd(x, scale, bias, groups, eps)[0]


group_norm_mish.defvjp(_group_norm_mish_fwd, _group_norm_mish_bwd)


def group_norm_mish_plain(x, scale, bias, groups: int, eps: float = 1e-5):
  """The same function as `group_norm_mish` composed of plain ops, so every transformation
  applies (`jax.jvp` included: MeanFlow's training step); its gradient is autodiff's, slower
  to run than the fused rule."""
  return _group_norm_mish_fwd(x, scale, bias, groups, eps)[0]


def live_taps(length: int, kernel_size: int, stride: int = 1) -> tuple[int, int]:
  """[lo, hi) range of kernel taps that touch real input for a 'same'-padded conv."""
  pad = kernel_size // 2
  out_len = (length + 2 * pad - kernel_size) // stride + 1
  used = [
    j for j in range(kernel_size) if any(0 <= stride * i + j - pad < length for i in range(out_len))
  ]
  return min(used), max(used) + 1


# Up to this many rows (and for a symbolic batch: an exported policy, deployed at batch 1)
# `_dot_out_major` puts the weight on the dot's left.
FEW_ROWS_MAX = 64


def _dot_out_major(x, kernel_nk):
  """x (..., K) @ kernel_nk (N, K).T -> (..., N).

  With few rows (a policy's call at a small batch) the weight is the dot's left operand and
  the (N, rows) product is transposed after an optimization barrier: XLA's CPU dot then
  streams the weight faster at 2-32 rows (measured in docs/speed.md, "What each
  optimisation is"). Without the barrier XLA folds the transpose into the dot's layout and
  picks the slow form again.

  In bfloat16 the dot accumulates into and returns float32 (cast back after): XLA's CPU dot
  runs bf16 natively on AVX512-BF16 only for a float32 result, and at two rows or more; a
  bf16 result, or one row, takes a much slower emulated path (docs/speed.md). So a single
  bf16 row gets a zero row beside it.
  """
  kernel_nk = kernel_nk.astype(x.dtype)
  bf16 = x.dtype == jnp.bfloat16
  pref = jnp.float32 if bf16 else None
  lead = x.shape[:-1]
  static = all(isinstance(d, int) for d in lead)
  if static and math.prod(lead) > FEW_ROWS_MAX:
    y = jax.lax.dot_general(
      x, kernel_nk, (((x.ndim - 1,), (1,)), ((), ())), preferred_element_type=pref
    )
    return y.astype(x.dtype)
  pad = bf16 and not (static and math.prod(lead) > 1)
  if pad:  # one row (or a symbolic count): a zero row beside it, dropped after the dot
    rows = x.reshape(-1, x.shape[-1])
    x2 = jnp.concatenate([rows, jnp.zeros_like(rows[:1])], axis=0)
    y = jax.lax.dot_general(
      kernel_nk, x2, (((1,), (1,)), ((), ())), preferred_element_type=pref
    )  # (N, rows + 1)
    y = jax.lax.optimization_barrier(y)[:, :-1]
    return y.T.reshape(*lead, kernel_nk.shape[0]).astype(x.dtype)
  y = jax.lax.dot_general(
    kernel_nk, x, (((1,), (x.ndim - 1,)), ((), ())), preferred_element_type=pref
  )  # (N, ...)
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
    raise ValueError(
      f"kernel has {kernel.shape[tap_axis]} taps; expected {full_k} or the "
      f"{hi - lo} live taps for length {length}"
    )
  pad = full_k // 2
  out_len = (length + 2 * pad - full_k) // stride + 1
  # tap j reads x[stride * i + j - pad]; pad just enough for the live taps.
  left = max(0, pad - lo)
  right = max(0, stride * (out_len - 1) + (hi - 1) - pad - (length - 1))
  xp = jnp.pad(x, ((0, 0), (left, right), (0, 0)))
  cols = [
    xp[:, j - pad + left : j - pad + left + stride * (out_len - 1) + 1 : stride]
    for j in range(lo, hi)
  ]
  patches = jnp.concatenate(cols, axis=-1) if len(cols) > 1 else cols[0]
  if out_major:
    return _dot_out_major(patches, kernel.reshape(kernel.shape[0], -1))
  k = kernel.reshape(-1, kernel.shape[-1])
  return patches @ k.astype(x.dtype)


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
    zp = jnp.pad(z, ((0, 0), (0, 0), (1, 1), (0, 0)))  # zp[:, :, m + 1] = z[:, :, m]
    even, odd = z[1] + zp[3, :, :L], zp[0, :, 2:] + z[2]
  return jnp.stack([even, odd], axis=2).reshape(B, 2 * L, -1)


def _upsample_pairs(x, kernel):
  """The same as two dots over tap pairs (each phase's taps concatenated): its gradient is
  faster than the batched form's at training batch sizes on CPUs (docs/speed.md)."""
  B, L, _ = x.shape
  if kernel.shape[0] == 2:
    even, odd = x @ kernel[0], x @ kernel[1]
  else:
    xp = jnp.pad(x, ((0, 0), (1, 1), (0, 0)))
    prev, cur, nxt = xp[:, :L], xp[:, 1 : L + 1], xp[:, 2:]
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
  z = _dot_out_major(x, kernel_nk.reshape(taps * cout, -1))  # (B, L, taps * Cout)
  z = jnp.moveaxis(z.reshape(B, L, taps, cout), 2, 0)
  return _interleave_taps(z)


def conv_transpose_s2(x, kernel, out_major: bool = False):
  """(B, L, Cin) -> (B, 2L, Cout) for a (4 or live 2, Cin, Cout) kernel, or a (taps, Cout,
  Cin) one when `out_major` (`inference_layout`; inference, so the batched form)."""
  if kernel.shape[0] not in (2, 4):
    raise ValueError(
      f"upsample kernel has {kernel.shape[0]} taps; expected 4 or the 2 live at length 1"
    )
  if out_major:
    return _upsample_out_major(x, kernel)
  batch = x.shape[0]
  if not isinstance(batch, int) or batch * x.shape[1] <= UPSAMPLE_TAPS_MAX_ROWS:
    return _upsample_taps(x, kernel)
  return _upsample_pairs(x, kernel)


def sinusoidal_embedding(t, dim: int):
  half = dim // 2
  freqs = jnp.exp(jnp.arange(half) * -(math.log(10000.0) / (half - 1)))
  args = t.astype(jnp.float32)[:, None] * freqs[None]
  return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
