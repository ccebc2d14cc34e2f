"""Export a policy as a self-contained artifact that runs with only jax and numpy.

    export_run(workdir, "sdm_1step", out_dir)      # a saved run's policy
    export_policy(policy, config, out_dir)         # any built Policy

The artifact, read by `jaxpolicy.exported`: the policy's whole call (raw inputs in, actions
in the robot's units out) as `jax.export` programs with a symbolic batch dimension, lowered
for CPU and CUDA, the weights as plain arrays, a manifest, the loader and the robot runner.
What each file holds: docs/robot.md, "Export".
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
from jax import export as jax_export

from jaxpolicy import execution, exported, robot, runs
from jaxpolicy import obs as obs_lib
from jaxpolicy.envs import fps, pointcloud
from jaxpolicy.policy import input_dtype

PLATFORMS = ("cpu", "cuda")


def _versions() -> dict:
  out = {}
  for pkg in ("jaxpolicy", "jax", "jaxlib", "numpy", "flax"):
    try:
      out[pkg] = importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
      out[pkg] = None
  return out


def _preprocess_fn(config, raw_points: int, num_points: int):
  """(B, T, raw_points, C) raw clouds -> (B, T, num_points, C): crop to the config's box,
  then farthest-point sampling on xyz (the sensor's own steps)."""
  spec = pointcloud.sensor_spec(config)
  low, high = spec.crop_low, spec.crop_high

  def one(points):
    mask = pointcloud.crop_mask(points[:, :3], low, high)
    return fps.sample_points(points, num_points, mask)[0]

  return jax.vmap(jax.vmap(one))


def export_policy(
  policy, config, out_dir: str, raw_points: int = 0, platforms=PLATFORMS, extra: dict | None = None
) -> dict:
  """Writes `policy` (a jaxpolicy.policy.Policy) to `out_dir`; returns the manifest.

  raw_points > 0 (point-cloud policies): the artifact takes raw clouds of that many points
  and crops and samples them inside the program.
  """
  leaves, treedef = jax.tree_util.tree_flatten(policy.params)
  leaves = [np.asarray(x) for x in leaves]
  n_obs = policy.nets.n_obs_steps
  obs_shapes = {k: tuple(v) for k, v in policy.obs_shapes.items()}
  preprocess = None
  if raw_points:
    if "point_cloud" not in obs_shapes:
      raise ValueError(
        f"raw_points is for point-cloud policies; {policy.name} observes {sorted(obs_shapes)}"
      )
    n_pts, channels = obs_shapes["point_cloud"]
    if raw_points < n_pts:
      raise ValueError(f"raw_points ({raw_points}) must be at least the policy's {n_pts} points")
    preprocess = _preprocess_fn(config, raw_points, n_pts)
    obs_shapes["point_cloud"] = (raw_points, channels)

  def act(flat_params, obs, carry, rng):
    params = jax.tree_util.tree_unflatten(treedef, flat_params)
    if preprocess is not None:
      obs = dict(obs, point_cloud=preprocess(obs["point_cloud"]))
    chunk, carry = policy.apply(params, obs, carry, rng)
    return policy.executable(chunk), carry  # (B, span, A): async execution needs them all

  def initial_state(batch_marker):
    return policy.init_carry(batch_marker.shape[0])

  (b,) = jax_export.symbolic_shape("b")
  S = jax.ShapeDtypeStruct
  marker = S((b,), jnp.int32)
  carry = jax.eval_shape(initial_state, marker)
  obs = {k: S((b, n_obs) + s, input_dtype(k)) for k, s in obs_shapes.items()}
  params = [S(x.shape, x.dtype) for x in leaves]
  rng = S((2,), jnp.uint32)
  act_exp = jax_export.export(jax.jit(act), platforms=platforms)(params, obs, carry, rng)
  init_exp = jax_export.export(jax.jit(initial_state), platforms=platforms)(marker)

  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "act.jaxexport"), "wb") as f:
    f.write(act_exp.serialize())
  with open(os.path.join(out_dir, "initial_state.jaxexport"), "wb") as f:
    f.write(init_exp.serialize())
  with open(os.path.join(out_dir, "params.npz"), "wb") as f:
    np.savez(f, **{f"p{i:05d}": x for i, x in enumerate(leaves)})
  shutil.copyfile(exported.__file__, os.path.join(out_dir, "jaxpolicy_loader.py"))
  for module, copy in ((robot, "jaxpolicy_robot.py"), (execution, "jaxpolicy_execution.py")):
    shutil.copyfile(module.__file__, os.path.join(out_dir, copy))  # the runner, jax + numpy
  manifest = {
    "format_version": exported.FORMAT_VERSION,
    "policy": policy.name,
    "method": config.method,
    "obs_shapes": {k: list(v) for k, v in obs_shapes.items()},
    "obs_dtypes": {k: np.dtype(input_dtype(k)).name for k in obs_shapes},
    "n_obs_steps": n_obs,
    "action_dim": int(policy.nets.action_dim),
    "n_action_steps": int(policy.n_action_steps),
    "horizon": int(policy.nets.horizon),
    "span": int(policy.span),
    "nfe": int(policy.nfe),
    "nfe_first_call": int(policy.nfe_first or policy.nfe),
    "stateful": bool(jax.tree_util.tree_leaves(carry)),
    "dtype": policy.nets.compute_dtype,
    "platforms": list(platforms),
    "point_cloud": None
    if preprocess is None
    else {
      "raw_points": raw_points,
      "num_points": policy.obs_shapes["point_cloud"][0],
      "crop_low": list(pointcloud.sensor_spec(config).crop_low),
      "crop_high": list(pointcloud.sensor_spec(config).crop_high),
      "sampling": "farthest-point sampling on xyz inside the crop box (world frame)",
    },
    "images": None
    if not policy.nets.image_crop
    else {
      "keys": [k for k in obs_shapes if obs_lib.is_image_key(k)],
      "crop": list(policy.nets.image_crop),
      "scaling": "ImageNet mean/std" if policy.nets.imagenet_norm else "[0, 255] -> [-1, 1]",
      "preprocessing": "centre crop, then scaling, inside act",
    },
    "params": {"count": len(leaves), "bytes": int(sum(x.nbytes for x in leaves))},
    "config": config.to_dict(),
    "versions": _versions(),
    **(extra or {}),
  }
  manifest["sha256"] = {
    name: exported.sha256_of(os.path.join(out_dir, name)) for name in exported.FILES
  }
  with open(os.path.join(out_dir, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=2, default=str)
  return manifest


def export_run(
  workdir: str,
  name: str,
  out_dir: str,
  raw_points: int = 0,
  step=None,
  dtype: str = "float32",
  platforms=PLATFORMS,
) -> dict:
  """Exports the policy `name` of the run saved in `workdir` (its latest step by default)."""
  run = runs.restore_run(workdir, step)
  policies = run.policies(dtype=dtype)
  if name not in policies:
    raise ValueError(f"run {workdir} has policies {sorted(policies)}, not {name!r}")
  return export_policy(
    policies[name],
    run.config,
    out_dir,
    raw_points,
    platforms,
    extra={"workdir": os.path.abspath(workdir), "step": run.step},
  )
