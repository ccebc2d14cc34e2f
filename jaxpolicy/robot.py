"""A control loop for a real robot, on the plan logic of `jaxpolicy.execution`.

A control thread runs at `control_hz`: each period it reads the observation (`observe()`),
keeps the n_obs_steps history, hands the policy thread a request when one is due (sync: when
the plan is used up; async: every n_action_steps steps, one in flight) and sends the plan's
action for the step or the hold command (`send(action)`). The policy thread computes the
chunk and lays it on the plan (`execution.install`), skipping actions of steps already past.
Clocks: `WallClock` on a robot, `SimClock` (discrete events) for deterministic runs. Only
jax and numpy: exported policies carry a copy. docs/realtime.md, "The runner", says more.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import threading
import time
from typing import Callable

import jax
import numpy as np

try:
  from jaxpolicy import execution
except ImportError:  # the copy written into an exported policy's folder (jaxpolicy_robot.py)
  import jaxpolicy_execution as execution  # pylint: disable=g-import-not-at-top


class RunnerError(RuntimeError):
  """The policy or a callback failed while the runner ran (the original is its __cause__)."""


class WallClock:
  """Real time (time.perf_counter): sleeps are time.sleep, waits for a condition are
  condition-variable waits (woken by `notify`)."""

  def __init__(self):
    self._cond = threading.Condition()

  def now(self) -> float:
    return time.perf_counter()

  def sleep_until(self, t: float) -> None:
    while (dt := t - self.now()) > 0:
      time.sleep(dt)

  def wait_until(self, predicate: Callable[[], bool], deadline: float | None = None) -> bool:
    """Blocks until predicate() (rechecked on `notify`) or the deadline; returns predicate()."""
    with self._cond:
      while not predicate():
        if deadline is None:
          self._cond.wait()
          continue
        dt = deadline - self.now()
        if dt <= 0:
          return False
        self._cond.wait(dt)
      return True

  def notify(self) -> None:
    """Something a waiter's predicate reads has changed."""
    with self._cond:
      self._cond.notify_all()

  def spawn(self, target: Callable, name: str, priority: int = 0) -> threading.Thread:
    del priority
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread

  def join(self, thread: threading.Thread, timeout: float | None = None) -> bool:
    thread.join(timeout)
    return not thread.is_alive()


@dataclasses.dataclass(eq=False)
class _Part:
  name: str
  priority: int
  state: str = "ready"  # ready | run | sleep | wait | done
  until: int | None = None  # ns
  predicate: Callable | None = None
  seq: int = 0


