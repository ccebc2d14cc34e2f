"""Where an MJX fidelity gap comes from: the model conversion, or MJX's engine.

    python scripts/diagnose_mjx_gap.py conversion --tasks=box-close,disassemble
    python scripts/diagnose_mjx_gap.py conversion --tasks=all --variants=metaworld,converted
    python scripts/diagnose_mjx_gap.py contacts --task=disassemble --episode=0 [--x64]

`conversion` runs MetaWorld's scripted expert on the real MetaWorld env (C MuJoCo, the same
seeded episodes as benchmarks.fidelity) with its model swapped for a partly or fully converted
one (jaxpolicy.suites.metaworld.mjx.convert.STEPS): "metaworld" (unchanged), "converted" (every step, the
model MJX runs), one variant per step ("prisms", "margins", "hulls"), and "finger_meshes": the
converted model with the four finger boxes as 8-vertex meshes and multi-point convex collision
(MJCF multiccd), so that C MuJoCo's box-box collider is not used for the grip. A gap that appears
here points at the conversion, as C MuJoCo's colliders treat it (a hint, not a verdict: on
handle-pull-side the converted model fails here and succeeds in MJX); what does not points at
MJX's own collision and solver.

`contacts` records one expert episode in C MuJoCo on the converted model, loads every state
into MJX (`mjx.forward`, one compile) and compares the accelerations; at the steps where they
differ most it prints, per geom pair, the contact count, summed normal force and deepest
penetration of each engine. `--x64` runs MJX in float64 (tells precision apart from the
collision and solver algorithms). For box-box pairs it adds the exact penetration depth of
the two boxes (separating-axis test in float64 numpy), an independent reference for both.
Both modes print a table and can write JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = {
  "metaworld": (),
  "converted": ("prisms", "margins", "hulls"),
  "prisms": ("prisms",),
  "margins": ("margins",),
  "hulls": ("hulls",),
  "finger_meshes": ("prisms", "margins", "hulls"),
}
FINGER_BOXES = ("leftpad_geom", "rightpad_geom", "leftclaw_it", "rightclaw_it")


def swapped_env(task: str, model):
  """A MetaWorld env whose physics runs `model` (same bodies and geoms, in the same order)."""
  import mujoco  # pylint: disable=g-import-not-at-top

  from jaxpolicy.suites.metaworld import env as mw  # pylint: disable=g-import-not-at-top

  env = mw.make_env(task, seed=0)
  env.model, env.data = model, mujoco.MjData(model)
  return env


def variant_model(task: str, variant: str, max_contact_points: int = 0):
  from jaxpolicy.suites.metaworld.mjx import convert  # pylint: disable=g-import-not-at-top

  if variant == "metaworld":
    return convert.original_model(task)
  if variant == "finger_meshes":
    return _finger_meshes_model(task)
  return convert.convert_model(task, max_contact_points=max_contact_points, steps=VARIANTS[variant])


def _finger_meshes_model(task: str):
  """The converted model with the finger boxes as box-shaped meshes (same pose, same body
  inertia) and MuJoCo's multi-point convex collision on."""
  import mujoco  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from jaxpolicy.suites.metaworld.mjx import convert  # pylint: disable=g-import-not-at-top

  original = convert.original_model(task)
  spec = convert.convert_spec(
    mujoco.MjSpec.from_file(convert.model_path(task)), original, VARIANTS["finger_meshes"]
  )
  corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
  for name in FINGER_BOXES:
    g = original.geom(name)
    geom = spec.geom(name)
    spec.add_mesh(name=f"{name}_mesh", uservert=(corners * g.size).ravel().tolist())
    geom.type, geom.meshname = mujoco.mjtGeom.mjGEOM_MESH, f"{name}_mesh"
    geom.pos, geom.quat = g.pos.copy(), g.quat.copy()
    body_id = int(g.bodyid[0])
    convert.keep_inertia(spec.body(original.body(body_id).name), original, body_id)
  m = convert.set_mocap_welds(spec.compile())
  m.opt.enableflags |= mujoco.mjtEnableBit.mjENBL_MULTICCD
  np.testing.assert_allclose(m.body_mass, original.body_mass)
  return m


def expert_episodes(env, task: str, seed: int, episodes: int):
  """(success (E,), first success step (E,), -1 if none) of MetaWorld's expert on `env`."""
  from jaxpolicy.suites.metaworld.mjx.experts import run_expert_metaworld  # pylint: disable=g-import-not-at-top

  res = run_expert_metaworld(task, seed, episodes, env=env)
  return res["successes"], res["first_success_step"]


