"""From your own demonstrations to a robot: a DP3-layout dataset unlike MetaWorld (written
with plain zarr calls), trained on without a simulator; policies exported with jax.export
and run by a loader that imports only jax and numpy; bad datasets and artifacts refused with
one line each."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import zarr

import configs
from jaxpolicy import export, methods, robot, runs, training, validate
from jaxpolicy import nets as nets_lib
from jaxpolicy.data import storage
from jaxpolicy.data.dataset import load_demos
from jaxpolicy.data.normalizer import MinMax, Normalizer
from jaxpolicy.envs import fps, pointcloud
from jaxpolicy.exported import ExportError, load_exported
from jaxpolicy.policy import build_policy

pytestmark = [
  pytest.mark.xdist_group("test_own_data"),
  pytest.mark.slow,
]  # its module fixture: one worker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A, S, P, EPISODES, T = 7, 14, 1024, 30, 24


def write_robot_dataset(path, episodes=EPISODES, length=T, nan_at=None, drop=None, short=False):
  """A made-up 7-DoF arm: 14-d state (joint positions and velocities), 1024-point clouds
  of the object it reaches for, 7-d absolute joint targets that steer towards a per-episode
  goal. Plain zarr calls, DP3's keys and meta/episode_ends."""
  rng = np.random.default_rng(0)
  acts, states, clouds, ends = [], [], [], []
  for e in range(episodes):
    goal, q = rng.uniform(-1, 1, A), rng.uniform(-1, 1, A)
    n = 3 if short and e == 0 else length
    for _ in range(n):
      target = q + 0.3 * (goal - q)
      states.append(np.concatenate([q, target - q]))
      clouds.append(goal[:3] + 0.05 * rng.standard_normal((P, 3)))
      acts.append(target)
      q = target
    ends.append(len(acts))
  data = {
    "action": np.asarray(acts, np.float32),
    "state": np.asarray(states, np.float32),
    "point_cloud": np.asarray(clouds, np.float32),
  }
  if nan_at is not None:
    data["state"][nan_at, 2] = np.nan
  root = zarr.open_group(path, mode="w", zarr_format=2)
  group = root.create_group("data")
  for k, v in data.items():
    if k != drop:
      group.create_array(k, shape=v.shape, dtype=v.dtype)[...] = v
  root.create_group("meta").create_array("episode_ends", shape=(len(ends),), dtype=np.int64)[
    ...
  ] = np.asarray(ends)
  return path


class _NoMetaWorld:
  """Makes `import metaworld` (and its submodules) fail while it is installed."""

  def find_spec(self, name, path=None, target=None):
    del path, target
    if name.split(".")[0] == "metaworld":
      raise ImportError(f"{name} imported during a run on a dataset of its own")
    return None


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
  """Teacher then SDM (tiny) on the robot dataset, with every MetaWorld import refused."""
  d = tmp_path_factory.mktemp("own")
  path = write_robot_dataset(str(d / "arm.zarr"))
  c = configs.load("sdm", "tiny")
  c.data.path, c.obs, c.task = path, "lowdim", ""
  c.data.val_episodes = 3
  c.teacher_workdir = str(d / "teacher")
  saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] == "metaworld"}
  guard = _NoMetaWorld()
  sys.meta_path.insert(0, guard)
  try:
    results = training.train(c, str(d / "sdm"))
  finally:
    sys.meta_path.remove(guard)
    sys.modules.update(saved)
  return d, results


def test_a_dataset_of_your_own_trains_without_a_simulator(own_run):
  d, res = own_run
  rows = res["arm"]
  assert set(rows) == {"teacher_ddim10", "sdm_1step"}
  for r in rows.values():  # held-out action error and latency, no success rate
    assert r["backend"] == "offline" and "success_rate" not in r
    assert np.isfinite(r["action_mse"]) and 0 < r["action_mse"] < 10 and r["latency_ms"] > 0
  ev = json.load(open(d / "sdm" / "eval.json"))
  assert ev["data_path"].endswith("arm.zarr") and ev["tasks"]["arm"]["sdm_1step"]["nfe"] == 1
  run = runs.restore_run(str(d / "sdm"))
  assert run.obs_shapes == {"agent_pos": (S,)} and run.action_dim == A


