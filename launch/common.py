"""Shared set-up for the entry points: logging, compilation cache, clean error exits."""

from __future__ import annotations

import os
import sys

from absl import logging


MJX_CPU_FLAG = "--xla_cpu_use_fusion_emitters=false"


def set_mjx_cpu_flag():
  """XLA's CPU fusion emitters make MJX many times slower (docs/speed.md): turn them off
  (before JAX starts)."""
  flags = os.environ.get("XLA_FLAGS", "")
  if "xla_cpu_use_fusion_emitters" not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} {MJX_CPU_FLAG}".strip()


def wants_mjx(argv=None) -> bool:
  """Whether the command line asks for the MJX evaluator (--config.eval.backend=mjx)."""
  return any(a.replace("-", "_").endswith("backend=mjx") for a in (argv or sys.argv))


def setup(mjx: bool | None = None):
  """Environment defaults, jaxpolicy's INFO log on stderr (libraries' only from WARNING).

  mjx: the run steps MJX (None: when the command line says --config.eval.backend=mjx); then
  the XLA CPU flag MJX needs is set. Only then: on CPU it also makes other programs compile
  slower (measured ~2x on the policy networks' initialiser), and "auto" never picks MJX on
  CPU. Harmless on accelerators.
  """
  os.environ.setdefault("MUJOCO_GL", "egl")
  if wants_mjx() if mjx is None else mjx:
    set_mjx_cpu_flag()
  logging.set_verbosity(logging.WARNING)
  import logging as py_logging  # pylint: disable=g-import-not-at-top

  log = py_logging.getLogger("jaxpolicy")
  if not log.handlers:
    handler = py_logging.StreamHandler(sys.stderr)
    handler.setFormatter(py_logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.addHandler(handler)
  log.setLevel(py_logging.INFO)
  log.propagate = False
  register_suites()
  import jax  # pylint: disable=g-import-not-at-top

  cache = os.environ.get(
    "JAXPOLICY_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "jaxpolicy", "xla")
  )
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def register_suites(names: str | None = None) -> list[str]:
  """Registers the suites of the modules named in $JAXPOLICY_SUITES (comma-separated, each
  with `INFO = SuiteInfo(...)`): a suite of your own joins every command from its own
  files, e.g. JAXPOLICY_SUITES=my_robot.suite python -m launch.train ..."""
  import importlib  # pylint: disable=g-import-not-at-top
  from jaxpolicy import suites  # pylint: disable=g-import-not-at-top

  names = os.environ.get("JAXPOLICY_SUITES", "") if names is None else names
  done = []
  for name in filter(None, (n.strip() for n in names.split(","))):
    try:
      module = importlib.import_module(name)
    except ImportError as e:
      print(
        f"error: JAXPOLICY_SUITES names {name!r}, which does not import ({e})",
        file=sys.stderr,
        flush=True,
      )
      sys.exit(2)
    suites.register(module.INFO)
    done.append(module.INFO.name)
  return done


def _check_config_arg(argv):
  """Loads --config=FILE[:PRESET] once up front so a bad file or preset is one clean line
  (absl would print the loader's traceback inside its flag-parsing error)."""
  import importlib.util  # pylint: disable=g-import-not-at-top

  value = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if not value:
    return
  path, _, preset = value.partition(":")
  if not os.path.exists(path):
    print(f"error: config file {path} not found", file=sys.stderr, flush=True)
    sys.exit(2)
  try:
    spec = importlib.util.spec_from_file_location("_jaxpolicy_config_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(preset or None)
  except (ValueError, KeyError, AttributeError) as e:
    print(f"error: {path}: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
  for arg in argv:
    if not arg.startswith(("--config.", "--noconfig.")):
      continue
    field = arg.split(".", 1)[1].split("=", 1)[0]
    problem = unknown_field(config, field)
    if problem:
      print(f"error: {path}: {problem}", file=sys.stderr, flush=True)
      sys.exit(2)


def _paths(node, prefix=""):
  """The dotted paths of a config's leaf fields."""
  for k in node.keys():
    if hasattr(node[k], "keys"):
      yield from _paths(node[k], prefix + k + ".")
    else:
      yield prefix + k


def unknown_field(config, field: str) -> str | None:
  """None when `field` (dotted) exists in the config; else a one-line message naming the
  closest fields (a misspelling, a field under another section, or a method's own version
  of it, e.g. train.lr -> sdm.gen_lr)."""
  import difflib  # pylint: disable=g-import-not-at-top

  node = config
  for part in field.split("."):
    if not hasattr(node, "keys") or part not in node:
      break
    node = node[part]
  else:
    return None
  paths = list(_paths(config))
  leaf = field.split(".")[-1]
  last = lambda p: p.split(".")[-1]
  close = [p for p in paths if last(p) == leaf]
  close += difflib.get_close_matches(field, paths, n=2, cutoff=0.75)
  close += [p for p in paths if last(p).endswith("_" + leaf)]
  # the run's own fields first; a student's teacher_train.* (the teacher it may train) last
  close = sorted(dict.fromkeys(close), key=lambda p: p.startswith("teacher_train."))[:3]
  hint = (
    f" Did you mean {', '.join(close)}?"
    if close
    else (f" Top-level fields: {', '.join(config.keys())}.")
  )
  return f"unknown config field {field!r}.{hint}"


def run_app(main):
  """absl's app.run, with a mistyped --config.<field> reported in one line (ml_collections
  raises a KeyError with a did-you-mean hint while flags are parsed)."""
  from absl import app  # pylint: disable=g-import-not-at-top

  _check_config_arg(sys.argv)
  try:
    app.run(main)
  except KeyError as e:
    msg = str(e.args[0]) if e.args else str(e)
    print(
      f"error: unknown config field {msg.strip()}".replace("\n", " "), file=sys.stderr, flush=True
    )
    sys.exit(2)


def run_guarded(fn):
  """Runs fn; known bad-input errors exit non-zero with one line, not a traceback."""
  from jaxpolicy.data.storage import DatasetError  # pylint: disable=g-import-not-at-top
  from jaxpolicy.runtime.checkpoint import CheckpointError  # pylint: disable=g-import-not-at-top
  from jaxpolicy.training import NonFiniteLoss  # pylint: disable=g-import-not-at-top

  try:
    return fn()
  except (ValueError, FileNotFoundError, DatasetError, CheckpointError, NonFiniteLoss) as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
