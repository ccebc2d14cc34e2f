"""Run an exported jaxpolicy policy with nothing but `jax` and `numpy`.

    from jaxpolicy.exported import load_exported   # with only the folder: sys.path.insert(0,
    policy = load_exported(DIR)                    #   DIR); from jaxpolicy_loader import ...
    state = policy.initial_state(batch=1)
    actions, state = policy.act(obs_history, state, rng=0)   # (B, n_action_steps, A)
    chunk, state = policy.chunk(obs_history, state, rng=1)   # (B, span, A): all of them

This module imports no other part of jaxpolicy: the artifact carries it as
`jaxpolicy_loader.py`. What the artifact holds, and its formats: docs/robot.md, "Export".
"""

from __future__ import annotations

import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import export as jax_export

FORMAT_VERSION = 2
READS = (1, 2)  # format 1: the program returned n_action_steps actions, not the span
FILES = ("act.jaxexport", "initial_state.jaxexport", "params.npz")


class ExportError(ValueError):
  """A missing, corrupt or incompatible artifact, or input it cannot take."""


def sha256_of(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def read_manifest(directory: str) -> dict:
  path = os.path.join(directory, "manifest.json")
  if not os.path.exists(path):
    raise ExportError(
      f"{directory} holds no exported policy (no manifest.json); write one "
      f"with python -m launch.export"
    )
  try:
    with open(path) as f:
      manifest = json.load(f)
  except ValueError as e:
    raise ExportError(f"{path} is not valid JSON ({e}): the artifact is corrupt") from None
  version = manifest.get("format_version")
  if version not in READS:
    raise ExportError(
      f"{path} has format_version {version!r}; this loader reads versions "
      f"{', '.join(map(str, READS))}. Export the policy again with this "
      f"jaxpolicy, or load it with the jaxpolicy_loader.py written beside it"
    )
  return manifest


class ExportedPolicy:
  """An exported policy: `act(obs_history, state, rng) -> (actions, state)`, and
  `chunk(...)` -> (all `span` actions, state) for asynchronous execution."""

  def __init__(self, directory: str):
    self.directory = directory
    self.manifest = m = read_manifest(directory)
    for name in FILES:
      path = os.path.join(directory, name)
      if not os.path.exists(path):
        raise ExportError(f"artifact {directory} lacks {name}; export it again")
      want = m["sha256"].get(name)
      if want != sha256_of(path):
        raise ExportError(
          f"artifact {directory}: {name} does not match its checksum in "
          f"manifest.json (corrupt or edited); export it again"
        )
    try:
      self._act = jax_export.deserialize(_read(os.path.join(directory, "act.jaxexport")))
      self._init = jax_export.deserialize(_read(os.path.join(directory, "initial_state.jaxexport")))
    except Exception as e:  # flatbuffers / MLIR raise several types on bad bytes
      raise ExportError(f"artifact {directory}: cannot read its programs ({e})") from None
    with np.load(os.path.join(directory, "params.npz"), allow_pickle=False) as z:
      self._params = [jnp.asarray(z[f"p{i:05d}"]) for i in range(len(z.files))]
    self.obs_shapes = {k: tuple(v) for k, v in m["obs_shapes"].items()}
    # artifacts written before camera policies take every observation as float32
    self.obs_dtypes = {
      k: np.dtype(m.get("obs_dtypes", {}).get(k, "float32")) for k in self.obs_shapes
    }
    self.n_obs_steps = int(m["n_obs_steps"])
    self.n_action_steps = int(m["n_action_steps"])
    self.action_dim = int(m["action_dim"])
    self.nfe = int(m["nfe"])
    self.format_version = int(m["format_version"])
    self.span = int(m["span"]) if self.format_version >= 2 else None
    self.name = m["policy"]
    self._act_jit = jax.jit(self._act.call)
    self._init_jit = jax.jit(self._init.call)

  def initial_state(self, batch: int = 1):
    """The sampler state of `batch` new episodes (an empty tuple for stateless policies)."""
    return self._init_jit(jnp.zeros((int(batch),), jnp.int32))

  def check_obs(self, obs: dict) -> None:
    if set(obs) != set(self.obs_shapes):
      raise ExportError(
        f"the exported policy takes observation keys {sorted(self.obs_shapes)}, got {sorted(obs)}"
      )
    for k, shape in self.obs_shapes.items():
      got = tuple(np.shape(obs[k]))
      want = (self.n_obs_steps,) + shape
      if self.obs_dtypes[k] == np.uint8:
        _check_frames(
          k,
          got,
          np.asarray(obs[k]).dtype if not hasattr(obs[k], "dtype") else np.dtype(obs[k].dtype),
          shape,
        )
      if got[1:] != want or len(got) != len(want) + 1:
        raise ExportError(
          f"observation {k!r} must have shape (batch, "
          f"{', '.join(map(str, want))}) (n_obs_steps={self.n_obs_steps}), "
          f"got {got}"
        )

  def act(self, obs_history: dict, state, rng=0):
    """obs_history: {key: (B, n_obs_steps, ...)} raw observations, oldest first; state: from
    `initial_state` or the previous call; rng: an int seed or a jax PRNG key. Returns the
    (B, n_action_steps, action_dim) actions to execute, in the robot's units, and the state
    for the next call."""
    actions, state = self._call(obs_history, state, rng)
    return actions[:, : self.n_action_steps], state

  def chunk(self, obs_history: dict, state, rng=0):
    """As `act`, but all (B, span, action_dim) actions from the first executed one to the
    horizon's end (the first n_action_steps are `act`'s): what asynchronous execution needs."""
    if self.span is None:
      raise ExportError(
        f"artifact {self.directory} is format {self.format_version}, whose "
        f"program returns only the executed actions; export it again for chunk()"
      )
    return self._call(obs_history, state, rng)

  def _call(self, obs_history: dict, state, rng):
    self.check_obs(obs_history)
    key = jax.random.PRNGKey(rng) if isinstance(rng, (int, np.integer)) else rng
    obs = {k: jnp.asarray(v, self.obs_dtypes[k]) for k, v in obs_history.items()}
    actions, state = self._act_jit(self._params, obs, state, key)
    return np.asarray(actions), state


def _check_frames(key: str, got: tuple, dtype, shape: tuple) -> None:
  """Camera frames must be uint8 and channel-last (H, W, 3): one line for each fault."""
  if dtype != np.uint8:
    raise ExportError(
      f"observation {key!r} must be uint8 camera frames (values 0-255), got "
      f"{dtype}; pass the camera's raw frames (the policy scales them)"
    )
  if got[-3:] == (shape[2],) + tuple(shape[:2]) and tuple(got[-3:]) != tuple(shape):
    raise ExportError(
      f"observation {key!r} has shape {got}: channel-first frames; give "
      f"channel-last (..., {', '.join(map(str, shape))}) frames, e.g. "
      f"np.moveaxis(frames, -3, -1)"
    )


def _read(path: str) -> bytearray:
  with open(path, "rb") as f:
    return bytearray(f.read())


def load_exported(directory: str) -> ExportedPolicy:
  """The policy exported to `directory` (see the module docstring)."""
  return ExportedPolicy(directory)