def _fresh_interpreter_acts(directory, obs_file, key_seed):
  """Loads the artifact with its own jaxpolicy_loader.py in a new interpreter; returns the
  actions and which forbidden packages got imported."""
  code = f"""
import sys, json
sys.path.insert(0, {directory!r})
import numpy as np
from jaxpolicy_loader import load_exported
policy = load_exported({directory!r})
obs = dict(np.load({obs_file!r}))
state = policy.initial_state(len(next(iter(obs.values()))))
import jax
actions, state = policy.act(obs, state, jax.random.PRNGKey({key_seed}))
actions, state = policy.act(obs, state, jax.random.PRNGKey({key_seed + 1}))   # carried state
banned = ("flax", "optax", "orbax", "metaworld", "mujoco", "jaxpolicy", "ml_collections",
          "zarr", "torch")
print("RESULT " + json.dumps({{"actions": actions.tolist(),
      "imported": sorted(m for m in sys.modules if m.split(".")[0] in banned)}}))
"""
  out = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd="/"
  )
  assert out.returncode == 0, out.stderr[-3000:]
  line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
  got = json.loads(line[len("RESULT ") :])
  return np.asarray(got["actions"], np.float32), got["imported"]


def _in_process_twice(policy, obs, key_seed):
  policy.reset(len(next(iter(obs.values()))))
  policy(obs, jax.random.PRNGKey(key_seed))
  return policy(obs, jax.random.PRNGKey(key_seed + 1))


def test_exported_teacher_and_sdm_equal_the_in_process_ones(own_run, tmp_path):
  d, _ = own_run
  obs = {"agent_pos": np.random.default_rng(1).normal(size=(3, 2, S)).astype(np.float32)}
  np.savez(tmp_path / "obs.npz", **obs)
  run = runs.restore_run(str(d / "sdm"))
  teacher = runs.restore_run(str(d / "teacher"))
  for r, name in ((run, "sdm_1step"), (teacher, "teacher_ddim10")):
    out = str(tmp_path / name)
    m = export.export_run(r.workdir, name, out)
    assert m["nfe"] == (1 if name == "sdm_1step" else 10) and m["platforms"] == ["cpu", "cuda"]
    assert m["obs_shapes"] == {"agent_pos": [S]} and (m["n_action_steps"], m["action_dim"]) == (
      r.config.policy.n_action_steps,
      A,
    )
    want = _in_process_twice(r.policies()[name], obs, 5)
    got, imported = _fresh_interpreter_acts(out, str(tmp_path / "obs.npz"), 5)
    assert imported == []
    np.testing.assert_allclose(got, want, atol=1e-5)


def _random_policy(method, obs, obs_shapes, config_edit=None):
  """A policy of `method` (tiny) from random weights, through the real build path."""
  config = configs.load(method, "tiny")
  config.obs = obs
  if config_edit:
    config_edit(config)
  validate.resolve(config)  # the door: the suite's sensor defaults
  nets = nets_lib.build_nets(config, A)
  key = jax.random.PRNGKey(0)
  tstate = methods.common.teacher_from_params(nets.init(key, obs_shapes))
  state = methods.get(method).init(config, nets, obs_shapes, jax.random.PRNGKey(1), tstate)
  fields = {"action": MinMax(np.full(A, 0.5, np.float32), np.full(A, 0.1, np.float32))}
  fields.update(
    {
      k: MinMax(np.full(s[-1], 2.0, np.float32), np.zeros(s[-1], np.float32))
      for k, s in obs_shapes.items()
    }
  )
  normalizer = Normalizer(fields)
  specs = methods.get(method).make_policies(config, nets, state, normalizer)
  name = methods.info(method).main_policy_of(specs)
  return build_policy(name, config, nets, normalizer, specs[name], obs_shapes), config


