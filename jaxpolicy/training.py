"""The one training loop every method runs: data, state, jitted steps, logs, evals, checkpoints.

Resumes from the latest checkpoint in the workdir; the step rng is `fold_in(seed, step)`,
so a resumed run continues exactly where an uninterrupted one would (with the same
`train.steps_per_call` and `log_every`: a call of several steps is the same steps only to
float rounding). SIGTERM / Ctrl-C save a checkpoint after the running call and exit; a
non-finite loss stops the run before anything bad is saved.
"""

from __future__ import annotations

import json
import logging as _logging
import os
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxpolicy import methods
from jaxpolicy import nets as nets_lib
from jaxpolicy import demos, evaluation, runs
from jaxpolicy.methods.state import learning_rates
from jaxpolicy.runs import Run, default_workdir, restore_run
from jaxpolicy.runtime import files, logs, sharding
from jaxpolicy.runtime.checkpoint import Checkpointer
from jaxpolicy.validate import check_config, check_teacher, check_workdir, identity

logging = _logging.getLogger("jaxpolicy")


class NonFiniteLoss(FloatingPointError):
  pass


class Interrupted(SystemExit):
  pass


def _meta(config, data_normalizer, obs_shapes, action_dim, step, extra=None):
  return dict(
    config=config.to_dict(),
    normalizer=data_normalizer.to_json(),
    obs_shapes={k: list(v) for k, v in obs_shapes.items()},
    action_dim=int(action_dim),
    method=config.method,
    step=int(step),
    **(extra or {}),
  )


def _check_finite(history, first_step):
  for i, m in enumerate(history):
    for k, v in m.items():
      if k.endswith("_mask") or not m.get(k + "_mask", 1):
        continue
      if not np.all(np.isfinite(v)):
        raise NonFiniteLoss(
          f"non-finite {k} = {float(np.asarray(v).ravel()[0])} at step "
          f"{first_step + i}; the last good checkpoint is kept. Lower the "
          f"learning rate or check the data."
        )


def _per_step(history) -> list[dict]:
  """[(steps in the call, its metrics)] -> one metrics dict per step (a call of n > 1 steps
  stacks its metrics on a leading axis)."""
  out = []
  for n, m in history:
    out.extend([m] if n == 1 else [{k: v[i] for k, v in m.items()} for i in range(n)])
  return out


def _average(history) -> dict:
  """Mean of each metric; a metric `m` with a `m_mask` companion averages where mask is 1."""
  out = {}
  for k in history[-1]:
    if k.endswith("_mask"):
      continue
    vals = np.array([h[k] for h in history], np.float64)
    mask = np.array([h.get(k + "_mask", 1.0) for h in history], np.float64)
    out[k] = float((vals * mask).sum() / mask.sum()) if mask.sum() else float("nan")
  return out


class _SignalGuard:
  """Turns SIGTERM / SIGINT into a flag checked between calls (of `train.steps_per_call`
  steps each)."""

  def __init__(self):
    self.signum = None
    self._old = {}

  def __enter__(self):
    for s in (signal.SIGTERM, signal.SIGINT):
      try:
        self._old[s] = signal.signal(s, self._handle)
      except ValueError:  # not the main thread
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    if self.signum is not None:  # second signal: stop now
      raise KeyboardInterrupt
    self.signum = signum
    logging.warning("received signal %d: will checkpoint and exit after the running call", signum)

  def __exit__(self, *exc):
    for s, h in self._old.items():
      signal.signal(s, h)


