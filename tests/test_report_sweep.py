"""The protocol arithmetic on hand-made numbers, and a sweep that resumes without redoing cells."""

import json
import os

import numpy as np
import pytest

from jaxpolicy import report
from jaxpolicy.report import groups, stats
from jaxpolicy.report import text as rtext
from jaxpolicy import sweep as sweep_lib
from launch import sweep


def test_top_k_and_cell_metrics():
  curve = [(500, 0.2), (1000, 0.9), (1500, 0.6), (2000, 1.0), (2500, 0.8), (3000, 0.7), (3500, 0.5)]
  m = report.cell_metrics(curve)
  assert m["top5"] == pytest.approx((1.0 + 0.9 + 0.8 + 0.7 + 0.6) / 5)
  assert m["final"] == 0.5
  assert m["mean_all"] == pytest.approx(np.mean([0.2, 0.9, 0.6, 1.0, 0.8, 0.7, 0.5]))
  assert report.top_k_mean([0.3, 0.1]) == pytest.approx(0.2)  # fewer than k evaluations


def test_group_averages_and_std_over_seeds():
  # drawer-open, door-open: Easy; push: Hard
  cells = {
    ("drawer-open", 0, "sdm"): {"top5": 1.0},
    ("drawer-open", 1, "sdm"): {"top5": 0.8},
    ("door-open", 0, "sdm"): {"top5": 0.6},
    ("door-open", 1, "sdm"): {"top5": 0.4},
    ("push", 0, "sdm"): {"top5": 0.2},
    ("push", 1, "sdm"): {"top5": 0.0},
  }
  agg = report.aggregate(cells, "top5")
  assert agg["task"][("drawer-open", "sdm")] == pytest.approx((0.9, 0.1))
  # Easy per seed: seed0 (1.0 + 0.6) / 2 = 0.8, seed1 (0.8 + 0.4) / 2 = 0.6
  assert agg["group"][("easy", "sdm")] == pytest.approx((0.7, 0.1))
  assert agg["group"][("hard", "sdm")] == pytest.approx((0.1, 0.1))
  # all tasks per seed: seed0 1.8 / 3 = 0.6, seed1 1.2 / 3 = 0.4
  assert agg["group"][("all", "sdm")] == pytest.approx((0.5, 0.1))
  assert ("medium", "sdm") not in agg["group"]
  assert rtext._fmt(agg["group"][("easy", "sdm")]) == "70.0 ± 10.0"


def test_tasks_with_fewer_seeds_count_once_in_every_average():
  """A grid that ran the Easy tasks on one seed and the others on three (the leaderboard's)
  averages tasks, not task-seeds: a task's seeds are averaged first. A spread over seeds is
  shown only where all of a group's tasks ran the same seeds; missing and NaN values count
  as not run; intervals resample tasks."""

  cells = {
    ("drawer-open", 0, "sdm"): {"top5": 1.0},  # Easy, seed 0 only
    ("push", 0, "sdm"): {"top5": 0.0},
    ("push", 1, "sdm"): {"top5": 0.2},  # Hard
    ("push", 2, "sdm"): {"top5": 0.4},
    ("door-open", 0, "sdm"): {"top5": float("nan")},
  }  # Easy, no value
  agg = report.aggregate(cells, "top5")["group"]
  assert agg[("hard", "sdm")] == pytest.approx((0.2, np.std([0.0, 0.2, 0.4])))
  assert agg[("easy", "sdm")][0] == 1.0 and np.isnan(agg[("easy", "sdm")][1])
  assert rtext._fmt(agg[("easy", "sdm")]) == "100.0"  # no "± 0.0"
  # the two tasks' mean, not 0.367 (seed 0: (1.0 + 0.0) / 2, seeds 1-2: push alone); no
  # spread, since the tasks ran different seeds
  assert agg[("all", "sdm")][0] == pytest.approx(0.6) and np.isnan(agg[("all", "sdm")][1])
  # the honest protocol: the same task weighting, intervals resampling tasks
  values = {k[:2]: v["top5"] for k, v in cells.items()}
  gm = stats.by_group(values)
  assert gm["all"][0] == pytest.approx(0.6) and gm["all"][3:] == (2, 4)
  assert rtext._ci(gm["hard"]) == "20.0 [one task]"  # 3 seeds, still one task
  s = rtext.summary({}, None, report.aggregate(cells, "top5"))
  assert s["protocols"]["papers_top5"]["sdm"]["easy"]["std_over_seeds"] is None
  json.dumps(s, allow_nan=False)  # strict JSON


def test_group_tables_of_a_partial_grid_compare_methods_on_the_same_tasks():
  cells = {
    ("push", 0, "teacher"): {"top5": 0.9},
    ("push", 0, "sdm"): {"top5": 0.8},
    ("hammer", 0, "teacher"): {"top5": 0.1},
  }  # hammer's student not finished
  common = report.complete_cells(cells)
  assert set(common) == {("push", 0, "teacher"), ("push", 0, "sdm")}
  agg = report.aggregate(common, "top5")["group"]
  assert agg[("all", "teacher")][0] == pytest.approx(0.9)  # not (0.9 + 0.1) / 2


def test_sweep_task_groups_expand():
  assert sweep.expand_tasks(["very_hard"]) == [
    "shelf-place",
    "disassemble",
    "stick-pull",
    "stick-push",
    "pick-place-wall",
  ]
  assert len(sweep.expand_tasks(["metaworld"])) == 50
  from jaxpolicy import suites

  with_expert = [t for t in suites.tasks() if suites.suite_of(t).make_expert is not None]
  assert sweep.expand_tasks(["all"]) == with_expert  # every suite with a scripted expert
  assert "pusht" in sweep.expand_tasks(["all", "pusht"])  # no expert: only when named
  assert "pusht" not in sweep.expand_tasks(["all"])
  assert sweep.expand_tasks(["blockpush", "metaworld/hard"])[:3] == [
    "blockpush",
    "blockpush-narrow",
    "assembly",
  ]
  assert sweep.expand_tasks(["push", "hard"])[:2] == ["push", "assembly"]
  with pytest.raises(ValueError, match="Did you mean"):
    sweep.expand_tasks(["pushh"])


def test_difficulty_groups_match_the_papers():
  from jaxpolicy import suites

  assert {g: len(v) for g, v in suites.get("metaworld").groups.items()} == {
    "easy": 28,
    "medium": 11,
    "hard": 6,
    "very_hard": 5,
  }
  assert suites.group_of("hammer") == "medium" and suites.group_of("assembly") == "hard"
  assert suites.group_of("stick-pull") == "very_hard"
  assert suites.group_of("peg-unplug-side") == "easy"


