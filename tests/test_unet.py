"""The im2col / pruned U-Net against plain numpy convolutions and against itself unpruned."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpolicy.nets import kernels, unet1d
from jaxpolicy.nets import live_taps as live_taps_lib


def np_conv1d(x, w, b, stride=1):
  """PyTorch Conv1d semantics: x (B, L, Cin), w (k, Cin, Cout), padding k // 2."""
  k = w.shape[0]
  pad = k // 2
  B, L, _ = x.shape
  out_len = (L + 2 * pad - k) // stride + 1
  y = np.zeros((B, out_len, w.shape[2]))
  for i in range(out_len):
    for j in range(k):
      src = stride * i + j - pad
      if 0 <= src < L:
        y[:, i] += x[:, src] @ w[j]
  return y + b


def np_conv_transpose1d(x, w, b, stride=2, padding=1):
  """PyTorch ConvTranspose1d: out[stride*i + j - padding] += x[i] @ w[j]."""
  B, L, _ = x.shape
  k = w.shape[0]
  out_len = (L - 1) * stride - 2 * padding + k
  y = np.zeros((B, out_len, w.shape[2]))
  for i in range(L):
    for j in range(k):
      o = stride * i + j - padding
      if 0 <= o < out_len:
        y[:, o] += x[:, i] @ w[j]
  return y + b


@pytest.mark.parametrize(
  "L,k,stride", [(4, 5, 1), (2, 5, 1), (1, 5, 1), (16, 5, 1), (4, 3, 2), (2, 3, 2), (8, 1, 1)]
)
@pytest.mark.parametrize("batch", [2, 70])  # output-major: weight-left / plain dot form
def test_conv_matches_numpy(L, k, stride, batch):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(batch, L, 6))
  m = unet1d.Conv1d(5, k, stride)
  p = m.init(jax.random.PRNGKey(0), jnp.asarray(x, jnp.float32))
  w, b = np.asarray(p["params"]["kernel"]), np.asarray(p["params"]["bias"])
  got = m.apply(p, jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(np.asarray(got), np_conv1d(x, w, b, stride), atol=1e-5)
  # the statically pruned kernel gives the same result
  lo, hi = kernels.live_taps(L, k, stride)
  pruned = {"params": {"kernel": p["params"]["kernel"][lo:hi], "bias": p["params"]["bias"]}}
  np.testing.assert_allclose(
    np.asarray(m.apply(pruned, jnp.asarray(x, jnp.float32))), np.asarray(got), atol=1e-6
  )
  # and so do output-major kernels (policies), full or pruned
  for q in (p, pruned):
    nk = {"params": unet1d.inference_layout(q["params"])}
    assert set(nk["params"]) == {"kernel_nk", "bias"}
    np.testing.assert_allclose(
      np.asarray(m.apply(nk, jnp.asarray(x, jnp.float32))), np_conv1d(x, w, b, stride), atol=1e-5
    )


@pytest.mark.parametrize("L", [1, 2, 4])
@pytest.mark.parametrize(
  "batch", [2, kernels.UPSAMPLE_TAPS_MAX_ROWS + 1]
)  # batched / tap-pair form
def test_upsample_matches_numpy_conv_transpose(L, batch):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(batch, L, 6))
  m = unet1d.Upsample1d(6)
  p = m.init(jax.random.PRNGKey(0), jnp.asarray(x, jnp.float32))
  w, b = np.asarray(p["params"]["kernel"]), np.asarray(p["params"]["bias"])
  got = m.apply(p, jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(np.asarray(got), np_conv_transpose1d(x, w, b), atol=1e-5)
  # output-major kernels (policies): full, and the two live taps at length 1
  live = {"kernel": p["params"]["kernel"][1:3], "bias": p["params"]["bias"]}
  for q in (p["params"], live) if L == 1 else (p["params"],):
    nk = {"params": unet1d.inference_layout({"up0_upsample": q})["up0_upsample"]}
    assert nk["params"]["kernel_nk"].shape == (q["kernel"].shape[0], 6, 6)
    np.testing.assert_allclose(
      np.asarray(m.apply(nk, jnp.asarray(x, jnp.float32))), np_conv_transpose1d(x, w, b), atol=1e-5
    )


def np_conv_transpose1d_grads(x, w, r, stride=2, padding=1):
  """Gradients of sum(r * ConvTranspose1d(x)) with respect to x and w, float64 loops."""
  B, L, _ = x.shape
  k = w.shape[0]
  gx, gw = np.zeros_like(x), np.zeros_like(w)
  for i in range(L):
    for j in range(k):
      o = stride * i + j - padding
      if 0 <= o < r.shape[1]:
        gx[:, i] += r[:, o] @ w[j].T
        gw[j] += x[:, i].T @ r[:, o]
  return gx, gw


@pytest.mark.slow
@pytest.mark.parametrize("L,pruned", [(1, False), (1, True), (2, False), (4, False)])
@pytest.mark.parametrize(
  "batch", [3, kernels.UPSAMPLE_TAPS_MAX_ROWS + 1]
)  # batched / tap-pair form
def test_upsample_gradient_matches_numpy(L, pruned, batch):
  """Both upsample forms give the exact output gradient, for full kernels and for the two
  live taps at length 1."""
  rng = np.random.default_rng(2)
  x, w = rng.normal(size=(batch, L, 6)), rng.normal(size=(4, 6, 5))
  r = rng.normal(size=(batch, 2 * L, 5))
  kernel = w[1:3] if pruned else w
  loss = lambda x, k: jnp.sum(jnp.asarray(r, jnp.float32) * kernels.conv_transpose_s2(x, k))
  gx, gk = jax.grad(loss, argnums=(0, 1))(
    jnp.asarray(x, jnp.float32), jnp.asarray(kernel, jnp.float32)
  )
  want_x, want_w = np_conv_transpose1d_grads(x, w, r)
  np.testing.assert_allclose(np.asarray(gx), want_x, atol=1e-4)
  np.testing.assert_allclose(np.asarray(gk), want_w[1:3] if pruned else want_w, atol=1e-4)


def test_mish_and_its_gradient_match_float64():
  """The one-exp Mish and its custom JVP against x tanh(softplus(x)) in float64, from deep
  negatives through the switch to the identity at 20 to large positives."""
  x = np.concatenate([np.linspace(-60, 60, 24001), [-1e-8, 0.0, 1e-8, 19.99, 20.0, 20.01, 1e4]])
  xf = jnp.asarray(x, jnp.float32)
  x64 = np.asarray(xf, np.float64)
  sp = np.logaddexp(x64, 0.0)
  want = x64 * np.tanh(sp)
  want_slope = np.tanh(sp) + x64 * (1 - np.tanh(sp) ** 2) / (1 + np.exp(-x64))
  got = np.asarray(jax.jit(kernels.mish)(xf), np.float64)
  slope = np.asarray(jax.jit(jax.vmap(jax.grad(kernels.mish)))(xf), np.float64)
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(slope, want_slope, rtol=1e-5, atol=1e-6)
  # bfloat16 in, bfloat16 out, to bfloat16's precision
  got16 = kernels.mish(jnp.asarray(x, jnp.bfloat16))
  assert got16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(got16, np.float64), want, rtol=2e-2, atol=1e-2)


