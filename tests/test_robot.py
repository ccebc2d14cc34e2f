"""The robot runner: on a simulated clock, deterministically, the control rate is exact, every
period sends one action, and the actions executed are those `execution.schedule` says (sync
holds while the policy computes, async skips exactly the stale actions, rtc asks for the
committed ones); a policy error holds the robot and is surfaced once; bad input is one line.
On the wall clock, for two seconds, the rate is met within a loose bound and no action is
lost or misplaced."""

import math

import numpy as np
import pytest

from helpers import probe
from jaxpolicy import execution, robot

HZ = 80.0
OFFSET = probe.OFFSET


class Plant:
  """Its observation is the number of commands it has received (= the control step)."""

  def __init__(self, clock):
    self.clock, self.t, self.sent, self.times = clock, 0, [], []

  def observe(self):
    return {"full_state": np.asarray([self.t], np.float32)}

  def send(self, action):
    self.sent.append(np.asarray(action).copy())
    self.times.append(self.clock.now())
    self.t += 1


def probe_chunk_policy(span, n_action_steps, n_obs=2, fail_at_call=None):
  """Action i of a chunk from observation o: (OFFSET + o + i, OFFSET + o) -- the step it is
  planned for (async) and the observation it came from; dim 0 a delta, dim 1 absolute."""
  calls = []

  def fn(obs, rng, guide=None):
    del rng, guide
    calls.append(1)
    if fail_at_call is not None and len(calls) == fail_at_call + 3:  # after 2 warm-up calls
      raise FloatingPointError("the policy blew up")
    o = float(obs["full_state"][-1, 0])
    return np.stack([OFFSET + o + np.arange(span), np.full(span, OFFSET + o)], -1)

  return robot.ChunkPolicy(fn, span, n_obs, n_action_steps, name="probe")


def run_sim(mode, span, s, latency=0.05, steps=800, stitching="none", policy=None, **kw):
  clock = robot.SimClock()
  plant = Plant(clock)
  policy = robot.with_latency(policy or probe_chunk_policy(span, s), clock, latency)
  runner = robot.Runner(
    policy,
    plant.observe,
    plant.send,
    HZ,
    [True, False],
    mode=mode,
    stitching=stitching,
    clock=clock,
    **kw,
  )
  log = runner.run(steps)
  return plant, log, runner


def expected_from_schedule(timing, length):
  """(planned-for step, observation step) per control step, -1 where the robot holds."""
  want = np.full((length, 2), -1)
  for r, a, _ in execution.schedule(timing, length):
    if timing.mode == "sync":
      for j in range(timing.n_action_steps):
        if a + j < length:
          want[a + j] = (r + j, r)
    else:
      for t in range(a, min(r + timing.span, length)):
        want[t] = (t, r)
  return want


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("span,s", [(7, 3), (15, 8)])  # horizon 8 / 3 executed; DP's 16 / 8
def test_sim_clock_keeps_the_rate_and_executes_what_the_schedule_says(mode, span, s):
  steps, d = 800, 4  # 10 s at 80 Hz; 50 ms = 4 periods
  plant, log, runner = run_sim(mode, span, s, steps=steps)
  assert runner.error is None
  # the rate: one action per period, each sent exactly at its step's time
  assert len(plant.sent) == steps == len(log.action_steps)
  np.testing.assert_array_equal(log.action_steps, np.arange(steps))
  assert log.t0 == pytest.approx(0.1)  # the warm-up's two 50 ms calls
  np.testing.assert_allclose(np.asarray(plant.times) - log.t0, np.arange(steps) / HZ, atol=1e-9)
  np.testing.assert_allclose(np.asarray(log.obs_times) - log.t0, np.arange(steps) / HZ, atol=1e-9)
  # which observation each executed action came from
  timing = execution.Timing(d, span, s, mode)
  sched = execution.schedule(timing, steps)
  sent = np.stack(plant.sent)
  got = np.where(sent[:, :1] > 0, sent - OFFSET, -1)  # a hold: 0 on the delta dimension
  np.testing.assert_array_equal(got, expected_from_schedule(timing, steps))
  done = [c for c in log.calls if c.arrival >= 0]
  assert [(c.step, c.arrival) for c in done] == [(r, a) for r, a, _ in sched if a < steps]
  for c in done:
    assert c.end - c.start == pytest.approx(0.05, abs=1e-9)
  held = ~np.asarray(log.planned)
  assert np.array_equal(held, got[:, 0] < 0)
  if mode == "sync":  # holds while computing, then the chunk's first action is d steps old
    for r, a, _ in sched:
      assert held[r : min(a, steps)].all()
      if a < steps:
        assert got[a, 1] == a - d
  else:  # the d actions planned for steps that passed are skipped, no more
    assert all(c.skipped == d for c in done)
    moving = got[:, 0] >= 0
    np.testing.assert_array_equal(got[moving, 0], np.nonzero(moving)[0])
  # a hold keeps the absolute dimension's last command
  for t in np.nonzero(held)[0]:
    assert sent[t, 0] == 0 and sent[t, 1] == (sent[t - 1, 1] if t else 0)


