"""The architecture: every import inside the library runs downward, none reaches the configs,
launch or benchmarks, nothing hides behind importlib; and a fifth method joins the training
loop, restore, sweep, report and benchmarks from its own files alone."""

import ast
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The library's layers, from the bottom (README, "Layout"). A module may import modules of its
# own layer or of layers below; within a layer the imports must not form a cycle.
LAYERS = (
  (
    "jaxpolicy.errors",
    "jaxpolicy.obs",
    "jaxpolicy.stats",
    "jaxpolicy.runtime",
    "jaxpolicy.diffusion",
    "jaxpolicy.exported",
    "jaxpolicy.execution",
    "jaxpolicy.robot",
  ),
  ("jaxpolicy.nets", "jaxpolicy.envs"),
  ("jaxpolicy.suites",),  # the environment suites and their one list
  ("jaxpolicy.data",),
  ("jaxpolicy.policy",),
  ("jaxpolicy.methods",),
  ("jaxpolicy.runs", "jaxpolicy.demos", "jaxpolicy.evaluation"),
  ("jaxpolicy.validate", "jaxpolicy.report", "jaxpolicy.export"),
  ("jaxpolicy.training",),
  ("jaxpolicy.sweep",),  # grids of cells: trains through the training loop
  ("jaxpolicy",),  # the package's face (its __init__ only): load_policy
)
OUTSIDE = ("configs", "launch", "benchmarks", "scripts", "tests")


def _modules() -> dict:
  """{module name: file path} of every module of the library."""
  out = {}
  for folder, _, files in os.walk(os.path.join(ROOT, "jaxpolicy")):
    for f in files:
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(folder, f), ROOT)[:-3].split(os.sep)
        if rel[-1] == "__init__":
          rel = rel[:-1]
        out[".".join(rel)] = os.path.join(folder, f)
  return out


def import_graph(modules: dict) -> tuple[dict, list]:
  """({module: {imported modules}}, [dynamic imports]) from every import statement,
  function-level ones included, and every importlib.import_module / __import__ call."""
  graph, dynamic = {}, []
  for name, path in modules.items():
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    edges = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
      if isinstance(node, ast.Import):
        edges |= {a.name for a in node.names}
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative import
          parts = package.split(".")
          base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
        for a in node.names:  # `from pkg import module` names the module itself
          edges.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
      elif isinstance(node, ast.Call):
        fn = node.func
        called = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
        if called in ("import_module", "__import__"):
          arg = node.args[0] if node.args else None
          if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            edges.add(arg.value)
          else:
            dynamic.append(f"{name}:{node.lineno}")
    graph[name] = {e for e in edges if e.split(".")[0] in ("jaxpolicy",) + OUTSIDE}
  return graph, dynamic


def layer_of(module: str) -> int:
  best = None
  for i, layer in enumerate(LAYERS):
    for prefix in layer:
      if module == prefix or (prefix != "jaxpolicy" and module.startswith(prefix + ".")):
        if best is None or len(prefix) > len(best[1]):
          best = (i, prefix)
  if best is None:
    raise KeyError(f"{module} is in no layer: add it to LAYERS (and the README's Layout)")
  return best[0]


def violations(graph: dict) -> list[str]:
  """Imports of configs / launch / benchmarks, upward imports, and cycles."""
  out = []
  for a, targets in sorted(graph.items()):
    for b in sorted(targets):
      if b.split(".")[0] in OUTSIDE:
        out.append(f"{a} imports {b} (outside the library)")
      elif layer_of(b) > layer_of(a):
        out.append(f"{a} imports {b}, which lies above it")
  state, stack = {}, []

  def visit(n):  # depth-first search; a back edge closes a cycle
    state[n] = "open"
    stack.append(n)
    for m in sorted(graph.get(n, ())):
      if state.get(m) == "open":
        out.append("cycle: " + " -> ".join(stack[stack.index(m) :] + [m]))
      elif m not in state:
        visit(m)
    stack.pop()
    state[n] = "done"

  for n in sorted(graph):
    if n not in state:
      visit(n)
  return out


def test_imports_run_downward_without_cycles_or_dynamic_imports():
  modules = _modules()
  graph, dynamic = import_graph(modules)
  assert len(graph) > 30 and sum(map(len, graph.values())) > 60  # it read the library
  assert not dynamic, f"imports hidden from the graph: {dynamic}"
  assert violations(graph) == []
  for m in modules:
    layer_of(m)  # every module has a place


def test_the_check_catches_upward_imports_cycles_and_configs():
  bad = {
    "jaxpolicy.nets.unet1d": {"jaxpolicy.training"},
    "jaxpolicy.methods.sdm": {"jaxpolicy.methods.cd"},
    "jaxpolicy.methods.cd": {"jaxpolicy.methods.sdm"},
    "jaxpolicy.runs": {"configs.teacher"},
  }
  found = violations(bad)
  assert any("lies above" in v for v in found)
  assert any(v.startswith("cycle: jaxpolicy.methods.cd -> jaxpolicy.methods.sdm") for v in found)
  assert any("outside the library" in v for v in found)


@pytest.mark.slow  # trains, sweeps, reports and benchmarks a method
def test_a_fifth_method_joins_everything_from_its_own_files(tmp_path):
  """tests/helpers/fifth_method.py (with its config beside it) is registered, trained by the
  sweep beside the teacher, restored, evaluated on the honest protocol, reported, and
  benchmarked, with no shared file naming it."""
  from benchmarks import latency, training as training_bench
  from helpers import fifth_method
  from jaxpolicy import methods, report
  from launch import sweep

  methods.register(fifth_method)
  try:
    assert methods.names()[-1] == "fifth" and methods.get("fifth") is fifth_method
    root = str(tmp_path / "sweep")
    done, _ = sweep.run_sweep(
      ["pointmass-reach"],
      [0],
      ["fifth"],
      "tiny",
      root,
      10,
      2,
      log=lambda *_: None,
      honest_episodes=2,
      honest_seed=3,
    )
    assert done == 2  # the teacher (implied) and fifth
    cell = json.load(open(os.path.join(root, "pointmass-reach", "s0", "fifth", "cell.json")))
    assert set(cell["honest"]) == {"fifth_1step"} and cell["hz_b1"] > 0
    ev = json.load(open(os.path.join(root, "pointmass-reach", "s0", "fifth", "eval.json")))
    assert ev["tasks"]["pointmass-reach"]["fifth_1step"]["nfe"] == 1
    text = open(report.write_report(root)).read()
    assert "| fifth (`fifth_1step`) | 1 |" in text and "| Fifth (1 step) |" in text
    cands = latency.candidates("tiny", method_names=["fifth"])
    assert [(c.name, c.spec.nfe) for c in cands] == [("fifth_1step", 1)]
    r = training_bench.run("tiny", iters=2, warmup=1, method_names=["fifth"], log=lambda *_: None)
    assert r["results"][0]["method"] == "fifth" and r["results"][0]["steps_per_s"] > 0
  finally:
    methods.unregister("fifth")
  with pytest.raises(ValueError, match="unknown method 'fifth'"):
    methods.get("fifth")
