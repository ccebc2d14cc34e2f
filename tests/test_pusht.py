"""Push-T through the suite seam: gym-pusht behind the suite protocol (its observations,
seeds, coverage score), float per-episode scores in the evaluator, and a run trained on a
LeRobot-format Push-T dataset evaluated in gym-pusht (`launch.evaluate --task=pusht`, in a
subprocess: launch modules define their flags at import)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

gym_pusht = pytest.importorskip("gym_pusht")  # the optional extra `pusht`

import configs  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from helpers import datasets  # noqa: E402  pylint: disable=g-import-not-at-top
from jaxpolicy import evaluation, execution, runs, suites, training, validate  # noqa: E402
from jaxpolicy.data import collect  # noqa: E402
from jaxpolicy.envs import evaluator  # noqa: E402
from jaxpolicy.envs.suite import episode_seeds  # noqa: E402
from jaxpolicy.errors import ConfigError  # noqa: E402
from jaxpolicy.suites.pusht.env import PushTEnv  # noqa: E402

GOAL = np.array([256.0, 256.0, np.pi / 4])  # gym-pusht's goal pose of the T (x, y, angle)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _gym(obs_type):
  from gym_pusht.envs.pusht import PushTEnv  # pylint: disable=g-import-not-at-top

  return PushTEnv(obs_type=obs_type, render_mode="rgb_array")


def _env():
  return suites.get("pusht").make_env("pusht", 0)


def test_the_suite_registers_and_declares_what_gym_pusht_defines():
  import gymnasium  # pylint: disable=g-import-not-at-top

  suite = suites.suite_of(suites.check_task("pusht"))
  spec = gymnasium.spec("gym_pusht/PushT-v0")
  gym_env = _gym("state")
  assert suite.name == "pusht" and suites.expand(["pusht"]) == ["pusht"]
  assert suite.episode_length == spec.max_episode_steps == 300
  assert suite.control_hz == gym_env.metadata["render_fps"] == 10
  assert str(int(gym_env.success_threshold * 100)) in suite.success
  assert suite.action_kind == ("absolute", "absolute") and suite.make_expert is None
  np.testing.assert_array_equal(suite.hold([120.0, 300.0]), [120.0, 300.0])  # last target
  assert suite.scores == ("coverage", "max_reward") and suite.mjx_env is None
  with pytest.raises(ValueError, match="suite pusht has no scripted expert.*data.path"):
    collect.collect_episodes(suite, "pusht", 1)


def test_the_environment_follows_the_protocol_with_gym_pushts_own_observations():
  """agent_pos / full_state are gym-pusht's environment_state_agent_pos observation, pose its
  `state` observation and frame() its `pixels`, step for step (three gym-pusht environments
  of those observation types driven with the same seed and actions)."""
  env = _env()
  suite = suites.get("pusht")
  refs = {t: _gym(t) for t in ("environment_state_agent_pos", "state", "pixels")}
  obs = env.reset(seed=11)
  ref = {t: e.reset(seed=11)[0] for t, e in refs.items()}
  actions = np.random.default_rng(0).uniform(60, 450, (25, 2)).astype(np.float32)
  for t in range(len(actions) + 1):
    assert {k: v.shape for k, v in obs.items()} == suite.obs_keys
    assert all(v.dtype == np.float32 for v in obs.values())
    np.testing.assert_allclose(
      obs["agent_pos"], ref["environment_state_agent_pos"]["agent_pos"], atol=1e-3
    )
    np.testing.assert_allclose(
      obs["full_state"], ref["environment_state_agent_pos"]["environment_state"], atol=1e-3
    )
    np.testing.assert_allclose(obs["pose"], ref["state"], atol=1e-3)
    if t % 8 == 0:
      np.testing.assert_array_equal(env.frame(), ref["pixels"])
      assert env.frame().shape == (96, 96, 3) and env.frame().dtype == np.uint8
    if t == len(actions):
      break
    obs, success = env.step(actions[t])
    assert isinstance(success, bool)
    ref = {k: e.step(actions[t].astype(np.float64))[0] for k, e in refs.items()}
  assert env.model is None and set(env.episode_info()) == set(suite.scores)


def test_the_same_seed_gives_the_same_initial_state():
  a, b = suites.get("pusht").make_env("pusht", 0), suites.get("pusht").make_env("pusht", 5)
  first = a.reset(seed=7)
  b.reset(seed=3)
  for _ in range(5):  # whatever happened before
    b.step(np.array([100.0, 400.0]))
  again = b.reset(seed=7)
  for k in first:
    np.testing.assert_array_equal(first[k], again[k])
  other = a.reset(seed=8)
  assert not np.allclose(other["pose"], first["pose"])
  hashes = {evaluator.state_hash(a.reset(seed=s)) for s in range(20)}
  assert len(hashes) == 20  # 20 seeds, 20 initial states
  # seed None draws from the environment's own stream, which its construction seed starts
  c, d = suites.get("pusht").make_env("pusht", 4), suites.get("pusht").make_env("pusht", 4)
  np.testing.assert_array_equal(c.reset()["pose"], d.reset()["pose"])


def _inside(points, quad):
  """(N,) whether points lie in a convex quadrilateral (either orientation)."""
  crosses = []
  for i in range(4):
    a, b = quad[i], quad[(i + 1) % 4]
    crosses.append((b[0] - a[0]) * (points[:, 1] - a[1]) - (b[1] - a[1]) * (points[:, 0] - a[0]))
  crosses = np.stack(crosses)
  return (crosses >= 0).all(0) | (crosses <= 0).all(0)


def _raster_coverage(keypoints, pose, step=0.25):
  """The fraction of the goal T's area the T covers, from the observation alone: the T is
  its two rectangles (keypoints 0-3, 4-7), the goal T the same corners moved to the goal
  pose; areas by counting grid points (float64 numpy, no shapely)."""
  kp = np.asarray(keypoints, np.float64).reshape(8, 2)
  angle = float(pose[4])
  rot = lambda t: np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
  local = (kp - np.asarray(pose[2:4], np.float64)) @ rot(-angle).T
  goal = local @ rot(GOAL[2]).T + GOAL[:2]
  lo, hi = goal.min(0) - 1, goal.max(0) + 1
  xs, ys = np.arange(lo[0], hi[0], step), np.arange(lo[1], hi[1], step)
  pts = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
  in_goal = _inside(pts, goal[:4]) | _inside(pts, goal[4:])
  in_t = _inside(pts, kp[:4]) | _inside(pts, kp[4:])
  return float((in_goal & in_t).sum() / in_goal.sum())


@pytest.mark.parametrize("seed", [0, 2, 4])
def test_a_scripted_push_moves_the_t_and_the_coverage_score_follows(seed):
  """The agent goes behind the T (seen from the goal), then straight at the goal: the T
  moves, and the coverage the suite reports is the area fraction the observed T covers
  (an independent raster), its best over the episode and gym-pusht's reward of it."""
  env = _env()
  obs = env.reset(seed=seed)
  kp0 = obs["full_state"].reshape(8, 2)
  start, centre = obs["agent_pos"], kp0.mean(0)
  behind = centre + 110 * (centre - GOAL[:2]) / np.linalg.norm(centre - GOAL[:2])
  path = [start + (behind - start) * (i + 1) / 15 for i in range(15)] + [
    behind + (GOAL[:2] - behind) * (i + 1) / 30 for i in range(30)
  ]
  covs = [env.coverage()]
  assert covs[0] == pytest.approx(_raster_coverage(obs["full_state"], obs["pose"]), abs=0.01)
  for i, p in enumerate(path):
    obs, _ = env.step(p)
    covs.append(env.coverage())
    if i % 5 == 4:
      assert covs[-1] == pytest.approx(_raster_coverage(obs["full_state"], obs["pose"]), abs=0.01)
  assert all(0.0 <= c <= 1.0 for c in covs)
  assert np.abs(obs["full_state"].reshape(8, 2) - kp0).max() > 50  # the T moved
  assert max(covs[1:]) > covs[0] + 0.1  # and covers more
  info = env.episode_info()
  assert info["coverage"] == pytest.approx(max(covs[1:]))  # the episode's steps
  assert info["max_reward"] == pytest.approx(min(1.0, max(covs[1:]) / 0.95))


