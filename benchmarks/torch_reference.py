"""A PyTorch reference: the DP3 FiLM U-Net, DDIM as diffusers runs it, and the anchors' loop.

Written for the benchmarks (and the weight-bridge tests): the module and parameter names
follow DP3 / SDM-Policy / Diffusion Policy, so `model.state_dict()` feeds
`jaxpolicy.nets.torch_bridge.unet_params_from_torch`, and `load_jax_unet` goes the other
way. The sampler is what the anchors run: eager PyTorch, one Python iteration per DDIM
step, a diffusers-style `step()` with x0 ("sample") prediction and clipping, under
`torch.no_grad()`. torch is an optional dependency (`pip install torch==2.13.0`); nothing
in `jaxpolicy` imports this module.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from jaxpolicy.nets import torch_bridge


class StepEmbedding(nn.Module):
  """Sinusoidal timestep features: [sin(t f), cos(t f)], f = 10000^(-i / (half - 1))."""

  def __init__(self, dim: int):
    super().__init__()
    self.dim = dim

  def forward(self, t):
    half = self.dim // 2
    scale = math.log(10000.0) / (half - 1)
    freqs = torch.exp(-scale * torch.arange(half, device=t.device, dtype=torch.float32))
    angles = t.to(torch.float32).unsqueeze(-1) * freqs.unsqueeze(0)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ConvNormMish(nn.Module):
  """Conv1d ('same' padding) -> GroupNorm -> Mish, as `block.0/1/2`."""

  def __init__(self, cin: int, cout: int, kernel_size: int, groups: int = 8):
    super().__init__()
    self.block = nn.Sequential(
      nn.Conv1d(cin, cout, kernel_size, padding=kernel_size // 2),
      nn.GroupNorm(groups, cout),
      nn.Mish(),
    )

  def forward(self, x):
    return self.block(x)


class FiLMResidualBlock(nn.Module):
  """Two ConvNormMish blocks; between them h <- scale * h + bias from the condition."""

  def __init__(self, cin: int, cout: int, cond_dim: int, kernel_size: int, groups: int = 8):
    super().__init__()
    self.cout = cout
    self.blocks = nn.ModuleList(
      [ConvNormMish(cin, cout, kernel_size, groups), ConvNormMish(cout, cout, kernel_size, groups)]
    )
    self.cond_encoder = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * cout))
    self.residual_conv = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

  def forward(self, x, cond):
    film = self.cond_encoder(cond).unsqueeze(-1)  # (B, 2 C, 1)
    h = self.blocks[0](x)
    h = film[:, : self.cout] * h + film[:, self.cout :]
    return self.blocks[1](h) + self.residual_conv(x)


class Resample(nn.Module):
  """Halve (Conv1d k=3, stride 2) or double (ConvTranspose1d k=4, stride 2) the length."""

  def __init__(self, dim: int, up: bool):
    super().__init__()
    self.conv = nn.ConvTranspose1d(dim, dim, 4, 2, 1) if up else nn.Conv1d(dim, dim, 3, 2, 1)

  def forward(self, x):
    return self.conv(x)


class ConditionalUnet1D(nn.Module):
  """x (B, H, A), timestep (B,) or scalar, global_cond (B, G) -> (B, H, A)."""

  def __init__(
    self,
    input_dim: int,
    global_cond_dim: int,
    down_dims: Sequence[int] = (512, 1024, 2048),
    kernel_size: int = 5,
    n_groups: int = 8,
    step_embed_dim: int = 128,
  ):
    super().__init__()
    d = step_embed_dim
    cond_dim = d + global_cond_dim
    self.diffusion_step_encoder = nn.Sequential(
      StepEmbedding(d), nn.Linear(d, 4 * d), nn.Mish(), nn.Linear(4 * d, d)
    )
    widths = [input_dim] + list(down_dims)
    levels = len(down_dims)
    block = lambda cin, cout: FiLMResidualBlock(cin, cout, cond_dim, kernel_size, n_groups)
    self.down_modules = nn.ModuleList()
    for i in range(levels):
      last = i == levels - 1
      self.down_modules.append(
        nn.ModuleList(
          [
            block(widths[i], widths[i + 1]),
            block(widths[i + 1], widths[i + 1]),
            nn.Identity() if last else Resample(widths[i + 1], up=False),
          ]
        )
      )
    self.mid_modules = nn.ModuleList([block(widths[-1], widths[-1]), block(widths[-1], widths[-1])])
    self.up_modules = nn.ModuleList()
    for i in range(levels - 1):
      deep, out = widths[levels - i], widths[levels - 1 - i]
      self.up_modules.append(
        nn.ModuleList([block(2 * deep, out), block(out, out), Resample(out, up=True)])
      )
    # the anchors' final block always has 8 groups
    self.final_conv = nn.Sequential(
      ConvNormMish(down_dims[0], down_dims[0], kernel_size, 8),
      nn.Conv1d(down_dims[0], input_dim, 1),
    )

  def forward(self, sample, timestep, global_cond):
    x = sample.transpose(1, 2)  # (B, A, H): channels first
    if not torch.is_tensor(timestep):
      timestep = torch.tensor([timestep], dtype=torch.long, device=x.device)
    if timestep.dim() == 0:
      timestep = timestep[None]
    timestep = timestep.expand(x.shape[0])
    cond = torch.cat([self.diffusion_step_encoder(timestep), global_cond], dim=-1)
    skips = []
    for res0, res1, down in self.down_modules:
      x = res1(res0(x, cond), cond)
      skips.append(x)
      x = down(x)
    for mid in self.mid_modules:
      x = mid(x, cond)
    for res0, res1, up in self.up_modules:
      x = torch.cat([x, skips.pop()], dim=1)
      x = up(res1(res0(x, cond), cond))
    return self.final_conv(x).transpose(1, 2)


class StateEncoder(nn.Module):
  """jaxpolicy's state MLP (Linear + Mish layers, Linear, LayerNorm eps 1e-6)."""

  def __init__(self, in_dim: int, hidden_dims: Sequence[int], out_dim: int):
    super().__init__()
    dims = [in_dim] + list(hidden_dims)
    self.hidden = nn.ModuleList([nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])])
    self.out = nn.Linear(dims[-1], out_dim)
    self.norm = nn.LayerNorm(out_dim, eps=1e-6)

  def forward(self, x):
    for layer in self.hidden:
      x = nn.functional.mish(layer(x))
    return self.norm(self.out(x))