class SimClock:
  """Discrete-event time for deterministic runs. One participating thread runs at a time (the
  creator of the clock and the threads it `spawn`s); when the running one waits, the next
  runs: a new thread, else a waiter whose predicate holds, else the earliest timed wait --
  time jumps to it; equal times go to the lower `priority`, then to whoever waited first.
  Time is kept in integer nanoseconds, so 0.0125 * 4 == 0.05 here."""

  def __init__(self, start: float = 0.0):
    self._cond = threading.Condition()
    self._ns = round(start * 1e9)
    self._seq = itertools.count()
    self._local = threading.local()
    self._parts: list[_Part] = []
    self._threads: dict = {}
    self._running = self._local.part = self._add("driver", 0, "run")

  def _add(self, name, priority, state):
    part = _Part(name, priority, state, seq=next(self._seq))
    self._parts.append(part)
    return part

  def now(self) -> float:
    return self._ns / 1e9

  def _me(self) -> _Part:
    part = getattr(self._local, "part", None)
    if part is None:
      raise RuntimeError(
        "SimClock: only the thread that made the clock and the threads it spawned may wait on it"
      )
    return part

  def _pick(self) -> _Part:
    """The participant to run next (called with the lock held); advances time."""
    live = [p for p in self._parts if p.state in ("ready", "wait", "sleep")]
    for p in sorted(live, key=lambda p: p.seq):
      if p.state == "ready" or (p.state == "wait" and p.predicate()):
        return p
    timed = [p for p in live if p.until is not None]
    if not timed:
      raise RuntimeError(
        "SimClock: every participating thread waits without a deadline and none can wake (deadlock)"
      )
    p = min(timed, key=lambda p: (p.until, p.priority, p.seq))
    self._ns = max(self._ns, p.until)
    return p

  def _hand_over(self, me: _Part) -> None:
    """`me` stops running; runs the next participant and waits for `me`'s turn (lock held)."""
    nxt = self._pick()
    self._running = nxt
    nxt.state, nxt.until, nxt.predicate = "run", None, None
    self._cond.notify_all()
    while self._running is not me and me.state != "done":
      self._cond.wait()

  def _block(self, state, until, predicate) -> None:
    me = self._me()
    with self._cond:
      me.state, me.until, me.predicate, me.seq = state, until, predicate, next(self._seq)
      try:
        self._hand_over(me)
      except RuntimeError:
        me.state, me.until, me.predicate = "run", None, None
        raise

  def sleep_until(self, t: float) -> None:
    self._block("sleep", round(t * 1e9), None)

  def wait_until(self, predicate: Callable[[], bool], deadline: float | None = None) -> bool:
    if not predicate():
      self._block("wait", None if deadline is None else round(deadline * 1e9), predicate)
    return bool(predicate())

  def notify(self) -> None:
    """Nothing to do: waiters' predicates are checked whenever the running thread waits."""

  def spawn(self, target: Callable, name: str, priority: int = 0) -> threading.Thread:
    """Starts `target` in a participating thread; it first runs when the spawner waits."""
    part = self._add(name, priority, "ready")

    def body():
      self._local.part = part
      with self._cond:
        while self._running is not part:
          self._cond.wait()
      try:
        target()
      finally:
        with self._cond:
          part.state = "done"
          if self._running is part and any(p.state != "done" for p in self._parts):
            self._hand_over(part)

    thread = threading.Thread(target=body, name=name, daemon=True)
    self._threads[thread] = part
    thread.start()
    return thread

  def join(self, thread: threading.Thread, timeout: float | None = None) -> bool:
    del timeout  # simulated time: a participant finishes or the clock reports a deadlock
    part = self._threads[thread]
    self.wait_until(lambda: part.state == "done")
    thread.join()
    return True


@dataclasses.dataclass
class ChunkPolicy:
  """What the runner runs, for one robot: `fn(obs_history, rng, guide) -> (span, A)` actions
  from the first executed position to the horizon's end. obs_history: {key: (n_obs_steps,
  ...)}, oldest first; guide: None, or (target (span, A), weights (span,)) for rtc stitching
  (only when `guidable`). `reset()` starts a new episode (a carried sampler's state)."""

  fn: Callable
  span: int
  n_obs_steps: int
  n_action_steps: int
  guidable: bool = False
  name: str = "policy"
  reset: Callable | None = None


def from_policy(policy) -> ChunkPolicy:
  """A ChunkPolicy of an in-process `jaxpolicy.policy.Policy` (e.g. from load_policy)."""

  def fn(obs, rng, guide=None):
    batch = {k: np.asarray(v, np.float32)[None] for k, v in obs.items()}
    if guide is not None:
      guide = (np.asarray(guide[0], np.float32)[None], np.asarray(guide[1], np.float32)[None])
    return np.asarray(policy.executable(policy.chunk(batch, rng, guide)))[0]

  return ChunkPolicy(
    fn,
    int(policy.span),
    int(policy.nets.n_obs_steps),
    int(policy.n_action_steps),
    bool(policy.guidable),
    policy.name,
    lambda: policy.reset(1),
  )