def np_group_norm_mish(x, scale, bias, groups, eps=1e-5):
  """float64 PyTorch GroupNorm(groups, C) + Mish on x (B, L, C) (two-pass variance)."""
  B, L, C = x.shape
  xr = x.reshape(B, L, groups, C // groups)
  mean = xr.mean(axis=(1, 3), keepdims=True)
  var = ((xr - mean) ** 2).mean(axis=(1, 3), keepdims=True)
  z = ((xr - mean) / np.sqrt(var + eps)).reshape(B, L, C) * scale + bias
  return z * np.tanh(np.logaddexp(z, 0.0))


@pytest.mark.parametrize("shape,groups", [((3, 4, 16), 8), ((5, 1, 32), 8), ((2, 16, 8), 2)])
def test_group_norm_mish_and_its_gradients_match_float64(shape, groups):
  """The fused GroupNorm + Mish against float64 numpy, and its reverse-mode rule against
  float64 central differences of that reference along random directions (x, scale, bias)."""
  rng = np.random.default_rng(3)
  x = rng.normal(size=shape) * 3 + 1
  scale, bias = rng.normal(size=shape[-1:]), rng.normal(size=shape[-1:])
  r = rng.normal(size=shape)
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  got = kernels.group_norm_mish(f32(x), f32(scale), f32(bias), groups)
  np.testing.assert_allclose(
    np.asarray(got), np_group_norm_mish(x, scale, bias, groups), rtol=1e-4, atol=1e-5
  )
  loss = lambda x, s, b: jnp.sum(f32(r) * kernels.group_norm_mish(x, s, b, groups))
  grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(f32(x), f32(scale), f32(bias))
  np_loss = lambda x, s, b: np.sum(r * np_group_norm_mish(x, s, b, groups))
  eps = 1e-6
  for _ in range(3):
    dirs = [rng.normal(size=a.shape) for a in (x, scale, bias)]
    plus = np_loss(*[a + eps * d for a, d in zip((x, scale, bias), dirs)])
    minus = np_loss(*[a - eps * d for a, d in zip((x, scale, bias), dirs)])
    want = (plus - minus) / (2 * eps)
    have = sum(float(np.sum(np.asarray(g, np.float64) * d)) for g, d in zip(grads, dirs))
    assert have == pytest.approx(want, rel=1e-3, abs=1e-3)
  # each argument's gradient alone (a wrong dscale could hide behind a right dx above)
  for i, a in enumerate((x, scale, bias)):
    d = rng.normal(size=a.shape)
    args = [x, scale, bias]
    hi = [v + eps * d if j == i else v for j, v in enumerate(args)]
    lo = [v - eps * d if j == i else v for j, v in enumerate(args)]
    want = (np_loss(*hi) - np_loss(*lo)) / (2 * eps)
    assert float(np.sum(np.asarray(grads[i], np.float64) * d)) == pytest.approx(
      want, rel=1e-3, abs=1e-3
    )


def test_plain_group_norm_mish_has_the_forward_derivative_the_fused_op_lacks():
  """`group_norm_mish_plain` computes the fused op's values, and `jax.jvp` through it matches
  float64 central differences of the numpy reference; the fused op refuses jvp (its rule is
  reverse-mode only), which is why MeanFlow's U-Net runs the plain one."""
  rng = np.random.default_rng(5)
  shape, groups = (3, 4, 16), 8
  x = rng.normal(size=shape) * 3 + 1
  scale, bias = rng.normal(size=shape[-1:]), rng.normal(size=shape[-1:])
  f32 = lambda a: jnp.asarray(a, jnp.float32)
  args = (f32(x), f32(scale), f32(bias))
  plain = lambda x, s, b: kernels.group_norm_mish_plain(x, s, b, groups)
  np.testing.assert_array_equal(
    np.asarray(plain(*args)), np.asarray(kernels.group_norm_mish(*args, groups))
  )
  dirs = [rng.normal(size=a.shape) for a in (x, scale, bias)]
  _, tangent = jax.jvp(plain, args, tuple(f32(d) for d in dirs))
  eps = 1e-6
  hi = np_group_norm_mish(*[a + eps * d for a, d in zip((x, scale, bias), dirs)], groups)
  lo = np_group_norm_mish(*[a - eps * d for a, d in zip((x, scale, bias), dirs)], groups)
  np.testing.assert_allclose(np.asarray(tangent), (hi - lo) / (2 * eps), rtol=1e-3, atol=1e-3)
  with pytest.raises(TypeError, match="custom_vjp"):
    jax.jvp(lambda x: kernels.group_norm_mish(x, args[1], args[2], groups), args[:1], args[:1])


def _two_time_unet(fused: bool):
  return unet1d.ConditionalUnet1D(
    out_dim=4, down_dims=(16, 32), step_embed_dim=16, fused_norm=fused, time_inputs=2
  )


def test_unet_for_jvp_is_the_fused_one_and_its_jvp_matches_finite_differences():
  """The U-Net with the plain GroupNorm + Mish computes the fused one's function (same
  params); its jvp in (x, t, t - r), MeanFlow's tangent, matches float64 central
  differences of the same network run in float64."""
  rng = np.random.default_rng(6)
  B, H = 3, 4
  x = jnp.asarray(rng.normal(size=(B, H, 4)), jnp.float32)
  t, h = jnp.asarray([10.0, 55.5, 99.0]), jnp.asarray([0.0, 20.0, 60.0])
  cond = jnp.asarray(rng.normal(size=(B, 8)), jnp.float32)
  plain, fused = _two_time_unet(False), _two_time_unet(True)
  params = plain.init(jax.random.PRNGKey(0), x, t, cond, timestep2=h)
  f = lambda m: lambda x, t, h: m.apply(params, x, t, cond, timestep2=h)
  np.testing.assert_allclose(
    np.asarray(f(plain)(x, t, h)), np.asarray(f(fused)(x, t, h)), rtol=1e-6, atol=1e-6
  )
  jvp = jax.jit(lambda *a: jax.jvp(f(plain), a[:3], a[3:])[1])
  p64 = lambda: jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
  g = lambda p, *a: np.asarray(
    plain.apply(p, *a[:2], jnp.asarray(cond, jnp.float64), timestep2=a[2])
  )
  dx = rng.normal(size=x.shape)
  zero = np.zeros(B)
  # along x (eps 1e-3), and along the times (eps 1e-2: the time embedding computes in
  # float32, whose rounding of t + eps limits a smaller step)
  for d, eps, atol in (
    ((dx, zero, zero), 1e-3, 5e-5),
    ((0 * dx, np.ones(B), np.array([0.5, -1.0, 2.0])), 1e-2, 2e-3),
  ):
    tangent = jvp(x, t, h, *(jnp.asarray(v, jnp.float32) for v in d))
    with jax.enable_x64(True):
      a64 = [np.asarray(v, np.float64) for v in (x, t, h)]
      fd = (
        g(p64(), *[a + eps * v for a, v in zip(a64, d)])
        - g(p64(), *[a - eps * v for a, v in zip(a64, d)])
      ) / (2 * eps)
    np.testing.assert_allclose(np.asarray(tangent), fd, rtol=1e-2, atol=atol)
    assert np.abs(fd).max() > 0.1  # the derivative is not trivially zero


def test_a_second_time_input_adds_only_its_embedding_and_is_required():
  """time_inputs=2 adds the `step_mlp_h*` layers and nothing else (the other methods'
  U-Net, and its params, are unchanged); they count as timestep conditioning; the second
  time changes the output; a missing or unexpected one is refused."""
  x, t, cond = jnp.zeros((2, 4, 4)), jnp.asarray([3.0, 40.0]), jnp.ones((2, 8))
  shapes = lambda tree: {
    jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]
  }
  one = unet1d.ConditionalUnet1D(out_dim=4, down_dims=(16, 32), step_embed_dim=16)
  base = shapes(one.init(jax.random.PRNGKey(0), x, t, cond))
  plain_one = unet1d.ConditionalUnet1D(
    out_dim=4, down_dims=(16, 32), step_embed_dim=16, fused_norm=False
  )
  assert shapes(plain_one.init(jax.random.PRNGKey(0), x, t, cond)) == base
  two = _two_time_unet(False)
  params = two.init(jax.random.PRNGKey(0), x, t, cond, timestep2=t)
  extra = {k: v for k, v in shapes(params).items() if k not in base}
  assert {k: v for k, v in shapes(params).items() if k in base} == base
  assert sorted(extra) == [
    f"['params']['step_mlp_h{i}']['{p}']" for i in (0, 1) for p in ("bias", "kernel")
  ]
  assert {"step_mlp_h0", "step_mlp_h1"} <= set(unet1d.conditioning_params(params["params"]))
  y0 = two.apply(params, x, t, cond, timestep2=jnp.zeros(2))
  y1 = two.apply(params, x, t, cond, timestep2=jnp.full((2,), 50.0))
  assert np.abs(np.asarray(y0 - y1)).max() > 1e-3
  with pytest.raises(ValueError, match="2 time input"):
    two.apply(params, x, t, cond)
  with pytest.raises(ValueError, match="1 time input"):
    one.apply(one.init(jax.random.PRNGKey(0), x, t, cond), x, t, cond, timestep2=t)


