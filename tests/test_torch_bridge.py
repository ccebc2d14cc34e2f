"""PyTorch DP3 U-Net state dicts -> jaxpolicy: same outputs, and bad dicts refused clearly.

The parity tests need torch (skipped without it); the refusal tests use numpy state dicts.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpolicy.diffusion import samplers
from jaxpolicy.diffusion.schedule import Schedule, timesteps
from jaxpolicy.nets import torch_bridge, unet1d
from jaxpolicy.nets import live_taps as live_taps_lib

pytestmark = pytest.mark.slow  # minutes on a 2-core CPU: the full tier only


def _our_unet(cfg, n_groups=8):
  return unet1d.ConditionalUnet1D(
    out_dim=cfg["input_dim"],
    down_dims=cfg["down_dims"],
    kernel_size=cfg["kernel_size"],
    n_groups=n_groups,
    step_embed_dim=cfg["step_embed_dim"],
  )


def _randomise(model, torch, seed):
  """Default init plus non-trivial GroupNorm affine params (so scale/bias mapping shows)."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if ".block.1." in name:  # GroupNorm weight / bias
        p.copy_(
          1.0 + 0.3 * torch.randn(p.shape, generator=g)
          if name.endswith("weight")
          else 0.3 * torch.randn(p.shape, generator=g)
        )
  return model.eval()


def _inputs(batch, horizon, action_dim, cond_dim, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(batch, horizon, action_dim)).astype(np.float32)
  t = np.array([0, 37, 99, 100][:batch], np.int64)
  c = rng.normal(size=(batch, cond_dim)).astype(np.float32)
  return x, t, c


CASES = [
  (4, (16, 32), 5),
  (4, (16, 32, 64), 5),
  (16, (16, 32), 5),
  (16, (16, 32, 64), 5),
  (16, (32, 64, 128), 3),
]


@pytest.mark.parametrize("horizon,down_dims,kernel_size", CASES)
def test_torch_state_dict_gives_same_outputs(horizon, down_dims, kernel_size):
  torch = pytest.importorskip("torch")
  from benchmarks import torch_reference as ref

  torch.manual_seed(0)
  action_dim, global_dim, d = 4, 10, 16
  model = _randomise(
    ref.ConditionalUnet1D(action_dim, global_dim, down_dims, kernel_size, step_embed_dim=d),
    torch,
    1,
  )
  sd = model.state_dict()
  cfg = torch_bridge.unet_config_from_torch(sd)
  assert cfg == dict(
    input_dim=action_dim,
    global_cond_dim=global_dim,
    down_dims=down_dims,
    kernel_size=kernel_size,
    step_embed_dim=d,
  )
  ours = _our_unet(cfg)
  x, t, c = _inputs(4, horizon, action_dim, global_dim)
  like = jax.eval_shape(
    lambda: ours.init(
      jax.random.PRNGKey(0), jnp.asarray(x), jnp.asarray(t, jnp.int32), jnp.asarray(c)
    )
  )
  params = torch_bridge.unet_params_from_torch(sd, like=like)
  with torch.no_grad():
    want = model(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(c)).numpy()
  args = (jnp.asarray(x), jnp.asarray(t, jnp.int32), jnp.asarray(c))
  apply = jax.jit(ours.apply)
  got = np.asarray(apply(params, *args))
  assert np.abs(want).max() > 0.1  # a non-degenerate output
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-5)
  pruned = {"params": live_taps_lib.prune_params(params["params"], horizon, down_dims, kernel_size)}
  np.testing.assert_allclose(np.asarray(apply(pruned, *args)), want, rtol=1e-5, atol=2e-5)
  policy = {"params": unet1d.inference_layout(pruned["params"])}  # as a policy runs it
  np.testing.assert_allclose(np.asarray(apply(policy, *args)), want, rtol=1e-5, atol=2e-5)