def from_exported(policy) -> ChunkPolicy:
  """A ChunkPolicy of an exported policy (`load_exported`); it takes no guidance."""
  if getattr(policy, "span", None) is None:
    raise ValueError(
      f"artifact {policy.directory} returns only the executed actions (format "
      f"{policy.format_version}); export it again for the runner"
    )
  state = [policy.initial_state(1)]

  def fn(obs, rng, guide=None):
    if guide is not None:
      raise ValueError("an exported policy takes no guidance (rtc): use 'none' or 'ensemble'")
    chunk, state[0] = policy.chunk(
      {k: np.asarray(v, np.float32)[None] for k, v in obs.items()}, state[0], rng
    )
    return chunk[0]

  def reset():
    state[0] = policy.initial_state(1)

  return ChunkPolicy(
    fn, policy.span, policy.n_obs_steps, policy.n_action_steps, False, policy.name, reset
  )


def as_chunk_policy(policy) -> ChunkPolicy:
  """A ChunkPolicy as it is, or adapted from a Policy or an exported policy."""
  if isinstance(policy, ChunkPolicy):
    return policy
  if hasattr(policy, "executable") and hasattr(policy, "nets"):
    return from_policy(policy)
  if hasattr(policy, "initial_state") and hasattr(policy, "chunk"):
    return from_exported(policy)
  raise TypeError(
    f"the runner takes a ChunkPolicy, a jaxpolicy Policy or an exported policy, "
    f"not {type(policy).__name__}"
  )


def with_latency(policy: ChunkPolicy, clock, seconds: float) -> ChunkPolicy:
  """The policy's answer arrives `seconds` after its call starts (or when it is computed, if
  later): emulates a slower device on the wall clock, and gives the compute its time on a
  SimClock (where computing takes none)."""
  if not (math.isfinite(seconds) and seconds >= 0):
    raise ValueError(f"latency must be a finite number of seconds >= 0, got {seconds!r}")

  def fn(obs, rng, guide=None):
    start = clock.now()
    out = policy.fn(obs, rng, guide)
    clock.sleep_until(start + seconds)
    return out

  return dataclasses.replace(policy, fn=fn)


@dataclasses.dataclass
class Call:
  """One policy call: requested at control step `step` (time `requested`), computed from
  `start` to `end`; its actions were laid from step `arrival` on (`skipped` stale ones); the
  new plan, computed outside the lock, was published holding it for `install_s`."""

  step: int
  requested: float
  start: float = math.nan
  end: float = math.nan
  arrival: int = -1
  skipped: int = 0
  install_s: float = math.nan
  error: str | None = None


@dataclasses.dataclass
class Log:
  """Timestamps (the runner's clock, seconds) of everything the runner did. `t0`: the time
  control step 0 was due; step k is due at t0 + k / control_hz."""

  t0: float = math.nan
  obs_steps: list = dataclasses.field(default_factory=list)
  obs_times: list = dataclasses.field(default_factory=list)
  action_steps: list = dataclasses.field(default_factory=list)
  action_times: list = dataclasses.field(default_factory=list)
  planned: list = dataclasses.field(default_factory=list)  # False: the hold command
  actions: list = dataclasses.field(default_factory=list)
  overhead: list = dataclasses.field(default_factory=list)  # the runner's own time per tick
  calls: list = dataclasses.field(default_factory=list)