def test_exported_step_and_point_cloud_sdm_equal_the_in_process_ones(tmp_path):
  # STEP (state): its carried state (previous chunk, stall flags, calls) crosses the border
  step_pol, step_config = _random_policy(
    "step", "lowdim", {"agent_pos": (S,)}, lambda c: setattr(c.step, "eval_baselines", False)
  )
  obs = {"agent_pos": np.random.default_rng(2).normal(size=(2, 2, S)).astype(np.float32)}
  np.savez(tmp_path / "obs.npz", **obs)
  m = export.export_policy(step_pol, step_config, str(tmp_path / "step"))
  assert m["stateful"] and m["nfe"] == 2 and m["nfe_first_call"] == 10
  got, imported = _fresh_interpreter_acts(str(tmp_path / "step"), str(tmp_path / "obs.npz"), 3)
  assert imported == []
  np.testing.assert_allclose(got, _in_process_twice(step_pol, obs, 3), atol=1e-5)

  # SDM with point clouds, taking the camera's raw cloud: crop and FPS inside the program
  n_pts = 64
  pc_pol, pc_config = _random_policy(
    "sdm", "pointcloud", {"point_cloud": (n_pts, 3), "agent_pos": (S,)}
  )
  raw_n = 300
  rng = np.random.default_rng(3)
  raw = rng.uniform(-0.8, 1.2, size=(2, 2, raw_n, 3)).astype(np.float32)  # some outside the box
  agent = rng.normal(size=(2, 2, S)).astype(np.float32)
  np.savez(tmp_path / "pc.npz", point_cloud=raw, agent_pos=agent)
  m = export.export_policy(pc_pol, pc_config, str(tmp_path / "pc"), raw_points=raw_n)
  assert m["obs_shapes"]["point_cloud"] == [raw_n, 3] and m["point_cloud"]["num_points"] == n_pts
  spec = pointcloud.sensor_spec(pc_config)
  sampled = np.stack(
    [
      np.stack(
        [
          np.asarray(
            fps.sample_points(f, n_pts, pointcloud.crop_mask(f, spec.crop_low, spec.crop_high))[0]
          )
          for f in ep
        ]
      )
      for ep in raw
    ]
  )
  want = _in_process_twice(pc_pol, {"point_cloud": sampled, "agent_pos": agent}, 9)
  got, imported = _fresh_interpreter_acts(str(tmp_path / "pc"), str(tmp_path / "pc.npz"), 9)
  assert imported == []
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_bad_artifacts_and_observations_are_one_line_each(tmp_path):
  pol, config = _random_policy("sdm", "lowdim", {"agent_pos": (S,)})
  good = str(tmp_path / "good")
  export.export_policy(pol, config, good)
  policy = load_exported(good)
  state = policy.initial_state(1)
  with pytest.raises(
    ExportError,
    match=r"takes observation keys \['agent_pos'\], got "
    r"\['full_state'\]",
  ):
    policy.act({"full_state": np.zeros((1, 2, 39), np.float32)}, state)
  with pytest.raises(ExportError, match=r"'agent_pos' must have shape \(batch, 2, 14\)"):
    policy.act({"agent_pos": np.zeros((1, 2, 9), np.float32)}, state)

  def broken(name, edit):
    path = str(tmp_path / name)
    shutil.copytree(good, path)
    edit(path)
    return path

  def newer(path):
    m = json.load(open(os.path.join(path, "manifest.json")))
    m["format_version"] = 99
    json.dump(m, open(os.path.join(path, "manifest.json"), "w"))

  def corrupt(path):
    with open(os.path.join(path, "act.jaxexport"), "r+b") as f:
      f.seek(100)
      byte = f.read(1)
      f.seek(100)
      f.write(bytes([byte[0] ^ 0xFF]))

  with pytest.raises(ExportError, match="format_version 99; this loader reads versions 1, 2"):
    load_exported(broken("newer", newer))
  with pytest.raises(ExportError, match="act.jaxexport does not match its checksum"):
    load_exported(broken("corrupt", corrupt))
  with pytest.raises(ExportError, match="holds no exported policy"):
    load_exported(str(tmp_path))


def test_exported_chunk_is_the_whole_span_and_format_1_still_acts(tmp_path):
  """`chunk` returns every action from the first executed one to the horizon's end (the
  in-process policy's `executable`), `act` its first n_action_steps; an artifact of format 1
  (whose program returned the executed actions only) still acts, and its `chunk` asks for a
  new export in one line."""

  def dp_like(c):
    c.policy.horizon, c.policy.n_action_steps = 8, 3

  pol, config = _random_policy("sdm", "lowdim", {"agent_pos": (S,)}, dp_like)
  assert pol.span == 7
  good = str(tmp_path / "v2")
  m = export.export_policy(pol, config, good)
  assert (m["format_version"], m["span"], m["n_action_steps"]) == (2, 7, 3)
  obs = {"agent_pos": np.random.default_rng(4).normal(size=(2, 2, S)).astype(np.float32)}
  key = jax.random.PRNGKey(7)
  policy = load_exported(good)
  chunk, _ = policy.chunk(obs, policy.initial_state(2), key)
  acts, _ = policy.act(obs, policy.initial_state(2), key)
  want = np.asarray(pol.executable(pol.chunk(obs, key)))
  assert chunk.shape == (2, 7, A) and acts.shape == (2, 3, A)
  np.testing.assert_allclose(chunk, want, atol=1e-5)
  np.testing.assert_allclose(acts, want[:, :3], atol=1e-5)

  pol.executable = pol.executed  # the program format 1 wrote: the executed actions only
  old = str(tmp_path / "v1")
  export.export_policy(pol, config, old)
  mpath = os.path.join(old, "manifest.json")
  m1 = json.load(open(mpath))
  m1["format_version"] = 1
  del m1["span"]
  json.dump(m1, open(mpath, "w"))
  policy1 = load_exported(old)
  acts1, _ = policy1.act(obs, policy1.initial_state(2), key)
  np.testing.assert_allclose(acts1, acts, atol=1e-6)
  with pytest.raises(
    ExportError,
    match="is format 1, whose program returns only the executed actions; export it again for chunk",
  ) as e:
    policy1.chunk(obs, policy1.initial_state(2), key)
  assert "\n" not in str(e.value)
  with pytest.raises(
    ValueError, match="returns only the executed actions .format 1.; export it again for the runner"
  ):
    robot.from_exported(policy1)