# --- DDIM, diffusers semantics, plain torch ------------------------------------------------


def cosine_betas(num_train_timesteps: int, max_beta: float = 0.999) -> torch.Tensor:
  """`squaredcos_cap_v2` betas (computed in float64, stored as float32 like diffusers)."""
  f = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
  n = num_train_timesteps
  return torch.tensor(
    [min(1 - f((i + 1) / n) / f(i / n), max_beta) for i in range(n)], dtype=torch.float32
  )


class DDIMScheduler:
  """Deterministic DDIM (eta 0, set_alpha_to_one) as diffusers' `DDIMScheduler.step`."""

  def __init__(
    self, num_train_timesteps: int = 100, prediction_type: str = "sample", clip_sample: bool = True
  ):
    self.num_train_timesteps = num_train_timesteps
    self.prediction_type = prediction_type
    self.clip_sample = clip_sample
    self.alphas_cumprod = torch.cumprod(1.0 - cosine_betas(num_train_timesteps), dim=0)
    self.final_alpha_cumprod = torch.tensor(1.0)
    self.num_inference_steps = None
    self.timesteps = None

  def set_timesteps(self, num_steps: int, spacing: str = "leading"):
    T = self.num_train_timesteps
    if spacing == "leading":
      ts = np.arange(num_steps)[::-1] * (T // num_steps)
    elif spacing == "trailing":
      ts = np.round(np.arange(T, 0, -T / num_steps)) - 1
    else:
      raise ValueError(f"spacing must be 'leading' or 'trailing', got {spacing!r}")
    self.num_inference_steps = num_steps
    self.timesteps = torch.from_numpy(ts.astype(np.int64).copy())

  def step(self, model_output, t, sample):
    t = int(t)
    prev_t = t - self.num_train_timesteps // self.num_inference_steps
    abar = self.alphas_cumprod[t]
    abar_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
    if self.prediction_type == "sample":
      x0 = model_output
      eps = (sample - abar**0.5 * x0) / (1 - abar) ** 0.5
    else:
      eps = model_output
      x0 = (sample - (1 - abar) ** 0.5 * eps) / abar**0.5
    if self.clip_sample:
      x0 = x0.clamp(-1, 1)
    return abar_prev**0.5 * x0 + (1 - abar_prev) ** 0.5 * eps


def ddim_loop(
  model, scheduler: DDIMScheduler, noise, global_cond, num_steps: int, spacing: str = "leading"
):
  """The anchors' `conditional_sample`: one eager model call and scheduler step per t."""
  x = noise
  mask = torch.zeros_like(x, dtype=torch.bool)  # DP3 re-applies its (empty) inpainting mask
  scheduler.set_timesteps(num_steps, spacing)
  for t in scheduler.timesteps:
    x[mask] = 0.0
    out = model(x, t, global_cond)
    x = scheduler.step(out, t, x)
  x[mask] = 0.0
  return x


def one_step(model, noise, global_cond, timestep: int):
  """SDM's true one-step generator: clip(G(z, T, cond))."""
  return model(noise, torch.tensor(timestep), global_cond).clamp(-1, 1)


# --- weights from jaxpolicy ----------------------------------------------------------------


def unet_from_jax(unet_params, n_groups: int = 8) -> ConditionalUnet1D:
  """A torch U-Net holding the same (full-shape) weights as our U-Net params."""
  sd = torch_bridge.unet_params_to_torch(unet_params)
  cfg = torch_bridge.unet_config_from_torch(sd)
  model = ConditionalUnet1D(
    cfg["input_dim"],
    cfg["global_cond_dim"],
    cfg["down_dims"],
    cfg["kernel_size"],
    n_groups,
    cfg["step_embed_dim"],
  )
  model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
  return model.eval()


def state_encoder_from_jax(enc_params) -> StateEncoder:
  p = enc_params["params"] if "params" in enc_params else enc_params
  n_hidden = sum(1 for k in p if k.startswith("dense"))
  hidden = [int(p[f"dense{i}"]["kernel"].shape[1]) for i in range(n_hidden)]
  in_dim = int(p["dense0"]["kernel"].shape[0]) if n_hidden else int(p["out"]["kernel"].shape[0])
  enc = StateEncoder(in_dim, hidden, int(p["out"]["kernel"].shape[1]))
  t = lambda a: torch.from_numpy(np.asarray(a, np.float32).copy())
  sd = {}
  for i in range(n_hidden):
    sd[f"hidden.{i}.weight"] = t(np.asarray(p[f"dense{i}"]["kernel"]).T)
    sd[f"hidden.{i}.bias"] = t(p[f"dense{i}"]["bias"])
  sd["out.weight"] = t(np.asarray(p["out"]["kernel"]).T)
  sd["out.bias"] = t(p["out"]["bias"])
  sd["norm.weight"] = t(p["norm"]["scale"])
  sd["norm.bias"] = t(p["norm"]["bias"])
  enc.load_state_dict(sd, strict=True)
  return enc.eval()


def dp3_encoder_from_jax(enc_params) -> "DP3Encoder":
  """DP3's encoder in PyTorch with the weights of a `jaxpolicy` DP3Encoder."""
  p = enc_params["params"] if "params" in enc_params else enc_params
  n_point = sum(1 for k in p if k.startswith("point_dense"))
  point_dims = [int(p[f"point_dense{i}"]["kernel"].shape[1]) for i in range(n_point)]
  state_dims = [
    int(p[f"state_dense{i}"]["kernel"].shape[1])
    for i in range(sum(1 for k in p if k.startswith("state_dense")))
  ]
  enc = DP3Encoder(
    int(p["point_out"]["kernel"].shape[1]),
    point_dims,
    int(p["state_dense0"]["kernel"].shape[0]),
    state_dims,
  )
  t = lambda a: torch.from_numpy(np.asarray(a, np.float32).copy())
  sd = {}
  for i in range(n_point):  # point_mlp = [Linear, LayerNorm, ReLU] per layer
    sd[f"point_mlp.{3 * i}.weight"] = t(np.asarray(p[f"point_dense{i}"]["kernel"]).T)
    sd[f"point_mlp.{3 * i}.bias"] = t(p[f"point_dense{i}"]["bias"])
    sd[f"point_mlp.{3 * i + 1}.weight"] = t(p[f"point_norm{i}"]["scale"])
    sd[f"point_mlp.{3 * i + 1}.bias"] = t(p[f"point_norm{i}"]["bias"])
  sd["point_out.0.weight"] = t(np.asarray(p["point_out"]["kernel"]).T)
  sd["point_out.0.bias"] = t(p["point_out"]["bias"])
  sd["point_out.1.weight"] = t(p["point_out_norm"]["scale"])
  sd["point_out.1.bias"] = t(p["point_out_norm"]["bias"])
  for i in range(len(state_dims)):  # state_mlp = Linear (ReLU Linear)*
    sd[f"state_mlp.{2 * i}.weight"] = t(np.asarray(p[f"state_dense{i}"]["kernel"]).T)
    sd[f"state_mlp.{2 * i}.bias"] = t(p[f"state_dense{i}"]["bias"])
  enc.load_state_dict(sd, strict=True)
  return enc


class TorchPolicy:
  """normalise -> encoder -> sampler -> unnormalise, eager, for state observations.

  sampler: ("ddim", k, spacing) or ("one_step", T). Returns the full unnormalised chunk.
  """

  def __init__(
    self,
    encoder: StateEncoder,
    unet: ConditionalUnet1D,
    normalizer,
    horizon: int,
    action_dim: int,
    sampler,
    num_train_timesteps: int = 100,
    prediction_type: str = "sample",
    clip_sample: bool = True,
    device: str = "cpu",
    obs_key: str | None = "full_state",
  ):
    self.device = torch.device(device)
    self.encoder = encoder.to(self.device)
    self.unet = unet.to(self.device)
    t = lambda a: torch.as_tensor(np.asarray(a, np.float32), device=self.device)
    # obs_key None: a dict of observations (camera frames pass as uint8; agent_pos normalised)
    self.obs_key = obs_key
    obs_norm = normalizer[obs_key or "agent_pos"]
    self.obs_scale, self.obs_offset = t(obs_norm.scale), t(obs_norm.offset)
    self.act_scale, self.act_offset = t(normalizer["action"].scale), t(normalizer["action"].offset)
    self.horizon, self.action_dim, self.sampler = horizon, action_dim, tuple(sampler)
    self.scheduler = DDIMScheduler(num_train_timesteps, prediction_type, clip_sample)

  def sample(self, cond, noise):
    kind = self.sampler[0]
    if kind == "ddim":
      return ddim_loop(self.unet, self.scheduler, noise, cond, self.sampler[1], self.sampler[2])
    if kind == "one_step":
      return one_step(self.unet, noise, cond, self.sampler[1])
    raise ValueError(f"unknown sampler {self.sampler!r}")

  @torch.no_grad()
  def __call__(self, full_state, noise=None):
    """full_state (B, n_obs_steps, D) raw, or a dict of (B, n_obs_steps, ...) observations
    (obs_key None) -> (B, horizon, A) unnormalised actions."""
    if self.obs_key is None:
      obs = dict(full_state)
      obs["agent_pos"] = obs["agent_pos"] * self.obs_scale + self.obs_offset
      b = obs["agent_pos"].shape[0]
      cond = encode_history(self.encoder, obs)
    else:
      b, n = full_state.shape[:2]
      obs = full_state * self.obs_scale + self.obs_offset
      cond = self.encoder(obs.reshape(b * n, -1)).reshape(b, -1)
    if noise is None:
      noise = torch.randn(b, self.horizon, self.action_dim, device=self.device)
    x = self.sample(cond, noise)
    return (x - self.act_offset) / self.act_scale


# --- training: the same steps in eager PyTorch ---------------------------------------------


class DP3Encoder(nn.Module):
  """DP3's encoder: PointNet (Linear 3->64->128->256, each LayerNorm + ReLU, max over the
  points, Linear 256->out + LayerNorm) beside the state MLP (Linear 9->64, ReLU, 64->64)."""

  def __init__(
    self, out_dim: int = 64, point_dims=(64, 128, 256), state_dim: int = 9, state_dims=(64, 64)
  ):
    super().__init__()
    layers, cin = [], 3
    for h in point_dims:
      layers += [nn.Linear(cin, h), nn.LayerNorm(h), nn.ReLU()]
      cin = h
    self.point_mlp = nn.Sequential(*layers)
    self.point_out = nn.Sequential(nn.Linear(cin, out_dim), nn.LayerNorm(out_dim))
    s, cin = [], state_dim
    for i, h in enumerate(state_dims):
      s.append(nn.Linear(cin, h))
      if i < len(state_dims) - 1:
        s.append(nn.ReLU())
      cin = h
    self.state_mlp = nn.Sequential(*s)

  def forward(self, obs):
    x = self.point_mlp(obs["point_cloud"][..., :3]).max(dim=-2).values
    return torch.cat([self.point_out(x), self.state_mlp(obs["agent_pos"])], dim=-1)


def make_encoder(obs_shapes: dict, hidden_dims, out_dim: int) -> nn.Module:
  """DP3's encoder for point clouds, else jaxpolicy's state MLP on the one key."""
  if "point_cloud" in obs_shapes:
    return DP3Encoder(out_dim, state_dim=int(obs_shapes["agent_pos"][0]))
  ((key, shape),) = obs_shapes.items()
  enc = StateEncoder(int(shape[0]), hidden_dims, out_dim)
  return _KeyedEncoder(enc, key)


class _KeyedEncoder(nn.Module):
  def __init__(self, encoder, key):
    super().__init__()
    self.encoder, self.key = encoder, key

  def forward(self, obs):
    return self.encoder(obs[self.key])


def encode_history(encoder, obs):
  """obs: dict of (B, n_obs_steps, ...) tensors -> (B, n_obs_steps * feat)."""
  b, n = next(iter(obs.values())).shape[:2]
  flat = {k: v.reshape((b * n,) + tuple(v.shape[2:])) for k, v in obs.items()}
  return encoder(flat).reshape(b, -1)


def adamw(params, lr: float, betas, weight_decay: float):
  """torch's fastest CPU/GPU AdamW: the fused kernel where this torch has one."""
  try:
    return torch.optim.AdamW(
      params, lr, betas=tuple(betas), eps=1e-8, weight_decay=weight_decay, fused=True
    )
  except (RuntimeError, TypeError):
    return torch.optim.AdamW(
      params, lr, betas=tuple(betas), eps=1e-8, weight_decay=weight_decay, foreach=True
    )


class EMA:
  """diffusers / DP `EMAModel` decay, applied with foreach ops (faster than DP's loop)."""

  def __init__(self, params, power: float = 0.75, max_value: float = 0.9999):
    self.params = list(params)
    self.shadow = [p.detach().clone() for p in self.params]
    self.power, self.max_value, self.step = power, max_value, 0

  @torch.no_grad()
  def update(self):
    self.step += 1
    s = max(self.step - 1, 0)
    d = 0.0 if s <= 0 else min(max(1.0 - (1.0 + s) ** (-self.power), 0.0), self.max_value)
    torch._foreach_mul_(self.shadow, d)
    torch._foreach_add_(self.shadow, [p.detach() for p in self.params], alpha=1.0 - d)


def _clip(params, max_norm):
  if max_norm:
    nn.utils.clip_grad_norm_(list(params), max_norm, foreach=True)


def _add_noise(alphas_cumprod, x0, noise, t):
  abar = alphas_cumprod[t].view(-1, 1, 1)
  return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise


class TeacherTrainStep:
  """DP3's training step: encoder + U-Net, DDPM loss on x0 ("sample"), AdamW, EMA."""

  def __init__(
    self,
    encoder,
    unet,
    num_train_timesteps: int = 100,
    lr: float = 1e-4,
    betas=(0.95, 0.999),
    weight_decay: float = 1e-6,
    ema: bool = True,
    grad_clip: float | None = None,
  ):
    self.encoder, self.unet = encoder.train(), unet.train()
    params = list(encoder.parameters()) + list(unet.parameters())
    self.params, self.grad_clip = params, grad_clip
    self.opt = adamw(params, lr, betas, weight_decay)
    self.ema = EMA(params) if ema else None
    device = next(unet.parameters()).device
    self.abar = torch.cumprod(1.0 - cosine_betas(num_train_timesteps), dim=0).to(device)
    self.T = num_train_timesteps

  def __call__(self, obs, action):
    cond = encode_history(self.encoder, obs)
    t = torch.randint(0, self.T, (action.shape[0],), device=action.device)
    x_t = _add_noise(self.abar, action, torch.randn_like(action), t)
    loss = nn.functional.mse_loss(self.unet(x_t, t, cond), action)
    self.opt.zero_grad(set_to_none=True)
    loss.backward()
    _clip(self.params, self.grad_clip)
    self.opt.step()
    if self.ema is not None:
      self.ema.update()
    return loss.detach()


class SDMTrainStep:
  """SDM's step as jaxpolicy runs it: G's distribution-matching update every `gen_every`
  steps (P frozen, D read without gradients, DMD's per-sample normaliser), then D's
  denoising loss on the new G's samples; the teacher's encoder frozen."""

  def __init__(
    self,
    encoder,
    teacher_unet,
    num_train_timesteps: int = 100,
    gen_lr: float = 1e-5,
    fake_lr: float = 1e-5,
    betas=(0.95, 0.999),
    weight_decay: float = 1e-6,
    lam: float = 1.0,
    gamma: float = 1.0,
    gen_every: int = 1,
    t_grid=None,
    ema: bool = True,
    grad_clip: float | None = None,
  ):
    import copy

    self.encoder = encoder.eval().requires_grad_(False)
    self.real = teacher_unet.eval().requires_grad_(False)
    self.gen, self.fake = copy.deepcopy(teacher_unet).train(), copy.deepcopy(teacher_unet).train()
    self.gen.requires_grad_(True)
    self.fake.requires_grad_(True)
    self.opt_g = adamw(self.gen.parameters(), gen_lr, betas, weight_decay)
    self.opt_d = adamw(self.fake.parameters(), fake_lr, betas, weight_decay)
    self.ema = EMA(self.gen.parameters()) if ema else None
    device = next(teacher_unet.parameters()).device
    self.abar = torch.cumprod(1.0 - cosine_betas(num_train_timesteps), dim=0).to(device)
    self.T, self.lam, self.gamma, self.gen_every = num_train_timesteps, lam, gamma, gen_every
    self.grid = torch.as_tensor(
      t_grid if t_grid is not None else np.arange(9, num_train_timesteps, 10), device=device
    )
    self.step, self.grad_clip = 0, grad_clip

  def _t(self, b):
    return self.grid[torch.randint(0, len(self.grid), (b,), device=self.grid.device)]

  def __call__(self, obs, action):
    with torch.no_grad():
      cond = encode_history(self.encoder, obs)
    z = torch.randn_like(action)
    T = torch.full((action.shape[0],), self.T, device=action.device)
    loss_g = torch.zeros((), device=action.device)
    if self.step % self.gen_every == 0:
      x = self.gen(z, T, cond)
      t = self._t(x.shape[0])
      x_t = _add_noise(self.abar, x.detach(), torch.randn_like(x), t)
      with torch.no_grad():
        x0_real, x0_fake = self.real(x_t, t, cond), self.fake(x_t, t, cond)
        w = 1.0 / (x - x0_real).abs().mean(dim=(1, 2), keepdim=True).clamp_min(1e-8)
        target = x - (x0_fake - x0_real) * w
      loss_g = self.lam * 0.5 * nn.functional.mse_loss(x, target)
      self.opt_g.zero_grad(set_to_none=True)
      loss_g.backward()
      _clip(self.gen.parameters(), self.grad_clip)
      self.opt_g.step()
      if self.ema is not None:
        self.ema.update()
    with torch.no_grad():
      x = self.gen(z, T, cond)
    t = self._t(x.shape[0])
    x_t = _add_noise(self.abar, x, torch.randn_like(x), t)
    loss_d = self.gamma * nn.functional.mse_loss(self.fake(x_t, t, cond), x)
    self.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    _clip(self.fake.parameters(), self.grad_clip)
    self.opt_d.step()
    self.step += 1
    return loss_d.detach(), loss_g.detach()


# --- Diffusion Policy's image encoder (ResNet-18 with GroupNorm, spatial softmax) ----------


class BasicBlockGN(nn.Module):
  """torchvision's BasicBlock with DP's GroupNorm(channels // 16) for its BatchNorms."""

  def __init__(self, cin: int, cout: int, stride: int):
    super().__init__()
    gn = lambda c: nn.GroupNorm(max(1, c // 16), c)
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = gn(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = gn(cout)
    self.downsample = (
      nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), gn(cout))
      if stride != 1 or cin != cout
      else None
    )

  def forward(self, x):
    h = torch.relu(self.bn1(self.conv1(x)))
    h = self.bn2(self.conv2(h))
    return torch.relu(h + (x if self.downsample is None else self.downsample(x)))


class ResNetGN(nn.Module):
  """torchvision's resnet18 trunk (no avgpool / fc), GroupNorm-replaced as DP does; its
  state dict has torchvision's names. (N, 3, H, W) -> (N, C, H/32, W/32)."""

  def __init__(self, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2)):
    super().__init__()
    self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
    self.bn1 = nn.GroupNorm(max(1, widths[0] // 16), widths[0])
    self.maxpool = nn.MaxPool2d(3, 2, 1)
    cin = widths[0]
    for i, (w, n) in enumerate(zip(widths, blocks)):
      layer = []
      for j in range(n):
        layer.append(BasicBlockGN(cin, w, 2 if (i > 0 and j == 0) else 1))
        cin = w
      setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
    self.n_layers = len(widths)

  def forward(self, x):
    x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
    for i in range(self.n_layers):
      x = getattr(self, f"layer{i + 1}")(x)
    return x


class SpatialSoftmax(nn.Module):
  """robomimic's SpatialSoftmax (1x1 conv to num_kp maps, softmax, expected x, y)."""

  def __init__(self, cin: int, h: int, w: int, num_kp: int = 32):
    super().__init__()
    self.nets = nn.Conv2d(cin, num_kp, 1)
    pos_x, pos_y = np.meshgrid(np.linspace(-1.0, 1.0, w), np.linspace(-1.0, 1.0, h))
    self.register_buffer("pos_x", torch.from_numpy(pos_x.reshape(1, -1)).float())
    self.register_buffer("pos_y", torch.from_numpy(pos_y.reshape(1, -1)).float())
    self.num_kp = num_kp

  def forward(self, x):
    x = self.nets(x)
    att = torch.softmax(x.flatten(2).flatten(0, 1), dim=-1)  # (N K, H W)
    xy = torch.cat(
      [(self.pos_x * att).sum(1, keepdim=True), (self.pos_y * att).sum(1, keepdim=True)], 1
    )
    return xy.view(-1, self.num_kp * 2)


class ImageEncoder(nn.Module):
  """DP's obs encoder for uint8 frames + agent_pos: per camera a random (training) or centre
  crop, [0, 255] -> [-1, 1], ResNetGN, spatial softmax + Linear (or global average pooling),
  concatenated with the state. obs: {camera key: (N, H, W, 3) uint8, "agent_pos": (N, D)}."""

  def __init__(
    self,
    camera_keys,
    image_size,
    crop,
    widths=(64, 128, 256, 512),
    pooling: str = "spatial_softmax",
    num_kp: int = 32,
    feature_dim: int = 64,
  ):
    super().__init__()
    from jaxpolicy.nets.vision import feature_map_size

    self.keys, self.crop, self.size, self.pooling = (
      tuple(camera_keys),
      tuple(crop),
      tuple(image_size),
      pooling,
    )
    fh, fw = feature_map_size(crop)
    self.backbones = nn.ModuleList([ResNetGN(widths) for _ in self.keys])
    if pooling == "spatial_softmax":
      self.pools = nn.ModuleList([SpatialSoftmax(widths[-1], fh, fw, num_kp) for _ in self.keys])
      self.outs = nn.ModuleList([nn.Linear(2 * num_kp, feature_dim) for _ in self.keys])

  def _crop(self, x):
    (H, W), (h, w) = self.size, self.crop
    if self.training:  # DP's CropRandomizer: a corner per frame
      i = torch.randint(0, H - h + 1, (x.shape[0],), device=x.device)
      j = torch.randint(0, W - w + 1, (x.shape[0],), device=x.device)
      rows = (i[:, None] + torch.arange(h, device=x.device))[:, :, None]
      cols = (j[:, None] + torch.arange(w, device=x.device))[:, None, :]
      return x[torch.arange(x.shape[0], device=x.device)[:, None, None], rows, cols]
    top, left = (H - h) // 2, (W - w) // 2
    return x[:, top : top + h, left : left + w]

  def forward(self, obs):
    feats = []
    for n, k in enumerate(self.keys):
      x = self._crop(obs[k]).permute(0, 3, 1, 2).float() / 127.5 - 1.0
      f = self.backbones[n](x)
      if self.pooling == "spatial_softmax":
        f = self.outs[n](self.pools[n](f))
      else:
        f = f.mean(dim=(2, 3))
      feats.append(f)
    return torch.cat(feats + [obs["agent_pos"].float()], dim=-1)


def image_encoder_from_jax(
  enc_params, camera_keys, image_size, crop, pooling: str = "spatial_softmax"
) -> ImageEncoder:
  """DP's image encoder in PyTorch with the weights of a `jaxpolicy` RGBEncoder."""
  p = enc_params["params"] if "params" in enc_params else enc_params
  first = p[f"camera_{camera_keys[0]}"]
  bb = first["backbone"]
  widths = tuple(int(bb[f"layer{i + 1}_0"]["conv1"]["kernel"].shape[-1]) for i in range(4))
  num_kp = int(first["pool"]["keypoints"]["kernel"].shape[-1]) if "pool" in first else 32
  fdim = int(first["out"]["kernel"].shape[-1]) if "out" in first else 64
  enc = ImageEncoder(camera_keys, image_size, crop, widths, pooling, num_kp, fdim)
  t = lambda a: torch.from_numpy(np.array(a, np.float32))
  sd = {}
  for n, k in enumerate(camera_keys):
    cam = p[f"camera_{k}"]
    for name, v in torch_bridge.resnet_params_to_torch(cam["backbone"]).items():
      sd[f"backbones.{n}.{name}"] = torch.from_numpy(v)
    if pooling == "spatial_softmax":
      kp = np.asarray(cam["pool"]["keypoints"]["kernel"])  # (1, 1, C, K)
      sd[f"pools.{n}.nets.weight"] = t(kp[0, 0].T[:, :, None, None])
      sd[f"pools.{n}.nets.bias"] = t(cam["pool"]["keypoints"]["bias"])
      sd[f"pools.{n}.pos_x"], sd[f"pools.{n}.pos_y"] = enc.pools[n].pos_x, enc.pools[n].pos_y
      sd[f"outs.{n}.weight"] = t(np.asarray(cam["out"]["kernel"]).T)
      sd[f"outs.{n}.bias"] = t(cam["out"]["bias"])
  enc.load_state_dict(sd, strict=True)
  return enc
