"""TrainState with EMA weights, optimisers and the diffusers-style EMA decay."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
  """flax TrainState plus an EMA copy of the params (None when EMA is off)."""

  ema_params: Any = None


class Scheduled(NamedTuple):
  """An optax transformation that also gives its learning rate at each of its update counts
  (the run's logs read it: `learning_rates`)."""

  init: Callable
  update: Callable
  schedule: Callable


def make_optimizer(
  lr: float,
  total_steps: int,
  warmup_steps: int,
  weight_decay: float,
  b1: float = 0.95,
  b2: float = 0.999,
  grad_clip: float | None = None,
):
  """AdamW with linear warm-up then cosine decay to 0 (diffusers' 'cosine' scheduler).

  The schedule advances with this optimiser's own update count.
  """
  warmup_steps = max(0, min(warmup_steps, total_steps - 1))
  sched = optax.warmup_cosine_decay_schedule(0.0, lr, warmup_steps, max(total_steps, 1), 0.0)
  tx = optax.adamw(sched, b1=b1, b2=b2, eps=1e-8, weight_decay=weight_decay)
  if grad_clip:
    tx = optax.chain(optax.clip_by_global_norm(grad_clip), tx)
  return Scheduled(tx.init, tx.update, sched)


def learning_rates(state) -> dict[str, float]:
  """{path of each TrainState in `state` ("model", "gen", ...): the learning rate its latest
  update used}, for the optimisers `make_optimizer` built (the schedule at the update count
  before the last, as optax's AdamW evaluates it; 0 before any update)."""
  out = {}
  is_ts = lambda x: isinstance(x, TrainState)
  for path, leaf in jax.tree_util.tree_leaves_with_path(state, is_leaf=is_ts):
    if is_ts(leaf) and isinstance(leaf.tx, Scheduled):
      count = int(jax.device_get(leaf.step))
      name = jax.tree_util.keystr(path, simple=True, separator="/") or "model"
      out[name] = float(leaf.tx.schedule(count - 1)) if count > 0 else 0.0
  return out


def ema_decay(step, power: float = 0.75, max_value: float = 0.9999, inv_gamma: float = 1.0):
  """diffusers/DP `EMAModel` decay after `step` optimisation steps (0 for the first)."""
  s = jnp.maximum(jnp.asarray(step, jnp.float32) - 1.0, 0.0)
  d = 1.0 - (1.0 + s / inv_gamma) ** (-power)
  return jnp.where(s <= 0, 0.0, jnp.clip(d, 0.0, max_value))


def update_ema(ema, params, decay):
  return jax.tree_util.tree_map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)


def copy(tree):
  """A copy of a params tree in new buffers (a student starts from the teacher's weights
  without sharing them, so donating one never invalidates the other)."""
  return jax.tree_util.tree_map(jnp.array, tree)


def create(apply_fn, params, tx, ema: bool) -> TrainState:
  ema_params = copy(params) if ema else None
  state = TrainState.create(apply_fn=apply_fn, params=params, tx=tx, ema_params=ema_params)
  return state.replace(step=jnp.zeros((), jnp.int32))  # an array leaf, as after a step


def apply_update(state: TrainState, grads, ema_power: float = 0.75, ema_max: float = 0.9999):
  """Optimiser step, then the EMA with the decay for the new step count."""
  state = state.apply_gradients(grads=grads)
  if state.ema_params is not None:
    state = state.replace(
      ema_params=update_ema(
        state.ema_params, state.params, ema_decay(state.step, ema_power, ema_max)
      )
    )
  return state
