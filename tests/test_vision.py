"""The image encoder: torchvision's ResNet-18 (GroupNorm-replaced, as Diffusion Policy) gives
the same features as ours through the weight bridge; spatial softmax against float64 numpy;
crops and scaling; a bridge that refuses what it cannot map.

torchvision does not import beside this project's torch 2.13.0; the parity test runs it in
another interpreter, JAXPOLICY_TORCHVISION_PYTHON (e.g. a venv with `pip install
torch==2.14.1 torchvision==0.29.1`), which writes the random model's `torch.save` file and
its features; our side reads the file through `torch.load(weights_only=True)`. Without
torchvision anywhere, that test is skipped and says so.
"""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpolicy.nets import torch_bridge, vision


def _torchvision_python():
  """A Python that imports torchvision: this one, or $JAXPOLICY_TORCHVISION_PYTHON."""
  try:
    import torchvision  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel

    return sys.executable
  except Exception:  # pylint: disable=broad-except  (torchvision's ops fail to register)
    pass
  exe = os.environ.get("JAXPOLICY_TORCHVISION_PYTHON", "")
  if exe and os.path.exists(exe):
    return exe
  return None


# run by the torchvision interpreter: a random resnet18 with DP's BatchNorm -> GroupNorm
# replacement (groups = channels // 16), non-trivial GroupNorm affines, saved with torch.save;
# its trunk (children but avgpool and fc) and pooled features on [-1, 1] scaled frames
REFERENCE = r"""
import sys
import numpy as np
import torch, torchvision
out, = sys.argv[1:]
torch.manual_seed(0)
model = torchvision.models.resnet18(weights=None)
def replace(module):
  for name, child in module.named_children():
    if isinstance(child, torch.nn.BatchNorm2d):
      setattr(module, name, torch.nn.GroupNorm(child.num_features // 16, child.num_features))
    else:
      replace(child)
replace(model)
g = torch.Generator().manual_seed(1)
with torch.no_grad():
  for name, p in model.named_parameters():
    if "bn" in name or "downsample.1" in name:
      p.copy_((1.0 + 0.3 * torch.randn(p.shape, generator=g)) if name.endswith("weight")
              else 0.3 * torch.randn(p.shape, generator=g))
model.eval()
torch.save(model.state_dict(), out + ".pth")
frames = np.random.default_rng(0).integers(0, 256, size=(3, 76, 76, 3), dtype=np.uint8)
x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0 * 2.0 - 1.0
trunk = torch.nn.Sequential(*list(model.children())[:-2])
with torch.no_grad():
  feat = trunk(x)
  pooled = torch.flatten(model.avgpool(feat), 1)
np.savez(out + ".npz", frames=frames, trunk=feat.permute(0, 2, 3, 1).numpy(),
         pooled=pooled.numpy(), torch=torch.__version__, torchvision=torchvision.__version__)
"""


def test_resnet18_gn_features_equal_torchvisions(tmp_path):
  torch = pytest.importorskip("torch")  # reads the file with torch.load(weights_only=True)
  exe = _torchvision_python()
  if exe is None:
    pytest.skip(
      "torchvision is not importable here (PyPI's does not load beside torch "
      "2.13.0); set JAXPOLICY_TORCHVISION_PYTHON to a Python that has it, e.g. a "
      "venv with torch==2.14.1 torchvision==0.29.1"
    )
  del torch
  ref = str(tmp_path / "resnet18_gn")
  run = subprocess.run([exe, "-c", REFERENCE, ref], capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-3000:]
  want = np.load(ref + ".npz")
  backbone = torch_bridge.resnet_params_from_torch(ref + ".pth")  # the file, weights only
  trunk = vision.ResNetGN(*vision.VARIANTS["resnet18"])
  x = vision.preprocess(jnp.asarray(want["frames"]), (76, 76))
  got = trunk.apply({"params": backbone}, x)
  scale = float(np.abs(want["trunk"]).max())
  np.testing.assert_allclose(np.asarray(got), want["trunk"], atol=2e-4 * scale, rtol=1e-3)
  # DP's global-average-pool variant: a whole camera core with those weights
  core = vision.VisualCore("resnet18", "avg")
  params = {"params": {"backbone": backbone}}  # avg pooling has no weights of its own
  np.testing.assert_allclose(
    np.asarray(core.apply(params, x)),
    want["pooled"],
    atol=2e-4 * float(np.abs(want["pooled"]).max()),
    rtol=1e-3,
  )