@pytest.mark.slow  # an export, two compiles and a subprocess: ~25 s on the 2-core machine
def test_the_runner_drives_exported_and_in_process_policies_alike(tmp_path):
  """jaxpolicy.robot's adapters: on a simulated clock at 80 Hz with a 25 ms policy the
  exported and the in-process policy send the same actions (the chunk requested at step 0
  runs steps 2-4); so does the runner copied into the artifact, run with only jax and
  numpy."""

  def dp_like(c):
    c.policy.horizon, c.policy.n_action_steps = 8, 3

  pol, config = _random_policy("sdm", "lowdim", {"agent_pos": (S,)}, dp_like)
  good = str(tmp_path / "v2")
  export.export_policy(pol, config, good)
  policy = load_exported(good)
  frame = np.random.default_rng(4).normal(size=S).astype(np.float32)
  sent = {}
  for kind, chunk_policy in (
    ("exported", robot.from_exported(policy)),
    ("in-process", robot.from_policy(pol)),
  ):
    clock, out = robot.SimClock(), []
    runner = robot.Runner(
      robot.with_latency(chunk_policy, clock, 0.025),
      lambda: {"agent_pos": frame},
      out.append,
      80.0,
      [True] * A,
      clock=clock,
      seed=3,
    )
    runner.run(6)
    sent[kind] = np.stack(out)
  first, _ = policy.chunk(
    {"agent_pos": np.stack([frame, frame])[None]},
    policy.initial_state(1),
    jax.random.fold_in(jax.random.PRNGKey(3), 0),
  )
  np.testing.assert_allclose(sent["exported"], sent["in-process"], atol=1e-5)
  np.testing.assert_allclose(sent["exported"][2:5], first[0, 2:5], atol=1e-5)
  assert (sent["exported"][:2] == 0).all()  # held while the first chunk computed
  # on a robot computer: the artifact's own loader and runner, with jaxpolicy unimportable
  code = f"""
import json, sys
class NoJaxpolicy:
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] == "jaxpolicy":
      raise ImportError(name)
sys.meta_path.insert(0, NoJaxpolicy())
sys.path.insert(0, {good!r})
import numpy as np
from jaxpolicy_loader import load_exported
from jaxpolicy_robot import Runner, SimClock, from_exported, with_latency
frame, clock, out = np.asarray({frame.tolist()!r}, np.float32), SimClock(), []
policy = with_latency(from_exported(load_exported({good!r})), clock, 0.025)
Runner(policy, lambda: {{"agent_pos": frame}}, out.append, 80.0, [True] * {A}, clock=clock,
       seed=3).run(6)
banned = ("flax", "optax", "orbax", "jaxpolicy", "metaworld", "mujoco", "torch", "zarr")
print("RESULT " + json.dumps({{"sent": np.stack(out).tolist(),
      "imported": sorted(m for m in sys.modules if m.split(".")[0] in banned)}}))
"""
  run = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd="/"
  )
  assert run.returncode == 0, run.stderr[-3000:]
  got = json.loads(next(l for l in run.stdout.splitlines() if l.startswith("RESULT "))[7:])
  assert got["imported"] == []
  np.testing.assert_allclose(got["sent"], sent["exported"], atol=1e-6)


@pytest.mark.parametrize(
  "fault,kwargs,match",
  [
    ("missing key", dict(drop="state"), r"lacks data/state"),
    ("NaN", dict(nan_at=20), r"data/state has NaN or inf at step 20 \(episode 2"),
    ("too few episodes", dict(episodes=1), r"has 1 episode\(s\); .* needs at least 2"),
    ("short episode", dict(short=True), r"episode 0 has 3 steps, fewer than policy.horizon"),
  ],
)
def test_dataset_faults_are_one_line_each(tmp_path, fault, kwargs, match):
  del fault
  path = write_robot_dataset(
    str(tmp_path / "bad.zarr"), episodes=kwargs.pop("episodes", 4), length=8, **kwargs
  )
  with pytest.raises(storage.DatasetError, match=match):
    load_demos(path, ("agent_pos",), horizon=4, n_obs_steps=2, n_action_steps=3, val_episodes=1)


def test_inconsistent_lengths_are_refused(tmp_path):
  path = write_robot_dataset(str(tmp_path / "bad.zarr"), episodes=4, length=8)
  root = zarr.open_group(path, mode="r+")
  root["data"].create_array("state", shape=(20, S), dtype=np.float32, overwrite=True)
  with pytest.raises(
    storage.DatasetError, match="data/state has 20 steps but meta/episode_ends ends at 32"
  ):
    load_demos(path, ("agent_pos",), horizon=4, n_obs_steps=2, n_action_steps=3)