def load_or_train_teacher(config) -> Run:
  """The teacher run for a distillation config: restored, resumed or trained first."""
  workdir = config.teacher_workdir or default_workdir(config, method="teacher")
  ckpt = Checkpointer(workdir)
  latest = ckpt.latest_step()
  if latest is not None:
    saved = ml_collections.ConfigDict(ckpt.restore_meta(latest)["config"])
    ckpt.close()
    check_teacher(saved, config, workdir)
    if latest >= saved.train.steps:
      logging.info("using the trained teacher in %s (step %d)", workdir, latest)
      return restore_run(workdir)
    tconfig = saved
    logging.info(
      "teacher in %s stopped at step %d of %d: resuming it first",
      workdir,
      latest,
      saved.train.steps,
    )
  elif (
    config.teacher_workdir
    and os.path.isdir(workdir)
    and os.listdir(workdir)
    and not os.path.exists(os.path.join(workdir, "config.json"))
  ):
    raise FileNotFoundError(
      f"teacher_workdir {workdir} holds no teacher checkpoint. Point "
      f"--config.teacher_workdir at a trained teacher run, or leave it "
      f"empty to train one."
    )
  else:
    logging.info(
      "no trained teacher found at %s: training the teacher first (%s preset)",
      workdir,
      config.preset,
    )
    tconfig = runs.teacher_config(config)
  train(tconfig, workdir)
  return restore_run(workdir)


def train(config, workdir: str | None = None) -> dict:
  """Trains `config` in `workdir` (resuming), evaluates, writes eval.json; returns results."""
  check_config(config)
  workdir = workdir or default_workdir(config)
  method = methods.get(config.method)
  teacher = load_or_train_teacher(config) if method.INFO.needs_teacher else None
  check_workdir(workdir, config)
  os.makedirs(workdir, exist_ok=True)
  if sharding.is_primary():
    # atomic: a peer process checks this file (check_workdir) while process 0 writes it
    files.write_json(
      os.path.join(workdir, "config.json"),
      {"identity": identity(config), "config": config.to_dict()},
    )

  data = demos.load_demo_data(config, normalizer=teacher.normalizer if teacher else None)
  if teacher is not None and data.obs_shapes != teacher.obs_shapes:
    raise ValueError(
      f"teacher observation shapes {teacher.obs_shapes} differ from the data's {data.obs_shapes}"
    )
  nets = nets_lib.build_nets(config, data.action_dim)
  rng = jax.random.PRNGKey(config.seed)
  state = method.init(
    config, nets, data.obs_shapes, jax.random.fold_in(rng, 1), teacher.state if teacher else None
  )
  # one point-cloud sensor for every evaluation of the run (renderers made on first use)
  with demos.open_sensor(config) as sensor:
    return _train_and_evaluate(config, workdir, method, teacher, data, nets, state, rng, sensor)


def _train_and_evaluate(config, workdir, method, teacher, data, nets, state, rng, sensor):
  ckpt = Checkpointer(workdir)
  compiled = {}  # the run's policies, reused by every evaluation
  with logs.RunLog(workdir, config, ckpt.latest_step() or 0, sharding.is_primary()) as log:
    try:
      state, step = _fit(
        config, workdir, method, nets, data, state, ckpt, rng, compiled, log, sensor
      )
    finally:
      ckpt.close()
    return _final_evaluation(
      config, workdir, method, teacher, data, nets, state, step, compiled, log, sensor
    )


def _final_evaluation(
  config, workdir, method, teacher, data, nets, state, step, compiled, log, sensor
):
  """The run's policies (and its teacher's) evaluated at the end: eval.json, evals.jsonl."""
  if not sharding.is_primary():
    return {}
  if not config.eval.get("at_end", True):
    logging.info(
      "eval.at_end is off: no final evaluation (python -m launch.evaluate "
      "--workdir=%s evaluates the saved policies)",
      workdir,
    )
    return {}
  run = Run(config, workdir, nets, state, data.normalizer, data.obs_shapes, data.action_dim, step)
  # the teacher evaluated beside its student in the student's compute dtype
  policies = (
    dict(teacher.policies(dtype=config.eval.get("dtype", "float32"))) if teacher is not None else {}
  )
  policies.update(run.policies(reuse=compiled))
  name = runs.run_name(config)
  results = {name: evaluation.evaluate_policies(config, policies, step, sensor, data)}
  if data.val is not None and runs.eval_task(config):  # held-out action error (offline
    for pname, pol in policies.items():  # evaluation has it already)
      results[name][pname]["action_mse"] = pol.action_mse(data.val, jax.random.PRNGKey(0))
  final = getattr(method, "final_metrics", None)  # {policy name: {extra metric: value}}
  if final is not None:
    for pname, extra in final(config, nets, state, data, policies).items():
      results[name][pname].update(extra)
  with open(os.path.join(workdir, "evals.jsonl"), "a") as f:
    f.write(json.dumps({"step": step, "results": results[name], "final": True}) + "\n")
  log.evaluation(step, results[name])
  evaluation.write_results(
    workdir,
    results,
    extra={
      "method": config.method,
      "step": step,
      "preset": config.preset,
      "obs": config.obs,
      "data_path": config.data.get("path", ""),
      "teacher_workdir": teacher.workdir if teacher else None,
    },
  )
  print(evaluation.format_table(results), flush=True)
  return results