def test_group_norm_mish_in_bfloat16_keeps_float32_statistics():
  """bf16 in, bf16 out; the statistics in float32, so a large common offset (where bf16
  E[x^2] - E[x]^2 would cancel to nothing) still normalises."""
  rng = np.random.default_rng(4)
  x = rng.normal(size=(2, 4, 16)) + 30.0
  scale, bias = np.ones(16), np.zeros(16)
  got = kernels.group_norm_mish(
    jnp.asarray(x, jnp.bfloat16),
    jnp.asarray(scale, jnp.bfloat16),
    jnp.asarray(bias, jnp.bfloat16),
    4,
  )
  assert got.dtype == jnp.bfloat16
  want = np_group_norm_mish(np.asarray(jnp.asarray(x, jnp.bfloat16), np.float64), scale, bias, 4)
  np.testing.assert_allclose(np.asarray(got, np.float64), want, atol=0.06)


def test_live_taps_short_sequences():
  assert kernels.live_taps(1, 5) == (2, 3)  # only the centre tap
  assert kernels.live_taps(2, 5) == (1, 4)  # three taps
  assert kernels.live_taps(4, 5) == (0, 5)


@pytest.mark.slow
@pytest.mark.parametrize("horizon,dims", [(4, (16, 32, 64)), (16, (16, 32, 64)), (8, (16, 32))])
def test_pruned_unet_equals_full(horizon, dims):
  m = unet1d.ConditionalUnet1D(out_dim=4, down_dims=dims, step_embed_dim=16)
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.normal(size=(3, horizon, 4)), jnp.float32)
  t = jnp.array([0, 37, 99])
  c = jnp.asarray(rng.normal(size=(3, 10)), jnp.float32)
  p = m.init(jax.random.PRNGKey(0), x, t, c)
  full = m.apply(p, x, t, c)
  pp = {"params": live_taps_lib.prune_params(p["params"], horizon, dims)}
  n_full = sum(a.size for a in jax.tree_util.tree_leaves(p))
  n_pruned = sum(a.size for a in jax.tree_util.tree_leaves(pp))
  if horizon == 4:
    assert n_pruned < 0.6 * n_full
  if horizon == 16:
    assert n_pruned == n_full  # nothing is dead at horizon 16
  np.testing.assert_allclose(np.asarray(m.apply(pp, x, t, c)), np.asarray(full), atol=1e-5)
  assert full.shape == x.shape
  # a policy's params: pruned and output-major, every kernel (convs, upsamples, denses)
  nk = {"params": unet1d.inference_layout(pp["params"])}
  names = {jax.tree_util.keystr(k[-1:]) for k, _ in jax.tree_util.tree_flatten_with_path(nk)[0]}
  assert "['kernel_nk']" in names and "['kernel']" not in names
  np.testing.assert_allclose(np.asarray(m.apply(nk, x, t, c)), np.asarray(full), atol=1e-5)
  # the two stages (timestep conditioning, then the rest) are the same function
  films = m.apply(nk, None, t, c)
  assert sorted(films) == sorted(name for name, _ in m.block_dims())
  np.testing.assert_allclose(np.asarray(m.apply(nk, x, films=films)), np.asarray(full), atol=1e-5)