def test_spatial_softmax_is_robomimics_in_float64():
  rng = np.random.default_rng(0)
  n, h, w, c, k = 3, 4, 5, 6, 7
  x = rng.normal(size=(n, h, w, c)).astype(np.float32)
  mod = vision.SpatialSoftmax(k)
  params = mod.init(jax.random.PRNGKey(0), jnp.asarray(x))
  kernel = np.asarray(params["params"]["keypoints"]["kernel"], np.float64)[0, 0]  # (C, K)
  bias = np.asarray(params["params"]["keypoints"]["bias"], np.float64)
  maps = np.einsum("nhwc,ck->nkhw", x.astype(np.float64), kernel) + bias[None, :, None, None]
  logits = maps.reshape(n, k, h * w)
  att = np.exp(logits - logits.max(-1, keepdims=True))
  att /= att.sum(-1, keepdims=True)
  xs, ys = np.meshgrid(np.linspace(-1, 1, w), np.linspace(-1, 1, h))  # robomimic's grid
  want = np.stack([att @ xs.reshape(-1), att @ ys.reshape(-1)], -1).reshape(n, 2 * k)
  np.testing.assert_allclose(np.asarray(mod.apply(params, jnp.asarray(x))), want, atol=2e-6)
  # a single bright pixel dominates its map: the keypoint sits on it
  peak = np.zeros((1, h, w, 1), np.float32)
  peak[0, 3, 1] = 50.0
  one = vision.SpatialSoftmax(1)
  p1 = {"params": {"keypoints": {"kernel": jnp.ones((1, 1, 1, 1)), "bias": jnp.zeros(1)}}}
  np.testing.assert_allclose(
    np.asarray(one.apply(p1, jnp.asarray(peak)))[0], [xs[3, 1], ys[3, 1]], atol=1e-5
  )


def test_crops_and_scaling():
  rng = np.random.default_rng(0)
  frames = rng.integers(0, 256, size=(2, 3, 10, 12, 3), dtype=np.uint8)
  frames[0, 0, 0, 0] = (0, 255, 128)
  centre = np.asarray(vision.preprocess(jnp.asarray(frames), (6, 8)))
  want = frames[:, :, 2:8, 2:10].astype(np.float64) / 255 * 2 - 1  # ((10-6)//2, (12-8)//2)
  np.testing.assert_allclose(centre, want, atol=1e-6)
  full = np.asarray(vision.preprocess(jnp.asarray(frames), (10, 12)))
  assert full[0, 0, 0, 0].tolist() == [-1.0, 1.0, pytest.approx(128 / 255 * 2 - 1, abs=1e-6)]
  imnet = np.asarray(vision.preprocess(jnp.asarray(frames), (10, 12), imagenet=True))
  np.testing.assert_allclose(
    imnet, (frames / 255 - vision.IMAGENET_MEAN) / vision.IMAGENET_STD, atol=1e-5
  )
  # random crops: every frame a window of itself, corners drawn per frame, all positions hit
  crops = np.asarray(vision.preprocess(jnp.asarray(frames), (6, 8), jax.random.PRNGKey(3)))
  corners = set()
  for b in range(2):
    for t in range(3):
      hits = [
        (i, j)
        for i in range(5)
        for j in range(5)
        if np.allclose(crops[b, t], frames[b, t, i : i + 6, j : j + 8] / 255 * 2 - 1, atol=1e-6)
      ]
      assert len(hits) == 1, (b, t, hits)
      corners.add(hits[0])
  assert len(corners) > 1
  many = vision.crop_offsets(jax.random.PRNGKey(0), 4000, (10, 12), (6, 8))
  assert {tuple(c) for c in np.asarray(many)} == {(i, j) for i in range(5) for j in range(5)}


def test_resnet_params_go_to_torch_names_and_back():
  trunk = vision.ResNetGN(*vision.VARIANTS["resnet18_small"])
  params = trunk.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))["params"]
  sd = torch_bridge.resnet_params_to_torch(params)
  assert sd["conv1.weight"].shape == (16, 3, 7, 7)
  assert sd["layer2.0.downsample.0.weight"].shape == (32, 16, 1, 1)
  assert "layer1.0.downsample.0.weight" not in sd and len(sd) == 60  # 20 convs, 20 norms
  back = torch_bridge.resnet_params_from_torch(sd)
  jax.tree_util.tree_map(np.testing.assert_array_equal, back, params)


