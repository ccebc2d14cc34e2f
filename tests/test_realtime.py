"""Real-time execution: the delay arithmetic and schedules, both evaluators on a probe
environment that records which observation produced each executed action (sync, async,
stale actions skipped, ACT ensembling), RTC's guided inpainting on a real DDIM sampler, and
the config's bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import configs
from helpers import probe
from jaxpolicy import execution, suites, validate
from jaxpolicy.envs import evaluator
from jaxpolicy.envs.mjx import evaluator as mjx_evaluator
from jaxpolicy.errors import ConfigError


@pytest.fixture
def probe_suite():
  suites.register(probe.INFO)
  yield probe.INFO
  suites.unregister("probe")


def test_delay_steps_and_schedules():
  assert execution.delay_steps(0.0, 80) == 0
  assert execution.delay_steps(12.5, 80) == 1 and execution.delay_steps(12.6, 80) == 2
  assert execution.delay_steps(100.0, 80) == 8 and execution.delay_steps(96.0, 10) == 1
  sync = execution.Timing(2, 7, 3, "sync")
  assert execution.schedule(sync, 12) == [(0, 2, 2), (5, 7, 7), (10, 12, 12)]
  asyn = execution.Timing(2, 7, 3, "async")
  assert execution.schedule(asyn, 10) == [(0, 2, 0), (3, 5, 3), (6, 8, 6), (9, 11, 9)]
  slow = execution.Timing(5, 7, 3, "async")  # one request in flight: every 5 steps
  assert [r for r, _, _ in execution.schedule(slow, 16)] == [0, 5, 10, 15]
  w = execution.rtc_weights(7, 2, 3)
  assert w[0] == w[1] == 1.0 and w[-3:].sum() == 0 and 1 > w[2] > w[3] > 0


def _executed(suite, timing, backend, policy=None, length=probe.LENGTH):
  """(episodes, length, 2) executed actions on the probe, from either evaluator."""
  policy = policy or probe.ProbePolicy()
  if backend == "cpu":
    evaluator.evaluate(
      policy, suite, "probe", episodes=2, seed=0, episode_length=length, timing=timing
    )
    return np.stack([np.stack(e.log) for e in evaluator._ENVS[("probe", "probe")][:2]])
  env = probe.ProbeJAX()
  _, (states, _) = mjx_evaluator.run(
    policy,
    env,
    env.evaluation_states(0, 2),
    0,
    length,
    return_final=True,
    suite=suite,
    timing=timing,
  )
  return np.asarray(states.log)[:, :length]


def _expected(timing, length):
  """(planned-for step, observation step) per step, -1 where the robot holds, derived from
  the schedule: sync runs positions 0..s-1 of chunk k from its arrival; async runs, at step
  t, the newest arrived chunk if its window [request, request + span) covers t."""
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


@pytest.mark.parametrize("backend", ["cpu", pytest.param("mjx", marks=pytest.mark.slow)])
@pytest.mark.parametrize("delay", [0, 2, 5])
def test_a_delay_of_d_steps_executes_actions_from_d_steps_ago(probe_suite, backend, delay):
  span, s = 7, 3
  for mode in ("sync", "async"):
    timing = execution.Timing(delay, span, s, mode)
    log = _executed(probe_suite, timing, backend)
    np.testing.assert_array_equal(log[0], log[1])
    t = np.arange(len(log[0]))
    got = np.where(log[0, :, :1] > 0, log[0] - probe.OFFSET, -1)  # holds: a zero delta
    want = _expected(timing, len(t))
    np.testing.assert_array_equal(got, want)
    moving = want[:, 0] >= 0
    if mode == "sync":  # the action executed at step t came from the observation of t - d
      first = [a for _, a, _ in execution.schedule(timing, len(t)) if a < len(t)]
      np.testing.assert_array_equal(got[first, 1], np.asarray(first) - delay)
      np.testing.assert_array_equal(got[moving, 0], t[moving] - delay)
    else:  # planned for the step it runs at (stale ones skipped), >= d old
      np.testing.assert_array_equal(got[moving, 0], t[moving])
      assert np.all(got[moving, 1] <= t[moving] - delay)
      assert (~moving[delay:]).any() == (delay > span - s)  # the queue runs dry
    # a hold keeps the last absolute command (the observation step's channel)
    for i in np.nonzero(~moving[1:])[0] + 1:
      assert log[0, i, 1] == log[0, i - 1, 1]


def test_ensembling_averages_every_chunk_planned_for_a_step(probe_suite):
  timing = execution.Timing(0, 7, 3, "async", "ensemble")
  log = _executed(probe_suite, timing, "cpu", length=12)[0]
  # chunks requested at 0, 3, 6, 9 plan steps [r, r + 7): step t averages the chunks whose
  # window covers it, oldest first with ACT's weights exp(-0.01 i)
  for t in range(12):
    reqs = [r for r in (0, 3, 6, 9) if r <= t < r + 7]
    w = np.exp(-execution.ENSEMBLE_M * np.arange(len(reqs)))
    assert log[t, 0] - probe.OFFSET == pytest.approx(t)
    assert log[t, 1] - probe.OFFSET == pytest.approx(np.dot(w, reqs) / w.sum(), abs=1e-4)


def test_rtc_asks_for_the_committed_actions(probe_suite):
  policy = probe.ProbePolicy()
  timing = execution.Timing(2, 7, 3, "async", "rtc")
  _executed(probe_suite, timing, "cpu", policy=policy, length=12)
  assert policy.guides[0] is None and policy.guides[1] is None  # the two warm-up calls
  assert np.all(np.asarray(policy.guides[2][1]) == 0)  # step 0: nothing committed yet
  target, weights = policy.guides[3]  # the call at step 3 (after 2 warm-up calls)
  # committed: the plan of the chunk requested at 0 for steps 3, 4 (executing while it
  # computes), then the rest of that chunk's actions (3 .. 6), nothing after step 6
  np.testing.assert_allclose(target[0, :4, 0] - probe.OFFSET, [3, 4, 5, 6])
  np.testing.assert_allclose(
    weights[0], np.concatenate([execution.rtc_weights(7, 2, 3)[:4], [0, 0, 0]])
  )


def test_guided_ddim_reproduces_the_committed_prefix_and_not_without_guidance():
  """RTC-style inpainting on a real DDIM-10 sampler (a random U-Net): the committed
  actions come out within 1e-5; with guidance off they do not (the broken variant)."""
  from jaxpolicy import nets as nets_lib  # pylint: disable=g-import-not-at-top
  from jaxpolicy.methods.common import ddim_sampler  # pylint: disable=g-import-not-at-top

  config = configs.load("teacher", "tiny")
  config.policy.horizon, config.policy.n_action_steps = 8, 4
  nets = nets_lib.build_nets(config, 3)
  params = nets.init(jax.random.PRNGKey(0), {"full_state": (5,)})
  cond = nets.encode(params["encoder"], {"full_state": jnp.zeros((2, 2, 5))})
  sample, nfe = ddim_sampler(config, nets)
  assert nfe == 10
  target = jnp.asarray(np.random.default_rng(0).uniform(-0.8, 0.8, (2, 8, 3)), jnp.float32)
  w = jnp.asarray(execution.rtc_weights(8, 3, 4))[None, :, None]
  guided = sample(params["unet"], cond, jax.random.PRNGKey(1), guide=(target, w))
  free = sample(params["unet"], cond, jax.random.PRNGKey(1))
  np.testing.assert_allclose(guided[:, :3], target[:, :3], atol=1e-5)
  assert float(jnp.abs(free[:, :3] - target[:, :3]).max()) > 0.1
  # the soft region moves toward the committed actions, the new part stays free to differ
  soft = slice(3, 4)
  assert float(jnp.abs(guided[:, soft] - target[:, soft]).mean()) < float(
    jnp.abs(free[:, soft] - target[:, soft]).mean()
  )
  zero = (target, jnp.zeros_like(w))  # weight 0 is exactly the unguided sampler
  np.testing.assert_allclose(
    sample(params["unet"], cond, jax.random.PRNGKey(1), guide=zero), free, atol=1e-6
  )


@pytest.mark.parametrize(
  "field,value,match",
  [
    ("latency_ms", -1.0, "latency must be a finite number"),
    ("latency_ms", float("inf"), "latency must be a finite number"),
    ("control_hz", 0.0, "control_hz must be > 0"),
    ("latency_ms", 5000.0, "not shorter than the episode"),
    ("execution", "later", "execution mode must be one of"),
    ("latency_from", "guess", "latency_from must be"),
  ],
)
def test_bad_realtime_config_is_one_line(field, value, match):
  c = configs.load("teacher", "tiny")
  c.eval.realtime = True
  c.eval.episode_length = 200
  setattr(c.eval, field, value)
  with pytest.raises(ConfigError, match=match) as e:
    validate.check_config(c)
  assert "\n" not in str(e.value)


def test_rtc_is_refused_for_one_step_students():
  c = configs.load("sdm", "tiny")
  c.eval.realtime, c.eval.execution, c.eval.stitching = True, "async", "rtc"
  with pytest.raises(ConfigError, match="sdm's policies take one step"):
    validate.check_config(c)
  c.eval.execution = "sync"
  c.eval.stitching = "ensemble"
  with pytest.raises(ConfigError, match="stitching 'ensemble' is for async"):
    validate.check_config(c)
