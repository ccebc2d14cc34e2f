"""The robot runner (jaxpolicy.robot) on the wall clock: a simulated plant, and an exported
policy on the real MetaWorld in real time.

    python -m benchmarks.robot_runner plant [--seconds=10] [--hz=80] [--latency_ms=50] \
        [--work=sleep,numpy,python] [--mode=async] [--span=15 --n_action_steps=8] [--out=F.json]
    python -m benchmarks.robot_runner metaworld --artifact=DIR [--workdir=RUN] \
        [--task=drawer-open] [--episodes=20] [--seed=0] [--modes=sync,async] [--out=F.json]

plant: period jitter, lateness, control overhead, and actions lost or misplaced; metaworld:
the artifact's success driven by the runner beside the in-process policy on the same
initial states. What each measures, and results: docs/realtime.md, "Measured".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import numpy as np

from jaxpolicy import execution, robot

OFFSET = 100.0


class ProbePlant:
  """Observation: how many commands it has received (= the control step)."""

  def __init__(self, clock):
    self.clock, self.t, self.sent = clock, 0, []

  def observe(self):
    return {"x": np.asarray([self.t], np.float32)}

  def send(self, action):
    self.sent.append(np.asarray(action, np.float32))
    self.t += 1


def _busy(work: str, seconds: float):
  end = time.perf_counter() + seconds
  if work == "sleep":
    time.sleep(seconds)
  elif work == "numpy":
    m = np.random.default_rng(0).standard_normal((128, 128)).astype(np.float32)
    while time.perf_counter() < end:
      m = np.tanh(m @ m * 1e-2)
  elif work == "python":
    x = 0
    while time.perf_counter() < end:
      x += 1
  else:
    raise ValueError(f"work must be sleep, numpy or python, got {work!r}")


def probe_policy(span: int, n_action_steps: int, work: str, latency_s: float):
  def fn(obs, rng, guide=None):
    del rng, guide
    _busy(work, latency_s)
    o = float(obs["x"][-1, 0])
    return np.stack([OFFSET + o + np.arange(span), np.full(span, OFFSET + o)], -1)

  return robot.ChunkPolicy(fn, span, 2, n_action_steps, name=f"probe_{work}")


def expected_actions(log: robot.Log, steps: int, mode: str, span: int, s: int) -> np.ndarray:
  """(planned-for step, observation step) the plan should have sent per control step (-1:
  hold), derived from the call log alone: the newest chunk arrived by step t covers it."""
  want = np.full((steps, 2), -1)
  arrived = sorted((c for c in log.calls if c.arrival >= 0), key=lambda c: c.arrival)
  for i, c in enumerate(arrived):
    end = arrived[i + 1].arrival if i + 1 < len(arrived) else steps
    base = c.step if mode == "async" else c.arrival
    laid = span if mode == "async" else s
    for t in range(c.arrival, min(end, base + laid, steps)):
      want[t] = (c.step + t - base, c.step) if mode == "sync" else (t, c.step)
  return want


def _major_faults() -> int:
  """Page faults that waited for the disk (a stall no code of ours can avoid)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_majflt


def run_plant(
  seconds: float = 10.0,
  hz: float = 80.0,
  latency_ms: float = 50.0,
  mode: str = "async",
  work: str = "sleep",
  span: int = 15,
  n_action_steps: int = 8,
) -> dict:
  faults = _major_faults()
  clock = robot.WallClock()
  plant = ProbePlant(clock)
  steps = int(round(seconds * hz))
  runner = robot.Runner(
    probe_policy(span, n_action_steps, work, latency_ms / 1e3),
    plant.observe,
    plant.send,
    hz,
    [True, False],
    mode=mode,
    clock=clock,
  )
  error = None
  try:
    log = runner.run(steps)
  except robot.RunnerError as e:
    log, error = runner.log, str(e)
  n = len(plant.sent)
  time.sleep(0.2)
  sent = np.stack(plant.sent[:n]) - OFFSET
  got = np.where(sent[:, :1] > -OFFSET / 2, sent, -1).astype(int)
  want = expected_actions(log, n, mode, span, n_action_steps)
  planned = want[:, 0] >= 0
  times = np.asarray(log.action_times)
  out = robot.summary(log, hz)
  out.update(
    benchmark="robot_runner_plant",
    work=work,
    mode=mode,
    seconds=seconds,
    policy_latency_ms=latency_ms,
    span=span,
    n_action_steps=n_action_steps,
    rate_hz=float((len(times) - 1) / (times[-1] - times[0])),
    actions_lost=int(np.sum(planned & (got[:, 0] < 0))),
    actions_misplaced=int(np.sum((got[:, 0] >= 0) & np.any(got != want, axis=1))),
    sent_after_stop=len(plant.sent) - n,
    error=error,
    major_page_faults=_major_faults() - faults,
  )
  return out