def test_holding_at_the_start_keeps_the_agent_where_it_is():
  """An absolute suite has no fixed rest command: the environment's rest_action (its agent's
  position) holds it still, the suite's default (zeros) would drive it to a corner."""
  env = _env()
  obs = env.reset(seed=3)
  for _ in range(3):
    held, _ = env.step(env.rest_action())
  np.testing.assert_allclose(held["agent_pos"], obs["agent_pos"], atol=1e-3)
  np.testing.assert_allclose(held["pose"], obs["pose"], atol=1e-3)
  moved, _ = env.step(suites.get("pusht").rest())
  assert np.linalg.norm(moved["agent_pos"] - obs["agent_pos"]) > 20


def test_float_scores_are_reported_with_their_mean_and_flags_with_their_rate():
  out = evaluator.episode_extras(
    suites.get("pusht"),
    [{"coverage": 0.25, "max_reward": 0.25 / 0.95}, {"coverage": 0.96, "max_reward": 1.0}],
  )
  assert out["coverage"] == [0.25, 0.96] and out["coverage_mean"] == pytest.approx(0.605)
  assert out["max_reward_mean"] == pytest.approx((0.25 / 0.95 + 1.0) / 2)
  bp = evaluator.episode_extras(
    suites.get("blockpush"), [{"p1": True, "mode": "none"}, {"p1": False, "mode": "none"}]
  )
  assert bp["p1"] == [1, 0] and bp["p1_rate"] == 0.5
  row = {"success_rate": 0.5, "episodes": 2, "nfe": 10, "latency_ms": 1.0, **out}
  assert "coverage_mean 0.60" in evaluation.format_table({"pusht": {"teacher_ddim10": row}})