class Runner:
  """Runs `policy` on a robot: see the module docstring and docs/realtime.md.

  observe() -> {key: array} one frame; send(action (A,)) commands the robot. delta_mask (A,):
  True where an action is a delta (the hold command is 0), False where absolute (the hold
  repeats the last command; `rest` before any). mode / stitching: as `execution.Timing`.
  A policy error (or a callback's) makes the robot hold from the next step and is surfaced
  once: to `on_error(exc)` if given, else re-raised by `stop()` as a RunnerError.
  """

  def __init__(
    self,
    policy,
    observe: Callable,
    send: Callable,
    control_hz: float,
    delta_mask,
    mode: str = "async",
    stitching: str = "none",
    rest=None,
    clock=None,
    seed: int = 0,
    on_error: Callable | None = None,
    warmup: bool = True,
  ):
    self.policy = p = as_chunk_policy(policy)
    execution.delay_steps(0.0, control_hz)  # control_hz > 0, finite
    self.timing = execution.Timing(0, p.span, p.n_action_steps, mode, stitching)
    if stitching == "rtc" and not p.guidable:
      raise ValueError(
        f"stitching 'rtc' needs a guidable policy (an iterative sampler); "
        f"{p.name} is not: use stitching 'none' or 'ensemble'"
      )
    self.delta_mask = np.asarray(delta_mask, bool)
    if self.delta_mask.ndim != 1:
      raise ValueError(
        f"delta_mask must be one flag per action dimension, got shape {self.delta_mask.shape}"
      )
    a = self.delta_mask.size
    self.rest = np.zeros(a, np.float32) if rest is None else np.asarray(rest, np.float32)
    if self.rest.shape != (a,):
      raise ValueError(f"rest must have shape ({a},) like delta_mask, got {self.rest.shape}")
    self.control_hz, self.mode, self.stitching = float(control_hz), mode, stitching
    self._observe, self._send, self._on_error = observe, send, on_error
    self.clock = clock or WallClock()
    self._key, self._warmup = jax.random.PRNGKey(seed), warmup
    self.log = Log()
    self._lock = threading.Lock()
    self._slots = 2 * p.span
    self._plan = execution.empty_plan(np, 1, self._slots - p.span, p.span, a)
    self._origin = 0  # the control step of the plan's slot 0
    self._next = 0  # the first control step whose action is not taken yet
    self._plan_end = 0  # sync: the step after the last installed chunk's actions
    self._last_request = -(1 << 30)
    self._request: Call | None = None
    self._request_obs = self._request_guide = None
    self._in_flight = False
    self._rtc_delay = 0
    self._last = self.rest.copy()
    self._history = collections.deque(maxlen=p.n_obs_steps)
    self._started = self._stopping = self._stopped = self._surfaced = False
    self._control_done = False
    self._limit = None  # run(steps): the control thread ends after these steps
    self._error: BaseException | None = None
    self._error_msg = ""
    self._threads = ()

  # -- the user's side --------------------------------------------------------------------

  @property
  def error(self) -> BaseException | None:
    """The first failure (policy or callback), or None."""
    return self._error

  @property
  def steps(self) -> int:
    """Control steps whose action has been taken (and is sent or being sent)."""
    return self._next

  def start(self) -> None:
    """Warms the policy up on one observation (compiling it; what it raises, start raises),
    then starts both threads."""
    if self._started:
      raise RuntimeError("this Runner was started already: a Runner runs once, make a new one")
    self._started = True
    p = self.policy
    if p.reset is not None:
      p.reset()
    if self._warmup:
      frame = self._frame(self._observe())
      obs = {k: np.stack([v] * p.n_obs_steps) for k, v in frame.items()}
      for i in range(2):  # a carried sampler's two branches (first call, later ones)
        self._check(p.fn(obs, jax.random.fold_in(self._key, (1 << 31) + i), None))
      if self.stitching == "rtc":
        zeros = (np.zeros((p.span, self.rest.size), np.float32), np.zeros(p.span, np.float32))
        p.fn(obs, self._key, zeros)
      if p.reset is not None:
        p.reset()
    self.log.t0 = self.clock.now()
    self._threads = (
      self.clock.spawn(self._policy_loop, "jaxpolicy-policy", priority=0),
      self.clock.spawn(self._control_loop, "jaxpolicy-control", priority=1),
    )

  def stop(self) -> Log:
    """Stops both threads (no action is sent after it returns; a call in flight is waited
    for and dropped) and returns the log; re-raises a failure once unless on_error took it."""
    if not self._started:
      raise RuntimeError("this Runner was never started: call start() first")
    if not self._stopped:
      self._stopping = True
      self.clock.notify()
      for thread in self._threads:
        self.clock.join(thread)
      self._stopped = True
    if self._error is not None and self._on_error is None and not self._surfaced:
      self._surfaced = True
      raise RunnerError(self._error_msg) from self._error
    return self.log

  def run(self, steps: int) -> Log:
    """start(), exactly `steps` control steps, stop()."""
    self._limit = int(steps)
    self.start()
    self.clock.wait_until(lambda: self._control_done)
    return self.stop()

  # -- the control thread -----------------------------------------------------------------

  def _frame(self, obs: dict) -> dict:
    return {k: np.array(v, np.float32) for k, v in obs.items()}

  def _control_loop(self):
    clock, period = self.clock, 1.0 / self.control_hz
    k = 0
    try:
      while k != self._limit:
        clock.sleep_until(self.log.t0 + k * period)  # time.sleep: the tightest wake-up
        if self._stopping:
          break
        frame = self._frame(self._observe())
        t_obs = clock.now()
        self.log.obs_steps.append(k)
        self.log.obs_times.append(t_obs)
        if not self._history:
          self._history.extend([frame] * self.policy.n_obs_steps)
        else:
          self._history.append(frame)
        with self._lock:
          requested = self._maybe_request(k, t_obs)
          action, planned = self._take(k)
          self._next = k + 1
          if self._next - self._origin >= self.policy.span:
            self._shift(self._next - self._origin)
        if requested:
          clock.notify()
        t_send = clock.now()
        self.log.overhead.append(t_send - t_obs)
        self._send(action)
        self.log.action_steps.append(k)
        self.log.action_times.append(t_send)
        self.log.planned.append(planned)
        self.log.actions.append(action)
        k += 1
    except Exception as e:  # pylint: disable=broad-except
      self._fail(e, f"control step {k}: a callback failed: {e!r}")
    finally:
      self._control_done = True
      clock.notify()

  def _maybe_request(self, k: int, t: float) -> bool:
    """Hands the policy thread a request when one is due (lock held)."""
    if self._error is not None or self._in_flight:
      return False
    s = self.policy.n_action_steps
    due = k >= self._plan_end if self.mode == "sync" else k >= self._last_request + s
    if not due:
      return False
    obs = {key: np.stack([f[key] for f in self._history]) for key in self._history[0]}
    guide = None
    if self.stitching == "rtc":
      target, have = execution.committed(np, self._plan, k - self._origin, self.policy.span)
      w = execution.rtc_weights(self.policy.span, self._rtc_delay, s)
      guide = (target[0], w * have.astype(np.float32))
    self._in_flight, self._last_request = True, k
    self._request_obs, self._request_guide = obs, guide
    self._request = Call(k, t)
    return True

  def _take(self, k: int):
    """The action of step k (lock held): the plan's, else the hold command."""
    hold = np.where(self.delta_mask, 0.0, self._last).astype(np.float32)[None]
    action, planned = execution.action_at(np, self._plan, k - self._origin, hold)
    self._last = np.asarray(action[0], np.float32)
    return self._last.copy(), bool(planned)

  def _shift(self, n: int):
    """Drops the plan's first n slots (steps already executed)."""
    n = min(n, self._slots)
    plan = {}
    for key, axis in (("sum", 1), ("weight", 0), ("count", 0)):
      v = np.roll(self._plan[key], -n, axis=axis)
      index = [slice(None)] * v.ndim
      index[axis] = slice(self._slots - n, None)
      v[tuple(index)] = 0
      plan[key] = v
    self._plan = plan  # a new plan: an install computed on the old one starts again
    self._origin += n

  # -- the policy thread ------------------------------------------------------------------

  def _policy_loop(self):
    clock, p = self.clock, self.policy
    while True:
      clock.wait_until(lambda: self._request is not None or self._stopping)
      if self._stopping:
        return
      call, obs, guide = self._request, self._request_obs, self._request_guide
      self._request = None
      call.start = clock.now()
      self.log.calls.append(call)
      try:
        rng = jax.random.fold_in(self._key, len(self.log.calls) - 1)
        chunk = self._check(p.fn(obs, rng, guide))
      except Exception as e:  # pylint: disable=broad-except
        call.end, call.error = clock.now(), repr(e)
        self._fail(e, f"policy call requested at control step {call.step} failed: {e!r}")
        return
      call.end = clock.now()
      if self._stopping:
        return
      while True:  # computed outside the lock, published if the plan has not moved since
        with self._lock:
          plan, origin, now = self._plan, self._origin, self._next
        base = call.step if self.mode == "async" else now
        new = execution.install(np, plan, chunk[None], base - origin, now - origin, self.timing)
        with self._lock:
          t_lock = time.perf_counter()
          if self._error is not None or self._stopping:
            return
          if self._plan is plan and self._next == now:
            self._plan = new
            call.arrival, call.skipped = now, max(0, min(now - base, self.timing.laid))
            self._plan_end = base + p.n_action_steps
            self._rtc_delay = now - call.step
            self._in_flight = False
            call.install_s = time.perf_counter() - t_lock
            break
      clock.notify()

  def _check(self, chunk) -> np.ndarray:
    chunk = np.asarray(chunk, np.float32)
    if chunk.shape != (self.policy.span, self.rest.size):
      raise ValueError(
        f"policy {self.policy.name} returned actions of shape {chunk.shape}, not "
        f"(span, action_dim) = ({self.policy.span}, {self.rest.size}): check "
        f"delta_mask's length"
      )
    return chunk

  def _fail(self, exc: BaseException, message: str):
    with self._lock:
      first = self._error is None
      if first:
        self._error, self._error_msg = exc, message.splitlines()[0]
      # hold from the next step: nothing of the plan executes any more
      keep = np.arange(self._slots) < self._next - self._origin
      self._plan = {
        "sum": self._plan["sum"] * keep[None, :, None],
        "weight": self._plan["weight"] * keep,
        "count": self._plan["count"] * keep,
      }
      self._in_flight = False
    self.clock.notify()
    if first and self._on_error is not None:
      self._surfaced = True
      self._on_error(exc)


