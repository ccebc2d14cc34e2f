"""The protocol arithmetic on hand-made numbers, and a sweep that resumes without redoing cells."""
import json
import os

import numpy as np
import pytest

from jaxpolicy import report
from launch import sweep


def test_top_k_and_cell_metrics():
  curve = [(500, 0.2), (1000, 0.9), (1500, 0.6), (2000, 1.0), (2500, 0.8), (3000, 0.7),
           (3500, 0.5)]
  m = report.cell_metrics(curve)
  assert m["top5"] == pytest.approx((1.0 + 0.9 + 0.8 + 0.7 + 0.6) / 5)
  assert m["final"] == 0.5
  assert m["mean_all"] == pytest.approx(np.mean([0.2, 0.9, 0.6, 1.0, 0.8, 0.7, 0.5]))
  assert report.top_k_mean([0.3, 0.1]) == pytest.approx(0.2)   # fewer than k evaluations


def test_group_averages_and_std_over_seeds():
  # drawer-open, door-open: Easy; push: Hard
  cells = {
      ("drawer-open", 0, "sdm"): {"top5": 1.0}, ("drawer-open", 1, "sdm"): {"top5": 0.8},
      ("door-open", 0, "sdm"): {"top5": 0.6}, ("door-open", 1, "sdm"): {"top5": 0.4},
      ("push", 0, "sdm"): {"top5": 0.2}, ("push", 1, "sdm"): {"top5": 0.0},
  }
  agg = report.aggregate(cells, "top5")
  assert agg["task"][("drawer-open", "sdm")] == pytest.approx((0.9, 0.1))
  # Easy per seed: seed0 (1.0 + 0.6) / 2 = 0.8, seed1 (0.8 + 0.4) / 2 = 0.6
  assert agg["group"][("easy", "sdm")] == pytest.approx((0.7, 0.1))
  assert agg["group"][("hard", "sdm")] == pytest.approx((0.1, 0.1))
  # all tasks per seed: seed0 1.8 / 3 = 0.6, seed1 1.2 / 3 = 0.4
  assert agg["group"][("all", "sdm")] == pytest.approx((0.5, 0.1))
  assert ("medium", "sdm") not in agg["group"]


def test_difficulty_groups_match_the_papers():
  from jaxpolicy.envs import registry
  assert {g: len(v) for g, v in registry.GROUPS.items()} == {
      "easy": 28, "medium": 11, "hard": 6, "very_hard": 5}
  assert registry.group_of("hammer") == "medium" and registry.group_of("assembly") == "hard"
  assert registry.group_of("stick-pull") == "very_hard"
  assert registry.group_of("peg-unplug-side") == "easy"


def test_sweep_skips_finished_cells_and_resumes(tmp_path, monkeypatch):
  root = str(tmp_path / "sweep")
  args = (["drawer-open"], [0], ["teacher", "sdm"], "tiny", root, 10, 2)
  done, skipped = sweep.run_sweep(*args, log=lambda *_: None)
  assert (done, skipped) == (2, 0)
  md = report.write_report(root)
  text = open(md).read()
  assert "| sdm (`sdm_1step`) | 1 |" in text and "MetaWorld Easy (1)" in text
  assert os.path.getsize(os.path.join(root, "learning_curves.png")) > 1000
  cell = json.load(open(os.path.join(root, "drawer-open", "s0", "sdm", "cell.json")))
  assert cell["hz_b1"] > 0
  # a rerun trains nothing
  from jaxpolicy.train import loop
  calls = []
  real_train = loop.train
  monkeypatch.setattr(loop, "train", lambda c, w: calls.append(w) or real_train(c, w))
  assert sweep.run_sweep(*args, log=lambda *_: None) == (0, 2)
  assert calls == []
  # a cell stopped after its checkpoint (no cell.json yet) resumes and is not retrained
  os.remove(os.path.join(root, "drawer-open", "s0", "sdm", "cell.json"))
  metrics = os.path.join(root, "drawer-open", "s0", "sdm", "metrics.jsonl")
  n_lines = len(open(metrics).readlines())
  assert sweep.run_sweep(*args, log=lambda *_: None) == (1, 1)
  assert len(open(metrics).readlines()) == n_lines     # no training step was redone