def test_a_policy_reads_the_suites_observations_through_its_datasets_features():
  suite = suites.get("pusht")
  both = ("observation.state", "observation.environment_state")
  assert suite.observation_map(("agent_pos",), both) == {"agent_pos": ("agent_pos", "full_state")}
  assert suite.observation_map(("full_state",)) == {"full_state": ("full_state",)}
  assert suite.observation_map(("agent_pos",), ("data/state",)) == {"agent_pos": ("pose",)}
  suite.check_shapes({"agent_pos": ("agent_pos", "full_state")}, {"agent_pos": (18,)})
  with pytest.raises(
    ValueError,
    match=r"agent_pos has 2 numbers.*agent_pos \+ full_state "
    r"give 18",
  ):
    suite.check_shapes({"agent_pos": ("agent_pos", "full_state")}, {"agent_pos": (2,)})
  with pytest.raises(
    ValueError,
    match="made of the features observation.images.top .*offers observation.state \\(agent_pos\\)",
  ):
    suite.observation_map(("agent_pos",), ("observation.images.top",))
  with pytest.raises(
    ValueError,
    match="reads the observations agent_pos, point_cloud; suite "
    "pusht offers agent_pos, full_state, pose",
  ):
    suite.observation_map(("point_cloud", "agent_pos"))
  obs = {"agent_pos": np.ones(2, np.float32), "full_state": np.arange(16, dtype=np.float32)}
  got = evaluator.observe(None, obs, features={"agent_pos": ("agent_pos", "full_state")})
  np.testing.assert_array_equal(got["agent_pos"], np.r_[1.0, 1.0, np.arange(16)])


def _data_config(path, **edit):
  c = configs.load("teacher", "tiny")
  c.data.path, c.obs = path, "lowdim"
  for k, v in edit.items():
    section, _, field = k.partition("__")
    c[section][field] = v
  return c


@pytest.mark.parametrize(
  "edit,match",
  [
    (
      {"eval__task": "pusht", "data__path": ""},
      "eval.task .* names the suite task a run on a dataset of its own",
    ),
    ({"eval__task": "push-tee"}, "unknown task 'push-tee'"),
    (
      {"eval__task": "pusht", "data__state_keys": ("observation.velocity",)},
      "observation.velocity .*suite pusht offers",
    ),
  ],
)
def test_eval_task_is_checked_at_the_door(tmp_path, edit, match):
  c = _data_config(str(tmp_path / "ds"), **edit)
  with pytest.raises(ConfigError, match=match) as err:
    validate.check_config(c)
  assert "\n" not in str(err.value)