def make_train_step(config, method, nets, mesh, steps: int = 1):
  """The jitted train step `(state, windows, step) -> (state, metrics)`; with `steps` > 1,
  that many consecutive steps in one call (a `lax.scan` from `step`), metrics stacked.

  The batch is sampled on device from `fold_in(PRNGKey(seed), 2)` folded with the step and
  sharded over the mesh's "data" axis; state and windows are replicated; state donated.
  Several steps per call pay the host's dispatch once: a quick-size state has ~600 leaves,
  and handing them to a call costs the host a noticeable part of a small step (measured in
  docs/speed.md, "What each optimisation is").
  """
  step_rng = jax.random.fold_in(jax.random.PRNGKey(config.seed), 2)
  repl, batch_sharded = sharding.replicated(mesh), sharding.data_sharded(mesh)

  def step_fn(state, windows, step):
    k_batch, k_step = jax.random.split(jax.random.fold_in(step_rng, step))
    batch = windows.sample(k_batch, config.train.batch_size)
    batch = jax.lax.with_sharding_constraint(batch, batch_sharded)
    return method.train_step(config, nets, state, batch, k_step)

  def steps_fn(state, windows, first):
    return jax.lax.scan(
      lambda s, i: step_fn(s, windows, i), state, first + jnp.arange(steps, dtype=jnp.int32)
    )

  return jax.jit(
    step_fn if steps == 1 else steps_fn,
    in_shardings=(repl, repl, repl),
    out_shardings=(repl, repl),
    donate_argnums=(0,),
  )


