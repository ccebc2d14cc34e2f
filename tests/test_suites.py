"""Environment suites: a suite joins everything from its own files (the point mass of
tests/helpers/pointmass.py), the door checks task names once, and the suites' declarations
hold together."""

import dataclasses
import json
import os

import numpy as np
import pytest

import configs
from helpers import pointmass
from jaxpolicy import evaluation, report, runs, suites, training, validate
from jaxpolicy.envs.suite import SuiteInfo, episode_seeds
from jaxpolicy.errors import ConfigError
from launch import sweep


# the point mass under another name: conftest registers tests/helpers/pointmass.py for every
# test, so the suite that joins and leaves here is a copy of it
JOINER = dataclasses.replace(
  pointmass.INFO, name="joiner", tasks=("joiner-reach",), groups={"toy": ("joiner-reach",)}
)


def _pointmass_config(tmp_path, method="teacher", steps=None, task="joiner-reach"):
  c = configs.load(method, "tiny")
  c.task = task
  c.data.dir = str(tmp_path / "data")
  c.eval.episodes = 6
  c.eval.episode_length, c.data.num_episodes = pointmass.LENGTH, 16  # tiny's are MetaWorld's
  if steps:
    c.train.steps = steps
  return c


@pytest.mark.slow
def test_a_suite_joins_everything_from_its_own_files(tmp_path):
  """The point mass registers, collects (its expert), trains a teacher, evaluates on its CPU
  env and its compiled form from the same initial states, runs in a sweep and a report,
  and unregisters -- no shared file names it."""
  suites.register(JOINER)
  try:
    assert suites.check_task("joiner-reach") == "joiner-reach"
    assert suites.suite_of("joiner-reach") is JOINER
    c = _pointmass_config(tmp_path)
    wd = str(tmp_path / "teacher")
    res = training.train(c, wd)["joiner-reach"]["teacher_ddim10"]
    assert res["suite"] == "joiner" and res["episodes"] == 6
    ds = os.path.join(c.data.dir, "joiner_joiner-reach_state_16ep.zarr")
    assert os.path.isdir(ds)
    run = runs.restore_run(wd)
    pol = run.policies()["teacher_ddim10"]
    jax_form = evaluation.evaluate(pol, "joiner-reach", episodes=6, seed=3, backend="mjx")
    cpu = evaluation.evaluate(pol, "joiner-reach", episodes=6, seed=3, backend="cpu")
    assert jax_form["backend"] == "mjx" and cpu["backend"] == "cpu"
    assert jax_form["initial_state_hashes"] == cpu["initial_state_hashes"]
    assert len(set(cpu["initial_state_hashes"])) == 6
    # the same policy noise and dynamics: the same episodes, to float rounding
    assert abs(jax_form["success_rate"] - cpu["success_rate"]) <= 1 / 6
    root = str(tmp_path / "sweep")
    done, _ = sweep.run_sweep(
      ["joiner"],
      [0],
      ["teacher"],
      "tiny",
      root,
      10,
      2,
      log=lambda *_: None,
      honest_episodes=4,
      honest_seed=5,
    )
    assert done == 1
    cell = json.load(open(os.path.join(root, "joiner-reach", "s0", "teacher", "cell.json")))
    honest = cell["honest"]["teacher_ddim10"]
    assert honest["step"] == 20 and len(honest["initial_state_hashes"]) == 4
    text = open(report.write_report(root)).read()
    assert "joiner" in text and "Toy" in text
  finally:
    suites.unregister("joiner")
  with pytest.raises(ValueError, match="unknown task 'joiner-reach'"):
    suites.check_task("joiner-reach")


@pytest.mark.slow
def test_a_tiny_teacher_learns_the_point_mass_reach(tmp_path):
  """The whole pipeline learns a problem whose answer is known: 600 steps of the tiny
  teacher on 16 expert demonstrations reach the goal in most episodes (the expert: all)."""
  c = _pointmass_config(tmp_path, steps=600, task="pointmass-reach")
  c.eval.episodes = 20
  c.train.batch_size, c.train.lr, c.train.warmup_steps = 64, 1e-3, 20
  res = training.train(c, str(tmp_path / "t"))["pointmass-reach"]["teacher_ddim10"]
  assert res["success_rate"] >= 0.7


def test_the_door_checks_a_task_once_and_fills_the_suites_defaults():
  c = configs.load("teacher", "quick")
  c.task = "blockpush"
  validate.resolve(c)
  assert (c.eval.episode_length, c.data.num_episodes) == (200, 100)
  assert c.pointcloud.camera == "overhead" and c.pointcloud.table == "keep"
  c = configs.load("teacher", "quick")
  c.task = "drawer-open-v3"
  c.pointcloud.camera = "corner3"  # a value given is kept
  validate.resolve(c)
  assert c.task == "drawer-open" and c.eval.episode_length == 200
  assert c.pointcloud.camera == "corner3" and c.pointcloud.camera_pos == (0.6, 0.295, 0.8)
  validate.resolve(c)  # idempotent
  c.task = "blockpsuh"
  with pytest.raises(ConfigError, match="Did you mean blockpush"):
    validate.resolve(c)


def test_suite_declarations_hold_together():
  for name in suites.names():
    s = suites.get(name)
    assert sorted(t for g in s.groups.values() for t in g) == sorted(s.tasks)
    assert set(s.group_labels) == set(s.groups)
    assert s.episode_length > 0 and s.control_hz > 0 and s.action_dim == len(s.action_kind)
  mw = suites.get("metaworld")
  np.testing.assert_allclose(mw.hold([0.3, -0.2, 0.1, 0.7]), [0, 0, 0, 0.7])  # gripper kept
  with pytest.raises(ValueError, match="exactly one group"):
    SuiteInfo(
      name="bad",
      tasks=("a", "b"),
      groups={"g": ("a",)},
      group_labels={"g": "G"},
      make_env=None,
      obs_keys={},
      action_kind=("delta",),
      episode_length=1,
      control_hz=1.0,
      success="",
    )
  clash = SuiteInfo(
    name="clash",
    tasks=("reach",),
    groups={"g": ("reach",)},
    group_labels={"g": "G"},
    make_env=None,
    obs_keys={},
    action_kind=("delta",),
    episode_length=1,
    control_hz=1.0,
    success="",
  )
  with pytest.raises(ValueError, match="belong to suite metaworld"):
    suites.register(clash)
  with pytest.raises(ValueError, match="built in"):
    suites.unregister("metaworld")
  from launch import common  # pylint: disable=g-import-not-at-top

  assert common.register_suites("helpers.pointmass") == ["pointmass"]  # JAXPOLICY_SUITES
  assert episode_seeds(2, 3) == [200_006, 200_007, 200_008]
