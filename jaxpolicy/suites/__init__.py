"""Environment suites, and the one list of them.

Each suite module declares `INFO = SuiteInfo(...)` (jaxpolicy.envs.suite). A task name is
unique across suites; `check_task` is the door that checks it once (with suggestions), and
`suite_of` finds the suite of a checked name. A suite defined elsewhere joins with
`register(info)` and leaves with `unregister(name)`.
"""

from __future__ import annotations

import difflib

from jaxpolicy.envs.suite import SuiteInfo
from jaxpolicy.suites import blockpush, metaworld, pusht

_REGISTRY: dict[str, SuiteInfo] = {s.INFO.name: s.INFO for s in (metaworld, blockpush, pusht)}
_BUILT_IN = tuple(_REGISTRY)


def names() -> tuple[str, ...]:
  return tuple(_REGISTRY)


def get(name: str) -> SuiteInfo:
  if name not in _REGISTRY:
    raise ValueError(f"unknown suite {name!r}; choose one of {names()}")
  return _REGISTRY[name]


def tasks() -> tuple[str, ...]:
  """Every task of every registered suite, suite by suite."""
  return tuple(t for s in _REGISTRY.values() for t in s.tasks)


def register(info: SuiteInfo) -> None:
  """Adds a suite; its task names must not be taken by another suite."""
  if not isinstance(info, SuiteInfo):
    raise TypeError(f"register takes a SuiteInfo, got {type(info).__name__}")
  taken = {t: s.name for s in _REGISTRY.values() if s.name != info.name for t in s.tasks}
  clash = sorted(t for t in info.tasks if t in taken)
  if clash:
    raise ValueError(f"suite {info.name}: task names {clash} belong to suite {taken[clash[0]]}")
  _REGISTRY[info.name] = info


def unregister(name: str) -> None:
  """Removes a suite added with `register` (the built-in ones stay)."""
  if name in _BUILT_IN:
    raise ValueError(f"suite {name} is built in")
  _REGISTRY.pop(name, None)


def check_task(task: str) -> str:
  """The door: the task's canonical name (MetaWorld's "-v3" suffix dropped), or a
  ValueError naming the closest tasks."""
  name = task[:-3] if task.endswith("-v3") else task
  if any(name in s.tasks for s in _REGISTRY.values()):
    return name
  close = difflib.get_close_matches(name, tasks(), n=3)
  hint = f" Did you mean {', '.join(close)}?" if close else ""
  raise ValueError(
    f"unknown task {task!r}.{hint} Tasks: python -c 'import jaxpolicy.suites "
    f"as s; print(s.tasks())' (suites: {', '.join(names())})"
  )


def suite_of(task: str) -> SuiteInfo:
  """The suite of a checked task name."""
  for s in _REGISTRY.values():
    if task in s.tasks:
      return s
  raise KeyError(
    f"task {task!r} is in no registered suite (check it with jaxpolicy.suites.check_task first)"
  )


def group_of(task: str) -> str:
  return suite_of(task).group_of(task)


def group_label(group: str) -> str:
  """How tables name a group (its suite's label)."""
  for s in _REGISTRY.values():
    if group in s.group_labels:
      return s.group_labels[group]
  return group


def expand(names_) -> list[str]:
  """Task names from names, suite names (all their tasks), groups ("easy", or
  "metaworld/easy" where a group name is in several suites) and "all" (every task of every
  suite); each checked, order kept, duplicates dropped."""
  out = []
  for n in names_:
    suite, _, group = n.partition("/")
    if n == "all":
      out += tasks()
    elif n in _REGISTRY:
      out += _REGISTRY[n].tasks
    elif group and suite in _REGISTRY and group in _REGISTRY[suite].groups:
      out += _REGISTRY[suite].groups[group]
    else:
      owners = [s for s in _REGISTRY.values() if n in s.groups]
      if len(owners) > 1:
        raise ValueError(f"group {n!r} is in suites {[s.name for s in owners]}; write <suite>/{n}")
      out += owners[0].groups[n] if owners else [check_task(n)]
  return list(dict.fromkeys(out))
