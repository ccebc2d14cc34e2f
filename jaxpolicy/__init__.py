"""jaxpolicy: fast diffusion policies (teacher, SDM one-step, STEP, CD) in JAX/Flax."""

__version__ = "0.1.0"


def load_policy(workdir: str, name: str | None = None, step: int | None = None):
  """The saved policy of a run, callable as `policy(obs_history, rng) -> actions`.

  `name` picks one of the run's policies (e.g. "sdm_1step"); the first by default.
  """
  from jaxpolicy.train.loop import restore_run  # pylint: disable=g-import-not-at-top
  policies = restore_run(workdir, step).policies()
  if name is None:
    return next(iter(policies.values()))
  if name not in policies:
    raise ValueError(f"run {workdir} has policies {sorted(policies)}, not {name!r}")
  return policies[name]