def test_runner_agrees_with_the_cpu_evaluators_probe_on_the_in_process_adapter():
  """The probe policy of the evaluators' tests through `from_policy` (a Policy's duck type),
  async with ensembling: step t averages every arrived chunk planned for it, ACT's weights."""
  pol = robot.from_policy(probe.ProbePolicy(horizon=8, n_obs_steps=2, n_action_steps=3))
  plant, log, _ = run_sim("async", 7, 3, latency=0.0125, steps=40, stitching="ensemble", policy=pol)
  sent = np.stack(plant.sent) - OFFSET
  arrived = [(c.step, c.arrival) for c in log.calls if c.arrival >= 0]
  assert arrived[:3] == [(0, 1), (3, 4), (6, 7)]  # 12.5 ms: one period
  for t in range(1, 40):
    reqs = [r for r, a in arrived if a <= t < r + 7]
    w = np.exp(-execution.ENSEMBLE_M * np.arange(len(reqs)))
    assert sent[t, 0] == pytest.approx(t)
    assert sent[t, 1] == pytest.approx(np.dot(w, reqs) / w.sum(), abs=1e-4)


def test_rtc_guidance_is_the_committed_actions_and_refused_without_a_guidable_policy():
  p = probe.ProbePolicy(horizon=8, n_obs_steps=2, n_action_steps=3)
  run_sim("async", 7, 3, latency=0.025, steps=12, stitching="rtc", policy=robot.from_policy(p))
  guides = p.guides[3:]  # after the warm-up: two plain calls, one guided
  assert p.guides[0] is None and p.guides[2][1].shape == (1, 7)
  assert np.all(np.asarray(guides[0][1]) == 0)  # step 0: nothing committed yet
  target, weights = guides[1]  # the call at step 3
  # committed: what the chunk requested at 0 plans for steps 3 .. 6 (3, 4 execute while the
  # new one computes: the previous call's delay, 2 steps), nothing after step 6
  np.testing.assert_allclose(np.asarray(target)[0, :4, 0] - OFFSET, [3, 4, 5, 6])
  np.testing.assert_allclose(
    np.asarray(weights)[0], np.concatenate([execution.rtc_weights(7, 2, 3)[:4], [0, 0, 0]])
  )
  with pytest.raises(ValueError, match="stitching 'rtc' needs a guidable policy") as e:
    robot.Runner(
      probe_chunk_policy(7, 3),
      None,
      None,
      HZ,
      [True, False],
      stitching="rtc",
      clock=robot.SimClock(),
    )
  assert "\n" not in str(e.value)


@pytest.mark.parametrize("callback", [False, True])
def test_a_policy_error_holds_the_robot_and_is_surfaced_once(callback):
  seen = []
  kw = {"on_error": seen.append} if callback else {}
  clock = robot.SimClock()
  plant = Plant(clock)
  policy = robot.with_latency(probe_chunk_policy(7, 3, fail_at_call=3), clock, 0.05)
  runner = robot.Runner(
    policy, plant.observe, plant.send, HZ, [True, False], mode="async", clock=clock, **kw
  )
  runner.start()
  clock.wait_until(lambda: runner.steps >= 200)
  if callback:
    log = runner.stop()
    assert len(seen) == 1 and isinstance(seen[0], FloatingPointError)
  else:
    with pytest.raises(
      robot.RunnerError,
      match=r"policy call requested at control step 12 "
      r"failed: FloatingPointError",
    ) as e:
      runner.stop()
    assert "\n" not in str(e.value) and isinstance(e.value.__cause__, FloatingPointError)
    log = runner.stop()  # surfaced once: the second stop returns the log
  assert isinstance(runner.error, FloatingPointError)
  # the call at step 12 raised at once: from step 13 on the robot holds (the plan of the
  # chunk requested at 8 is dropped), keeping the absolute dimension; the rate goes on
  assert len(plant.sent) == 200 and [c.step for c in log.calls] == [0, 4, 8, 12]
  assert log.calls[-1].error.startswith("FloatingPointError")
  sent = np.stack(plant.sent)
  assert not np.asarray(log.planned)[13:].any()
  assert (sent[13:, 0] == 0).all() and (sent[13:, 1] == sent[12, 1]).all()
  assert sent[12, 0] == OFFSET + 12  # step 12 still ran the plan of the call at 8


