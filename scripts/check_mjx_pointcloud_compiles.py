"""An MJX point-cloud run compiles its policies once: count the rollout compilations.

    XLA_FLAGS=--xla_cpu_use_fusion_emitters=false python scripts/check_mjx_pointcloud_compiles.py \
        [--json=benchmarks/results/mjx_pointcloud_compiles_cpu_DATE.json]

Trains a tiny point-cloud teacher (16x16 depth, 32 points) with evaluations in MJX at steps 5
and 10 and the final one at 15 (2 episodes of 6 steps each), then reports how many rollout
programs `jaxpolicy.envs.mjx.evaluator` compiled (1 = the teacher's policy, once; periodic
evaluations reuse the run's policy objects and its one sensor) and how many point-cloud
sensors were made (2: one for collecting the demonstrations, one for the run). About 4
minutes on a 2-core CPU, most of it the one compilation; too long for the test suite.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--json", default="")
  a = ap.parse_args()
  t0 = time.time()
  import configs  # pylint: disable=g-import-not-at-top
  from jaxpolicy import training  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs import pointcloud  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs.mjx import evaluator  # pylint: disable=g-import-not-at-top
  d = tempfile.mkdtemp()
  c = configs.load("teacher", "tiny")
  c.obs = "pointcloud"
  c.data.dir = os.path.join(d, "data")
  c.pointcloud.image_size, c.pointcloud.num_points = 16, 32
  c.train.steps, c.eval.every = 15, 5
  c.eval.backend, c.eval.episodes, c.eval.episode_length = "mjx", 2, 6
  made = []
  real = pointcloud.make_sensor
  pointcloud.make_sensor = lambda cfg: made.append(1) or real(cfg)
  training.train(c, os.path.join(d, "teacher"))
  evals = [json.loads(l) for l in open(os.path.join(d, "teacher", "evals.jsonl"))]
  out = {"rollout_compilations": evaluator.COMPILATIONS[0], "sensors_made": len(made),
         "evaluation_steps": [e["step"] for e in evals],
         "policies": sorted({n for e in evals for n in e["results"]}),
         "backends": sorted({r["backend"] for e in evals for r in e["results"].values()}),
         "compile_s_per_evaluation": [r.get("compile_s") for e in evals
                                      for r in e["results"].values()],
         "wall_s": round(time.time() - t0, 1), "date": time.strftime("%Y-%m-%d"),
         "command": "python scripts/check_mjx_pointcloud_compiles.py"}
  print(json.dumps(out, indent=2))
  if a.json:
    with open(a.json, "w") as f:
      json.dump(out, f, indent=2)


if __name__ == "__main__":
  main()