@pytest.mark.parametrize("lead", [(1,), (1, 1), (1, 4), (3,), (2, 70)])
def test_out_major_dot_in_bfloat16_accumulates_in_float32_on_two_rows_or_more(lead):
  """A bf16 policy's dots: bf16 operands, a float32 result (cast back to bf16), and never a
  single row (a zero row beside it): XLA's CPU dot runs bf16 natively (AVX512-BF16) only so;
  otherwise ~15x slower. Checked on the lowered program and against float64 numpy."""
  import re

  rng = np.random.default_rng(0)
  w = jnp.asarray(rng.standard_normal((48, 40)), jnp.bfloat16)
  x = jnp.asarray(rng.standard_normal(lead + (40,)), jnp.bfloat16)
  y = jax.jit(kernels._dot_out_major)(x, w)
  ref = np.asarray(x, np.float64) @ np.asarray(w, np.float64).T
  assert y.shape == lead + (48,) and y.dtype == jnp.bfloat16
  # float32 accumulation, then one bf16 rounding of the result (8-bit mantissa)
  np.testing.assert_allclose(np.asarray(y, np.float64), ref, rtol=2**-8, atol=1e-2)
  hlo = jax.jit(kernels._dot_out_major).lower(x, w).as_text()
  dots = [l for l in hlo.splitlines() if "stablehlo.dot_general" in l]
  assert len(dots) == 1
  operands, result = re.search(r":\s*\((.*)\)\s*->\s*(.*)$", dots[0]).groups()
  assert operands.count("bf16") == 2 and "f32" in result, dots[0]
  rows = int(np.prod(lead))
  if rows == 1:  # the zero row beside the one real row
    assert re.search(r"tensor<2x40xbf16>", operands), operands
  f32 = jax.jit(kernels._dot_out_major)(x.astype(jnp.float32), w.astype(jnp.float32))
  assert f32.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(f32, np.float64), ref, rtol=1e-5, atol=1e-4)


