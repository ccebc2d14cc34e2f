"""An exported policy on the real MetaWorld, the policy run by the artifact's own loader.

    python scripts/eval_exported_metaworld.py --artifact=exported/sdm_drawer-open \
        --task=drawer-open --episodes=20 --seed=0 [--compare_workdir=runs/sdm_...] \
        [--json=out.json]

The simulator side uses jaxpolicy's MetaWorld helpers; the policy is only
`jaxpolicy_loader.load_exported(artifact)` (jax + numpy). Episode i uses the seed
of the CPU evaluator (`jaxpolicy.envs.suite.episode_seeds`), so with --compare_workdir the
run's in-process policy is evaluated on the same initial states (paired).
"""

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_exported(artifact: str, task: str, episodes: int, seed: int) -> dict:
  sys.path.insert(0, artifact)
  from jaxpolicy_loader import load_exported  # pylint: disable=g-import-not-at-top
  from jaxpolicy import suites  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs.suite import episode_seeds  # pylint: disable=g-import-not-at-top

  policy = load_exported(artifact)
  suite = suites.suite_of(suites.check_task(task))
  envs = [suite.make_env(task, i) for i in range(episodes)]
  hist = {k: [] for k in policy.obs_shapes}
  for env, s in zip(envs, episode_seeds(seed, episodes)):
    o = env.reset(seed=s)
    for k in hist:
      hist[k].append([o[k]] * policy.n_obs_steps)
  state = policy.initial_state(episodes)
  success = np.zeros(episodes, bool)
  t, call, t0 = 0, 0, time.time()
  while t < suite.episode_length:
    obs = {k: np.asarray(v, np.float32) for k, v in hist.items()}
    # the key of policy call c, as the in-process evaluator draws it: same noise, so the two
    # runs differ only by the program's numerics
    actions, state = policy.act(obs, state, jax.random.fold_in(jax.random.PRNGKey(seed), call))
    call += 1
    for j in range(actions.shape[1]):
      if t >= suite.episode_length:
        break
      for i, env in enumerate(envs):
        o, succ = env.step(actions[i, j])
        success[i] |= succ
        for k in hist:
          hist[k][i] = hist[k][i][1:] + [o[k]]
      t += 1
  return {
    "success_rate": float(success.mean()),
    "successes": success.astype(int).tolist(),
    "episodes": episodes,
    "seed": seed,
    "wall_s": round(time.time() - t0, 1),
    "policy": policy.manifest["policy"],
    "mode": "exported (loader only)",
  }


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--artifact", required=True)
  ap.add_argument("--task", required=True)
  ap.add_argument("--episodes", type=int, default=20)
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--compare_workdir", default="")
  ap.add_argument("--json", default="")
  a = ap.parse_args()
  rows = [run_exported(a.artifact, a.task, a.episodes, a.seed)]
  if a.compare_workdir:
    from jaxpolicy import evaluation, load_policy  # pylint: disable=g-import-not-at-top

    pol = load_policy(a.compare_workdir, rows[0]["policy"])
    r = evaluation.evaluate(pol, a.task, episodes=a.episodes, seed=a.seed, backend="cpu")
    rows.append(
      {
        "success_rate": r["success_rate"],
        "successes": r["successes"],
        "episodes": a.episodes,
        "seed": a.seed,
        "wall_s": r["wall_s"],
        "policy": pol.name,
        "mode": "in-process",
      }
    )
  for r in rows:
    print(
      f"{r['policy']} {r['mode']}: success {r['success_rate']:.2f} over {r['episodes']} "
      f"episodes (seed {r['seed']}, {r['wall_s']} s)"
    )
  if a.json:
    with open(a.json, "w") as f:
      json.dump({"task": a.task, "artifact": a.artifact, "results": rows}, f, indent=2)


if __name__ == "__main__":
  main()
