"""End to end on the point-mass suite (tests/helpers/pointmass.py, tiny presets): collect,
train, checkpoint, evaluate, load, resume after SIGTERM, and distil with SDM. MetaWorld is
not what these test; test_pointcloud.py and test_report_sweep.py run it end to end."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import jaxpolicy
from configs import sdm as sdm_configs
from configs import teacher as teacher_configs
from jaxpolicy import runs, suites, training
from jaxpolicy.runtime.checkpoint import Checkpointer

# end to end (trainings, evaluations, subprocesses): the slow tier; one worker for its module
# fixture
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_pipeline")]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK, OBS, ACT = "pointmass-reach", 4, 2  # the point mass: 4-d state, 2-d actions


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
  d = tmp_path_factory.mktemp("pipeline")
  c = teacher_configs.get_config("tiny")
  c.task = TASK
  c.data.dir = str(d / "data")
  results = training.train(c, str(d / "teacher"))
  return d, c, results


def test_teacher_train_writes_results_and_checkpoints(shared):
  d, c, results = shared
  wd = d / "teacher"
  ev = json.load(open(wd / "eval.json"))
  r = ev["tasks"][TASK]["teacher_ddim10"]
  assert r["episodes"] == c.eval.episodes and r["nfe"] == 10
  assert r["success_rate"] == np.mean(r["successes"])  # the rate is of its own episodes
  assert r["latency_ms"] > 0 and len(r["successes"]) == c.eval.episodes
  lines = [json.loads(l) for l in open(wd / "metrics.jsonl")]
  assert lines[-1]["step"] == c.train.steps and np.isfinite(lines[-1]["loss"])
  assert lines[-1]["loss"] < lines[0]["loss"]  # it learns, even in 20 steps
  assert Checkpointer(str(wd)).latest_step() == c.train.steps
  assert os.path.isdir(d / "data" / f"pointmass_{TASK}_state_2ep.zarr")


def test_load_policy_roundtrip(shared):
  d, c, _ = shared
  run = runs.restore_run(str(d / "teacher"))
  assert run.step == c.train.steps
  policy = jaxpolicy.load_policy(str(d / "teacher"))
  obs = {"full_state": np.zeros((3, 2, OBS), np.float32)}
  a = policy(obs, jax.random.PRNGKey(0))
  assert a.shape == (3, c.policy.n_action_steps, ACT) and np.all(np.isfinite(a))
  # the restored policy is the saved one: same params -> same actions as a fresh restore
  b = jaxpolicy.load_policy(str(d / "teacher"))(obs, jax.random.PRNGKey(0))
  np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match="must have shape"):
    policy({"full_state": np.zeros((3, 2, OBS + 1), np.float32)}, jax.random.PRNGKey(0))


def test_bf16_inference_is_close_to_float32_and_merges_into_eval_json(shared):
  d, c, _ = shared
  wd = str(d / "teacher")
  run = runs.restore_run(wd)
  f32 = run.policies()["teacher_ddim10"]
  with run.config.unlocked():
    run.config.eval.dtype = "bfloat16"
  bf16 = run.policies()["teacher_ddim10_bf16"]
  assert {x.dtype for x in jax.tree_util.tree_leaves(bf16.params)} == {np.dtype(jax.numpy.bfloat16)}
  obs = {"full_state": np.random.default_rng(0).normal(size=(4, 2, OBS)).astype(np.float32)}
  a, b = (np.asarray(p.chunk(obs, jax.random.PRNGKey(1))) for p in (f32, bf16))
  assert a.dtype == b.dtype == np.float32
  # bf16 has an 8-bit mantissa: close to float32 over ten DDIM steps, but not equal
  assert 0 < np.max(np.abs(a - b)) < 0.1, np.max(np.abs(a - b))
  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "launch.evaluate",
      f"--workdir={wd}",
      "--dtype=bfloat16",
      "--episodes=1",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  ev = json.load(open(os.path.join(wd, "eval.json")))
  tasks = ev["tasks"][TASK]
  assert tasks["teacher_ddim10"]["episodes"] == c.eval.episodes  # float32 result kept
  assert tasks["teacher_ddim10_bf16"]["episodes"] == 1
  assert ev["preset"] == "tiny" and ev["obs"] == "state"  # metadata kept
  assert jaxpolicy.load_policy(wd, "teacher_ddim10", dtype="bfloat16").name.endswith("_bf16")


@pytest.mark.parametrize("method", ["teacher", "sdm", "cd", "step", "bc", "meanflow", "mip"])
def test_bf16_policies_run_every_matmul_in_bf16(method):
  """Every dot product of a bf16 policy (encoder, U-Net or generator, STEP's predictor)
  takes bf16 operands: no float32 upcast of the weights anywhere (lowered, not run)."""
  import importlib
  import re
  from jaxpolicy import methods, nets as nets_lib
  from benchmarks.latency import identity_normalizer
  from jaxpolicy.policy import build_policy

  shapes, key = {"full_state": (39,)}, jax.random.PRNGKey(0)
  config = importlib.import_module(f"configs.{method}").get_config("tiny")
  tconfig = teacher_configs.get_config("tiny")
  nets = nets_lib.build_nets(config, 4)
  mod, tmod = methods.get(method), methods.get("teacher")
  zeros = lambda tree: jax.tree_util.tree_map(lambda a: jax.numpy.zeros(a.shape, a.dtype), tree)
  tstate = zeros(jax.eval_shape(lambda: tmod.init(tconfig, nets, shapes, key)))
  state = zeros(jax.eval_shape(lambda: mod.init(config, nets, shapes, key, tstate)))
  bf16 = nets.with_compute_dtype("bfloat16")
  main = {
    "teacher": "teacher_ddim10",
    "sdm": "sdm_1step",
    "cd": "cd_1step",
    "step": "step_k2",
    "bc": "bc_1step",
    "meanflow": "meanflow_1step",
    "mip": "mip_2step",
  }
  spec = mod.make_policies(config, bf16, state, identity_normalizer())[main[method]]
  pol = build_policy(main[method], config, bf16, identity_normalizer(), spec, shapes)
  obs = {"full_state": jax.ShapeDtypeStruct((2, 2, 39), jax.numpy.float32)}
  hlo = pol._jit.lower(pol.params, obs, pol.init_carry(2), key).as_text()
  dots = [l for l in hlo.splitlines() if "stablehlo.dot_general" in l]
  assert dots
  operands = [re.search(r":\s*\((.*)\)\s*->", l).group(1) for l in dots]
  assert all("f32" not in o and "bf16" in o for o in operands), [o for o in operands if "f32" in o][
    :3
  ]


@pytest.mark.parametrize("method,nfe", [("bc", 1), ("meanflow", 1), ("mip", 2)])
def test_a_method_trained_from_data_alone_runs_the_tiny_pipeline(shared, tmp_path, method, nfe):
  """launch.train on configs/<method>.py:tiny: trained from the demonstrations with no
  teacher (none is trained or evaluated beside it), evaluated, saved and loadable."""
  from jaxpolicy import methods

  d, _, _ = shared
  wd = tmp_path / method
  out = subprocess.run(
    [
      sys.executable,
      "-m",
      "launch.train",
      f"--config=configs/{method}.py:tiny",
      f"--workdir={wd}",
      f"--config.data.dir={d / 'data'}",
    ],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  main = methods.info(method).main_policy
  ev = json.load(open(wd / "eval.json"))
  assert set(ev["tasks"]["drawer-open"]) == {main} and ev["teacher_workdir"] is None
  r = ev["tasks"]["drawer-open"][main]
  assert r["nfe"] == nfe and r["episodes"] == 2 and np.isfinite(r["action_mse"])
  lines = [json.loads(l) for l in open(wd / "metrics.jsonl")]
  assert lines[-1]["step"] == 20 and all(np.isfinite(l["loss"]) for l in lines)
  policy = jaxpolicy.load_policy(str(wd), main)
  a = policy({"full_state": np.zeros((3, 2, 39), np.float32)}, jax.random.PRNGKey(0))
  assert a.shape == (3, 3, 4) and np.all(np.isfinite(a))


def test_checkpoint_roundtrip_exact(shared, tmp_path):
  d, c, _ = shared
  run = runs.restore_run(str(d / "teacher"))
  ck = Checkpointer(str(tmp_path))
  ck.save(7, run.state, {"note": "x"})
  fresh = runs.restore_run(str(d / "teacher"))  # same structure, to restore into
  restored, meta = ck.restore(fresh.state)
  ck.close()
  assert meta == {"note": "x"}
  for a, b in zip(jax.tree_util.tree_leaves(run.state), jax.tree_util.tree_leaves(restored)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _train_cmd(workdir, data_dir, steps):
  # 5 steps per jitted call (a lax.scan), logs every 10: the signal lands during a call or
  # between two, the checkpoint is taken after the call, and the resumed run's calls line up
  return [
    sys.executable,
    "-m",
    "launch.train",
    "--config=configs/teacher.py:tiny",
    f"--workdir={workdir}",
    f"--config.data.dir={data_dir}",
    f"--config.task={TASK}",
    f"--config.train.steps={steps}",
    "--config.train.log_every=10",
    "--config.train.steps_per_call=5",
    "--config.train.ckpt_every=1000",
    "--config.eval.at_end=false",
  ]


def test_sigterm_then_rerun_resumes_to_the_same_params(shared, tmp_path):
  d, _, _ = shared
  env = dict(os.environ, JAXPOLICY_CACHE_DIR=str(d / "xla_cache"))
  steps = 200
  wd = tmp_path / "interrupted"
  log = tmp_path / "interrupted.log"  # a file, not a pipe: nobody reads while we poll
  with open(log, "wb") as sink:
    proc = subprocess.Popen(
      _train_cmd(wd, d / "data", steps), cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
    )
    metrics = wd / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
      if metrics.exists() and len(open(metrics).readlines()) >= 1:  # step 10 of 200
        break
      time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=300)
  out = log.read_text(errors="replace")
  assert proc.returncode == 128 + signal.SIGTERM, out
  stopped = Checkpointer(str(wd)).latest_step()
  assert stopped is not None and 0 < stopped < steps, out
  rerun = subprocess.run(
    _train_cmd(wd, d / "data", steps),
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert rerun.returncode == 0, rerun.stderr
  assert f"resuming {wd} from step {stopped}" in rerun.stderr
  ref = subprocess.run(
    _train_cmd(tmp_path / "straight", d / "data", steps),
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert ref.returncode == 0, ref.stderr
  a = runs.restore_run(str(wd)).state
  b = runs.restore_run(str(tmp_path / "straight")).state
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_sdm_run_evaluates_beside_its_teacher_and_loads(shared, tmp_path):
  d, _, _ = shared
  c = sdm_configs.get_config("tiny")
  c.task = TASK
  c.data.dir = str(d / "data")
  c.teacher_workdir = str(d / "teacher")
  c.sdm.eval_anchor_steps = 2
  results = training.train(c, str(tmp_path / "sdm"))[TASK]
  assert set(results) == {"teacher_ddim10", "sdm_1step", "sdm_anchor_ddim2"}
  assert results["sdm_1step"]["nfe"] == 1 and results["sdm_anchor_ddim2"]["nfe"] == 2
  ev = json.load(open(tmp_path / "sdm" / "eval.json"))
  assert ev["teacher_workdir"] == str(d / "teacher")
  policy = jaxpolicy.load_policy(str(tmp_path / "sdm"), "sdm_1step")
  obs = {"full_state": np.zeros((2, 2, OBS), np.float32)}
  a = policy(obs, jax.random.PRNGKey(0))
  assert a.shape == (2, 3, ACT)
  # the generator's chunk is clipped in normalised space: the actions stay inside the range
  # of the demonstrations' actions
  act = runs.restore_run(str(tmp_path / "sdm")).normalizer["action"]
  lo, hi = np.asarray(act.unnormalize(-np.ones(ACT))), np.asarray(act.unnormalize(np.ones(ACT)))
  assert np.all(a >= lo - 1e-5) and np.all(a <= hi + 1e-5)


def test_evaluator_reuses_one_tasks_simulators_and_frees_the_last():
  """A sweep evaluates task after task in one process: the CPU evaluator keeps the current
  task's environments for its next evaluation and drops the previous task's (100 per task
  for the honest episodes, ~29 MB each on MetaWorld: a leaderboard worker had grown to
  8.6 GB)."""
  from jaxpolicy.envs import evaluator as ev

  pm = suites.get("pointmass")
  first = ev._envs(pm, TASK, 2)
  assert len(first) == 2 and ev._envs(pm, TASK, 1)[0] is first[0]
  ev._envs(suites.get("blockpush"), "blockpush", 1)
  assert set(ev._ENVS) == {("blockpush", "blockpush")}


class _ExpertPolicy:
  """A suite's scripted expert behind the evaluator's policy interface (batched calls of
  n_action_steps actions, a carry whose every call reports a stall)."""

  n_action_steps = 3

  def __init__(self, task):
    self.expert = suites.suite_of(task).make_expert(task)
    self.nets = type("Nets", (), {"n_obs_steps": 2})()
    self.obs_shapes = {"full_state": (OBS,)}
    self.carry = None
    self.span = self.n_action_steps

  def reset(self, batch):
    self.carry = {"stalled": np.ones(batch, bool)}

  def chunk(self, obs, key, guide=None):
    a = [self.expert({"full_state": s[-1]}) for s in obs["full_state"]]
    return np.repeat(np.asarray(a)[:, None], self.n_action_steps, axis=1)

  def executable(self, chunk):
    return chunk

  def __call__(self, obs, key):
    return self.chunk(obs, key)

  stall_flags = staticmethod(lambda carry: carry.get("stalled"))

  def nfe_report(self, episode_length, calls=None):
    return {"nfe": 0, "policy_calls": -(-episode_length // self.n_action_steps)}


def test_evaluator_stops_simulating_an_episode_at_its_first_success():
  """Success is the suite's flag at any step, so an episode ends at its first success: the
  evaluator stops stepping it and gives the results of full-length episodes (same
  successes and first-success steps) for less simulation; stalls count until the first
  success in both modes (a policy stalling on every call stalls on all of its calls)."""
  from jaxpolicy.envs import evaluator as ev

  runs_ = {
    stop: ev.evaluate(
      _ExpertPolicy(TASK),
      suites.get("pointmass"),
      TASK,
      episodes=4,
      seed=1,
      episode_length=30,
      stop_on_success=stop,
    )
    for stop in (True, False)
  }
  short, full = runs_[True], runs_[False]
  assert full["env_steps"] == 4 * 30
  assert sum(full["successes"]) >= 2  # the expert succeeds, at different steps
  assert len(set(full["first_success_step"])) >= 2
  assert short["successes"] == full["successes"]
  assert short["first_success_step"] == full["first_success_step"]
  want = sum(f + 1 if f >= 0 else 30 for f in full["first_success_step"])
  assert short["env_steps"] == want < full["env_steps"]
  for r in (short, full):
    assert r["stall_fraction_per_episode"] == [1.0] * 4
