"""MJX MetaWorld: all 50 task models convert; observations and success flags agree with
MetaWorld's own `_get_obs` / `evaluate_state` on identical states; a short batched rollout
with a policy inside the compiled program returns the evaluator's result dict.

Short horizons and few tasks: MJX compiles for tens of seconds per task on a 2-core CPU.
MJX on CPU needs XLA_FLAGS=--xla_cpu_use_fusion_emitters=false before JAX starts (~35x
slower steps without it); tests/conftest.py sets it.
"""

import dataclasses
import importlib
import os
import sys

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from configs import sdm as sdm_configs
from jaxpolicy import evaluation
from jaxpolicy import nets as nets_lib
from jaxpolicy.data.normalizer import MinMax, Normalizer
from jaxpolicy import suites
from jaxpolicy.suites.metaworld import env as mw
from jaxpolicy.envs.mjx import evaluator
from jaxpolicy.suites.metaworld.mjx import convert, tasks
from jaxpolicy.suites.metaworld.mjx.env import MJXEnv
from jaxpolicy.suites.metaworld.mjx.experts import record_metaworld, run_expert_metaworld
from jaxpolicy.suites.metaworld.mjx.resets import ResetBank, evaluation_resets
from jaxpolicy.suites.metaworld.tasks import TASKS
from jaxpolicy.methods import sdm, teacher
from jaxpolicy.policy import build_policy


# MJX's convex-convex collision casts a float64 sentinel above float32's range (harmless)
pytestmark = [
  pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning"),
  pytest.mark.slow,
]  # MJX compiles: minutes on a 2-core CPU, the full tier only


def test_all_50_tasks_convert_keep_inertia_and_load_in_mjx():
  assert len(TASKS) == 50
  for task in TASKS:
    m, o = convert.convert_model(task), convert.original_model(task)
    mjx.put_model(m)  # raises on anything MJX does not support
    assert (m.nbody, m.nq, m.nv, m.nu, m.nsite) == (o.nbody, o.nq, o.nv, o.nu, o.nsite)
    for field in ("body_mass", "body_inertia", "body_ipos", "body_iquat", "body_pos"):
      np.testing.assert_allclose(
        getattr(m, field), getattr(o, field), atol=1e-12, err_msg=f"{task}: {field}"
      )
    collidable = (m.geom_contype | m.geom_conaffinity) > 0
    assert not np.any(collidable & (m.geom_type == mujoco.mjtGeom.mjGEOM_CYLINDER)), task
    assert np.all(m.geom_margin == 0) and np.all(m.geom_gap == 0), task
    hulls = m.geom_dataid[collidable & (m.geom_type == mujoco.mjtGeom.mjGEOM_MESH)]
    for mesh in set(hulls.tolist()):
      # mesh_graph: [numvert, numface, ...] of the convex hull used for collisions
      assert m.mesh_graphadr[mesh] >= 0, task
      assert m.mesh_graph[m.mesh_graphadr[mesh]] <= convert.MAX_HULL_VERTICES, task
    welds = m.eq_type == mujoco.mjtEq.mjEQ_WELD
    np.testing.assert_array_equal(
      m.eq_data[welds, :11], np.tile(convert.WELD_DATA, (welds.sum(), 1))
    )