def run_bare_loop(seconds: float = 10.0, hz: float = 80.0) -> dict:
  """The machine's own timing: a bare loop sleeping to the same deadlines, no runner, no
  policy (what any Python control loop on this machine gets at best)."""
  clock, period, faults = robot.WallClock(), 1.0 / hz, _major_faults()
  steps, t0, times = int(round(seconds * hz)), robot.WallClock().now(), []
  for k in range(steps):
    clock.sleep_until(t0 + k * period)
    times.append(clock.now())
  times = np.asarray(times)
  jitter, late = np.abs(np.diff(times) - period), times - (t0 + np.arange(steps) * period)
  q = lambda x, p: float(np.percentile(x, p)) * 1e3
  return {
    "benchmark": "robot_runner_plant",
    "work": "bare loop (no runner)",
    "steps": steps,
    "rate_hz": float((steps - 1) / (times[-1] - times[0])),
    "period_jitter_ms_p50": q(jitter, 50),
    "period_jitter_ms_p99": q(jitter, 99),
    "period_jitter_ms_max": q(jitter, 100),
    "lateness_ms_p50": q(late, 50),
    "lateness_ms_p99": q(late, 99),
    "lateness_ms_max": q(late, 100),
    "major_page_faults": _major_faults() - faults,
  }


def _exported_latency_ms(policy, calls: int = 30) -> float:
  obs = {
    k: np.zeros((1, policy.n_obs_steps) + tuple(s), np.float32)
    for k, s in policy.obs_shapes.items()
  }
  state = policy.initial_state(1)
  for i in range(3):
    _, state = policy.chunk(obs, state, i)
  times = []
  for i in range(calls):
    t0 = time.perf_counter()
    _, state = policy.chunk(obs, state, 10 + i)
    times.append(time.perf_counter() - t0)
  return 1e3 * float(np.median(times))


def run_metaworld_runner(
  policy, task: str, episodes: int, seed: int, mode: str, clock_kind: str, latency_ms: float
) -> dict:
  """The exported `policy` driven by the runner on `episodes` real-MetaWorld episodes, one
  after another; success = the suite's flag at any of the episode's control steps."""
  from jaxpolicy import suites  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs.suite import episode_seeds  # pylint: disable=g-import-not-at-top

  suite = suites.suite_of(suites.check_task(task))
  successes, stats, t_start, faults = [], [], time.time(), _major_faults()
  for i, s in enumerate(episode_seeds(seed, episodes)):
    env = suite.make_env(task, i)
    state = {"obs": env.reset(seed=s), "success": False}

    def observe(state=state):
      return {k: state["obs"][k] for k in policy.obs_shapes}

    def send(action, env=env, state=state):
      state["obs"], succ = env.step(action)
      state["success"] |= bool(succ)

    clock = robot.WallClock() if clock_kind == "wall" else robot.SimClock()
    pol = robot.from_exported(policy)
    if clock_kind == "sim":
      pol = robot.with_latency(pol, clock, latency_ms / 1e3)
    runner = robot.Runner(
      pol,
      observe,
      send,
      suite.control_hz,
      suite.delta_mask,
      mode=mode,
      rest=suite.rest(),
      clock=clock,
      seed=seed * 1000 + i,
    )
    log = runner.run(suite.episode_length)
    successes.append(int(state["success"]))
    stats.append(robot.summary(log, suite.control_hz))
  agg = lambda k, f: float(f([x[k] for x in stats]))
  delays = {}
  for x in stats:
    for d, n in x["delay_steps"]:
      delays[d] = delays.get(d, 0) + n
  return {
    "policy": policy.name,
    "driver": f"runner, {clock_kind} clock",
    "mode": mode,
    "success_rate": float(np.mean(successes)),
    "successes": successes,
    "episodes": episodes,
    "seed": seed,
    "wall_s": round(time.time() - t_start, 1),
    "latency_ms": latency_ms if clock_kind == "sim" else agg("latency_ms_p50", np.median),
    "delay_steps": sorted(delays.items()),
    "held_steps_mean": agg("held_steps", np.mean),
    "period_jitter_ms_p50": agg("period_jitter_ms_p50", np.median),
    "period_jitter_ms_p99_worst": agg("period_jitter_ms_p99", np.max),
    "control_overhead_ms_max": agg("control_overhead_ms_max", np.max),
    "steps": int(sum(x["steps"] for x in stats)),
    "major_page_faults": _major_faults() - faults,
  }