def cell_rate(root, method, policy, task="drawer-open", seed=0):
  with open(os.path.join(root, task, f"s{seed}", method, "cell.json")) as f:
    return json.load(f)["honest"][policy]["success_rate"]


@pytest.mark.slow
def test_sweep_skips_finished_cells_and_resumes(tmp_path, monkeypatch):
  root = str(tmp_path / "sweep")
  args = (["drawer-open"], [0], ["teacher", "sdm"], "tiny", root, 10, 2)
  done, skipped = sweep.run_sweep(*args, log=lambda *_: None, honest_episodes=2, honest_seed=7)
  assert (done, skipped) == (2, 0)
  # the honest protocol: the final main policy on paired episodes, the teacher's few-step
  # DDIM beside it; wall and CPU time per cell
  tcell = json.load(open(os.path.join(root, "drawer-open", "s0", "teacher", "cell.json")))
  assert set(tcell["honest"]) == {
    "teacher_ddim10",
    "teacher_ddim1_trailing",
    "teacher_ddim2_trailing",
  }
  h = tcell["honest"]["teacher_ddim2_trailing"]
  assert h["episodes"] == 2 and h["seed"] == 7 and h["nfe"] == 2 and len(h["successes"]) == 2
  assert tcell["cpu_s"] > 0 and tcell["wall_s"] > 0
  # provenance: the host and the code each cell was trained with (a grid spans sessions)
  from jaxpolicy.runtime import host

  assert tcell["host"] == host.describe() and tcell["code"] == host.code_version()
  md = report.write_report(root)
  text = open(md).read()
  assert f"* **Provenance** (cells per host and per code version): {host.describe()} (2)" in text
  assert "| sdm (`sdm_1step`) | 1 |" in text and "| Easy (1) |" in text
  assert os.path.getsize(os.path.join(root, "learning_curves.png")) > 1000
  for png in ("success_vs_hz.png", "per_task_success.png", "learning_curves_groups.png"):
    assert os.path.getsize(os.path.join(root, png)) > 1000
  assert "## Honest protocol" in text and "## Paired differences" in text
  assert text.index("## Reading") < text.index("## Success rate")  # the reading first
  summary = json.load(open(os.path.join(root, "summary.json")))
  assert summary["finished_cells"] == 2 and summary["cpu_hours"] > 0
  import csv

  rows = list(csv.DictReader(open(os.path.join(root, "cells.csv"))))
  assert {r["policy"] for r in rows} == {
    "teacher_ddim10",
    "teacher_ddim1_trailing",
    "teacher_ddim2_trailing",
    "sdm_1step",
  }
  sdm = next(r for r in rows if r["policy"] == "sdm_1step")
  assert sdm["group"] == "easy" and sdm["honest_episodes"] == "2" and float(sdm["cpu_s"]) > 0
  assert float(sdm["honest_success"]) == cell_rate(root, "sdm", "sdm_1step")
  cell = json.load(open(os.path.join(root, "drawer-open", "s0", "sdm", "cell.json")))
  assert cell["hz_b1"] > 0 and set(cell["honest"]) == {"sdm_1step"}
  assert "Measured by the sweep after each cell's training" in text
  # latency measured apart: every policy of the grid, baselines included, then the report
  # takes its figures (and plots the baselines)
  lat = json.load(open(report.measure_latency(root, calls=3, log=lambda *_: None)))
  assert set(lat["policies"]) == {
    "teacher_ddim10",
    "teacher_ddim1_trailing",
    "teacher_ddim2_trailing",
    "sdm_1step",
  }
  assert lat["policies"]["teacher_ddim2_trailing"]["nfe"] == 2
  assert lat["cell_of"] == {"teacher": "drawer-open/s0", "sdm": "drawer-open/s0"}
  # a cell restored from an export has no weights to time: skipped, and none left is an error
  ckpt = os.path.join(root, "drawer-open", "s0", "sdm", "checkpoints")
  os.rename(ckpt, ckpt + ".away")
  with pytest.raises(FileNotFoundError, match=r"\['sdm'\].*has its checkpoints"):
    report.measure_latency(root, calls=3, log=lambda *_: None)
  os.rename(ckpt + ".away", ckpt)
  text = open(report.write_report(root)).read()
  assert "Measured apart from the sweep" in text and "`teacher_ddim1_trailing` (baseline)" in text
  cells = report.load_sweep(root)
  report.apply_latency(root, cells)
  assert cells[("drawer-open", 0, "sdm")]["hz_b1"] == lat["policies"]["sdm_1step"]["hz_b1"]
  # a rerun trains nothing
  from jaxpolicy import training

  calls = []
  real_train = training.train
  monkeypatch.setattr(training, "train", lambda c, w: calls.append(w) or real_train(c, w))
  assert sweep.run_sweep(*args, log=lambda *_: None) == (0, 2)
  assert calls == []
  # a cell stopped after its checkpoint (no cell.json yet) resumes and is not retrained
  os.remove(os.path.join(root, "drawer-open", "s0", "sdm", "cell.json"))
  metrics = os.path.join(root, "drawer-open", "s0", "sdm", "metrics.jsonl")
  n_lines = len(open(metrics).readlines())
  assert sweep.run_sweep(*args, log=lambda *_: None) == (1, 1)
  assert len(open(metrics).readlines()) == n_lines  # no training step was redone


def test_sweeps_sharing_a_grid_claim_cells(tmp_path, monkeypatch):
  """Two sweeps on one grid: a cell held by a live process is skipped, and so are the
  distillation cells waiting for its teacher; a dead process's claim is taken over."""
  import socket
  import subprocess
  import sys

  root = str(tmp_path / "sweep")
  teacher = os.path.join(root, "drawer-open", "s0", "teacher")
  os.makedirs(teacher)
  host = socket.gethostname()
  with open(os.path.join(teacher, "claim"), "w") as f:
    f.write(f"{host} {os.getppid()}")  # a live process that is not this one
  from jaxpolicy import training

  calls, lines = [], []
  monkeypatch.setattr(training, "train", lambda c, w: calls.append(w))
  args = (["drawer-open"], [0], ["teacher", "sdm"], "tiny", root, 10, 2)
  assert sweep.run_sweep(*args, log=lines.append) == (0, 0)
  assert calls == []
  assert any("being trained by" in l for l in lines) and any(
    "waits for its teacher" in l for l in lines
  )
  assert sweep.claim(teacher) == f"{host} {os.getppid()}"
  # the holder died: its claim is taken over, and released again
  dead = subprocess.run(
    [sys.executable, "-c", "import os; print(os.getpid())"],
    capture_output=True,
    text=True,
    check=True,
  ).stdout.strip()
  with open(os.path.join(teacher, "claim"), "w") as f:
    f.write(f"{host} {dead}")
  assert sweep.claim(teacher) is None
  assert open(os.path.join(teacher, "claim")).read() == f"{host} {os.getpid()}"
  sweep.release(teacher)
  assert not os.path.exists(os.path.join(teacher, "claim"))
  assert sweep.claim(teacher) is None and sweep.claim(teacher) is None  # ours already
  sweep.release(teacher)