def test_gap_diagnostics_partial_conversions_model_swap_and_exact_box_depth():
  task = "disassemble"  # cylinders, finger margins and collidable meshes
  o = convert.original_model(task)
  cyl = lambda m: int(np.sum(m.geom_type == mujoco.mjtGeom.mjGEOM_CYLINDER))
  only_margins = convert.convert_model(task, steps=("margins",))
  assert cyl(only_margins) == cyl(o) and np.all(only_margins.geom_margin == 0)
  only_prisms = convert.convert_model(task, steps=("prisms",))
  assert cyl(only_prisms) < cyl(o)
  np.testing.assert_array_equal(only_prisms.geom_margin, o.geom_margin)
  np.testing.assert_array_equal(only_prisms.body_margin, o.body_margin)
  none = convert.convert_model(task, steps=())
  for field in ("geom_type", "geom_size", "geom_margin", "body_margin", "mesh_vert"):
    np.testing.assert_array_equal(getattr(none, field), getattr(o, field), err_msg=field)
  with pytest.raises(ValueError, match="unknown conversion steps"):
    convert.convert_model(task, steps=("prism",))
  # the diagnostic's model swap keeps MetaWorld's behaviour: with the original model the
  # expert's episodes are MetaWorld's own, step for step
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "scripts"))
  diag = importlib.import_module("diagnose_mjx_gap")
  ok, first = diag.expert_episodes(
    diag.swapped_env("reach", convert.original_model("reach")), "reach", seed=0, episodes=3
  )
  ref = run_expert_metaworld("reach", 0, 3)
  np.testing.assert_array_equal(first, ref["first_success_step"])
  assert ok.all()
  fm = diag.variant_model("disassemble", "finger_meshes")
  for name in diag.FINGER_BOXES:
    assert fm.geom(name).type[0] == mujoco.mjtGeom.mjGEOM_MESH
    np.testing.assert_allclose(
      np.sort(fm.geom_aabb[fm.geom(name).id, 3:]),  # a box mesh
      np.sort(o.geom_size[o.geom(name).id]),
      rtol=1e-6,
    )
  assert fm.opt.enableflags & mujoco.mjtEnableBit.mjENBL_MULTICCD
  np.testing.assert_allclose(fm.body_inertia, o.body_inertia)
  # its exact box-box depth (the reference the contact tables are checked against)
  eye, ones = np.eye(3), np.ones(3)
  c, s_ = np.cos(np.pi / 4), np.sin(np.pi / 4)
  rot = np.array([[c, -s_, 0.0], [s_, c, 0.0], [0.0, 0.0, 1.0]])
  assert diag.box_overlap([0, 0, 0], eye, ones, [1.9, 0, 0], eye, ones) == pytest.approx(0.1)
  assert diag.box_overlap([0, 0, 0], eye, ones, [2.3, 0, 0], rot, ones) == pytest.approx(
    1 + np.sqrt(2) - 2.3
  )
  assert diag.box_overlap([0, 0, 0], eye, ones, [3.0, 0, 0], rot, ones) < 0


def test_prism_preserves_cross_section_area():
  r, h = 0.02, 0.05
  v = convert.prism_vertices(r, h)
  ring = v[: convert.PRISM_SIDES, :2]
  x, y = ring[:, 0], ring[:, 1]
  area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
  np.testing.assert_allclose(area, np.pi * r * r, rtol=1e-12)
  np.testing.assert_allclose(np.unique(v[:, 2]), [-h, h])


def test_quaternions_follow_scipy_convention():
  from scipy.spatial.transform import Rotation  # pylint: disable=g-import-not-at-top

  rot = Rotation.random(200, random_state=0)
  # (exact ties between branches, e.g. a 90-degree turn about one axis, can pick the other
  # sign in float32: both are the same rotation)
  mats = np.concatenate(
    [
      rot.as_matrix(),
      np.eye(3)[None],
      Rotation.from_euler("x", [[179.0], [-100.0]], degrees=True).as_matrix(),
    ]
  )
  got = jax.jit(jax.vmap(tasks.quat_from_matrix))(mats.astype(np.float32))
  np.testing.assert_allclose(np.asarray(got), Rotation.from_matrix(mats).as_quat(), atol=1e-5)


def _concat(a: ResetBank, b: ResetBank) -> ResetBank:
  return ResetBank(
    **{k: np.concatenate([getattr(a, k), getattr(b, k)]) for k in ResetBank.__dataclass_fields__}
  )