def step_plan(start: int, total: int, log_every: int, per_call: int) -> list[int]:
  """Steps per call from `start` to `total`: `per_call` at a time, each log interval (where
  the loop logs, checkpoints and evaluates) ending on its boundary, the rest one by one."""
  plan, step = [], start
  while step < total:
    boundary = min(total, (step // log_every + 1) * log_every)
    n = per_call if step + per_call <= boundary else 1
    plan.append(n)
    step += n
  return plan


def live_state(config, nets, state, mesh):
  """(the state split to the U-Net's live kernel taps, `join` back to full kernels).

  With `train.live_taps` (default) the step loop runs on the live taps of every U-Net in
  the state -- params, optimiser moments, EMA -- and never touches the dead ones (taps that
  only ever see zero padding at this horizon: same function, same gradients on the live
  taps); checkpoints, evaluations and the returned state get `join(state)`, full shapes.
  """
  if not config.train.get("live_taps", True):
    return state, lambda s: s
  live = nets.live_taps()
  repl = sharding.replicated(mesh)
  state, dead = jax.jit(live.split, out_shardings=repl)(state)
  join = jax.jit(live.join, out_shardings=repl)
  return state, lambda s: join(s, dead)


def _fit(config, workdir, method, nets, data, state, ckpt, rng, compiled: dict, log, sensor=None):
  """The step loop: resume, jitted steps, logs (`log`, runtime/logs.py), periodic checkpoints
  and evaluations.

  Data parallel over a ("data",) mesh of `train.num_devices` devices (0 = all): state and
  dataset replicated, the global batch sharded. Only process 0 logs, writes metrics and
  evaluates; every process takes part in checkpointing.
  """
  mesh = sharding.make_mesh(config.train.get("num_devices", 0))
  n_dev = mesh.devices.size
  if config.train.batch_size % n_dev:
    raise ValueError(
      f"train.batch_size ({config.train.batch_size}) must be divisible by the "
      f"number of devices ({n_dev}); set --config.train.batch_size or "
      f"--config.train.num_devices"
    )
  primary = sharding.is_primary()
  state = sharding.put_replicated(state, mesh)
  windows = sharding.put_replicated(data.train, mesh)
  start = ckpt.latest_step() or 0
  if start:
    state, _ = ckpt.restore(state, start)
    logging.info("resuming %s from step %d", workdir, start)
  meta = lambda s: _meta(config, data.normalizer, data.obs_shapes, data.action_dim, s)
  state, full = live_state(config, nets, state, mesh)
  total = config.train.steps
  log_every = max(1, config.train.log_every)
  plan = step_plan(start, total, log_every, config.train.get("steps_per_call", 1))
  # {steps per call: its jitted step}: only those the plan uses are built and compiled
  jit_steps = {n: make_train_step(config, method, nets, mesh, n) for n in sorted(set(plan))}
  if jax.process_count() > 1:
    # Compile first, then meet: the first step's collective would otherwise wait for a
    # peer that is still compiling (slower host), and Gloo's rendezvous gives up after 30 s.
    jit_steps = {
      n: f.lower(state, windows, np.int32(start)).compile() for n, f in jit_steps.items()
    }
    sharding.barrier(f"jaxpolicy_train_step_compiled_from_{start}")
  evals_path = os.path.join(workdir, "evals.jsonl")
  history, t_last, s_last, t0 = [], time.time(), start, time.time()
  logging.info(
    "training %s on %s (%s obs, %d train windows) for %d steps -> %s",
    config.method,
    runs.run_name(config),
    config.obs,
    data.train.num_windows,
    total,
    workdir,
  )
  step = start
  with _SignalGuard() as guard:
    for n in plan:
      state, m = jit_steps[n](state, windows, np.int32(step))
      history.append((n, m))
      step += n
      if not (step % log_every == 0 or step == total or guard.signum is not None):
        continue
      hist = _per_step(jax.device_get(sharding.local_copy(history)))
      _check_finite(hist, step - len(hist) + 1)
      history = []
      now = time.time()
      rate = (step - s_last) / max(now - t_last, 1e-9)
      t_last, s_last = now, step
      avg = _average(hist)
      eta = (total - step) / max(rate, 1e-9)
      if primary:
        logging.info(
          "step %d/%d  %s  %.1f steps/s  ETA %s",
          step,
          total,
          "  ".join(f"{k} {v:.4g}" for k, v in avg.items()),
          rate,
          time.strftime("%H:%M:%S", time.gmtime(eta)),
        )
        log.train(step, avg, rate, now - t0, learning_rates(sharding.local_copy(state)))
      if guard.signum is not None:
        ckpt.save(step, full(state), meta(step))
        logging.warning(
          "interrupted at step %d: checkpoint saved in %s; rerun the same command to resume",
          step,
          workdir,
        )
        raise Interrupted(128 + guard.signum)
      if config.train.ckpt_every and step % config.train.ckpt_every == 0 and step < total:
        ckpt.save(step, full(state), meta(step))
      if config.eval.every and step % config.eval.every == 0 and step < total and primary:
        run = Run(
          config,
          workdir,
          nets,
          sharding.local_copy(full(state)),
          data.normalizer,
          data.obs_shapes,
          data.action_dim,
          step,
        )
        compiled.update(run.policies(reuse=compiled))
        res = evaluation.evaluate_policies(config, compiled, step, sensor, data)
        with open(evals_path, "a") as f:
          f.write(json.dumps({"step": step, "results": res}) + "\n")
        log.evaluation(step, res)
  state = full(state)
  if ckpt.latest_step() != step:
    ckpt.save(step, state, meta(step))
  return sharding.local_copy(state), step