def test_out_major_dot_in_bfloat16_exports_with_a_symbolic_batch():
  """An exported bf16 policy (symbolic batch) pads every call with one zero row."""
  from jax import export

  rng = np.random.default_rng(1)
  w = jnp.asarray(rng.standard_normal((24, 16)), jnp.bfloat16)
  (b,) = export.symbolic_shape("b")
  exp = export.export(jax.jit(kernels._dot_out_major))(
    jax.ShapeDtypeStruct((b, 3, 16), jnp.bfloat16), w
  )
  assert "concatenate" in exp.mlir_module()  # the zero row, for any batch
  for n in (1, 2):
    x = jnp.asarray(rng.standard_normal((n, 3, 16)), jnp.bfloat16)
    np.testing.assert_allclose(
      np.asarray(exp.call(x, w), np.float32),
      np.asarray(kernels._dot_out_major(x, w), np.float32),
      rtol=2**-7,
      atol=1e-2,
    )


@pytest.mark.parametrize("native,words", [(True, "no faster than float32"), (False, "is emulated")])
def test_bf16_on_a_cpu_warns_what_it_costs(native, words, monkeypatch, caplog):
  """bf16 inference on a CPU never beats float32 here: with bf16 units it ties at best,
  without them it is emulated and slower; building a bf16 policy on a CPU says which."""
  import configs.teacher
  from jaxpolicy import nets as nets_lib

  monkeypatch.setattr(nets_lib, "native_bf16", lambda: native)
  monkeypatch.setattr(nets_lib.jax, "default_backend", lambda: "cpu")  # also on a GPU host
  nets_lib._warn_cpu_bf16.cache_clear()
  nets = nets_lib.build_nets(configs.teacher.get_config("tiny"), 4)
  with caplog.at_level("WARNING", logger="jaxpolicy"):
    assert nets.with_compute_dtype("bfloat16").compute_dtype == "bfloat16"
    nets.with_compute_dtype("float32")
  assert [r.message for r in caplog.records if words in r.message], caplog.text
  assert len(caplog.records) == 1  # float32 says nothing