# a fixture moved through body_pos (drawer-open); a free object read through a converted
# geom whose mesh MuJoCo re-oriented, with scipy-convention quaternions (reach-wall); two
# objects and a joint-angle predicate (hammer). All 50 tasks were checked this way.
@pytest.mark.parametrize("task", ["drawer-open", "reach-wall", "hammer"])
def test_obs_and_success_match_metaworld_on_identical_states(task):
  rows1, prev1, obs1, succ1 = record_metaworld(task, seed=3, steps=120)
  rows2, prev2, obs2, succ2 = record_metaworld(task, seed=4, steps=40, noise=0.5)
  rows = _concat(rows1, rows2)
  prev, obs, succ = (np.concatenate(x) for x in ((prev1, prev2), (obs1, obs2), (succ1, succ2)))
  assert succ.any() and not succ.all()  # both outcomes are compared
  env = MJXEnv(task, resets=rows.take(np.arange(1)))
  o, s = jax.jit(jax.vmap(env.observe_state))(rows, prev)
  np.testing.assert_allclose(np.asarray(o), obs, atol=2e-5)
  np.testing.assert_array_equal(np.asarray(s), succ)


def test_unbatched_env_api_shapes():
  env = MJXEnv("push-back", num_resets=4)
  state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))  # traced, not compiled
  assert state.obs.shape == (39,) and state.success.dtype == jnp.bool_
  nxt = jax.eval_shape(env.step, state, jax.ShapeDtypeStruct((4,), jnp.float32))
  assert nxt.obs.shape == (39,) and nxt.data.qpos.shape == state.data.qpos.shape
  assert set(nxt.info) == {"target_pos", "body_pos", "site_pos", "steps"}
  assert len(env.resets) == 4


def test_resets_are_metaworlds_evaluation_resets():
  bank = evaluation_resets("drawer-open", seed=2, episodes=3)
  for i in range(3):
    env = mw.make_env("drawer-open", seed=i)
    env.seed(2 * 100_003 + i)  # what the real-MetaWorld evaluator does for episode i
    np.testing.assert_allclose(bank.obs[i], mw.reset(env), atol=1e-6)
    np.testing.assert_allclose(bank.body_pos[i], env.model.body_pos, atol=1e-6)


def test_every_task_has_a_success_predicate_and_backends_are_named():
  assert all(callable(tasks.spec(t).success) for t in TASKS) and len(TASKS) == 50
  assert [t for t in TASKS if tasks.spec(t).needs_forward] == ["stick-push"]
  assert evaluation.resolve_backend("mjx") == "mjx"
  assert evaluation.resolve_backend("auto") == ("cpu" if jax.default_backend() == "cpu" else "mjx")
  assert evaluation.resolve_backend("metaworld") == "cpu"  # the CPU backend's name before suites
  with pytest.raises(ValueError, match="backend"):
    evaluation.resolve_backend("gpu")


def random_sdm_policy(seed=0):
  """SDM's one-step policy (tiny preset) with random weights drawn in NumPy: the real
  networks, sampler and normaliser path, without compiling the initialisers."""
  config = sdm_configs.get_config("tiny")
  nets = nets_lib.build_nets(config, 4)
  shapes, key = {"full_state": (39,)}, jax.random.PRNGKey(0)
  abstract = jax.eval_shape(
    lambda: sdm.init(config, nets, shapes, key, teacher.from_params(nets.init(key, shapes)))
  )
  rng = np.random.default_rng(seed)
  fill = lambda x: (
    jnp.asarray(0.05 * rng.standard_normal(x.shape), x.dtype)
    if jnp.issubdtype(x.dtype, jnp.floating)
    else jnp.zeros(x.shape, x.dtype)
  )
  state = jax.tree_util.tree_map(fill, abstract)
  ident = lambda n: MinMax(np.ones(n, np.float32), np.zeros(n, np.float32))
  normalizer = Normalizer({"action": ident(4), "full_state": ident(39)})
  specs = sdm.make_policies(config, nets, state, normalizer)
  name = min(specs, key=lambda k: specs[k].nfe)
  return build_policy(name, config, nets, normalizer, specs[name], shapes)


