"""PyTorch `ConditionalUnet1D` state dicts <-> jaxpolicy U-Net params, and ResNet-18 weights.

`unet_params_from_torch(state_dict)` reads the FiLM U-Net of Diffusion Policy, DP3 and
SDM-Policy (numpy arrays or torch tensors; this module never imports torch), reading the
architecture from the shapes (`unet_config_from_torch`); `unet_params_to_torch` goes back.
`resnet_params_from_torch` and `load_resnet_into` bring torchvision ResNet-18 weights to the
image encoder. The name mapping and what cannot be imported: docs/design.md, "The PyTorch
bridge"; torchvision weights: docs/cameras.md, "torchvision weights".
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

_MAX_LISTED = 12


class TorchBridgeError(ValueError):
  """A state dict that does not describe a jaxpolicy-compatible ConditionalUnet1D."""


def _to_numpy(value) -> np.ndarray:
  """numpy / jax array or torch tensor (without importing torch) -> float32 numpy."""
  if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch.Tensor
    value = value.detach().cpu().float().numpy()
  return np.asarray(value, np.float32)


# --- the layout: torch module name -> (kind, flax path, torch weight shape) -------------


def _res_block(layout, torch_name, flax_name, cin, cout, cond_dim, k):
  layout.append(
    (f"{torch_name}.blocks.0.block.0", "conv", (flax_name, "block0", "conv"), (cout, cin, k))
  )
  layout.append((f"{torch_name}.blocks.0.block.1", "norm", (flax_name, "block0", "norm"), (cout,)))
  layout.append(
    (f"{torch_name}.blocks.1.block.0", "conv", (flax_name, "block1", "conv"), (cout, cout, k))
  )
  layout.append((f"{torch_name}.blocks.1.block.1", "norm", (flax_name, "block1", "norm"), (cout,)))
  layout.append(
    (f"{torch_name}.cond_encoder.1", "linear", (flax_name, "cond_encoder"), (2 * cout, cond_dim))
  )
  if cin != cout:
    layout.append(
      (f"{torch_name}.residual_conv", "conv", (flax_name, "residual_conv"), (cout, cin, 1))
    )


def unet_layout(
  input_dim: int,
  global_cond_dim: int,
  down_dims: Sequence[int],
  kernel_size: int = 5,
  step_embed_dim: int = 128,
):
  """[(torch module name, kind, flax path, torch weight shape)] of one FiLM U-Net.

  kind is 'linear', 'conv', 'conv_transpose' or 'norm'; every module has a weight and a
  bias (the bias has shape (weight.shape[0],), or (weight.shape[1],) for conv_transpose).
  """
  d, k = step_embed_dim, kernel_size
  cond_dim = d + global_cond_dim
  dims = [input_dim] + list(down_dims)
  n = len(down_dims)
  layout = [
    ("diffusion_step_encoder.1", "linear", ("step_mlp0",), (4 * d, d)),
    ("diffusion_step_encoder.3", "linear", ("step_mlp1",), (d, 4 * d)),
  ]
  for i in range(n):
    cin, cout = dims[i], dims[i + 1]
    _res_block(layout, f"down_modules.{i}.0", f"down{i}_res0", cin, cout, cond_dim, k)
    _res_block(layout, f"down_modules.{i}.1", f"down{i}_res1", cout, cout, cond_dim, k)
    if i < n - 1:
      layout.append((f"down_modules.{i}.2.conv", "conv", (f"down{i}_downsample",), (cout, cout, 3)))
  for j in range(2):
    _res_block(layout, f"mid_modules.{j}", f"mid{j}", dims[-1], dims[-1], cond_dim, k)
  # up level i joins the deeper output (dims[n - i]) with the skip of the same width
  for i in range(n - 1):
    deep, out = dims[n - i], dims[n - 1 - i]
    _res_block(layout, f"up_modules.{i}.0", f"up{i}_res0", 2 * deep, out, cond_dim, k)
    _res_block(layout, f"up_modules.{i}.1", f"up{i}_res1", out, out, cond_dim, k)
    layout.append((f"up_modules.{i}.2.conv", "conv_transpose", (f"up{i}_upsample",), (out, out, 4)))
  layout.append(
    ("final_conv.0.block.0", "conv", ("final_block", "conv"), (down_dims[0], down_dims[0], k))
  )
  layout.append(("final_conv.0.block.1", "norm", ("final_block", "norm"), (down_dims[0],)))
  layout.append(("final_conv.1", "conv", ("final_conv",), (input_dim, down_dims[0], 1)))
  return layout


def _bias_shape(kind, wshape):
  return (wshape[1],) if kind == "conv_transpose" else (wshape[0],)


def torch_shapes(
  input_dim: int,
  global_cond_dim: int,
  down_dims: Sequence[int],
  kernel_size: int = 5,
  step_embed_dim: int = 128,
) -> dict[str, tuple]:
  """{parameter name: shape} of the PyTorch state dict of this architecture."""
  out = {}
  for name, kind, _, wshape in unet_layout(
    input_dim, global_cond_dim, down_dims, kernel_size, step_embed_dim
  ):
    out[f"{name}.weight"] = tuple(wshape)
    out[f"{name}.bias"] = _bias_shape(kind, wshape)
  return out


# --- reading the architecture from a state dict ------------------------------------------


def _hints(names) -> list[str]:
  names = list(names)
  hints = []
  if any(".cond_encoder.query_proj" in n or ".cond_encoder.key_proj" in n for n in names):
    hints.append(
      "the state dict uses DP3's cross-attention conditioning; jaxpolicy's U-Net "
      "implements FiLM (condition_type='film') only"
    )
  if any(n.endswith(".cond_encoder.3.weight") for n in names):
    hints.append(
      "the state dict uses DP3's 'mlp_film' conditioning; jaxpolicy's U-Net "
      "implements FiLM with one Linear (condition_type='film') only"
    )
  if any(n.startswith("local_cond_encoder.") for n in names):
    hints.append(
      "the state dict has a local_cond_encoder (local conditioning), which "
      "jaxpolicy's U-Net does not implement"
    )
  return hints


def _suggest_prefix(names) -> str | None:
  for n in names:
    if n.endswith("diffusion_step_encoder.1.weight") and n != "diffusion_step_encoder.1.weight":
      return n[: -len("diffusion_step_encoder.1.weight")]
  return None


def _first_dim(sd, names):
  for n in names:
    if n in sd and np.ndim(sd[n]) >= 1:
      return int(np.shape(sd[n])[0])
  return None


def _strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> dict[str, Any]:
  if not prefix:
    return dict(state_dict)
  return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def unet_config_from_torch(state_dict: Mapping[str, Any], prefix: str = "") -> dict:
  """The architecture a state dict describes, read from its shapes.

  Returns {'input_dim', 'global_cond_dim', 'down_dims', 'kernel_size', 'step_embed_dim'}
  (input_dim is the action dimension, global_cond_dim the observation feature size).
  """
  sd = _strip_prefix(state_dict, prefix)
  shape = lambda n: tuple(np.shape(sd[n]))
  anchors = [
    "diffusion_step_encoder.1.weight",
    "down_modules.0.0.blocks.0.block.0.weight",
    "down_modules.0.0.cond_encoder.1.weight",
  ]
  missing = [a for a in anchors if a not in sd]
  if missing:
    msg = f"not a ConditionalUnet1D state dict: missing {', '.join(missing)}" + (
      f" (under prefix {prefix!r})" if prefix else ""
    )
    guess = _suggest_prefix(state_dict)
    if guess is not None and guess != prefix:
      msg += f"; its U-Net parameters start with {guess!r}: pass prefix={guess!r}"
    hints = _hints(sd)
    if hints:
      msg += "; " + "; ".join(hints)
    raise TorchBridgeError(msg)
  w = shape("diffusion_step_encoder.1.weight")
  if len(w) != 2 or w[0] != 4 * w[1]:
    raise TorchBridgeError(
      f"diffusion_step_encoder.1.weight has shape {w}; expected "
      f"(4 * d, d) for a step-embedding size d"
    )
  d = w[1]
  levels = 1 + max(
    int(m.group(1)) for m in map(re.compile(r"down_modules\.(\d+)\.").match, sd) if m
  )
  down_dims, kernel_size = [], None
  for i in range(levels):  # each width from whichever of its parameters is present
    width = _first_dim(
      sd,
      [
        f"down_modules.{i}.0.blocks.{b}.block.{m}.{w}"
        for b in (0, 1)
        for m in (0, 1)
        for w in ("weight", "bias")
      ],
    )
    if width is None:
      raise TorchBridgeError(
        f"down_modules.{i}.0 has no conv or norm parameters (blocks.0.block.0.weight missing)"
      )
    down_dims.append(width)
    for b in (0, 1):
      cw = sd.get(f"down_modules.{i}.{b}.blocks.0.block.0.weight")
      if kernel_size is None and cw is not None and np.ndim(cw) == 3:
        kernel_size = int(np.shape(cw)[2])
  w0 = shape("down_modules.0.0.blocks.0.block.0.weight")
  if len(w0) != 3 or kernel_size is None:
    raise TorchBridgeError(
      f"down_modules.0.0.blocks.0.block.0.weight has shape {w0}; expected "
      f"a Conv1d weight (C_out, C_in, k)"
    )
  input_dim = w0[1]
  cw = shape("down_modules.0.0.cond_encoder.1.weight")
  if len(cw) != 2:
    raise TorchBridgeError(
      f"down_modules.0.0.cond_encoder.1.weight has shape {cw}; expected "
      f"a Linear weight (2 * C_out, cond_dim)"
    )
  if cw[0] == down_dims[0] and cw[0] != 2 * down_dims[0]:
    raise TorchBridgeError(
      f"down_modules.0.0.cond_encoder.1.weight has shape {cw}: {cw[0]} outputs = C_out "
      f"means additive conditioning (Diffusion Policy's cond_predict_scale=False or DP3's "
      f"condition_type='add'); jaxpolicy's U-Net implements FiLM (cond_predict_scale=True, "
      f"condition_type='film') only"
    )
  global_cond_dim = cw[1] - d
  if global_cond_dim < 0:
    raise TorchBridgeError(
      f"cond_encoder input size {cw[1]} is smaller than the step embedding size {d}"
    )
  return dict(
    input_dim=int(input_dim),
    global_cond_dim=int(global_cond_dim),
    down_dims=tuple(int(x) for x in down_dims),
    kernel_size=int(kernel_size),
    step_embed_dim=int(d),
  )


def _listing(items) -> str:
  items = list(items)
  shown = ", ".join(items[:_MAX_LISTED])
  return shown + (f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


def check_state_dict(state_dict: Mapping[str, Any], prefix: str = "") -> dict:
  """Validates every name and shape; returns the architecture (see unet_config_from_torch)."""
  cfg = unet_config_from_torch(state_dict, prefix)
  sd = _strip_prefix(state_dict, prefix)
  want = torch_shapes(**cfg)
  missing = [n for n in want if n not in sd]
  unexpected = sorted(n for n in sd if n not in want)
  misshaped = [
    f"{n} {tuple(np.shape(sd[n]))} (expected {want[n]})"
    for n in want
    if n in sd and tuple(np.shape(sd[n])) != want[n]
  ]
  if missing or unexpected or misshaped:
    parts = []
    if missing:
      parts.append(f"missing {len(missing)}: {_listing(missing)}")
    if unexpected:
      parts.append(f"unexpected {len(unexpected)}: {_listing(unexpected)}")
    if misshaped:
      parts.append(f"mis-shaped {len(misshaped)}: {_listing(misshaped)}")
    arch = ", ".join(f"{k}={v}" for k, v in cfg.items())
    msg = (
      f"state dict{f' (prefix {prefix!r})' if prefix else ''} does not match a FiLM "
      f"ConditionalUnet1D with {arch}: " + "; ".join(parts)
    )
    hints = _hints(unexpected)
    if hints:
      msg += ". Note: " + "; ".join(hints)
    raise TorchBridgeError(msg)
  return cfg


# --- conversion ---------------------------------------------------------------------------


def _weight_to_flax(kind, w):
  if kind == "linear":
    return w.T
  if kind == "conv":  # (C_out, C_in, k) -> (k, C_in, C_out)
    return np.transpose(w, (2, 1, 0))
  if kind == "conv_transpose":  # (C_in, C_out, k) -> (k, C_in, C_out)
    return np.transpose(w, (2, 0, 1))
  return w  # norm


def _weight_to_torch(kind, k):
  if kind == "linear":
    return k.T
  if kind == "conv":
    return np.transpose(k, (2, 1, 0))
  if kind == "conv_transpose":
    return np.transpose(k, (1, 2, 0))
  return k


def _set(tree, path, value):
  for p in path[:-1]:
    tree = tree.setdefault(p, {})
  tree[path[-1]] = value


def _get(tree, path):
  for p in path:
    tree = tree[p]
  return tree


def unet_params_from_torch(state_dict: Mapping[str, Any], prefix: str = "", like=None):
  """A PyTorch FiLM ConditionalUnet1D state dict -> {'params': ...} for our U-Net.

  prefix: taken off every name first, and names outside it are ignored (e.g. "model."
  for a whole DP3 policy's state dict). like: optional jaxpolicy U-Net params (or their
  `jax.eval_shape`) the result must match leaf for leaf; a mismatch names the leaves.
  Build the module with `unet_config_from_torch`'s down_dims, kernel_size and
  step_embed_dim (and n_groups = 8).
  """
  cfg = check_state_dict(state_dict, prefix)
  sd = _strip_prefix(state_dict, prefix)
  params: dict = {}
  for name, kind, path, _ in unet_layout(**cfg):
    weight = _to_numpy(sd[f"{name}.weight"])
    bias = _to_numpy(sd[f"{name}.bias"])
    wkey = "scale" if kind == "norm" else "kernel"
    _set(params, path + (wkey,), jnp.asarray(_weight_to_flax(kind, weight)))
    _set(params, path + ("bias",), jnp.asarray(bias))
  out = {"params": params}
  if like is not None:
    _check_like(out, like)
  return out


def _check_like(params, like):
  like = like if "params" in like else {"params": like}
  got = {
    jax.tree_util.keystr(p): tuple(v.shape)
    for p, v in jax.tree_util.tree_flatten_with_path(params)[0]
  }
  want = {
    jax.tree_util.keystr(p): tuple(v.shape)
    for p, v in jax.tree_util.tree_flatten_with_path(like)[0]
  }
  missing = [k for k in want if k not in got]
  extra = [k for k in got if k not in want]
  bad = [f"{k} {got[k]} (expected {want[k]})" for k in want if k in got and got[k] != want[k]]
  if missing or extra or bad:
    parts = (
      ([f"absent from the import: {_listing(missing)}"] if missing else [])
      + ([f"not in the target: {_listing(extra)}"] if extra else [])
      + ([f"shape mismatch: {_listing(bad)}"] if bad else [])
    )
    raise TorchBridgeError(
      "the imported U-Net does not match the target jaxpolicy U-Net "
      "(check down_dims, kernel_size, step_embed_dim, the action "
      "dimension and the observation feature size): " + "; ".join(parts)
    )


def unet_params_to_torch(params) -> dict[str, np.ndarray]:
  """Our full-shape U-Net params -> a PyTorch state dict (numpy values) with DP3's names.

  `torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})` loads it.
  Dead-tap-pruned params (see live_taps.prune_params) are refused: export the full ones.
  """
  p = params["params"] if "params" in params else params
  if "kernel_nk" in p.get("step_mlp1", {}):
    raise TorchBridgeError(
      "these are a policy's inference params (dead taps pruned, kernels "
      "output-major: unet1d.inference_layout); export the full params of "
      "the run's checkpoint instead"
    )
  cfg = unet_config_from_flax(p)
  out = {}
  for name, kind, path, wshape in unet_layout(**cfg):
    mod = _get(p, path)
    w = np.asarray(mod["scale" if kind == "norm" else "kernel"], np.float32)
    tw = _weight_to_torch(kind, w)
    if tuple(tw.shape) != tuple(wshape):
      raise TorchBridgeError(
        f"{'/'.join(path)} has shape {w.shape}, which maps to {tw.shape}; "
        f"expected {wshape} (pruned params cannot be exported)"
      )
    out[f"{name}.weight"] = np.array(tw, np.float32, order="C")  # owned, writable copies
    out[f"{name}.bias"] = np.array(mod["bias"], np.float32)
  return out


def unet_config_from_flax(p) -> dict:
  """The architecture of our U-Net params (the 'params' collection)."""
  d = int(p["step_mlp1"]["kernel"].shape[1])
  down_dims = []
  while f"down{len(down_dims)}_res0" in p:
    down_dims.append(int(p[f"down{len(down_dims)}_res0"]["block0"]["conv"]["kernel"].shape[2]))
  k0 = p["down0_res0"]["block0"]["conv"]["kernel"]
  cond_dim = int(p["down0_res0"]["cond_encoder"]["kernel"].shape[0])
  return dict(
    input_dim=int(k0.shape[1]),
    global_cond_dim=cond_dim - d,
    down_dims=tuple(down_dims),
    kernel_size=int(k0.shape[0]),
    step_embed_dim=d,
  )


# --- torchvision ResNet-18 -> the image encoder's trunk ----------------------------------
#
# torchvision's names (resnet18().state_dict(), with or without DP's BatchNorm -> GroupNorm
# replacement): conv1.weight (64, 3, 7, 7); bn1.{weight, bias[, running_mean, running_var,
# num_batches_tracked]}; layer{1-4}.{0,1}.{conv1, bn1, conv2, bn2}; layer{2-4}.0.downsample.{0
# (1x1 conv), 1 (norm)}; fc.* (the classifier, unused). Conv2d weight (O, I, kh, kw) -> flax
# kernel (kh, kw, I, O); norm weight/bias -> GroupNorm scale/bias.


def _resnet_layout(widths: Sequence[int], blocks: Sequence[int]):
  """[(torch module name, kind, flax path, torch weight shape)] of a ResNet trunk
  (`vision.ResNetGN`'s tree); kind is 'conv2d' or 'norm'."""
  w0 = widths[0]
  layout = [("conv1", "conv2d", ("conv1",), (w0, 3, 7, 7)), ("bn1", "norm", ("bn1",), (w0,))]
  cin = w0
  for i, (w, n) in enumerate(zip(widths, blocks)):
    for j in range(n):
      t, f = f"layer{i + 1}.{j}", f"layer{i + 1}_{j}"
      layout += [
        (f"{t}.conv1", "conv2d", (f, "conv1"), (w, cin, 3, 3)),
        (f"{t}.bn1", "norm", (f, "bn1"), (w,)),
        (f"{t}.conv2", "conv2d", (f, "conv2"), (w, w, 3, 3)),
        (f"{t}.bn2", "norm", (f, "bn2"), (w,)),
      ]
      if j == 0 and (i > 0 or cin != w):
        layout += [
          (f"{t}.downsample.0", "conv2d", (f, "downsample_conv"), (w, cin, 1, 1)),
          (f"{t}.downsample.1", "norm", (f, "downsample_norm"), (w,)),
        ]
      cin = w
  return layout


_NORM_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def read_torch_file(path: str) -> dict:
  """A state dict saved with `torch.save`, read with `torch.load(weights_only=True)`: tensors
  and plain containers only, no pickled code is run. Needs torch (imported here only)."""
  import torch  # pylint: disable=g-import-not-at-top

  obj = torch.load(path, map_location="cpu", weights_only=True)
  if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
    obj = obj["state_dict"]
  if not isinstance(obj, dict):
    raise TorchBridgeError(
      f"{path} holds a {type(obj).__name__}, not a state dict; save model.state_dict()"
    )
  return obj


def resnet_params_from_torch(state_dict, prefix: str = "", keep_norm_affine: bool = False):
  """A torchvision ResNet-18 state dict (or the path of one) -> `vision.ResNetGN` params.

  The width and block counts are read from the shapes (ResNet-18: 64-512, two blocks per
  stage; the quarter-width `resnet18_small` too). A BatchNorm state dict (running statistics
  present, e.g. torchvision's pretrained weights) has its norms reset to GroupNorm's initial
  scale 1 and bias 0, as DP's `replace_bn_with_gn` builds fresh GroupNorms
  (`keep_norm_affine=True` keeps BatchNorm's affine weights instead); the running statistics
  and the classifier (`fc`) are dropped. Any missing, unexpected or mis-shaped name stops
  with one message listing them.
  """
  if isinstance(state_dict, str):
    state_dict = read_torch_file(state_dict)
  sd = _strip_prefix(state_dict, prefix)
  if "conv1.weight" not in sd or "layer1.0.conv1.weight" not in sd:
    raise TorchBridgeError(
      f"not a torchvision ResNet state dict: no conv1.weight / "
      f"layer1.0.conv1.weight{f' under prefix {prefix!r}' if prefix else ''}"
      f" (its first names: {_listing(sorted(state_dict)[:6])})"
    )
  widths, blocks = [], []
  while f"layer{len(widths) + 1}.0.conv1.weight" in sd:
    i = len(widths) + 1
    widths.append(int(np.shape(sd[f"layer{i}.0.conv1.weight"])[0]))
    n = 0
    while f"layer{i}.{n}.conv1.weight" in sd:
      n += 1
    blocks.append(n)
  layout = _resnet_layout(widths, blocks)
  batchnorm = any(n.endswith(".running_mean") or n == "bn1.running_mean" for n in sd)
  want = {}
  for name, kind, _, shape in layout:
    want[f"{name}.weight"] = tuple(shape)
    if kind == "norm":
      want[f"{name}.bias"] = (shape[0],)
  ignored = lambda n: n.startswith("fc.") or n.rsplit(".", 1)[-1] in _NORM_BUFFERS
  missing = [n for n in want if n not in sd]
  unexpected = sorted(n for n in sd if n not in want and not ignored(n))
  misshaped = [
    f"{n} {tuple(np.shape(sd[n]))} (expected {want[n]})"
    for n in want
    if n in sd and tuple(np.shape(sd[n])) != want[n]
  ]
  if missing or unexpected or misshaped:
    parts = (
      ([f"missing {len(missing)}: {_listing(missing)}"] if missing else [])
      + ([f"unexpected {len(unexpected)}: {_listing(unexpected)}"] if unexpected else [])
      + ([f"mis-shaped {len(misshaped)}: {_listing(misshaped)}"] if misshaped else [])
    )
    raise TorchBridgeError(
      f"state dict does not match a torchvision ResNet with widths "
      f"{tuple(widths)} and blocks {tuple(blocks)}: " + "; ".join(parts)
    )
  params: dict = {}
  for name, kind, path, _ in layout:
    w = _to_numpy(sd[f"{name}.weight"])
    if kind == "conv2d":
      _set(params, path + ("kernel",), jnp.asarray(np.transpose(w, (2, 3, 1, 0))))
    else:
      b = _to_numpy(sd[f"{name}.bias"])
      if batchnorm and not keep_norm_affine:
        w, b = np.ones_like(w), np.zeros_like(b)
      _set(params, path + ("scale",), jnp.asarray(w))
      _set(params, path + ("bias",), jnp.asarray(b))
  return params


def resnet_params_to_torch(params) -> dict[str, np.ndarray]:
  """`vision.ResNetGN` params -> a state dict with torchvision's names (GroupNorm weights
  under the BatchNorms' names, no classifier): what `resnet_params_from_torch` reads."""
  p = params["params"] if "params" in params else params
  widths, blocks = [], []
  while f"layer{len(widths) + 1}_0" in p:
    i = len(widths) + 1
    widths.append(int(p[f"layer{i}_0"]["conv1"]["kernel"].shape[-1]))
    blocks.append(sum(1 for k in p if k.startswith(f"layer{i}_")))
  out = {}
  for name, kind, path, _ in _resnet_layout(widths, blocks):
    mod = _get(p, path)
    if kind == "conv2d":
      out[f"{name}.weight"] = np.array(
        np.transpose(np.asarray(mod["kernel"], np.float32), (3, 2, 0, 1)), order="C"
      )
    else:
      out[f"{name}.weight"] = np.array(mod["scale"], np.float32)
      out[f"{name}.bias"] = np.array(mod["bias"], np.float32)
  return out


def load_resnet_into(encoder_params, backbone, camera_key: str = "img"):
  """`encoder_params` (an `vision.RGBEncoder`'s) with camera `camera_key`'s trunk replaced by
  `backbone` (from `resnet_params_from_torch`); shapes must match leaf for leaf."""
  has_root = "params" in encoder_params
  p = dict(encoder_params["params"] if has_root else encoder_params)
  name = f"camera_{camera_key}"
  if name not in p:
    cams = sorted(k[len("camera_") :] for k in p if k.startswith("camera_"))
    raise TorchBridgeError(f"the encoder has no camera {camera_key!r}; it has {cams}")
  target = p[name]["backbone"]
  got = {
    jax.tree_util.keystr(k): tuple(np.shape(v))
    for k, v in jax.tree_util.tree_flatten_with_path(backbone)[0]
  }
  want = {
    jax.tree_util.keystr(k): tuple(np.shape(v))
    for k, v in jax.tree_util.tree_flatten_with_path(target)[0]
  }
  if got != want:
    diff = sorted(set(got.items()) ^ set(want.items()))
    raise TorchBridgeError(
      f"the torch ResNet does not match camera {camera_key!r}'s trunk "
      f"(rgb.encoder sets its width): {_listing(f'{k} {s}' for k, s in diff)}"
    )
  p[name] = dict(p[name], backbone=backbone)
  return {"params": p} if has_root else p
