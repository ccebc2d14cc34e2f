"""All checkpoint I/O, through orbax's CheckpointManager (no pickles).

A checkpoint step holds one `StandardSave` item per field of a method's state (one per
TrainState, plus frozen params) and a `meta` JSON item (config, normaliser, shapes).
Restoring uses an abstract target built on the current devices, so a run saved on a GPU
restores on a CPU.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  pass


def _fields(state):
  return [f.name for f in dataclasses.fields(state)]


def _item(x):
  """StandardSave takes pytrees, not bare arrays: wrap a bare array (e.g. a step counter)."""
  return {"value": x} if hasattr(x, "shape") else x


def _unitem(x, like):
  return x["value"] if hasattr(like, "shape") else x


def _abstract(tree):
  """Shape/dtype/sharding targets; unsharded leaves go to the first local device."""
  default = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

  def leaf(x):
    sharding = getattr(x, "sharding", None) or default
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

  return jax.tree_util.tree_map(leaf, tree)


class Checkpointer:
  def __init__(self, workdir: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self._mngr = None
    self._max_to_keep = max_to_keep

  @property
  def manager(self) -> ocp.CheckpointManager:
    if self._mngr is None:
      self._mngr = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
          max_to_keep=self._max_to_keep, create=True, enable_async_checkpointing=False
        ),
      )
    return self._mngr

  def latest_step(self) -> int | None:
    if not os.path.isdir(self.directory):
      return None
    return self.manager.latest_step()

  def save(self, step: int, state, meta: dict) -> None:
    items = {
      name: ocp.args.StandardSave(_item(getattr(state, name)))
      for name in _fields(state)
      if getattr(state, name) is not None
    }
    items["meta"] = ocp.args.JsonSave(meta)
    self.manager.save(int(step), args=ocp.args.Composite(**items), force=True)
    self.manager.wait_until_finished()

  def restore_meta(self, step: int | None = None) -> dict:
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    try:
      out = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
      return dict(out["meta"])
    except Exception as e:  # orbax raises several types for damaged steps
      raise CheckpointError(
        f"checkpoint step {step} in {self.directory} is corrupt or "
        f"incomplete ({type(e).__name__}: {e}). Delete "
        f"{os.path.join(self.directory, str(step))} to fall back to an "
        f"earlier step, or start a new --workdir."
      ) from e

  def restore(self, target_state, step: int | None = None):
    """Restores into the structure (and devices) of `target_state`; returns (state, meta)."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    names = [n for n in _fields(target_state) if getattr(target_state, n) is not None]
    items = {n: ocp.args.StandardRestore(_abstract(_item(getattr(target_state, n)))) for n in names}
    items["meta"] = ocp.args.JsonRestore()
    try:
      out = self.manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:
      raise CheckpointError(
        f"checkpoint step {step} in {self.directory} is corrupt or does "
        f"not match this config ({type(e).__name__}: {e}). Delete "
        f"{os.path.join(self.directory, str(step))} or start a new "
        f"--workdir."
      ) from e
    state = target_state.replace(**{n: _unitem(out[n], getattr(target_state, n)) for n in names})
    return state, dict(out["meta"])

  def close(self):
    if self._mngr is not None:
      self._mngr.close()
      self._mngr = None