def test_a_missing_gym_pusht_is_one_line_at_the_door(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "gym_pusht.envs.pusht", None)  # import fails
  c = _data_config(str(tmp_path / "ds"), eval__task="pusht")
  with pytest.raises(ConfigError, match=r"needs gym-pusht: pip install 'jaxpolicy\[pusht\]'"):
    validate.check_config(c)
  c = configs.load("teacher", "tiny")
  c.task = "pusht"
  with pytest.raises(ConfigError, match="needs gym-pusht") as err:
    validate.check_config(c)
  assert "\n" not in str(err.value)


def test_eval_task_takes_its_suites_defaults(tmp_path):
  c = _data_config(str(tmp_path / "ds"), eval__task="pusht")
  c.eval.episode_length = None
  validate.check_config(c)
  assert c.eval.episode_length == 300 and runs.eval_task(c) == "pusht"
  assert runs.eval_task(_data_config(str(tmp_path / "ds"))) == ""  # offline


@pytest.mark.slow
def test_a_run_on_lerobot_push_t_data_is_evaluated_in_gym_pusht(tmp_path, monkeypatch):
  """A tiny teacher trained on a LeRobot v2.1 dataset recorded in gym-pusht (agent_pos and
  the T's keypoints concatenated, as data.state_keys names them) is evaluated offline at the
  end of training, then in gym-pusht through `launch.evaluate --task=pusht`: the path works
  end to end (success and coverage reported, any value)."""
  path = datasets.write_lerobot_v21(
    str(tmp_path / "pusht_lerobot"), datasets.pusht_episodes(episodes=4, length=20)
  )
  c = _data_config(path, data__state_keys=("observation.state", "observation.environment_state"))
  wd = str(tmp_path / "teacher")
  offline = training.train(c, wd)["pusht_lerobot"]["teacher_ddim10"]
  assert offline["backend"] == "offline" and "success_rate" not in offline
  out = subprocess.run(
    [sys.executable, "-m", "launch.evaluate", f"--workdir={wd}", "--task=pusht", "--episodes=2"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  assert "coverage_mean" in out.stdout  # the table's suite column
  saved = json.load(open(os.path.join(wd, "eval.json")))["tasks"]
  r = saved["pusht"]["teacher_ddim10"]
  assert r["suite"] == "pusht" and r["backend"] == "cpu" and r["episodes"] == 2
  assert r["episode_length"] == 300 and 0.0 <= r["success_rate"] <= 1.0
  assert len(r["coverage"]) == 2 and all(0.0 <= v <= 1.0 for v in r["coverage"])
  assert r["coverage_mean"] == pytest.approx(np.mean(r["coverage"]))
  assert 0.0 <= r["max_reward_mean"] <= 1.0 and len(set(r["initial_state_hashes"])) == 2
  assert "pusht_lerobot" in saved  # the offline result is kept
  # a policy reading only the agent's position cannot be evaluated from 18 numbers
  c2 = _data_config(path, eval__task="pusht")
  run = runs.restore_run(wd)
  with pytest.raises(
    ValueError, match="agent_pos has 18 numbers per frame; suite pusht's agent_pos give 2"
  ):
    runs.observation_map(c2, run.obs_shapes)
  # real-time execution: until the first chunk arrives the agent holds where it starts
  # (its environment's rest_action), not at the suite's default command (0, 0)
  sent = []
  step = PushTEnv.step
  monkeypatch.setattr(PushTEnv, "step", lambda env, a: sent.append(np.copy(a)) or step(env, a))
  pol = run.policies()["teacher_ddim10"]
  with run.config.unlocked():
    run.config.eval.task = "pusht"
  start = _env().reset(seed=episode_seeds(0, 1)[0])["agent_pos"]
  r = evaluation.evaluate(
    pol,
    "pusht",
    episodes=1,
    episode_length=5,
    backend="cpu",
    timing=execution.Timing(4, pol.span, pol.n_action_steps),
    features=runs.observation_map(run.config, run.obs_shapes),
  )
  assert r["held_steps"] == 4 and len(sent) == 5
  np.testing.assert_allclose(np.stack(sent[:4]), np.stack([start] * 4))
