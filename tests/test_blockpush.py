"""blockpush: the task logic (numpy and jax agree), the oracle and its modes, the episode
mode labels, the MJX form against C MuJoCo, and the pipeline on the suite (collect, train,
evaluate with p1 and modes, point clouds through the sensor)."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import configs
from jaxpolicy import demos, training
from jaxpolicy.envs.suite import episode_seeds
from jaxpolicy.suites.blockpush import env as env_lib
from jaxpolicy.suites.blockpush import logic, scene


def _episode(env, oracle, seed, length=200):
  obs = env.reset(seed=seed)
  oracle.reset(seed)
  for t in range(length):
    obs, success = env.step(oracle(obs))
    if success:
      return t, env.episode_info()
  return -1, env.episode_info()


def test_logic_is_the_same_in_numpy_and_jax():
  rng = np.random.default_rng(0)
  f = jax.jit(
    lambda q, a, f, t: (
      logic.observation(jnp, q),
      logic.in_targets(jnp, logic.blocks_of(jnp, q)),
      logic.oracle_action(jnp, q[0:2], logic.blocks_of(jnp, q), f, t),
      logic.set_point(jnp, q, a),
    )
  )
  for i in range(20):
    q = scene.initial_qpos(rng)
    if i % 4 == 0:  # a block near a target
      q[2:4] = scene.TARGETS[i % 2] + rng.uniform(-0.05, 0.05, 2)
    a = rng.uniform(-1.5, 1.5, 2)
    first, target = i % 2, (i // 2) % 2
    want = (
      logic.observation(np, q),
      logic.in_targets(np, logic.blocks_of(np, q)),
      logic.oracle_action(np, q[0:2], logic.blocks_of(np, q), first, target),
      logic.set_point(np, q, a),
    )
    got = jax.device_get(f(q.astype(np.float32), a, first, target))
    for w, g in zip(want, got):
      np.testing.assert_allclose(np.asarray(g, np.float64), np.asarray(w, np.float64), atol=2e-3)


def test_mode_labels_follow_the_first_arrival():
  none = logic.NO_ARRIVAL
  inside = np.zeros((2, 2), bool)
  assert logic.first_arrival(np, none, inside) == none
  inside[1, 0] = True  # block 1 reaches target 0 first
  assert logic.MODES[logic.first_arrival(np, none, inside)] == "b1t0"
  inside[0, 1] = True  # later block 0 reaches target 1: the mode stays
  assert logic.MODES[logic.first_arrival(np, logic.MODES.index("b1t0"), inside)] == "b1t0"
  assert logic.both_in(np, inside) and not logic.both_in(np, np.eye(2, dtype=bool)[::-1] * 0)
  # a mean-seeking policy that pushes straight up between the blocks reaches no target
  env = env_lib.BlockPushEnv(0)
  env.reset(seed=3)
  for _ in range(120):
    obs, success = env.step([0.0, 1.0])
    assert not success
  assert env.episode_info() == {"p1": False, "mode": "none"}


def test_the_oracle_succeeds_in_the_mode_it_chose():
  env, oracle = env_lib.BlockPushEnv(0), env_lib.Oracle()
  seeds = episode_seeds(0, 12)
  for s in seeds:
    first, info = _episode(env, oracle, s)
    assert first >= 0 and info["p1"]
    assert info["mode"] == "b%dt%d" % logic.oracle_choice(s)
  counts = collections.Counter(logic.oracle_choice(s) for s in episode_seeds(1, 400))
  assert len(counts) == 4 and min(counts.values()) > 70  # uniform over the four modes
  narrow = env_lib.BlockPushEnv(0, "blockpush-narrow")
  for s in seeds[:4]:
    first, info = _episode(narrow, oracle, s)
    assert first >= 0 and info["mode"] == "b%dt%d" % logic.oracle_choice(s)
  rng = np.random.default_rng(0)
  wide = np.stack([scene.initial_qpos(rng) for _ in range(500)])
  tight = np.stack([scene.initial_qpos(rng, "blockpush-narrow") for _ in range(500)])
  np.testing.assert_allclose(np.ptp(tight, 0), 0.1 * np.ptp(wide, 0), rtol=0.05)


@pytest.mark.slow
def test_the_mjx_form_runs_the_oracle_like_c_mujoco():
  """The same initial states and modes in MJX: the same outcomes (physics differ in float
  rounding and contact details, so trajectories are compared only through the outcome)."""
  from jaxpolicy.suites.blockpush import mjx_env  # pylint: disable=g-import-not-at-top

  env_mjx = mjx_env.make_env()
  n, length = 4, 120
  seeds = episode_seeds(0, n)
  qpos = env_mjx.evaluation_states(0, n)
  cpu = env_lib.BlockPushEnv(0)
  for i, s in enumerate(seeds):
    cpu.reset(seed=s)
    np.testing.assert_allclose(qpos[i], cpu.data.qpos, atol=1e-6)
  choice = np.asarray([logic.oracle_choice(s) for s in seeds])
  p2, p1, mode, first = jax.device_get(
    jax.jit(mjx_env.oracle_rollout(env_mjx, length))(qpos, choice[:, 0], choice[:, 1])
  )
  oracle = env_lib.Oracle()
  for i, s in enumerate(seeds):
    step, info = _episode(cpu, oracle, s, length)
    assert bool(p2[i]) == (step >= 0) and logic.MODES[int(mode[i])] == info["mode"]
    assert abs(int(first[i]) - step) <= 10


@pytest.mark.slow
def test_collect_train_and_evaluate_on_blockpush_with_modes(tmp_path):
  """Everything downstream works on the suite without special cases: demonstrations record
  their modes, a tiny teacher trains and is evaluated with p1 and mode counts, and the
  point-cloud sensor sees the blocks from the suite's camera."""
  c = configs.load("teacher", "tiny")
  c.task, c.data.dir = "blockpush", str(tmp_path / "data")
  c.data.num_episodes, c.eval.episodes, c.eval.episode_length = 4, 3, 20
  res = training.train(c, str(tmp_path / "t"))["blockpush"]["teacher_ddim10"]
  assert res["suite"] == "blockpush" and 0 <= res["p1_rate"] <= 1
  assert sum(res["mode_counts"].values()) == 3 and len(res["modes"]) == 3
  from jaxpolicy.data import storage  # pylint: disable=g-import-not-at-top

  attrs = storage.read_attrs(demos.ensure_demo_data(c))
  assert attrs["suite"] == "blockpush" and len(attrs["episode_info"]) == 4
  assert {i["mode"] for i in attrs["episode_info"]} <= set(logic.MODES[:4])
  pc = configs.load("teacher", "tiny")
  pc.task, pc.obs, pc.data.dir, pc.data.num_episodes = (
    "blockpush",
    "pointcloud",
    str(tmp_path / "data"),
    2,
  )
  from jaxpolicy import validate  # pylint: disable=g-import-not-at-top

  validate.resolve(pc)
  raw, _ = storage.read_episodes(demos.ensure_demo_data(pc), ("point_cloud", "full_state"))
  cloud = np.asarray(raw["point_cloud"][0])
  assert cloud.shape == (pc.pointcloud.num_points, 3)
  blocks = raw["full_state"][0][[2, 3, 6, 7]].reshape(2, 2)
  for b in blocks:  # points on each block (its top face at z = 2 * BLOCK_HALF)
    near = np.linalg.norm(cloud[:, :2] - b, axis=1) < scene.BLOCK_HALF * 1.5
    assert near.any() and cloud[near, 2].max() > 1.5 * scene.BLOCK_HALF