def summary(log: Log, control_hz: float) -> dict:
  """Rate and timing statistics of a run (milliseconds): period jitter |send_k - send_{k-1}
  - period|, lateness of each send after its due time, the runner's own time per tick
  (`control_overhead`), policy call latency and delay (control steps), held steps."""
  period = 1.0 / control_hz
  sent = np.asarray(log.action_times, np.float64)
  steps = np.asarray(log.action_steps)
  q = lambda x, p: float(np.percentile(x, p)) * 1e3 if len(x) else math.nan
  jitter = np.abs(np.diff(sent) - period)
  late = sent - (log.t0 + steps * period)
  over = np.asarray(log.overhead, np.float64)
  calls = [c for c in log.calls if c.arrival >= 0]
  lat = np.asarray([c.end - c.start for c in calls], np.float64)
  return {
    "control_hz": control_hz,
    "steps": int(len(steps)),
    "period_jitter_ms_p50": q(jitter, 50),
    "period_jitter_ms_p99": q(jitter, 99),
    "period_jitter_ms_max": q(jitter, 100),
    "lateness_ms_p50": q(late, 50),
    "lateness_ms_p99": q(late, 99),
    "lateness_ms_max": q(late, 100),
    "control_overhead_ms_p50": q(over, 50),
    "control_overhead_ms_p99": q(over, 99),
    "control_overhead_ms_max": q(over, 100),
    "calls": len(log.calls),
    "latency_ms_p50": q(lat, 50),
    "latency_ms_p99": q(lat, 99),
    "install_lock_ms_max": q(np.asarray([c.install_s for c in calls]), 100),
    "delay_steps": sorted(collections.Counter(c.arrival - c.step for c in calls).items()),
    "skipped_actions": int(sum(c.skipped for c in calls)),
    "held_steps": int(len(log.planned) - sum(log.planned)),
  }
