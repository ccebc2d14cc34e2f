"""The suites' difficulty groups as reports name and order them, the papers' own
Table-1 rows, and which policy a method is reported by."""

from __future__ import annotations

from jaxpolicy import methods as methods_lib
from jaxpolicy import suites


# the paired differences the grid is for: (label, row key a, row key b); a row key is a
# method (its registry name, methods.names(): its main policy) or a baseline policy's name.
# A pair is reported where the grid has both sides: the distilled one-step policy against
# its teacher, the other distillations, the teacher run in one step, and the policies
# trained from the demonstrations alone in one or two steps (bc, meanflow, mip: what
# distillation has to beat)
PAIRS = (
  ("SDM - teacher", "sdm", "teacher"),
  ("SDM - CD", "sdm", "cd"),
  ("STEP - teacher", "step", "teacher"),
  ("SDM - teacher DDIM-1", "sdm", "teacher_ddim1_trailing"),
  ("SDM - BC", "sdm", "bc"),
  ("SDM - MeanFlow", "sdm", "meanflow"),
  ("SDM - MIP", "sdm", "mip"),
)


# The SDM paper's Table 1 (MetaWorld v2, point clouds, paper-size networks), per group.
PAPER_ROWS = {
  "DP3* (paper)": (89.0, 72.7, 38.0, 75.8),
  "ManiCM* (paper)": (83.6, 55.6, 33.3, 67.0),
  "SDM (paper)": (86.5, 65.8, 35.8, 71.6),
}


PAPER_NFE = {"DP3* (paper)": 10, "ManiCM* (paper)": 1, "SDM (paper)": 1}


PAPER_GROUPS = ("easy", "medium", "hard", "very_hard")  # MetaWorld's, the papers' columns


def group_order() -> tuple[str, ...]:
  """Every registered suite's groups, suite by suite, in report order."""
  return tuple(g for name in suites.names() for g in suites.get(name).groups)


def group_size(group: str) -> int:
  """How many tasks a group has in its suite."""
  return next(
    len(suites.get(n).groups[group]) for n in suites.names() if group in suites.get(n).groups
  )


class _GroupLabels(dict):
  """group -> how tables name it (its suite's label)."""

  def __missing__(self, group):
    return suites.group_label(group)


GROUP_LABELS = _GroupLabels()


def _main(method: str, names) -> str | None:
  try:
    return methods_lib.info(method).main_policy_of(names)
  except (KeyError, ValueError):  # no such policy, or a method no longer registered
    return None


def main_policy(method: str, names) -> str:
  """The policy a method is reported by (its INFO.main_policy): teacher DDIM, SDM/CD
  one-step, STEP k = 2."""
  return methods_lib.info(method).main_policy_of(names)


def _ordered(methods) -> list[str]:
  """Methods in registry order (the teacher first); unknown ones after, by name."""
  known = [m for m in methods_lib.names() if m in methods]
  return known + sorted(set(methods) - set(known))


def _style(method: str) -> tuple:
  try:
    return methods_lib.info(method).style
  except ValueError:  # a method no longer registered: a neutral style
    return ("tab:gray", "x", "-", 5)
