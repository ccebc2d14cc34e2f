"""Fingerprints of compiled programs, to check that a change leaves them the same.

    python scripts/hlo_fingerprint.py [--preset=quick] > before.txt   # then after the change
    diff before.txt after.txt

One line per program: its name and the sha256 of XLA's compiled HLO text with the metadata
(op names, source files and lines) stripped. The programs: each method's jitted train step
as `jaxpolicy.training` runs it (live taps, the preset's steps per call; random states,
`benchmarks.training`'s synthetic windows) and its main policy's batch-1 call
(`benchmarks.latency`'s candidates, an identity normaliser). `--dump=DIR` also writes the
stripped texts, to diff a program that changed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import latency, training as training_bench  # noqa: E402
from jaxpolicy import methods, training  # noqa: E402
from jaxpolicy.policy import build_policy  # noqa: E402
from jaxpolicy.runtime import sharding  # noqa: E402

_METADATA = re.compile(r",?\s*metadata=\{[^{}]*\}")
_TABLES = ("FileNames", "FunctionNames", "FileLocations", "StackFrames")


def stripped(text: str) -> str:
  """The HLO text without metadata: each op's, and the module's source tables (file and
  function names, locations, stack frames)."""
  out, in_table = [], False
  for line in text.splitlines():
    if line.strip() in _TABLES:
      in_table = True
    elif in_table and not line.strip():
      in_table = False
    elif not in_table:
      out.append(_METADATA.sub("", line))
  return "\n".join(out)


def train_step_hlo(name, preset):
  config, nets, state = training_bench.init_states([name], preset)[name]
  if methods.info(name).needs_teacher:
    config, nets, state = training_bench.init_states(["teacher", name], preset)[name]
  mesh = sharding.make_mesh(1)
  step = training.make_train_step(
    config, methods.get(name), nets, mesh, config.train.get("steps_per_call", 1)
  )
  state = sharding.put_replicated(state, mesh)
  state, _ = training.live_state(config, nets, state, mesh)
  windows = sharding.put_replicated(training_bench.synthetic_windows(config), mesh)
  return step.lower(state, windows, np.int32(0)).compile().as_text()


def policy_hlo(name, policy_name, preset):
  (cand,) = latency.candidates(preset, [name], wanted={policy_name})
  pol = build_policy(
    cand.name, cand.config, cand.nets, latency.identity_normalizer(), cand.spec, latency.OBS_SHAPES
  )
  return pol.compiled_cost(1)[1].as_text()


def main(argv=None):
  p = argparse.ArgumentParser()
  p.add_argument("--preset", default="quick")
  p.add_argument("--steps", default="teacher,sdm", help="methods whose train step is fingerprinted")
  p.add_argument(
    "--policies",
    default="teacher:teacher_ddim10,sdm:sdm_1step,cd:cd_1step",
    help="method:policy pairs whose batch-1 call is fingerprinted",
  )
  p.add_argument("--dump", default="")
  a = p.parse_args(argv)
  programs = [
    (f"train_step/{m}", lambda m=m: train_step_hlo(m, a.preset)) for m in a.steps.split(",") if m
  ]
  for pair in a.policies.split(","):
    if pair:
      m, pol = pair.split(":")
      programs.append((f"policy_b1/{pol}", lambda m=m, pol=pol: policy_hlo(m, pol, a.preset)))
  for name, fn in programs:
    text = stripped(fn())
    print(
      f"{name} {hashlib.sha256(text.encode()).hexdigest()[:16]} ({len(text)} chars)", flush=True
    )
    if a.dump:
      os.makedirs(a.dump, exist_ok=True)
      with open(os.path.join(a.dump, name.replace("/", "_") + ".hlo"), "w") as f:
        f.write(text)
  jax.effects_barrier()


if __name__ == "__main__":
  main()
