"""STEP's spatiotemporal predictor: (observation tokens, previous action chunk) -> chunk.

The previous chunk's H steps, embedded with sinusoidal positions, are the queries. Each
block applies self-attention over the queries, cross-attention to the context (the
observation tokens, one per observed frame, plus the embedded previous chunk), and a GELU
MLP, all pre-LayerNorm with residuals. A final LayerNorm and projection give the chunk;
in "residual" mode that output is added to the previous chunk *shifted* by `shift`
(n_action_steps) positions: the previous chunk was planned `shift` env steps earlier, so
its position p + shift is the same env step as the new chunk's p (the last action is
repeated for the positions the previous chunk does not reach).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxpolicy.nets.kernels import sinusoidal_embedding


class Block(nn.Module):
  dim: int
  heads: int
  mlp_dim: int

  @nn.compact
  def __call__(self, q, ctx):
    h = nn.LayerNorm(name="ln_self")(q)
    q = q + nn.MultiHeadDotProductAttention(self.heads, qkv_features=self.dim, name="self_attn")(
      h, h
    )
    h = nn.LayerNorm(name="ln_cross")(q)
    c = nn.LayerNorm(name="ln_ctx")(ctx)
    q = q + nn.MultiHeadDotProductAttention(self.heads, qkv_features=self.dim, name="cross_attn")(
      h, c
    )
    h = nn.LayerNorm(name="ln_mlp")(q)
    h = nn.Dense(self.mlp_dim, name="mlp0")(h)
    return q + nn.Dense(self.dim, name="mlp1")(nn.gelu(h))


class Predictor(nn.Module):
  """obs_tokens (B, n_obs, F), prev_chunk (B, H, A) normalised -> chunk (B, H, A)."""

  action_dim: int
  dim: int = 128
  heads: int = 4
  blocks: int = 2
  mlp_dim: int = 256
  residual: bool = False
  shift: int = 0

  @nn.compact
  def __call__(self, obs_tokens, prev_chunk):
    b, h, _ = prev_chunk.shape
    # the inputs' dtype is the compute dtype (bfloat16 for bf16 inference)
    pos = sinusoidal_embedding(jnp.arange(h), self.dim)[None].astype(prev_chunk.dtype)
    act = nn.Dense(self.dim, name="embed_action")(prev_chunk) + pos
    n_obs = obs_tokens.shape[1]
    obs = nn.Dense(self.dim, name="embed_obs")(obs_tokens)
    obs = obs + self.param("obs_pos", nn.initializers.normal(0.02), (1, n_obs, self.dim))
    ctx = jnp.concatenate([obs, act], axis=1)
    q = act
    for i in range(self.blocks):
      q = Block(self.dim, self.heads, self.mlp_dim, name=f"block{i}")(q, ctx)
    out = nn.Dense(self.action_dim, name="out")(nn.LayerNorm(name="ln_out")(q))
    return shift_chunk(prev_chunk, self.shift) + out if self.residual else out


def shift_chunk(chunk, shift: int):
  """chunk[:, p + shift] at position p, the last action repeated past the end."""
  if shift <= 0:
    return chunk
  h = chunk.shape[1]
  idx = jnp.minimum(jnp.arange(h) + shift, h - 1)
  return chunk[:, idx]
