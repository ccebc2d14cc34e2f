"""What a run writes for people to read: metrics.jsonl (always), TensorBoard event files in its
workdir (tensorboardX; `tensorboard --logdir runs`), Weights & Biases when asked for.

Scalars: train/<loss>, train/steps_per_s, lr/<optimiser> (the rate of its latest update),
eval/<policy>/<metric> (success_rate, latency_ms, action_mse, ...). Only process 0 writes;
on every other process a RunLog does nothing. A resumed run drops the events its earlier
attempt wrote past the checkpoint it resumes from (TensorBoard's purge step).
"""

from __future__ import annotations

import json
import os
import secrets
import time

import numpy as np

# evaluation entries that are settings or counts, not measurements
NOT_METRICS = ("step", "seed", "episodes", "episode_length")


def _scalar(v) -> float | None:
  """A number to plot, or None (flags, strings, lists)."""
  if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
    return None
  return float(v)


def _wandb_id(workdir: str) -> str:
  """The workdir's W&B run id, made on its first run and kept in the workdir: a resumed run
  continues its W&B run, a new run in a deleted and recreated workdir starts a new one."""
  path = os.path.join(workdir, "wandb_run_id")
  if os.path.exists(path):
    with open(path) as f:
      return f.read().strip()
  run_id = secrets.token_hex(8)
  os.makedirs(workdir, exist_ok=True)
  with open(path, "w") as f:
    f.write(run_id + "\n")
  return run_id


class RunLog:
  """One run's logs; `with RunLog(workdir, config, start_step) as log: log.train(...)`."""

  def __init__(self, workdir: str, config, start_step: int = 0, primary: bool = True):
    self.workdir, self.primary = workdir, primary
    self._tb = self._wandb = None
    if not primary:
      return
    log = config.get("log") or {}
    if log.get("tensorboard", True):
      try:
        from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      except ImportError:
        raise ValueError(
          "TensorBoard logging needs tensorboardX: pip install tensorboardX "
          "(or --config.log.tensorboard=False)"
        ) from None
      # resuming from a checkpoint at start_step: drop what was logged after it; a file of
      # its own even within the second the last one was opened (the name has seconds only)
      self._tb = SummaryWriter(
        logdir=workdir,
        purge_step=start_step + 1 if start_step else None,
        flush_secs=30,
        filename_suffix=f".{time.time_ns()}",
      )
    if log.get("wandb", False):
      try:
        import wandb  # pylint: disable=g-import-not-at-top
      except ImportError:
        raise ValueError(
          "--config.log.wandb=True needs wandb: pip install 'jaxpolicy[wandb]'"
          " (or pip install wandb)"
        ) from None
      self._wandb = wandb.init(
        project=log.get("wandb_project", "jaxpolicy"),
        entity=log.get("wandb_entity") or None,
        name=os.path.basename(os.path.normpath(workdir)),
        id=_wandb_id(workdir),
        resume="allow",
        dir=workdir,
        mode=log.get("wandb_mode", "online"),
        config=config.to_dict(),
      )

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def scalars(self, step: int, values: dict) -> None:
    values = {k: s for k, v in values.items() if (s := _scalar(v)) is not None}
    if self._tb is not None:
      for tag, v in values.items():
        self._tb.add_scalar(tag, v, step)
    if self._wandb is not None and values:
      self._wandb.log(values, step=step)

  def train(
    self, step: int, metrics: dict, steps_per_s: float, wall_s: float, learning_rates: dict
  ) -> None:
    """One log interval: its mean losses, speed and the optimisers' learning rates; also a
    line of metrics.jsonl."""
    if not self.primary:
      return
    with open(os.path.join(self.workdir, "metrics.jsonl"), "a") as f:
      f.write(
        json.dumps(
          dict(
            step=step,
            steps_per_s=steps_per_s,
            wall_s=wall_s,
            **metrics,
            **{f"lr_{k}": v for k, v in learning_rates.items()},
          )
        )
        + "\n"
      )
    values = {f"train/{k}": v for k, v in metrics.items()}
    values["train/steps_per_s"] = steps_per_s
    values.update({f"lr/{k}": v for k, v in learning_rates.items()})
    self.scalars(step, values)

  def evaluation(self, step: int, results: dict) -> None:
    """{policy: {metric: value}} of one evaluation (success, latency, action error, ...)."""
    if not self.primary:
      return
    values = {}
    for policy, metrics in results.items():
      for k, v in metrics.items():
        if k not in NOT_METRICS:
          values[f"eval/{policy}/{k}"] = v
    self.scalars(step, values)
    self.flush()

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None
    if self._wandb is not None:
      self._wandb.finish()
      self._wandb = None