def conversion(args) -> list[dict]:
  import numpy as np  # pylint: disable=g-import-not-at-top

  from jaxpolicy.suites import check_task  # pylint: disable=g-import-not-at-top
  from jaxpolicy.suites.metaworld.tasks import TASKS  # pylint: disable=g-import-not-at-top

  tasks = list(TASKS) if args.tasks == "all" else [check_task(t) for t in args.tasks.split(",")]
  variants = args.variants.split(",")
  for v in variants:
    if v not in VARIANTS:
      raise SystemExit(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
  print(f"{'task':<26}" + "".join(f"{v:>22}" for v in variants) + "   (success / median first)")
  rows = []
  for task in tasks:
    row = {"task": task, "episodes": args.episodes}
    cells = []
    for v in variants:
      ok, first = expert_episodes(
        swapped_env(task, variant_model(task, v)), task, args.seed, args.episodes
      )
      med = float(np.median(first[ok])) if ok.any() else None
      row[v] = {
        "success": float(ok.mean()),
        "first_success_median": med,
        "successes": ok.astype(int).tolist(),
      }
      cells.append(f"{ok.mean():.2f} / {'-' if med is None else f'{med:.0f}'}")
    rows.append(row)
    print(f"{task:<26}" + "".join(f"{c:>22}" for c in cells), flush=True)
    _write(args.out, rows)
  return rows


def box_overlap(pos1, mat1, size1, pos2, mat2, size2) -> float:
  """Penetration depth of two oriented boxes (< 0: separated by at least that much), from the
  separating-axis test over the 15 candidate axes (float64)."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  r1, r2 = np.asarray(mat1, float).reshape(3, 3), np.asarray(mat2, float).reshape(3, 3)
  axes = [r1[:, i] for i in range(3)] + [r2[:, i] for i in range(3)]
  axes += [np.cross(r1[:, i], r2[:, j]) for i in range(3) for j in range(3)]
  delta = np.asarray(pos2, float) - np.asarray(pos1, float)
  depth = np.inf
  for a in axes:
    norm = np.linalg.norm(a)
    if norm < 1e-9:  # parallel edges: that axis is one of the face axes already
      continue
    a = a / norm
    reach = np.abs(r1.T @ a) @ np.asarray(size1) + np.abs(r2.T @ a) @ np.asarray(size2)
    depth = min(depth, reach - abs(delta @ a))
  return float(depth)


def _pairs_c(m, d, name) -> dict:
  import mujoco  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  out = {}
  force = np.zeros(6)
  for i in range(d.ncon):
    c = d.contact[i]
    if c.efc_address < 0:
      continue
    mujoco.mj_contactForce(m, d, i, force)
    _add(out, (name(c.geom1), name(c.geom2)), force[0], c.dist)
  return out


def _pairs_mjx(m, dx, name) -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top

  con = dx.contact
  dist, geom = np.asarray(con.dist), np.asarray(con.geom)
  addr, dim = np.asarray(con.efc_address), np.asarray(con.dim)
  efc = np.asarray(dx.efc_force)
  elliptic = m.opt.cone == 1  # mjCONE_ELLIPTIC: the first row is the normal force
  out = {}
  for i in np.nonzero((dist < 0) & (addr >= 0))[0]:
    n = efc[addr[i]] if elliptic or dim[i] == 1 else efc[addr[i] : addr[i] + 2 * (dim[i] - 1)].sum()
    _add(out, (name(geom[i, 0]), name(geom[i, 1])), n, dist[i])
  return out


def _add(out, pair, normal, dist):
  e = out.setdefault(tuple(sorted(pair)), {"n": 0, "normal_force": 0.0, "min_dist": 0.0})
  e["n"] += 1
  e["normal_force"] += float(normal)
  e["min_dist"] = min(e["min_dist"], float(dist))


def contacts(args) -> dict:
  import jax  # pylint: disable=g-import-not-at-top

  if args.x64:
    jax.config.update("jax_enable_x64", True)
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import mujoco  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from mujoco import mjx  # pylint: disable=g-import-not-at-top

  from jaxpolicy.suites.metaworld import env as mw  # pylint: disable=g-import-not-at-top
  from jaxpolicy.suites.metaworld.mjx.env import MAX_CONTACT_POINTS  # pylint: disable=g-import-not-at-top
  from jaxpolicy.suites.metaworld.mjx.resets import evaluation_seeds  # pylint: disable=g-import-not-at-top
  from jaxpolicy.suites import check_task  # pylint: disable=g-import-not-at-top

  task = check_task(args.task)
  ncp = MAX_CONTACT_POINTS if args.max_contact_points is None else args.max_contact_points
  m = variant_model(task, "converted", ncp)
  env = swapped_env(task, m)
  policy = mw.expert_policy(task)
  env.seed(evaluation_seeds(args.seed, args.episode + 1)[args.episode])
  obs = mw.reset(env)
  keys = ("qpos", "qvel", "mocap_pos", "mocap_quat", "ctrl", "qacc_warmstart")
  states, success_step = [], None
  for t in range(200):
    states.append(({k: getattr(env.data, k).copy() for k in keys}, m.body_pos.copy()))
    obs, ok = mw.step(env, mw.expert_action(policy, obs.copy()))
    if ok:
      success_step = t
      break
  dtype = jnp.float64 if args.x64 else jnp.float32
  mx = mjx.put_model(m)
  data0 = mjx.make_data(mx)
  forward = jax.jit(
    lambda body_pos, s: mjx.forward(mx.replace(body_pos=body_pos), data0.replace(**s))
  )
  name = lambda g: m.geom(int(g)).name or f"#{int(g)}:{m.body(m.geom_bodyid[int(g)]).name}"
  d = mujoco.MjData(m)
  t0 = time.perf_counter()
  diffs, results, boxes = [], [], []
  ids = {name(g): g for g in range(m.ngeom)}
  for s, body_pos in states:
    for k in keys:
      getattr(d, k)[:] = s[k]
    m.body_pos[:] = body_pos
    mujoco.mj_forward(m, d)
    dx = forward(jnp.asarray(body_pos, dtype), {k: jnp.asarray(v, dtype) for k, v in s.items()})
    diffs.append(float(np.abs(np.asarray(dx.qacc) - d.qacc).max()))
    results.append((_pairs_c(m, d, name), _pairs_mjx(m, dx, name)))
    boxes.append({})
    for pair in set(results[-1][0]) | set(results[-1][1]):
      g1, g2 = (ids[n] for n in pair)
      if (
        m.geom_type[g1] == mujoco.mjtGeom.mjGEOM_BOX
        and m.geom_type[g2] == mujoco.mjtGeom.mjGEOM_BOX
      ):
        boxes[-1][pair] = box_overlap(
          d.geom_xpos[g1],
          d.geom_xmat[g1],
          m.geom_size[g1],
          d.geom_xpos[g2],
          d.geom_xmat[g2],
          m.geom_size[g2],
        )
  wall = time.perf_counter() - t0
  diffs = np.asarray(diffs)
  worst = sorted(np.argsort(diffs)[-args.top :].tolist())
  print(
    f"{task} episode {args.episode}: {len(states)} states (C MuJoCo expert success at step "
    f"{success_step}), MJX {'float64' if args.x64 else 'float32'}, {wall:.0f} s incl. compile"
  )
  print(
    f"max |qacc MJX - qacc C| per state: median {np.median(diffs):.3g}, "
    f"90th pct {np.quantile(diffs, 0.9):.3g}, max {diffs.max():.3g}"
  )
  report = {
    "task": task,
    "episode": args.episode,
    "x64": bool(args.x64),
    "max_contact_points": ncp,
    "success_step": success_step,
    "qacc_max_abs_diff": diffs.tolist(),
    "worst_steps": [],
  }
  for t in worst:
    c_pairs, x_pairs = results[t]
    print(f"step {t}: max qacc diff {diffs[t]:.3g}")
    print(
      f"  {'geom pair':<46}{'C: n':>6}{'normal N':>10}{'min dist':>10}"
      f"{'MJX: n':>8}{'normal N':>10}{'min dist':>10}{'exact':>10}"
    )
    empty = {"n": 0, "normal_force": 0.0, "min_dist": 0.0}
    exact = {}
    for pair in sorted(set(c_pairs) | set(x_pairs)):
      c, x = c_pairs.get(pair, empty), x_pairs.get(pair, empty)
      e = boxes[t].get(pair)
      if e is not None:
        exact[" - ".join(pair)] = e
      print(
        f"  {pair[0] + ' - ' + pair[1]:<46}{c['n']:>6d}{c['normal_force']:>10.2f}"
        f"{c['min_dist']:>10.4f}{x['n']:>8d}{x['normal_force']:>10.2f}{x['min_dist']:>10.4f}"
        f"{'-' if e is None else format(-e, '.4f'):>10}"
      )
    report["worst_steps"].append(
      {
        "step": t,
        "c": {" - ".join(k): v for k, v in c_pairs.items()},
        "mjx": {" - ".join(k): v for k, v in x_pairs.items()},
        "exact_box_box_dist": {k: -v for k, v in exact.items()},
      }
    )
  _write(args.out, report)
  return report


def _write(path, obj):
  if path:
    with open(path, "w") as f:
      json.dump(obj, f, indent=1)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  sub = p.add_subparsers(dest="mode", required=True)
  c = sub.add_parser("conversion", help="expert success in C MuJoCo per conversion variant")
  c.add_argument("--tasks", default="box-close,disassemble", help="comma-separated, or 'all'")
  c.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
  c.add_argument("--episodes", type=int, default=20)
  c.add_argument("--seed", type=int, default=0)
  c.add_argument("--out", default=None)
  k = sub.add_parser("contacts", help="C MuJoCo vs MJX contacts on identical states")
  k.add_argument("--task", default="disassemble")
  k.add_argument("--episode", type=int, default=0, help="index into benchmarks.fidelity's episodes")
  k.add_argument("--seed", type=int, default=0)
  k.add_argument("--top", type=int, default=3, help="how many of the worst states to print")
  k.add_argument("--max_contact_points", type=int, default=None, help="default: the env's")
  k.add_argument("--x64", action="store_true", help="run MJX in float64")
  k.add_argument("--out", default=None)
  args = p.parse_args()
  os.environ.setdefault("MUJOCO_GL", "egl")
  if args.mode == "contacts":
    from launch.common import set_mjx_cpu_flag  # pylint: disable=g-import-not-at-top

    set_mjx_cpu_flag()
  import warnings  # pylint: disable=g-import-not-at-top

  warnings.filterwarnings("ignore", category=UserWarning)
  (conversion if args.mode == "conversion" else contacts)(args)


if __name__ == "__main__":
  main()