def test_a_failing_cell_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
  """A teacher whose demonstrations cannot be collected: its cell and its students' get
  failed.json with the reason, the next task still trains, a rerun skips them,
  --retry_failed trains them again, and the report lists them with the reason."""
  from jaxpolicy import training

  root = str(tmp_path / "sweep")
  trained, lines = [], []

  def fake_train(config, wd):
    if config.task == "push":
      raise RuntimeError("the scripted expert for push succeeded in only 2 of 30 episodes")
    trained.append(wd)

  monkeypatch.setattr(training, "train", fake_train)
  monkeypatch.setattr(sweep_lib, "measure_hz", lambda wd: {"hz_b1": 1.0})
  args = (["push", "drawer-open"], [0], ["teacher", "sdm"], "tiny", root, 10, 2)
  assert sweep.run_sweep(*args, log=lines.append) == (2, 0)  # drawer-open's two cells
  assert [os.path.basename(w) for w in trained] == ["teacher", "sdm"]
  rec = json.load(open(os.path.join(root, "push", "s0", "teacher", "failed.json")))
  assert rec["reason"].startswith("RuntimeError: the scripted expert for push")
  assert "Traceback" in rec["detail"] and rec["method"] == "teacher"
  stud = json.load(open(os.path.join(root, "push", "s0", "sdm", "failed.json")))
  assert stud["reason"].startswith("its teacher failed: RuntimeError")
  assert any("FAILED" in l and "the sweep goes on" in l for l in lines)
  assert not os.path.exists(os.path.join(root, "push", "s0", "teacher", "claim"))  # released
  # the report lists both, with the reason
  fails = stats.failures(
    {}, json.load(open(os.path.join(root, "sweep.json"))), report.load_failures(root)
  )
  assert (
    "push seed 0 teacher: failed: RuntimeError: the scripted expert for push "
    "succeeded in only 2 of 30 episodes" in fails
  )
  assert any(f.startswith("push seed 0 sdm: failed: its teacher failed") for f in fails)
  # a rerun skips them (and the finished cells); a retry trains them again
  trained.clear()
  assert sweep.run_sweep(*args, log=lines.append) == (0, 4) and trained == []
  monkeypatch.setattr(training, "train", lambda config, wd: trained.append(wd))
  assert sweep.run_sweep(*args, log=lines.append, retry_failed=True) == (2, 2)
  assert not os.path.exists(os.path.join(root, "push", "s0", "teacher", "failed.json"))
  assert report.load_failures(root) == {}
  # an error every cell meets stops the sweep after a few cells in a row
  monkeypatch.setattr(training, "train", lambda config, wd: 1 / 0)
  with pytest.raises(RuntimeError, match="3 cells in a row failed"):
    sweep.run_sweep(
      ["hammer", "sweep", "soccer", "basketball"],
      [0],
      ["teacher"],
      "tiny",
      root,
      10,
      2,
      log=lines.append,
      max_failures_in_a_row=3,
    )
  assert len(report.load_failures(root)) == 3


def test_plan_only_adds_cells_to_the_grid_and_trains_nothing(tmp_path, monkeypatch):
  from jaxpolicy import training

  root = str(tmp_path / "sweep")
  monkeypatch.setattr(training, "train", lambda config, wd: pytest.fail("trained"))
  assert sweep.run_sweep(
    ["push"], [1, 2], ["teacher", "sdm"], "tiny", root, 10, 2, plan_only=True
  ) == (0, 0)
  assert sweep.run_sweep(
    ["push", "hammer"], [0], ["teacher", "sdm"], "tiny", root, 10, 2, plan_only=True
  ) == (0, 0)
  grid = json.load(open(os.path.join(root, "sweep.json")))
  assert len(grid["cells"]) == 8 and grid["seeds"] == [0, 1, 2]
  assert not [d for d in os.listdir(root) if d != "sweep.json"]  # no cell directory
  assert "push seed 1 sdm, teacher: not finished" in stats.failures({}, grid)


def test_wilson_interval_against_the_closed_form():
  from jaxpolicy import stats

  # 8 of 10: the textbook Wilson 95 % interval is (0.490, 0.943)
  lo, hi = stats.wilson_interval(8, 10)
  assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
  lo, hi = stats.wilson_interval(0, 20)  # never below 0; upper bound 0.161
  assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-3)
  lo, hi = stats.wilson_interval(100, 100)
  assert hi == 1.0 and lo == pytest.approx(0.9630, abs=1e-3)
  # exact ends at every count: rounding once left 1 - 1e-16 at 200 of 200 (seeds pooled),
  # and the report's per-task bars failed on the negative error bar it made
  for n in range(1, 401):
    assert stats.wilson_interval(n, n)[1] == 1.0 and stats.wilson_interval(0, n)[0] == 0.0


def test_sign_test_against_the_binomial_tails():
  from jaxpolicy import stats

  # 1 vs 9 discordant episodes: 2 * (C(10,0) + C(10,1)) / 2^10 = 0.0215; symmetric
  assert stats.sign_test(1, 9) == pytest.approx(22 / 1024) == stats.sign_test(9, 1)
  assert stats.sign_test(0, 5) == pytest.approx(2 / 32)
  assert stats.sign_test(5, 5) == 1.0 and stats.sign_test(0, 0) == 1.0
  assert stats.sign_test(3, 49) < 1e-10 < stats.sign_test(10, 26) < 0.05


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_more_values():
  from jaxpolicy import stats

  rng = np.random.default_rng(0)
  few = rng.uniform(0, 1, 10)
  many = rng.uniform(0, 1, 1000)
  m, lo, hi = stats.bootstrap_mean_interval(few)
  assert lo < m < hi and m == pytest.approx(few.mean())
  m2, lo2, hi2 = stats.bootstrap_mean_interval(many)
  assert hi2 - lo2 < 0.3 * (hi - lo)
  # the standard error of a uniform mean: 1 / sqrt(12 n); 95 % half-width ~ 1.96 of it
  assert (hi2 - lo2) / 2 == pytest.approx(1.96 / np.sqrt(12 * 1000), rel=0.15)


def _honest(policy, k, n=100):
  return {policy: {"success_rate": k / n, "successes": [1] * k + [0] * (n - k), "episodes": n}}