def test_round_trip_and_prefixed_policy_state_dict():
  torch = pytest.importorskip("torch")
  from benchmarks import torch_reference as ref

  model = ref.ConditionalUnet1D(4, 6, (16, 32), 5, step_embed_dim=16)
  sd = {k: v.numpy() for k, v in model.state_dict().items()}
  params = torch_bridge.unet_params_from_torch(sd)
  back = torch_bridge.unet_params_to_torch(params)
  assert set(back) == set(sd)
  for k in sd:
    np.testing.assert_array_equal(back[k], sd[k])
  # a whole DP3 policy's state dict: U-Net under "model.", other networks beside it
  policy_sd = {f"model.{k}": v for k, v in model.state_dict().items()}
  policy_sd["obs_encoder.mlp.0.weight"] = torch.zeros(3, 3)
  imported = torch_bridge.unet_params_from_torch(policy_sd, prefix="model.")
  jax.tree_util.tree_map(np.testing.assert_array_equal, imported, params)
  with pytest.raises(torch_bridge.TorchBridgeError, match="prefix='model.'"):
    torch_bridge.unet_params_from_torch(policy_sd)


def test_torch_ddim_loop_matches_jax_sampler():
  """The reference loop (diffusers-style DDIM) and our lax.scan sampler agree."""
  torch = pytest.importorskip("torch")
  from benchmarks import torch_reference as ref

  torch.manual_seed(0)
  model = _randomise(ref.ConditionalUnet1D(4, 10, (16, 32), 5, step_embed_dim=16), torch, 2)
  params = torch_bridge.unet_params_from_torch(model.state_dict())
  ours = _our_unet(torch_bridge.unet_config_from_torch(model.state_dict()))
  x, _, c = _inputs(3, 4, 4, 10, seed=3)
  schedule = Schedule(100, "sample", True)
  sched = ref.DDIMScheduler(100, "sample", True)
  # diffusers keeps alpha-bar in float32 (cumprod in float32); ours is float64 then cast
  np.testing.assert_allclose(sched.alphas_cumprod.numpy(), schedule.alphas_cumprod, rtol=1e-4)
  for k, spacing in [(10, "leading"), (4, "trailing")]:
    sched.set_timesteps(k, spacing)
    np.testing.assert_array_equal(sched.timesteps.numpy(), timesteps(100, k, spacing))
    with torch.no_grad():
      want = ref.ddim_loop(
        model, sched, torch.from_numpy(x.copy()), torch.from_numpy(c), k, spacing
      ).numpy()
    ts, prev = samplers.ddim_grid(schedule, k, spacing)
    denoise = lambda xt, t: ours.apply(params, xt, t, jnp.asarray(c))
    sample = lambda x0: samplers.ddim_sample(schedule, denoise, x0, ts, prev)  # noqa: B023
    got = np.asarray(jax.jit(sample)(jnp.asarray(x)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_torch_state_encoder_matches_ours():
  torch = pytest.importorskip("torch")
  from benchmarks import torch_reference as ref
  from jaxpolicy.nets.encoders import StateEncoder, encode_history

  enc = StateEncoder(hidden_dims=(32, 32), out_dim=16)
  obs = np.random.default_rng(0).normal(size=(3, 2, 39)).astype(np.float32)
  p = enc.init(jax.random.PRNGKey(1), {"full_state": jnp.asarray(obs[:, 0])})
  want = np.asarray(encode_history(enc, p, {"full_state": jnp.asarray(obs)}))
  tenc = ref.state_encoder_from_jax(p)
  with torch.no_grad():
    got = tenc(torch.from_numpy(obs).reshape(6, 39)).reshape(3, -1).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_torch_dp3_encoder_matches_ours_in_features_and_gradients():
  """Our DP3 encoder against DP3's, written in PyTorch (benchmarks.torch_reference), with the
  same weights: features and parameter gradients agree. 600 points (our backward pass then
  runs on the at most 256 where a channel peaks), packed into 6 mm so that the first
  LayerNorm's variance is near its epsilon: PyTorch's 1e-5 (flax's default 1e-6 fails it)."""
  torch = pytest.importorskip("torch")
  from benchmarks import torch_reference as ref
  from jaxpolicy.nets.encoders import DP3Encoder

  rng = np.random.default_rng(0)
  obs = {
    "point_cloud": rng.uniform(-3e-3, 3e-3, (3, 600, 3)).astype(np.float32),
    "agent_pos": rng.normal(size=(3, 9)).astype(np.float32),
  }
  w = rng.normal(size=(3, 80)).astype(np.float32)
  enc = DP3Encoder(out_dim=16)
  p = enc.init(jax.random.PRNGKey(2), {k: jnp.asarray(v) for k, v in obs.items()})
  # nonzero biases (zero ones, as at init, would make each layer blind to its input's scale)
  p = jax.tree_util.tree_map(lambda a: a + 0.3 * rng.normal(size=a.shape).astype(np.float32), p)
  loss = lambda params: jnp.sum(jnp.tanh(enc.apply(params, obs)) * w)
  want_feat = np.asarray(enc.apply(p, obs))
  want_grad = jax.grad(loss)(p)["params"]
  tenc = ref.dp3_encoder_from_jax(p)
  tobs = {k: torch.from_numpy(v) for k, v in obs.items()}
  feat = tenc(tobs)
  torch.sum(torch.tanh(feat) * torch.from_numpy(w)).backward()
  np.testing.assert_allclose(feat.detach().numpy(), want_feat, rtol=1e-4, atol=1e-4)
  for i, layer in enumerate(tenc.point_mlp[0::3]):
    g = np.asarray(want_grad[f"point_dense{i}"]["kernel"]).T
    np.testing.assert_allclose(layer.weight.grad.numpy(), g, rtol=1e-3, atol=1e-3 * np.abs(g).max())


# --- refusals (no torch needed) -------------------------------------------------------------


def _numpy_state_dict(down_dims=(16, 32)):
  """A random state dict with DP3's names and shapes, and its imported params."""
  rng = np.random.default_rng(0)
  shapes = torch_bridge.torch_shapes(4, 6, down_dims, 5, 16)
  sd = {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}
  return sd, torch_bridge.unet_params_from_torch(sd)


def test_bad_keys_are_named():
  sd, _ = _numpy_state_dict()
  bad = dict(sd)
  bad["down_modules.1.0.blocks.0.block.0.wieght"] = bad.pop(
    "down_modules.1.0.blocks.0.block.0.weight"
  )
  with pytest.raises(torch_bridge.TorchBridgeError) as e:
    torch_bridge.unet_params_from_torch(bad)
  msg = str(e.value)
  assert "missing 1: down_modules.1.0.blocks.0.block.0.weight" in msg
  assert "unexpected 1: down_modules.1.0.blocks.0.block.0.wieght" in msg

  bad = dict(sd)
  bad["mid_modules.1.blocks.1.block.0.weight"] = np.swapaxes(
    bad["mid_modules.1.blocks.1.block.0.weight"], 0, 2
  )
  with pytest.raises(
    torch_bridge.TorchBridgeError,
    match=r"mis-shaped 1: mid_modules\.1\.blocks\.1\.block\.0\.weight "
    r"\(5, 32, 32\) \(expected \(32, 32, 5\)\)",
  ):
    torch_bridge.unet_params_from_torch(bad)

  bad = dict(sd)
  bad["up_modules.0.1.cond_encoder.query_proj.weight"] = np.zeros((2, 2))
  with pytest.raises(torch_bridge.TorchBridgeError, match="cross-attention"):
    torch_bridge.unet_params_from_torch(bad)


def test_additive_conditioning_and_wrong_target_are_refused():
  sd, p = _numpy_state_dict()
  add = {
    k: (
      v[: v.shape[0] // 2]
      if k.endswith("cond_encoder.1.weight")
      else v[: v.shape[0] // 2]
      if k.endswith("cond_encoder.1.bias")
      else v
    )
    for k, v in sd.items()
  }
  with pytest.raises(torch_bridge.TorchBridgeError, match="additive conditioning"):
    torch_bridge.unet_params_from_torch(add)
  with pytest.raises(torch_bridge.TorchBridgeError, match="missing"):
    torch_bridge.unet_params_from_torch({"something.else": np.zeros(3)})
  m = unet1d.ConditionalUnet1D(out_dim=4, down_dims=(16, 64), step_embed_dim=16)
  other = jax.eval_shape(
    m.init,
    jax.random.PRNGKey(0),
    jnp.zeros((1, 4, 4)),
    jnp.zeros((1,), jnp.int32),
    jnp.zeros((1, 6)),
  )
  with pytest.raises(torch_bridge.TorchBridgeError, match="does not match the target"):
    torch_bridge.unet_params_from_torch(sd, like=other)
  # the export refuses dead-tap-pruned params
  pruned = {"params": live_taps_lib.prune_params(p["params"], 4, (16, 32))}
  with pytest.raises(torch_bridge.TorchBridgeError, match="pruned"):
    torch_bridge.unet_params_to_torch(pruned)
  with pytest.raises(torch_bridge.TorchBridgeError, match="policy's inference params"):
    torch_bridge.unet_params_to_torch(unet1d.inference_layout(pruned["params"]))