def test_bridge_refuses_what_it_cannot_map():
  trunk = vision.ResNetGN(*vision.VARIANTS["resnet18_small"])
  params = trunk.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))["params"]
  sd = torch_bridge.resnet_params_to_torch(params)
  bad = dict(sd)
  del bad["layer3.1.conv2.weight"]
  bad["layer3.1.conv2.weight_orig"] = sd["layer3.1.conv2.weight"]
  bad["layer2.0.bn1.weight"] = np.zeros(5, np.float32)
  with pytest.raises(
    torch_bridge.TorchBridgeError,
    match=r"missing 1: layer3.1.conv2.weight; unexpected 1: "
    r"layer3.1.conv2.weight_orig; mis-shaped 1: layer2.0.bn1.weight",
  ):
    torch_bridge.resnet_params_from_torch(bad)
  with pytest.raises(torch_bridge.TorchBridgeError, match="not a torchvision ResNet state dict"):
    torch_bridge.resnet_params_from_torch({"down_modules.0.0.blocks.0.block.0.weight": 0})
  # BatchNorm dicts (running statistics, a classifier): norms start as fresh GroupNorms
  bn = dict(sd, **{"bn1.running_mean": np.zeros(16), "fc.weight": np.zeros((10, 128))})
  got = torch_bridge.resnet_params_from_torch(bn)
  assert np.all(np.asarray(got["bn1"]["scale"]) == 1)
  assert np.all(np.asarray(got["bn1"]["bias"]) == 0)
  kept = torch_bridge.resnet_params_from_torch(bn, keep_norm_affine=True)
  np.testing.assert_array_equal(kept["bn1"]["scale"], sd["bn1.weight"])
  # into an encoder: the trunk's width must match the configured variant
  enc = vision.RGBEncoder(("img",), "resnet18", num_kp=4, feature_dim=8)
  shapes = jax.eval_shape(
    lambda: enc.init(
      jax.random.PRNGKey(0), {"img": jnp.zeros((1, 32, 32, 3)), "agent_pos": jnp.zeros((1, 9))}
    )
  )
  with pytest.raises(torch_bridge.TorchBridgeError, match="does not match camera 'img'"):
    torch_bridge.load_resnet_into(shapes, got)
  with pytest.raises(torch_bridge.TorchBridgeError, match=r"no camera 'img_top'; it has \['img'\]"):
    torch_bridge.load_resnet_into(shapes, got, "img_top")


@pytest.mark.parametrize("size", [(33, 40), (76, 76), (56, 97)])
def test_feature_map_size_is_the_trunks(size):
  trunk = vision.ResNetGN(*vision.VARIANTS["resnet18_small"])
  x = jax.ShapeDtypeStruct((1,) + size + (3,), jnp.float32)
  out = jax.eval_shape(lambda v: trunk.init_with_output(jax.random.PRNGKey(0), v)[0], x)
  assert out.shape[1:3] == vision.feature_map_size(size)


@pytest.mark.slow
def test_the_torch_benchmark_encoder_is_ours():
  """benchmarks/torch_reference.py's DP image encoder, given our weights, computes our
  features (centre crop, both cameras): the PyTorch side of the speed rows runs the same
  function."""
  torch = pytest.importorskip("torch")
  from benchmarks import torch_reference as tr

  keys = ("img_corner2", "img_topview")
  enc = vision.RGBEncoder(keys, "resnet18_small", num_kp=8, feature_dim=16)
  rng = np.random.default_rng(0)
  obs = {k: rng.integers(0, 256, (3, 44, 40, 3), dtype=np.uint8) for k in keys}
  obs["agent_pos"] = rng.normal(size=(3, 9)).astype(np.float32)
  crop = (36, 33)
  x = {
    k: vision.preprocess(jnp.asarray(v), crop) if k in keys else jnp.asarray(v)
    for k, v in obs.items()
  }
  params = enc.init(jax.random.PRNGKey(0), x)
  params = jax.tree_util.tree_map(  # non-trivial GroupNorm affines
    lambda p: p + 0.1 * jax.random.normal(jax.random.PRNGKey(1), p.shape), params
  )
  want = np.asarray(enc.apply(params, x))
  ref = tr.image_encoder_from_jax(params, keys, (44, 40), crop).eval()
  with torch.no_grad():
    got = ref({k: torch.from_numpy(v) for k, v in obs.items()}).numpy()
  np.testing.assert_allclose(got, want, atol=2e-4 * np.abs(want).max(), rtol=1e-3)
