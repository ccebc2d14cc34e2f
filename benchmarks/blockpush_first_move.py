"""Does a policy average blockpush's modes at the first decision? The first executed actions
of many samples from the same initial observation, beside the oracle's four.

    python -m benchmarks.blockpush_first_move --workdir=runs/.../teacher --out=DIR

Each sample's first executed action is assigned to the block the oracle's nearest first move
goes for, or to "between" (farther than --tol from both); writes first_move.json and
first_move.png. The method and what it found: docs/environments.md, "blockpush".
"""

from __future__ import annotations

import argparse
import json
import os


def demo_mode_information(path: str) -> dict:
  """The demonstrations' modes, and how well an episode's first observation predicts which
  block went first: leave-one-out 1-nearest-neighbour accuracy (0.5 = no information)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxpolicy.data import storage  # pylint: disable=g-import-not-at-top

  raw, ends = storage.read_episodes(path, ("full_state",))
  modes = [i["mode"] for i in storage.read_attrs(path)["episode_info"]]
  starts = np.concatenate([[0], ends[:-1]])
  x = raw["full_state"][starts][:, :10]  # pusher and blocks (the targets are fixed)
  x = (x - x.mean(0)) / (x.std(0) + 1e-9)
  first = np.asarray([m[1] for m in modes])
  d = np.linalg.norm(x[:, None] - x[None], axis=-1) + np.eye(len(x)) * 1e9
  acc = float(np.mean(first[np.argmin(d, axis=1)] == first))
  return {
    "episodes": len(modes),
    "mode_counts": {m: modes.count(m) for m in sorted(set(modes))},
    "first_block_1nn_accuracy": acc,
  }


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--states", type=int, default=20)
  p.add_argument("--samples", type=int, default=64)
  p.add_argument("--seed", type=int, default=1000)
  p.add_argument("--tol", type=float, default=0.5)
  p.add_argument(
    "--data",
    default="",
    help="the run's demonstrations (zarr): how much "
    "their initial observations say about their modes",
  )
  p.add_argument("--out", default="first_move")
  args = p.parse_args(argv)
  os.environ.setdefault("MUJOCO_GL", "egl")
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jaxpolicy import runs  # pylint: disable=g-import-not-at-top
  from jaxpolicy.envs.suite import episode_seeds  # pylint: disable=g-import-not-at-top
  from jaxpolicy.suites.blockpush import env as env_lib  # pylint: disable=g-import-not-at-top
  from jaxpolicy.suites.blockpush import logic  # pylint: disable=g-import-not-at-top

  run = runs.restore_run(args.workdir)
  policies = run.main_and_baselines()
  env = env_lib.BlockPushEnv(0)
  os.makedirs(args.out, exist_ok=True)
  counts = {n: {"block 0": 0, "block 1": 0, "between": 0} for n in policies}
  spread, shown = {n: [] for n in policies}, {}
  both = {n: 0 for n in policies}  # states whose samples go for either block
  for i, s in enumerate(episode_seeds(args.seed, args.states)):
    obs = env.reset(seed=s)
    pusher, blocks = logic.positions_of_state(np, obs["full_state"].astype(np.float64))
    oracle = np.stack(
      [logic.oracle_action(np, pusher, blocks, f, g) for f in (0, 1) for g in (0, 1)]
    )  # (4, 2) in mode order
    hist = np.repeat(obs["full_state"][None, None], 2, axis=1).astype(np.float32)
    batch = {"full_state": np.repeat(hist, args.samples, axis=0)}
    for name, pol in policies.items():
      pol.reset(args.samples)
      first = pol(batch, jax.random.PRNGKey(i))[:, 0]  # (samples, 2)
      dist = np.linalg.norm(first[:, None] - oracle[None], axis=-1)
      near = np.argmin(dist, axis=1)
      for j in range(args.samples):
        label = f"block {near[j] // 2}" if dist[j, near[j]] <= args.tol else "between"
        counts[name][label] += 1
      spread[name].append(float(np.mean(np.linalg.norm(first - first.mean(0), axis=1))))
      block = near // 2  # modes b0* are 0, 1; b1* are 2, 3
      both[name] += int(min(np.mean(block == 0), np.mean(block == 1)) >= 0.1)
      if i == 0:
        shown[name] = first
    if i == 0:
      shown["oracle"] = oracle
  total = args.states * args.samples
  result = {
    "workdir": args.workdir,
    "states": args.states,
    "samples": args.samples,
    "tol": args.tol,
    "step": run.step,
    "policies": {
      n: {
        "fractions": {k: v / total for k, v in c.items()},
        "mean_spread": float(np.mean(spread[n])),
        "states_sampling_both_blocks": both[n] / args.states,
      }
      for n, c in counts.items()
    },
  }
  if args.data:
    result["demonstrations"] = demo_mode_information(args.data)
  for n, r in result["policies"].items():
    print(
      f"{n}: "
      + ", ".join(f"{k} {v:.2f}" for k, v in r["fractions"].items())
      + f"; spread {r['mean_spread']:.3f}; states sampling both blocks "
      f"{r['states_sampling_both_blocks']:.2f}"
    )
  if args.data:
    print("demonstrations:", result["demonstrations"])
  with open(os.path.join(args.out, "first_move.json"), "w") as f:
    json.dump(result, f, indent=2)
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  names = list(policies)
  fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.4), squeeze=False)
  for ax, n in zip(axes[0], names):
    ax.scatter(shown[n][:, 0], shown[n][:, 1], s=10, alpha=0.5, label="samples")
    ax.scatter(
      shown["oracle"][:, 0],
      shown["oracle"][:, 1],
      marker="*",
      s=160,
      c="k",
      label="oracle, 4 modes",
    )
    ax.set_title(n, fontsize=9)
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-1.1, 1.1)
    ax.set_aspect("equal")
    ax.grid(alpha=0.3)
    ax.set_xlabel("first action x")
  axes[0][0].set_ylabel("first action y")
  axes[0][0].legend(fontsize=7, loc="lower left")
  fig.suptitle(
    f"blockpush, first executed action from one initial state ({args.samples} "
    f"samples, step {run.step})"
  )
  fig.tight_layout()
  fig.savefig(os.path.join(args.out, "first_move.png"), dpi=100)
  return result


if __name__ == "__main__":
  main()