def run_in_process(
  workdir: str, name: str, task: str, episodes: int, seed: int, delay: int | None, mode: str
) -> dict:
  """The run's in-process policy on the CPU evaluator: frozen in time (delay None) or in
  real-time mode with `delay` control steps."""
  from jaxpolicy import evaluation, load_policy  # pylint: disable=g-import-not-at-top

  pol = load_policy(workdir, name)
  timing = None
  if delay is not None:
    timing = execution.Timing(delay, pol.span, pol.n_action_steps, mode)
  r = evaluation.evaluate(pol, task, episodes=episodes, seed=seed, backend="cpu", timing=timing)
  return {
    "policy": name,
    "driver": "in-process, CPU evaluator"
    + (f", real time, delay {delay}" if delay is not None else ", frozen time"),
    "mode": mode if delay is not None else "sync (no delay)",
    "success_rate": r["success_rate"],
    "successes": r["successes"],
    "episodes": episodes,
    "seed": seed,
    "wall_s": r["wall_s"],
    "delay_steps": delay,
  }


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("what", choices=("plant", "metaworld"))
  ap.add_argument("--seconds", type=float, default=10.0)
  ap.add_argument("--hz", type=float, default=80.0)
  ap.add_argument("--latency_ms", type=float, default=50.0)
  ap.add_argument("--work", default="sleep,numpy,python")
  ap.add_argument("--mode", default="async")
  ap.add_argument("--span", type=int, default=15)
  ap.add_argument("--n_action_steps", type=int, default=8)
  ap.add_argument("--artifact", default="")
  ap.add_argument("--workdir", default="")
  ap.add_argument("--task", default="drawer-open")
  ap.add_argument("--episodes", type=int, default=20)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--modes", default="sync,async")
  ap.add_argument("--out", default="")
  a = ap.parse_args(argv)
  if a.what == "plant":
    rows = [run_bare_loop(a.seconds, a.hz)]
    rows += [
      run_plant(a.seconds, a.hz, a.latency_ms, a.mode, w, a.span, a.n_action_steps)
      for w in a.work.split(",")
    ]
    for r in rows:
      print(
        f"{r['work']:>21}: {r['steps']} steps at {r['rate_hz']:.2f} Hz, period jitter p50 "
        f"{r['period_jitter_ms_p50']:.2f} / p99 {r['period_jitter_ms_p99']:.2f} ms, "
        f"lateness p99 {r['lateness_ms_p99']:.2f} ms"
        + (
          ""
          if "calls" not in r
          else f", control overhead max {r['control_overhead_ms_max']:.2f} ms, install lock "
          f"max {r['install_lock_ms_max']:.2f} ms, lost {r['actions_lost']}, misplaced "
          f"{r['actions_misplaced']}, calls {r['calls']}"
        )
      )
    from benchmarks import common  # pylint: disable=g-import-not-at-top

    result = {
      "benchmark": "robot_runner_plant",
      "environment": common.environment(),
      "load_average": list(os.getloadavg()),
      "results": rows,
    }
  else:
    if not a.artifact:
      sys.exit("metaworld needs --artifact=DIR (python -m launch.export ...)")
    from benchmarks import common  # pylint: disable=g-import-not-at-top
    from jaxpolicy.exported import load_exported  # pylint: disable=g-import-not-at-top

    policy = load_exported(a.artifact)
    measured = _exported_latency_ms(policy)
    delay = max(1, execution.delay_steps(measured, a.hz))
    rows = []
    if a.workdir:
      rows.append(run_in_process(a.workdir, policy.name, a.task, a.episodes, a.seed, None, "sync"))
    for mode in a.modes.split(","):
      rows.append(run_metaworld_runner(policy, a.task, a.episodes, a.seed, mode, "wall", measured))
      rows.append(run_metaworld_runner(policy, a.task, a.episodes, a.seed, mode, "sim", measured))
      if a.workdir:
        rows.append(run_in_process(a.workdir, policy.name, a.task, a.episodes, a.seed, delay, mode))
    for r in rows:
      print(
        f"{r['policy']} {r['driver']:<44} {r['mode']:<16} success {r['success_rate']:.2f}"
        f" ({r['episodes']} episodes, {r['wall_s']} s)"
      )
    result = {
      "benchmark": "robot_runner_metaworld",
      "load_average": list(os.getloadavg()),
      "task": a.task,
      "artifact": a.artifact,
      "workdir": a.workdir,
      "measured_latency_ms_b1": measured,
      "delay_steps_at_measured": delay,
      "environment": common.environment(),
      "results": rows,
    }
  if a.out:
    with open(a.out, "w") as f:
      json.dump(result, f, indent=2, default=str)


if __name__ == "__main__":
  main()
