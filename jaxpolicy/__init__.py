"""jaxpolicy: fast diffusion policies (teacher, SDM one-step, STEP, CD) in JAX/Flax."""

__version__ = "0.1.0"


def load_policy(
  workdir: str, name: str | None = None, step: int | None = None, dtype: str = "float32"
):
  """The saved policy of a run, callable as `policy(obs_history, rng) -> actions`.

  `name` picks one of the run's policies (e.g. "sdm_1step"); the first by default.
  `dtype="bfloat16"` gives bf16 inference (names then end in "_bf16"; either form works).
  """
  from jaxpolicy.runs import restore_run  # pylint: disable=g-import-not-at-top

  policies = restore_run(workdir, step).policies(dtype=dtype)
  if name is not None and name not in policies and name + "_bf16" in policies:
    name += "_bf16"
  if name is None:
    return next(iter(policies.values()))
  if name not in policies:
    raise ValueError(f"run {workdir} has policies {sorted(policies)}, not {name!r}")
  return policies[name]
