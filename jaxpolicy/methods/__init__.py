"""Training methods, and the one list of them.

Each method module declares `INFO: MethodInfo` (methods/common.py) and defines
`init / train_step / make_policies` (optionally `check_config`, `final_metrics`); the
signatures are in docs/methods.md, "Adding a method". `names()`, `get(name)` and
`info(name)` read the list; a method defined elsewhere joins with `register(module)`.
"""

from __future__ import annotations

from jaxpolicy.methods import bc, cd, meanflow, mip, sdm, step, teacher
from jaxpolicy.methods.common import MethodInfo

_REGISTRY = {m.INFO.name: m for m in (teacher, cd, sdm, step, bc, meanflow, mip)}
_BUILT_IN = tuple(_REGISTRY)


def names() -> tuple[str, ...]:
  """Every registered method, in report order (the teacher first)."""
  return tuple(_REGISTRY)


def get(name: str):
  """The method module called `name`; a ValueError lists the choices."""
  if name not in _REGISTRY:
    raise ValueError(f"unknown method {name!r}; choose one of {names()}")
  return _REGISTRY[name]


def info(name: str) -> MethodInfo:
  return get(name).INFO


def register(module) -> None:
  """Adds a method module (with INFO, init, train_step, make_policies) to every list: the
  training loop, restore, sweep, report and benchmarks then know it."""
  for attr in ("INFO", "init", "train_step", "make_policies"):
    if not hasattr(module, attr):
      raise TypeError(f"method module {module.__name__} has no {attr}")
  _REGISTRY[module.INFO.name] = module


def unregister(name: str) -> None:
  """Removes a method added with `register` (the built-in ones stay)."""
  if name in _BUILT_IN:
    raise ValueError(f"{name} is built in")
  _REGISTRY.pop(name, None)
