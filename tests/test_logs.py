"""A run's logs: TensorBoard event files read back with TensorBoard's own reader (the scalars
and steps as logged), learning rates against the schedule's formula in numpy, process 0
only, a resumed run's stale events dropped; W&B in offline mode (slow: a real training)."""

import glob
import json
import math
import os

import ml_collections
import numpy as np
import pytest

pytest.importorskip("tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

import configs  # noqa: E402
from jaxpolicy import training  # noqa: E402
from jaxpolicy.runtime import logs  # noqa: E402

pytestmark = pytest.mark.xdist_group("test_logs")


def _read(workdir) -> dict:
  """{tag: [(step, value)]} of every scalar in the workdir's event files."""
  acc = event_accumulator.EventAccumulator(str(workdir))
  acc.Reload()
  return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def _config(**log):
  c = ml_collections.ConfigDict({"log": dict(tensorboard=True, wandb=False), "seed": 0})
  c.log.update(log)
  return c


def test_event_file_holds_the_scalars_and_steps_logged(tmp_path):
  with logs.RunLog(str(tmp_path), _config()) as log:
    for step, loss in ((5, 0.9), (10, 0.5), (15, 0.25)):
      log.train(
        step, {"loss": loss, "loss_g": loss / 2}, 12.5 + step, step * 0.1, {"model": 1e-4 * step}
      )
    log.evaluation(
      15,
      {
        "teacher_ddim10": {
          "success_rate": 0.75,
          "latency_ms": 3.5,
          "episodes": 20,
          "successes": [1, 0, 1],
          "backend": "metaworld",
          "nfe": 10,
        }
      },
    )
  got = _read(tmp_path)
  assert got["train/loss"] == [(5, pytest.approx(0.9)), (10, 0.5), (15, 0.25)]
  assert got["train/loss_g"] == [(5, pytest.approx(0.45)), (10, 0.25), (15, 0.125)]
  assert got["train/steps_per_s"] == [(5, 17.5), (10, 22.5), (15, 27.5)]
  assert [s for s, _ in got["lr/model"]] == [5, 10, 15]
  np.testing.assert_allclose([v for _, v in got["lr/model"]], [5e-4, 1e-3, 1.5e-3], rtol=1e-6)
  assert got["eval/teacher_ddim10/success_rate"] == [(15, 0.75)]
  assert got["eval/teacher_ddim10/latency_ms"] == [(15, 3.5)]
  assert got["eval/teacher_ddim10/nfe"] == [(15, 10.0)]
  assert not any(t.endswith(("episodes", "successes", "backend")) for t in got)
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert [(l["step"], l["loss"], l["lr_model"]) for l in lines] == [
    (5, 0.9, 5e-4),
    (10, 0.5, 1e-3),
    (15, 0.25, 1.5e-3),
  ]


def test_only_process_zero_writes(tmp_path):
  with logs.RunLog(str(tmp_path), _config(), primary=False) as log:
    log.train(5, {"loss": 1.0}, 1.0, 1.0, {"model": 1e-4})
    log.evaluation(5, {"p": {"success_rate": 1.0}})
  assert os.listdir(tmp_path) == []


def test_a_resumed_run_drops_the_events_past_its_checkpoint(tmp_path):
  with logs.RunLog(str(tmp_path), _config()) as log:
    for step in (5, 10, 15):  # crashed after step 15, checkpoint at 10
      log.train(step, {"loss": float(step)}, 1.0, 1.0, {})
  with logs.RunLog(str(tmp_path), _config(), start_step=10) as log:
    for step in (15, 20):
      log.train(step, {"loss": step + 0.5}, 1.0, 1.0, {})
  assert _read(tmp_path)["train/loss"] == [(5, 5.0), (10, 10.0), (15, 15.5), (20, 20.5)]


def test_wandb_offline_needs_no_network_and_resumes_its_run(tmp_path, monkeypatch):
  pytest.importorskip("wandb")
  monkeypatch.setenv("WANDB_SILENT", "true")
  monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
  cfg = _config(
    tensorboard=False, wandb=True, wandb_mode="offline", wandb_project="p", wandb_entity=""
  )
  for start, steps in ((0, (5, 10)), (10, (15,))):
    with logs.RunLog(str(tmp_path), cfg, start_step=start) as log:
      for step in steps:
        log.train(step, {"loss": 1.0 / step}, 2.0, 1.0, {"model": 1e-4})
      log.evaluation(steps[-1], {"sdm_1step": {"action_mse": 0.125}})
  run_id = (tmp_path / "wandb_run_id").read_text().strip()
  files = sorted(glob.glob(str(tmp_path / "wandb" / "offline-run-*" / f"run-{run_id}.wandb")))
  assert len(files) == 2  # one per attempt, both of the workdir's one W&B run
  record = open(files[0], "rb").read()
  assert (
    b"train/loss" in record and b"lr/model" in record and b"eval/sdm_1step/action_mse" in record
  )
  assert not glob.glob(str(tmp_path / "events.out.tfevents.*"))


def _warmup_cosine(lr, warmup, total, count):
  """optax.warmup_cosine_decay_schedule(0, lr, warmup, total, 0) written out."""
  if count < warmup:
    return lr * count / warmup
  return lr * 0.5 * (1 + math.cos(math.pi * min(count - warmup, total - warmup) / (total - warmup)))


@pytest.mark.slow
def test_a_training_run_logs_losses_rates_speed_and_evaluations(tmp_path, monkeypatch):
  """SDM (tiny) on a LeRobot dataset, its teacher trained first: both workdirs hold event
  files with the losses of metrics.jsonl, each optimiser's learning rate at its own update
  count, steps/s, and the final evaluation of eval.json; W&B wrote its offline run."""
  pytest.importorskip("wandb")
  pytest.importorskip("pyarrow")
  from helpers import datasets as ds  # pylint: disable=g-import-not-at-top

  monkeypatch.setenv("WANDB_SILENT", "true")
  path = ds.write_lerobot_v21(str(tmp_path / "arm"), ds.robot_episodes(episodes=6, length=16))
  c = configs.load("sdm", "tiny")
  c.data.path, c.obs, c.task = path, "lowdim", ""
  c.log.wandb, c.log.wandb_mode = True, "offline"
  c.teacher_workdir = str(tmp_path / "teacher")
  training.train(c, str(tmp_path / "sdm"))

  for workdir, cfg, rates in (
    (tmp_path / "teacher", c.teacher_train, {"model": (c.teacher_train.lr, 1)}),
    (
      tmp_path / "sdm",
      c.train,
      {"gen": (c.sdm.gen_lr, c.sdm.gen_every), "fake": (c.sdm.fake_lr, 1)},
    ),
  ):
    got = _read(workdir)
    lines = [json.loads(l) for l in open(workdir / "metrics.jsonl")]
    steps = [l["step"] for l in lines]
    assert steps == list(range(cfg.log_every, cfg.steps + 1, cfg.log_every))
    losses = [k for k in lines[0] if k.startswith("loss")]
    for k in losses:
      assert [s for s, _ in got[f"train/{k}"]] == steps
      np.testing.assert_allclose(
        [v for _, v in got[f"train/{k}"]], [l[k] for l in lines], rtol=1e-6
      )
    assert all(v > 0 for _, v in got["train/steps_per_s"])
    for name, (lr, every) in rates.items():  # an optimiser's count: its own updates
      warmup = c.sdm.warmup_steps if name != "model" else cfg.warmup_steps
      total = -(-cfg.steps // every)
      want = [_warmup_cosine(lr, min(warmup, total - 1), total, -(-s // every) - 1) for s in steps]
      assert [s for s, _ in got[f"lr/{name}"]] == steps
      np.testing.assert_allclose([v for _, v in got[f"lr/{name}"]], want, rtol=1e-5, atol=1e-12)
  ev = json.load(open(tmp_path / "sdm" / "eval.json"))["tasks"]["arm"]
  got = _read(tmp_path / "sdm")
  for policy in ("teacher_ddim10", "sdm_1step"):
    for metric in ("action_mse", "latency_ms"):
      assert got[f"eval/{policy}/{metric}"] == [
        (c.train.steps, pytest.approx(ev[policy][metric], rel=1e-6))
      ]
  runs = glob.glob(str(tmp_path / "sdm" / "wandb" / "offline-run-*" / "run-*.wandb"))
  assert len(runs) == 1
  record = open(runs[0], "rb").read()
  for tag in (b"train/loss_d", b"lr/gen", b"eval/sdm_1step/action_mse"):
    assert tag in record
