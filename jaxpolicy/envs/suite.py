"""What an environment suite declares (`SuiteInfo`) and what its environments offer.

A suite is a set of tasks with one simulator, observation layout and action semantics
(MetaWorld, blockpush, a test's point mass). It declares itself once, in its own module, as
`INFO = SuiteInfo(...)`; `jaxpolicy.suites` keeps the one list. Everything above reads the
suite instead of assuming MetaWorld. The protocols its objects follow are documented on
`SuiteInfo`'s fields; docs/environments.md shows a whole suite.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from jaxpolicy import obs as obs_lib

# Episode i of an evaluation with seed s resets from seed s * EPISODE_SEED_STRIDE + i, on the
# CPU and in MJX alike, so every method and backend evaluated with one seed sees the same
# initial states. Demonstrations use seeds from DEMO_SEED_OFFSET on, never an evaluation's.
EPISODE_SEED_STRIDE = 100_003
DEMO_SEED_OFFSET = 1_000_000


def episode_seeds(seed: int, episodes: int) -> list[int]:
  """The per-episode reset seeds of an evaluation with `seed`."""
  return [int(seed) * EPISODE_SEED_STRIDE + i for i in range(int(episodes))]


ACTION_KINDS = ("delta", "absolute")
STATE_KEYS = ("agent_pos", "full_state")  # policy keys a dataset's state features make


@dataclasses.dataclass(frozen=True)
class SuiteInfo:
  """A suite's declaration (see the module docstring).

  make_env(task, seed) -> a CPU environment with
      reset(seed=None) -> observation dict (the suite's `obs_keys`; seed None continues the
          environment's own random stream), step(action) -> (observation dict, success
          flag after the step), episode_info() -> per-episode extras (`metrics`, `scores`,
          "mode"), and `model` / `data` (mujoco.MjModel / MjData) for sensors, or None;
      optionally rest_action() -> the command that holds the robot where this episode
          starts (an absolute position), used instead of the suite's `rest_action`.
  make_expert(task) -> a scripted expert: reset(seed) at each episode's start, then
      expert(observation dict) -> action; None when the suite has none.
  mjx_env(task) -> the MJX form (see jaxpolicy.envs.mjx.evaluator.make_rollout), or None.
  requires() -> raises ImportError (one line naming the install) when the suite's simulator
      is an optional package that is missing; the door calls it; None: always there.
  """

  name: str
  tasks: tuple[str, ...]
  groups: dict  # group -> tasks, in report order; every task in one group
  group_labels: dict  # group -> how tables name it ("very_hard" -> "Very hard")
  make_env: Callable
  obs_keys: dict  # per-frame observation key -> shape, without any sensor
  action_kind: tuple[str, ...]  # per action dimension: "delta" (hold = 0) | "absolute"
  episode_length: int  # control steps of an episode
  control_hz: float  # control steps per second of simulated time
  success: str  # the success predicate, in words (docs, reports)
  make_expert: Callable | None = None
  mjx_env: Callable | None = None
  metrics: tuple[str, ...] = ()  # per-episode 0/1 extras besides success (blockpush: p1),
  # reported with their rate
  scores: tuple[str, ...] = ()  # per-episode float extras (pusht: the episode's best
  # coverage), reported with their mean
  modes: tuple[str, ...] = ()  # episode mode labels, for coverage (multimodal suites)
  demo_episodes: int = 10  # demonstrations a run collects unless data.num_episodes
  demo_stops_at_success: bool = False  # a demonstration ends at the success step (else it
  # runs the episode length, as DP3's MetaWorld demos)
  sensor: dict = dataclasses.field(default_factory=dict)  # config.pointcloud defaults
  sensor_kinds: tuple[str, ...] = ()  # sensors its models support: "pointcloud", "rgb"
  cameras: dict = dataclasses.field(default_factory=dict)  # config.rgb defaults: camera ->
  # position it is moved to (() = the model's own)
  rest_action: tuple = ()  # the command an episode starts holding (default zeros)
  requires: Callable | None = None
  features: dict = dataclasses.field(default_factory=dict)  # a dataset's feature (LeRobot's
  # names) -> the observation key offering it, for runs
  # trained on a dataset of their own (observation_map)

  def __post_init__(self):
    grouped = [t for g in self.groups.values() for t in g]
    if sorted(grouped) != sorted(self.tasks) or len(set(grouped)) != len(grouped):
      raise ValueError(f"suite {self.name}: every task must be in exactly one group")
    if any(k not in ACTION_KINDS for k in self.action_kind):
      raise ValueError(f"suite {self.name}: action_kind entries must be in {ACTION_KINDS}")

  @property
  def action_dim(self) -> int:
    return len(self.action_kind)

  @property
  def delta_mask(self) -> np.ndarray:
    """(action_dim,) bool: the dimensions whose hold command is 0 (the rest hold the last)."""
    return np.asarray([k == "delta" for k in self.action_kind])

  def group_of(self, task: str) -> str:
    for g, names in self.groups.items():
      if task in names:
        return g
    raise KeyError(f"{task} is not a {self.name} task")

  def hold(self, last_action) -> np.ndarray:
    """The command that keeps the robot where it is: 0 on delta dimensions, the last command
    on absolute ones (MetaWorld's gripper: holding must not open it)."""
    last = np.asarray(last_action, np.float32)
    return np.where(self.delta_mask, 0.0, last).astype(np.float32)

  def observation_map(self, policy_keys, state_keys=()) -> dict[str, tuple[str, ...]]:
    """{policy key: the observation keys concatenated into it} for a policy trained on a
    dataset of its own: its state (agent_pos / full_state) is made of the features named in
    `state_keys` (config data.state_keys) or, when none are named, of the format's default,
    which is the key of the same name here; any other key is read as it is. A ValueError
    names both sets when this suite does not offer what the policy reads."""
    names = {k: k for k in self.obs_keys}
    names.update({d: k for k, d in obs_lib.DATASET_KEYS.items() if k in self.obs_keys})
    names.update(self.features)
    out = {}
    for key in policy_keys:
      if key in STATE_KEYS and state_keys:
        parts = [names.get(n[len("data/") :] if n.startswith("data/") else n) for n in state_keys]
        if None in parts or any(p not in self.obs_keys for p in parts):
          raise ValueError(
            f"the policy's {key} is made of the features {', '.join(state_keys)} "
            f"(data.state_keys); suite {self.name} offers "
            f"{', '.join(f'{n} ({k})' for n, k in self.features.items())}"
            f"{'; ' if self.features else ''}{', '.join(self.obs_keys)}"
          )
        out[key] = tuple(parts)
      elif key in self.obs_keys:
        out[key] = (key,)
      else:
        raise ValueError(
          f"the policy reads the observations {', '.join(sorted(policy_keys))}; "
          f"suite {self.name} offers {', '.join(sorted(self.obs_keys))}"
        )
    return out

  def check_shapes(self, mapping: dict, obs_shapes: dict) -> None:
    """A ValueError when an observation_map entry gives another size than the policy's."""
    for key, parts in mapping.items():
      size = sum(int(np.prod(self.obs_keys[p])) for p in parts)
      want = int(np.prod(obs_shapes[key]))
      if size != want:
        raise ValueError(
          f"the policy's {key} has {want} numbers per frame; suite "
          f"{self.name}'s {' + '.join(parts)} give {size} (a run reads what "
          f"its data.state_keys named: see docs/environments.md)"
        )

  def rest(self) -> np.ndarray:
    """(action_dim,) the command of an episode's start (what holding means before any)."""
    rest = self.rest_action or (0.0,) * self.action_dim
    return np.asarray(rest, np.float32)