def test_batched_rollout_with_policy_inside_steps_envs_and_returns_eval_dict():
  base = random_sdm_policy()
  push_x = jnp.asarray([1.0, 0.0, 0.0, -1.0])  # +x at full speed, gripper open

  def sample(params, cond, carry, rng):
    x, _ = base.sample(params, cond, (), rng)  # the real one-step generator runs ...
    return 0.0 * x + push_x, carry + 1  # ... then a known action; carry counts calls

  policy = dataclasses.replace(
    base, name="sdm_scripted", sample=sample, init_carry=lambda b: jnp.zeros((b,), jnp.int32)
  )
  episodes, length = 2, 5
  env = MJXEnv("push-back", resets=evaluation_resets("push-back", 0, 1))
  resets = evaluation_resets("push-back", seed=0, episodes=episodes)
  r, (states, calls) = evaluator.run(
    policy, env, resets, 0, length, return_final=True, suite=suites.get("metaworld")
  )
  for key in (
    "success_rate",
    "episodes",
    "seed",
    "nfe",
    "latency_ms",
    "latency_ms_p90",
    "batch",
    "episode_length",
    "successes",
    "first_success_step",
    "wall_s",
  ):
    assert key in r, key
  assert r["backend"] == "mjx" and r["episodes"] == episodes and r["nfe"] == policy.nfe
  assert r["episode_length"] == length and len(r["successes"]) == episodes
  assert all(-1 <= f < length for f in r["first_success_step"])
  assert 0.0 <= r["success_rate"] <= 1.0 and r["compile_s"] > 0 and r["env_steps_per_s"] > 0
  # replanned every n_action_steps = 3 steps: calls at t = 0 and 3
  np.testing.assert_array_equal(np.asarray(calls), [2, 2])
  # MetaWorld's action semantics: the mocap moved 1 cm in x per step, the hand followed
  mocap = np.asarray(states.data.mocap_pos)[:, 0]
  np.testing.assert_allclose(mocap - resets.mocap_pos[:, 0], [[0.05, 0, 0]] * 2, atol=1e-5)
  hand = np.asarray(states.obs)[:, :3]
  assert np.all(hand[:, 0] - resets.obs[:, 0] > 0.02)
  np.testing.assert_allclose(hand[:, 1:], resets.obs[:, 1:3], atol=5e-3)
  assert np.all(np.asarray(states.info["steps"]) == length)


def test_evaluate_dispatches_to_the_mjx_evaluator(monkeypatch):
  seen = {}
  monkeypatch.setattr(evaluator, "evaluate", lambda *a, **k: seen.update(k) or {"ok": 1})
  policy = random_sdm_policy()
  assert evaluation.evaluate(
    policy, "reach", episodes=3, seed=4, episode_length=7, backend="mjx"
  ) == {"ok": 1}
  assert (seen["episodes"], seen["seed"], seen["episode_length"]) == (3, 4, 7)


def test_fidelity_resumes_and_refuses_other_settings(tmp_path):
  """A rerun skips the tasks its --out already holds (nothing is recompiled or rerun) and
  refuses a file measured with other settings."""
  import json
  import os
  import subprocess
  import sys

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  out = tmp_path / "fid.json"
  row = {
    "task": "reach",
    "episodes": 2,
    "metaworld_success": 1.0,
    "mjx_success": 0.5,
    "gap_points": -50.0,
  }
  out.write_text(
    json.dumps(
      {"episodes": 2, "seed": 0, "episode_length": 200, "max_contact_points": 64, "tasks": [row]}
    )
  )
  cmd = [
    sys.executable,
    "-m",
    "benchmarks.fidelity",
    "--tasks=reach",
    "--episodes=2",
    f"--out={out}",
  ]
  res = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-2000:]
  assert "skipping them" in res.stderr and "MJX expert" not in res.stderr
  assert "points: reach" in res.stdout  # the kept row's gap is listed
  res = subprocess.run(
    cmd[:-2] + ["--episodes=3", f"--out={out}"],
    cwd=root,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert res.returncode != 0 and "other settings" in res.stderr
  assert json.loads(out.read_text())["tasks"] == [row]  # nothing overwritten