def test_starting_twice_and_bad_input_are_one_line_each():
  clock = robot.SimClock()
  plant = Plant(clock)
  runner = robot.Runner(
    robot.with_latency(probe_chunk_policy(7, 3), clock, 0.05),
    plant.observe,
    plant.send,
    HZ,
    [True, False],
    clock=clock,
  )
  with pytest.raises(RuntimeError, match="never started"):
    runner.stop()
  runner.start()
  with pytest.raises(RuntimeError, match="started already: a Runner runs once") as e:
    runner.start()
  assert "\n" not in str(e.value)
  runner.stop()
  n = len(plant.sent)
  with pytest.raises(RuntimeError, match="started already"):
    runner.start()
  assert len(plant.sent) == n
  pol = probe_chunk_policy(7, 3)
  bad = [
    (dict(control_hz=0.0), "control_hz must be > 0"),
    (dict(control_hz=math.nan), "control_hz must be > 0"),
    (dict(mode="later"), "execution mode must be one of"),
    (dict(mode="sync", stitching="ensemble"), "stitching 'ensemble' is for async"),
    (dict(rest=[0.0, 0.0, 0.0]), r"rest must have shape \(2,\)"),
  ]
  for kw, match in bad:
    args = dict(control_hz=HZ, delta_mask=[True, False], clock=robot.SimClock())
    args.update(kw)
    with pytest.raises(ValueError, match=match) as e:
      robot.Runner(pol, plant.observe, plant.send, **args)
    assert "\n" not in str(e.value)
  with pytest.raises(ValueError, match="latency must be a finite number"):
    robot.with_latency(pol, robot.SimClock(), -0.01)
  with pytest.raises(TypeError, match="takes a ChunkPolicy, a jaxpolicy Policy or an exported"):
    robot.as_chunk_policy(lambda obs, rng, guide: None)
  clock = robot.SimClock()
  with pytest.raises(RuntimeError, match="every participating thread waits without a deadline"):
    clock.wait_until(lambda: False)
  clock.sleep_until(1.5)  # the clock still works after the report
  assert clock.now() == 1.5


def test_a_wrong_chunk_shape_is_one_line_at_start_or_a_policy_error_later():
  clock = robot.SimClock()
  plant = Plant(clock)
  pol = probe_chunk_policy(7, 3)
  runner = robot.Runner(pol, plant.observe, plant.send, HZ, [True, False, True], clock=clock)
  with pytest.raises(
    ValueError,
    match=r"returned actions of shape \(7, 2\), not \(span, "
    r"action_dim\) = \(7, 3\): check delta_mask",
  ) as e:
    runner.start()
  assert "\n" not in str(e.value) and plant.sent == []
  calls = []

  def short_after_warmup(obs, rng, guide):
    calls.append(1)
    return pol.fn(obs, rng, guide)[: 7 if len(calls) <= 3 else 3]

  late = robot.ChunkPolicy(short_after_warmup, 7, 2, 3, name="short")
  runner = robot.Runner(late, plant.observe, plant.send, HZ, [True, False], clock=clock)
  with pytest.raises(
    robot.RunnerError,
    match=r"returned actions of shape \(3, 2\), not "
    r"\(span, action_dim\) = \(7, 2\)",
  ):
    runner.run(20)
  assert len(plant.sent) == 20


def test_wall_clock_meets_the_rate_and_loses_no_action():
  """Two seconds at 80 Hz with a 50 ms policy (it sleeps: the GIL is free) on the wall
  clock: a loose bound for a loaded 2-core machine; the benchmark reports the real figures."""
  from benchmarks import robot_runner  # pylint: disable=g-import-not-at-top

  r = robot_runner.run_plant(seconds=2.0, hz=HZ, latency_ms=50.0, mode="async", work="sleep")
  assert r["steps"] == 160 and r["actions_lost"] == 0 and r["actions_misplaced"] == 0
  assert r["sent_after_stop"] == 0 and r["error"] is None
  assert r["calls"] >= 10  # the policy ran beside the control loop
  assert r["period_jitter_ms_p50"] < 6.25  # half a period
  assert r["rate_hz"] == pytest.approx(HZ, rel=0.15)
  assert r["control_overhead_ms_p50"] < 5.0  # never waits for the 50 ms policy