def test_k_step_sampler_conditions_every_step_once_before_its_loop():
  """DDIM through `Nets.denoiser` computes the k steps' step embedding and FiLM projections
  in one pass before the scan, and equals the per-step sampler (distinct conditions per
  batch row, so a mismatched tiling of steps and rows would show)."""
  import configs
  from jaxpolicy import nets as nets_lib
  from jaxpolicy.diffusion import samplers
  from jaxpolicy.diffusion.schedule import Schedule

  c = configs.load("teacher", "tiny")
  nets = nets_lib.build_nets(c, 4)
  p = nets.init(jax.random.PRNGKey(0), {"full_state": (39,)})["unet"]
  rng = np.random.default_rng(3)
  cond = jnp.asarray(rng.normal(size=(3, 2 * c.model.encoder_out)), jnp.float32)
  x = jnp.asarray(rng.normal(size=(3, c.policy.horizon, 4)), jnp.float32)
  sched = Schedule(100)
  ts, prev = samplers.ddim_grid(sched, 5)
  d = nets.denoiser(p, cond)
  per_step = lambda x, t: d(x, t)  # a plain function: nothing to hoist
  run = lambda den: jax.jit(lambda x: samplers.ddim_sample(sched, den, x, ts, prev))(x)
  np.testing.assert_allclose(np.asarray(run(d)), np.asarray(run(per_step)), atol=1e-6)

  def scan_body_and_rest(den):
    jaxpr = jax.make_jaxpr(lambda x: samplers.ddim_sample(sched, den, x, ts, prev))(x).jaxpr
    scan = next(e for e in jaxpr.eqns if e.primitive.name == "scan")
    return str(scan.params["jaxpr"]), str(
      jaxpr.replace(eqns=[e for e in jaxpr.eqns if e is not scan])
    )

  body, rest = scan_body_and_rest(d)
  assert " sin " not in body and " sin " in rest  # the step embedding: once, outside
  body, rest = scan_body_and_rest(per_step)
  assert " sin " in body and " sin " not in rest