def test_honest_protocol_groups_pairs_and_failures_on_hand_made_cells():

  # drawer-open: Easy; push: Hard. Teacher, SDM per (task, seed); CD only on drawer-open.
  cells = {}
  succ = {
    ("drawer-open", 0): (90, 85, 70),
    ("drawer-open", 1): (80, 80, 60),
    ("push", 0): (40, 30, None),
    ("push", 1): (5, 15, None),
  }
  for (t, s), (kt, ks, kc) in succ.items():
    teacher = _honest("teacher_ddim10", kt)
    teacher.update(_honest("teacher_ddim1_trailing", kt // 2))
    cells[(t, s, "teacher")] = {"honest": teacher, "cpu_s": 3600.0, "wall_s": 1800.0}
    cells[(t, s, "sdm")] = {"honest": _honest("sdm_1step", ks), "cpu_s": 1800.0}
    if kc is not None:
      cells[(t, s, "cd")] = {"honest": _honest("cd_1step", kc)}
  values = stats.honest_values(cells)
  gm = stats.group_means(values["SDM (1 step)"])
  assert gm["easy"][0] == pytest.approx(0.825) and gm["hard"][0] == pytest.approx(0.225)
  assert gm["all"][0] == pytest.approx((0.85 + 0.8 + 0.3 + 0.15) / 4)
  assert gm["all"][3:] == (2, 4)  # 2 tasks, 4 cells
  assert gm["easy"][1] <= gm["easy"][0] <= gm["easy"][2]
  diffs = stats.paired_differences(cells)
  # SDM - teacher per cell: -5, 0, -10, +10 points
  assert diffs["SDM - teacher"]["all"][0] == pytest.approx(-0.0125)
  assert diffs["SDM - teacher"]["hard"][0] == pytest.approx(0.0)
  assert diffs["SDM - CD"]["all"][3:] == (1, 2)  # only where both exist
  grid = {"cells": [list(k) for k in cells] + [["push", 0, "cd"]]}
  fails = stats.failures(cells, grid)
  assert "push seed 0 cd: not finished" in fails
  assert any(f.startswith("push seed 1: teacher 5 %") for f in fails)
  md = rtext.honest_markdown(cells, grid)
  assert "| SDM (1 step) | 82.5 [" in md and "SDM (paper)" in md and "| push | Hard |" in md
  # differences in signed points; one task per group here: no interval to resample
  assert "| SDM - teacher | -2.5 [one task] | +0.0 [one task] | -1.3 [-2.5, +0.0] |" in md
  s = rtext.summary(cells, grid, report.aggregate({k: {"top5": 0.5} for k in cells}, "top5"))
  assert s["finished_cells"] == len(cells) and s["planned_cells"] == len(cells) + 1
  assert s["cpu_hours"] == pytest.approx(4 * 1.0 + 4 * 0.5)
  assert s["protocols"]["honest"]["SDM (1 step)"]["easy"]["n_cells"] == 2
  assert s["protocols"]["papers_top5"]["sdm"]["all"]["mean"] == 0.5


def test_reading_and_protocol_gaps_follow_the_numbers():
  """The report's plain-words reading is written from the numbers: a paired difference whose
  interval excludes 0 reads as one, a tie as no difference; the papers' protocol minus the
  honest one splits into checkpoint selection and the episode sets; paper rows average the
  50 tasks by group size."""

  tasks = [
    "hammer",
    "sweep",
    "coffee-push",
    "soccer",
    "basketball",
    "bin-picking",
    "box-close",
    "coffee-pull",
  ]  # Medium
  cells = {}
  for i, t in enumerate(tasks):
    kt = 40 + 10 * i
    teacher = _honest("teacher_ddim10", kt)
    teacher.update(_honest("teacher_ddim1_trailing", kt - 1))
    cells[(t, 0, "teacher")] = {
      "honest": teacher,
      "top5": kt / 100 + 0.10,
      "final": kt / 100 + 0.05,
      "curve": [(500, 0.1), (1000, 0.2)],
    }
    cells[(t, 0, "sdm")] = {
      "honest": _honest("sdm_1step", kt + 20 + i % 2),  # clearly better
      "top5": 0.5,
      "final": 0.5,
    }
    cells[(t, 0, "cd")] = {"honest": _honest("cd_1step", kt + 20 + (i % 2) - 1 + 2 * (i % 2 == 0))}
  gaps = stats.protocol_gap(cells)
  # teacher: top5 - honest = +10 points in every cell, of which +5 selection, +5 episodes
  assert gaps["top5_minus_honest"]["teacher"]["all"][0] == pytest.approx(0.10)
  assert gaps["top5_minus_final"]["teacher"]["all"][0] == pytest.approx(0.05)
  assert gaps["final_minus_honest"]["teacher"]["all"][0] == pytest.approx(0.05)
  assert "cd" not in gaps["top5_minus_honest"]  # no top5: not counted
  for k in list(cells)[:12]:
    cells[k].update(host="AMD EPYC (AVX2), 2 CPUs", code="abc1234")
  text = rtext.reading(
    cells,
    {"cells": [list(k) for k in cells]},
    {"policies": {"teacher_ddim10": {"hz_b1": 100.0}, "sdm_1step": {"hz_b1": 500.0}}},
  )
  lines = {l.split("**")[1]: l for l in text.splitlines() if l.startswith("* **")}
  assert "interval excludes 0: the first is higher, by 20.5" in lines["SDM - teacher"]
  assert "No difference shown" in lines["SDM - CD"]
  assert "Medium 8/11" in lines["Coverage."] and "24 of 24 cells" in lines["Coverage."]
  assert "`sdm_1step` 500 Hz (5.0x)" in lines["Speed"]
  assert lines["Provenance"].endswith(
    "AMD EPYC (AVX2), 2 CPUs (12); code abc1234 (12); 12 cells predate the record."
  )
  assert "teacher +10.0 points [+10.0, +10.0]" in text
  # a broken reading (verdicts not from the numbers) would say the same of both pairs
  assert lines["SDM - teacher"].split(":", 1)[1] != lines["SDM - CD"].split(":", 1)[1]
  assert "state observations" in lines["What it does not show."]
  # below 8 tasks a bootstrap interval is no basis for a verdict either way, however many
  # seeds each task ran (the tasks are what the interval resamples)
  few = {k: v for k, v in cells.items() if k[0] in tasks[:3]}
  few.update({(t, s, m): v for (t, _, m), v in few.items() for s in (1, 2, 3)})
  text = rtext.reading(few, {"cells": [list(k) for k in few], "preset": "quick"})
  assert "over 3 tasks (12 task-seeds): too few tasks for a claim" in text
  assert "excludes 0" not in text
  # summary.json: the papers' protocol with a bootstrap interval over tasks too
  s = rtext.summary(
    cells,
    {"cells": [list(k) for k in cells]},
    report.aggregate({k: v for k, v in cells.items() if "top5" in v}, "top5"),
  )
  top5 = s["protocols"]["papers_top5"]["teacher"]["medium"]
  assert top5["n_cells"] == 8 and top5["low"] <= top5["mean"] <= top5["high"]
  assert top5["mean"] == pytest.approx(np.mean([(40 + 10 * i) / 100 + 0.1 for i in range(8)]))
  assert s["protocols"]["papers_final"]["sdm"]["all"]["mean"] == pytest.approx(0.5)
  assert "cd" not in s["protocols"]["papers_final"]  # its cells have no evaluations
  avg = stats.paper_average(groups.PAPER_ROWS["SDM (paper)"])
  assert avg == pytest.approx((28 * 86.5 + 11 * 65.8 + 6 * 35.8 + 5 * 71.6) / 50)
  assert rtext.paper_rows(["medium"])[2] == "| SDM (paper) | 65.8 | - |"
  assert rtext.paper_rows(list(groups.PAPER_GROUPS), nfe=True)[0].endswith(
    f"| {stats.paper_average(groups.PAPER_ROWS['DP3* (paper)']):.1f} |"
  )


@pytest.mark.slow
def test_sweep_overrides_reach_every_cell_and_pin_the_workdir(tmp_path):
  """--set: a point-cloud sweep is the state sweep with config fields changed in every cell
  (teacher and students alike); a workdir holds one setting; a misspelt field stops first."""
  from jaxpolicy.errors import ConfigError

  o = sweep.parse_overrides(
    [
      "obs=pointcloud",
      "pointcloud.num_points=512",
      "pointcloud.table=hide",
      "pointcloud.crop_low=(-0.6, 0.25, 0.005)",
    ]
  )
  assert o == {
    "obs": "pointcloud",
    "pointcloud.num_points": 512,
    "pointcloud.table": "hide",
    "pointcloud.crop_low": (-0.6, 0.25, 0.005),
  }
  root = str(tmp_path / "pc")
  for method in ("teacher", "sdm", "step"):
    c = sweep.cell_config(method, "coffee-push", 1, "tiny", root, 10, 2, o)
    assert (c.obs, c.pointcloud.num_points, c.pointcloud.table) == ("pointcloud", 512, "hide")
    assert c.pointcloud.crop_low == (-0.6, 0.25, 0.005) and c.task == "coffee-push"
  with pytest.raises(ConfigError, match="no field pointcloud.num_pts"):
    sweep.run_sweep(
      ["drawer-open"], [0], ["sdm"], "tiny", root, 10, 2, overrides={"pointcloud.num_pts": 512}
    )
  with pytest.raises(ValueError, match="key=value"):
    sweep.parse_overrides(["obs"])
  os.makedirs(root)
  with open(os.path.join(root, "sweep.json"), "w") as f:
    json.dump({"preset": "tiny", "overrides": o, "cells": []}, f)
  with pytest.raises(ValueError, match="holds a sweep with overrides"):
    sweep.run_sweep(["drawer-open"], [0], ["sdm"], "tiny", root, 10, 2, overrides={})
  assert not os.path.exists(os.path.join(root, "drawer-open"))  # nothing trained


def test_pointcloud_vs_state_table_pairs_episodes_on_hand_made_cells(tmp_path):
  """scripts/pointcloud_vs_state.py: per task the honest success of each side, the split of
  discordant paired episodes with its sign test, and the mean differences over the tasks
  where both sides finished (a missing cell is shown, not averaged)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  from jaxpolicy import stats  # pylint: disable=g-import-not-at-top

  path = os.path.join(os.path.dirname(__file__), "..", "scripts", "pointcloud_vs_state.py")
  spec = importlib.util.spec_from_file_location("pointcloud_vs_state", path)
  pvs = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(pvs)

  def cell(root, task, method, successes, curve):
    d = os.path.join(root, task, "s0", method)
    os.makedirs(d)
    name = {"teacher": "teacher_ddim10", "sdm": "sdm_1step"}[method]
    h = {
      name: {
        "success_rate": float(np.mean(successes)),
        "successes": successes,
        "episodes": len(successes),
        "seed": 1000,
        "nfe": 1,
      }
    }
    json.dump({"honest": h}, open(os.path.join(d, "cell.json"), "w"))
    with open(os.path.join(d, "evals.jsonl"), "w") as f:
      for i, s in enumerate(curve):
        f.write(
          json.dumps(
            {"step": 500 * (i + 1), "results": {name: {"success_rate": s, "episodes": 20}}}
          )
          + "\n"
        )
    json.dump({"tasks": {task: {name: {"nfe": 1}}}}, open(os.path.join(d, "eval.json"), "w"))

  pc, state = str(tmp_path / "pc"), str(tmp_path / "state")
  cell(pc, "push", "teacher", [1] * 8 + [0] * 2, [0.5, 0.7, 0.9, 0.8, 0.6, 0.7])
  cell(state, "push", "teacher", [0] * 8 + [1] * 2, [0.2] * 6)
  cell(pc, "push", "sdm", [1] * 7 + [0] * 3, [0.6] * 4)
  cell(pc, "reach", "teacher", [1] * 10, [1.0] * 6)  # no state run: shown, not averaged
  res = pvs.compare(pc, state, ["push", "reach"], 0)
  push = res["tasks"]["push"]
  assert push["teacher_pc_vs_state"] == {
    "a_only": 8,
    "b_only": 2,
    "p": pytest.approx(stats.sign_test(8, 2)),
  }
  assert push["sdm_vs_teacher_pc"]["a_only"] == 0 and push["sdm_vs_teacher_pc"]["b_only"] == 1
  assert push["pointcloud_teacher"]["papers_top5"] == pytest.approx(0.74)
  assert res["teacher_pc_minus_state"] == {"mean": pytest.approx(0.6), "tasks": 1}
  assert res["sdm_pc_minus_teacher_pc"] == {"mean": pytest.approx(-0.1), "tasks": 1}
  text = pvs.markdown(res)
  assert "| reach | - | 1.00 [" in text and "+60.0 points" in text and "8 / 2" in text


def _hand_made_grid(root):
  """The files a sweep leaves: drawer-open and push, seed 0, teacher / SDM / CD; push's CD
  failed; checkpoints beside them (never packed); latency measured apart."""
  rng = np.random.default_rng(0)
  names = {"teacher": "teacher_ddim10", "sdm": "sdm_1step", "cd": "cd_1step"}

  def write(rel, obj):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      if rel.endswith(".jsonl"):
        f.writelines(json.dumps(r) + "\n" for r in obj)
      else:
        json.dump(obj, f)

  for task in ("drawer-open", "push"):
    for method, name in names.items():
      cell = f"{task}/s0/{method}"
      if (task, method) == ("push", "cd"):
        write(f"{cell}/failed.json", {"reason": "non-finite loss = nan at step 7"})
        continue
      ok = [int(x) for x in rng.random(10) < 0.7]
      honest = {
        name: {
          "success_rate": sum(ok) / 10,
          "successes": ok,
          "episodes": 10,
          "seed": 1000,
          "nfe": 1,
        }
      }
      if method == "teacher":
        honest["teacher_ddim1_trailing"] = dict(honest[name], successes=ok[::-1])
      write(
        f"{cell}/cell.json",
        {
          "task": task,
          "seed": 0,
          "method": method,
          "honest": honest,
          "hz_b1": 100.0 + rng.random(),
          "latency_ms_b1": 9.5,
          "cpu_s": 60.0,
          "wall_s": 40.0,
          "host": "h",
          "code": "c",
        },
      )
      curve = [
        {
          "step": s,
          "results": {
            name: {"success_rate": float(rng.random()), "episodes": 20, "backend": "cpu"}
          },
        }
        for s in (10, 20, 30)
      ]
      write(f"{cell}/evals.jsonl", curve)
      write(f"{cell}/eval.json", {"tasks": {task: {name: {"nfe": 1, "action_mse": 0.01}}}})
      write(f"{cell}/metrics.jsonl", [{"step": 10, "loss": 0.5}])
      write(f"{cell}/checkpoints/30/params", {"weights": "not packed"})
  write(
    "sweep.json",
    {
      "preset": "tiny",
      "methods": list(names),
      "cells": [[t, 0, m] for t in ("drawer-open", "push") for m in names],
    },
  )
  write(
    "latency.json",
    {
      "command": "python -m launch.report --latency",
      "date": "2026-12-07",
      "machine": "h",
      "cpu_busy_before": 0.0,
      "calls": 10,
      "cell_of": {m: "drawer-open/s0" for m in names},
      "policies": {
        n: {"hz_b1": 200.0, "latency_ms_b1": 5.0, "first_call_ms_b1": 6.0, "nfe": 1}
        for n in list(names.values()) + ["teacher_ddim1_trailing"]
      },
    },
  )


def test_a_cells_file_regenerates_the_report_of_its_grid(tmp_path):
  """launch.cells: a grid packed into one file and written back gives the same report.md,
  summary.json and cells.csv; the same files pack to the same bytes; no weights go in;
  --resume leaves out the teacher of an unfinished task-seed."""
  from launch import cells  # pylint: disable=g-import-not-at-top

  root, back = tmp_path / "grid", tmp_path / "back"
  _hand_made_grid(str(root))
  report.write_report(str(root))
  packed, again = str(tmp_path / "cells.json.gz"), str(tmp_path / "again.json.gz")
  assert cells.pack(str(root), packed) == {"cells": 6, "files": 23}
  cells.pack(str(root), again)
  assert open(packed, "rb").read() == open(again, "rb").read()
  assert not any("checkpoints" in rel for rel in cells.load(packed))
  assert cells.unpack(packed, str(back)) == 23
  report.write_report(str(back))
  for name in ("report.md", "summary.json", "cells.csv"):
    assert (back / name).read_text() == (root / name).read_text(), name
  text = (back / "report.md").read_text()
  assert "Measured apart from the sweep" in text and "non-finite loss = nan" in text
  # to continue the grid: push's CD failed, so its teacher is trained again
  cont = tmp_path / "continue"
  cells.unpack(packed, str(cont), resume=True, log=lambda *_: None)
  assert not (cont / "push" / "s0" / "teacher").exists()
  assert (cont / "push" / "s0" / "sdm" / "cell.json").exists()
  assert (cont / "drawer-open" / "s0" / "teacher" / "cell.json").exists()
  # a file that is not one: one line
  with pytest.raises(ValueError, match="is not a cells file"):
    cells.load(str(root / "sweep.json"))


# -- issue 37: the papers' 5 best over a common window, per-task intervals over shared
# initial states, exact paired tests per task with multiple-testing corrections, and the
# pairs of the methods trained from data alone. Each statistic is checked against an
# independent computation (numpy / math.comb in float64), on numbers chosen so that the
# nearby wrong variants give other values.


def _wilson_by_hand(p, n, z=1.959964):
  """The Wilson score interval, written out again (float64)."""
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
  return max(0.0, centre - half) if p > 0 else 0.0, min(1.0, centre + half) if p < 1 else 1.0


def _binomial_two_sided(a, b):
  """Exact two-sided sign test by hand: 2 P(X <= min(a, b)), X ~ Bin(a + b, 1/2), capped."""
  from math import comb

  n = a + b
  return min(1.0, 2.0 * sum(comb(n, i) for i in range(min(a, b) + 1)) / 2.0**n)


def test_papers_best_5_over_a_common_window_of_training():
  """The students start from the trained teacher, so their pools hold only trained policies;
  the teacher's 5 best over its whole run hold its under-trained first evaluations. The
  common window is each policy's last W steps, W the shortest run of the task-seed."""
  teacher = [(500, 0.2), (1000, 0.5), (1500, 0.7), (2000, 0.8), (2500, 0.9), (3000, 0.85)]
  sdm = [(500, 0.9), (1000, 0.6), (1500, 0.95), (2000, 0.7)]
  step = [(500, 0.1), (1000, 0.3), (1500, 0.4), (2000, 0.6), (2500, 0.65), (3000, 0.7)]
  cells = {
    ("push", 0, "teacher"): {"curve": teacher},
    ("push", 0, "sdm"): {"curve": sdm},
    ("push", 0, "step"): {"curve": step},
    ("push", 1, "teacher"): {"curve": teacher},
  }  # alone: its whole run
  w = stats.common_window(cells)
  assert w[("push", 0, "teacher")]["window_steps"] == 2000
  # steps 1,500-3,000 (> 3,000 - 2,000): (0.7 + 0.8 + 0.9 + 0.85) / 4; the whole run's 5
  # best (0.75) and a window that also takes step 1,000 (0.75) are other numbers
  assert w[("push", 0, "teacher")]["top5_window"] == pytest.approx(np.mean([0.7, 0.8, 0.9, 0.85]))
  assert w[("push", 0, "teacher")]["window_evals"] == 4
  assert w[("push", 0, "teacher")]["window_from"] == 1500
  assert report.cell_metrics(teacher)["top5"] == pytest.approx(0.75)
  assert w[("push", 0, "sdm")]["top5_window"] == pytest.approx(np.mean([0.9, 0.6, 0.95, 0.7]))
  assert w[("push", 0, "step")]["top5_window"] == pytest.approx(np.mean([0.4, 0.6, 0.65, 0.7]))
  assert w[("push", 1, "teacher")]["top5_window"] == pytest.approx(0.75)  # 5 best of 6
  assert w[("push", 1, "teacher")]["window_steps"] == 3000
  # the protocol gap reads the window's 5 best where a cell has them
  honest = lambda k: {"teacher_ddim10": {"success_rate": k, "successes": [], "episodes": 0}}
  gcells = stats.with_common_window(
    {
      ("push", 0, "teacher"): {
        "curve": teacher,
        "top5": 0.75,
        "final": 0.85,
        "honest": honest(0.8),
      },
      ("push", 0, "sdm"): {"curve": sdm},
    }
  )
  gap = stats.protocol_gap(gcells)["top5_minus_final"]["teacher"]["all"][0]
  assert gap == pytest.approx(np.mean([0.7, 0.8, 0.9, 0.85]) - 0.85)


def _papers_cell(curve, nfe=10, policy="teacher_ddim10"):
  return {
    "curve": curve,
    **report.cell_metrics(curve),
    "policy": policy,
    "nfe": nfe,
    "episodes": [20],
    "backends": ["cpu"],
    "hz_b1": 100.0,
    "latency_ms_b1": 10.0,
    "action_mse": 0.01,
  }


def test_the_papers_table_shows_the_common_window_and_says_what_the_whole_run_reads():
  teacher = [(500, 0.2), (1000, 0.5), (1500, 0.7), (2000, 0.8), (2500, 0.9), (3000, 0.85)]
  sdm = [(500, 0.9), (1000, 0.6), (1500, 0.95), (2000, 0.7)]
  cells = {
    ("push", 0, "teacher"): _papers_cell(teacher),
    ("push", 0, "sdm"): _papers_cell(sdm, 1, "sdm_1step"),
  }
  md = rtext.papers_markdown(cells)
  table = md.split("in a common window of training (the papers' metric) (cf. SDM Table 1)")[1]
  assert (
    f"| teacher (`teacher_ddim10`) | 10 | {100 * np.mean([0.7, 0.8, 0.9, 0.85]):.1f} |"
    in table.split("## ")[0]
  )
  note = next(l for l in md.splitlines() if l.startswith("Common window:"))
  assert (
    "last 2,000 training steps" in note
    and "teacher steps 1,500-3,000 (4 evaluations)" in note
    and "sdm steps 500-2,000 (4 evaluations)" in note
  )
  assert "sdm start from the trained teacher" in note
  assert "teacher 75.0 (-6.2)" in note  # its whole run, 0.75
  assert "teacher 70.0 -> 85.0" in note  # still improving
  # the per-task table: the window's 5 best first
  assert "| push | Hard | 81 / 85 / 66 | 79 / 70 / 79 |" in md


def test_per_task_intervals_count_the_shared_initial_states_once():
  """Every seed of a task runs the same initial states: the interval is Wilson's at the
  effective number of episodes from the per-state means over seeds (Kish), not at the
  pooled count."""
  rng = np.random.default_rng(3)
  n = 100
  same = (rng.random(n) < 0.6).astype(int)
  # seeds that agree on every state: one seed's interval, not that of 300 episodes
  p, lo, hi, n_eff = stats.clustered_wilson([same, same, same])
  assert n_eff == pytest.approx(n, rel=1e-12)
  assert (lo, hi) == pytest.approx(_wilson_by_hand(same.mean(), n), abs=1e-12)
  assert hi - lo > 1.5 * np.subtract(*_wilson_by_hand(same.mean(), 3 * n)[::-1])
  # seeds partly agreeing: n_eff = N p (1 - p) / var(state means), by hand
  ys = [np.where(rng.random(n) < 0.7, same, 1 - same) for _ in range(3)]
  p, lo, hi, n_eff = stats.clustered_wilson(ys)
  pooled = np.concatenate(ys).mean()
  by_state = np.mean(ys, axis=0)
  want = n * pooled * (1 - pooled) / np.mean((by_state - by_state.mean()) ** 2)
  assert n < n_eff < 3 * n and n_eff == pytest.approx(want, rel=1e-12)
  assert (p, lo, hi) == pytest.approx((pooled, *_wilson_by_hand(pooled, want)), abs=1e-12)
  # independent seeds' n_eff is capped at the episodes there are
  indep = [np.array([1, 0] * 50), np.array([0, 1] * 50)]  # state means all 0.5: var 0
  assert stats.clustered_wilson(indep)[3] == 200 and stats.clustered_wilson(
    [np.array([1, 0] * 50)] * 2
  )[3] == pytest.approx(100, rel=1e-12)
  # one seed: the plain Wilson interval; all successes: that of one seed's episodes
  assert stats.clustered_wilson([same])[1:] == pytest.approx(
    (*_wilson_by_hand(same.mean(), n), n), abs=1e-12
  )
  ones = np.ones(n, int)
  assert stats.clustered_wilson([ones] * 3)[1] == pytest.approx(_wilson_by_hand(1.0, n)[0])
  # the report's per-task table and its note
  cells = {
    ("push", s, "teacher"): {
      "honest": {
        "teacher_ddim10": {"success_rate": same.mean(), "successes": same.tolist(), "episodes": n}
      }
    }
    for s in range(3)
  }
  lo, hi = _wilson_by_hand(same.mean(), n)
  md = rtext.honest_markdown(cells)
  assert f"| push | Hard | {100 * same.mean():.0f} [{100 * lo:.0f}, {100 * hi:.0f}] |" in md
  assert "effective number of episodes" in md


def test_corrections_and_the_sign_tests_attainable_level_by_hand():
  from math import comb

  ps = [0.01, 0.035, 0.025, 0.2, 0.009]
  order = np.argsort(ps)
  m = len(ps)
  holm = np.maximum.accumulate([min(1.0, (m - r) * ps[i]) for r, i in enumerate(order)])
  bh = np.minimum.accumulate([ps[i] * m / (m - r) for r, i in enumerate(order[::-1])])
  assert stats.holm(ps)[order] == pytest.approx(holm, abs=1e-15)
  assert stats.benjamini_hochberg(ps)[order[::-1]] == pytest.approx(bh, abs=1e-15)
  # Holm, smallest first: 0.045, 0.045 (0.01 * 4 = 0.04 raised by the step-down), 0.075,
  # 0.075 (0.035 * 2 = 0.07 raised), 0.2
  assert list(stats.holm(ps) < 0.05) == [True, False, False, False, True]
  assert stats.holm(ps)[0] == pytest.approx(0.045) and stats.holm(ps)[1] == pytest.approx(0.075)
  # BH: 0.025 (0.009 * 5 = 0.045 lowered by the step-up to 0.01's 0.025), 0.025, 0.042,
  # 0.044, 0.2
  assert list(stats.benjamini_hochberg(ps) < 0.05) == [True, True, True, False, True]
  assert stats.benjamini_hochberg(ps)[4] == pytest.approx(0.025)
  assert stats.benjamini_hochberg(ps)[2] == pytest.approx(0.025 * 5 / 3)
  # the exact test's level: P(p < 0.05) under the null, by enumeration
  for n in (1, 5, 6, 10, 17, 40):
    want = sum(comb(n, k) for k in range(n + 1) if _binomial_two_sided(k, n - k) < 0.05) / 2**n
    assert stats.sign_test_size(n) == pytest.approx(want, abs=1e-15)
  assert stats.sign_test_size(5) == 0.0 and stats.sign_test_size(10) == pytest.approx(22 / 1024)


def test_per_task_paired_tests_pool_the_seeds_discordant_episodes():
  """McNemar's exact test per task and pair of rows: on each seed the policies are paired
  episode by episode (the same initial states); the discordant episodes of the seeds are
  pooled into one two-sided sign test; the family is every test with a discordant episode."""
  n = 40

  def honest(policy, succ):
    return {policy: {"success_rate": float(np.mean(succ)), "successes": list(succ), "episodes": n}}

  base = np.zeros(n, int)
  base[:20] = 1
  cells = {}
  # push: SDM succeeds where the teacher fails on 9 + 6 states, the reverse on 1 + 0;
  # the teacher's DDIM-1 equals the teacher
  for s, (gain, loss) in enumerate([(9, 1), (6, 0)]):
    sdm = base.copy()
    sdm[20 : 20 + gain] = 1
    sdm[:loss] = 0
    teacher = honest("teacher_ddim10", base)
    teacher.update(honest("teacher_ddim1_trailing", base))
    cells[("push", s, "teacher")] = {"honest": teacher}
    cells[("push", s, "sdm")] = {"honest": honest("sdm_1step", sdm)}
  # hammer, seed 0: SDM and its teacher each win 3 states (same totals, different states)
  other = base.copy()
  other[:3], other[20:23] = 0, 1
  teacher = honest("teacher_ddim10", base)
  teacher.update(honest("teacher_ddim1_trailing", other))
  cells[("hammer", 0, "teacher")] = {"honest": teacher}
  cells[("hammer", 0, "sdm")] = {"honest": honest("sdm_1step", base)}
  res = stats.task_tests(cells)
  by = {(x["task"], x["a"], x["b"]): x for x in res["tests"]}
  t, d1, sdm = "teacher (DDIM-10)", "teacher DDIM-1 from noise (trailing)", "SDM (1 step)"
  x = by[("push", t, sdm)]
  assert (x["a_only"], x["b_only"], x["seeds"]) == (1, 15, 2)
  p = _binomial_two_sided(1, 15)  # 2 * 17 / 2^16 = 0.00052
  assert x["p"] == pytest.approx(p, rel=1e-12) and p == pytest.approx(34 / 2**16)
  # per seed, neither would reach 0.01 (9 vs 1: 0.021; 6 vs 0: 0.031)
  assert min(_binomial_two_sided(1, 9), _binomial_two_sided(0, 6)) > 0.01
  assert ("push", t, d1) not in by  # no discordant episode: no test
  assert by[("hammer", t, d1)]["p"] == 1.0  # 3 vs 3
  # the family: push t-sdm, push d1-sdm, hammer t-d1, hammer d1-sdm
  assert res["m"] == 4 and res["below"] == 2 and res["tasks_below"] == 1 and res["tasks"] == 2
  ps = np.array([by[k]["p"] for k in sorted(by)])
  for k, h, q in zip(sorted(by), stats.holm(ps), stats.benjamini_hochberg(ps)):
    assert by[k]["holm"] == pytest.approx(h) and by[k]["bh"] == pytest.approx(q)
  assert by[("push", t, sdm)]["holm"] == pytest.approx(min(1.0, 4 * p))
  assert res["expected"] == pytest.approx(
    2 * stats.sign_test_size(16) + 2 * stats.sign_test_size(6)
  )
  # the reading names what survives, the policy that succeeds more often first
  text = rtext.reading(cells)
  line = next(l for l in text.splitlines() if l.startswith("* **Per task.**"))
  assert "reach p < 0.05 in 2 of the 4 task-pair tests" in line
  assert (
    f"Benjamini-Hochberg (false discovery rate 5 %), 2 survive, in 1 task (push: {sdm} "
    f"over {t} (15 vs 1)" in line
  )
  assert "So not every per-task difference of a few points is noise" in line
  assert "noise;" not in text
  hammer = rtext.reading({k: v for k, v in cells.items() if k[0] == "hammer"})
  assert (
    "none survives; by Holm (family-wise error), none. No single task's difference "
    "survives" in hammer
  )
  md = rtext.honest_markdown(cells)
  assert f"| push | Hard | {t} | {sdm} | 1 | 15 | 2 | {p:.2g} |" in md


def test_pairs_of_the_methods_trained_from_data_alone():
  """A grid with bc / meanflow / mip cells gets SDM's paired differences against them."""
  from jaxpolicy import methods

  for key in ("bc", "meanflow", "mip"):
    assert key in methods.names()
    assert any(a == key or b == key for _, a, b in groups.PAIRS)
  cells = {}
  for s, (kt, ks, kb, km) in enumerate([(60, 70, 40, 65), (50, 60, 50, 50)]):
    cells[("push", s, "teacher")] = {"honest": _honest("teacher_ddim10", kt)}
    cells[("push", s, "sdm")] = {"honest": _honest("sdm_1step", ks)}
    cells[("push", s, "bc")] = {"honest": _honest("bc_1step", kb)}
    cells[("push", s, "meanflow")] = {"honest": _honest("meanflow_1step", km)}
  labels = [label for _, label, _, _ in stats.honest_rows(cells)]
  assert labels == ["teacher (DDIM-10)", "SDM (1 step)", "BC (1 step)", "MeanFlow (1 step)"]
  diffs = stats.paired_differences(cells)
  assert diffs["SDM - BC"]["all"][0] == pytest.approx(np.mean([0.30, 0.10]))
  assert diffs["SDM - MeanFlow"]["all"][0] == pytest.approx(np.mean([0.05, 0.10]))
  assert "SDM - MIP" not in diffs  # no mip cells
  md = rtext.honest_markdown(cells)
  assert "| SDM - BC |" in md and "| SDM - MeanFlow |" in md
  assert "**SDM - MeanFlow** (paired" in rtext.reading(cells)
