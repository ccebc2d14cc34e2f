"""Export a saved run's policy as a self-contained artifact (jax + numpy only to run it).

    python -m launch.export --workdir=runs/sdm_drawer-open_state_quick_s0 --policy=sdm_1step \
        --out=exported/sdm_drawer-open [--raw_points=4096] [--dtype=bfloat16]

Writes --out: the policy's `jax.export` programs (symbolic batch, CPU and CUDA), its weights
(params.npz, plain arrays), manifest.json and jaxpolicy_loader.py. On the robot:
`from jaxpolicy_loader import load_exported` (see jaxpolicy/exported.py and docs/robot.md,
"Export"). --raw_points makes a point-cloud policy take the camera's raw cloud of
that many points and crop and sample it inside the program.
"""

from absl import flags

from launch import common

flags.DEFINE_string("workdir", None, "A run directory with checkpoints.")
flags.DEFINE_string("policy", "", "Which of the run's policies (default: its main policy).")
flags.DEFINE_string("out", None, "Folder to write the artifact to.")
flags.DEFINE_integer(
  "raw_points",
  0,
  "Point-cloud policies: take raw clouds of this many "
  "points (cropped and sampled inside); 0 = already sampled clouds.",
)
flags.DEFINE_string("dtype", "float32", "float32 | bfloat16")
flags.mark_flags_as_required(["workdir", "out"])
FLAGS = flags.FLAGS


def main(argv):
  del argv
  common.setup()

  def run():
    from jaxpolicy import export, methods, runs  # pylint: disable=g-import-not-at-top

    name = FLAGS.policy
    if not name:
      r = runs.restore_run(FLAGS.workdir)
      name = methods.info(r.config.method).main_policy_of(r.policies())
    m = export.export_run(
      FLAGS.workdir, name, FLAGS.out, raw_points=FLAGS.raw_points, dtype=FLAGS.dtype
    )
    print(
      f"exported {m['policy']} ({m['method']}, NFE {m['nfe']}, "
      f"{m['params']['bytes'] / 1e6:.2f} MB of weights, platforms "
      f"{', '.join(m['platforms'])}) to {FLAGS.out}; observations "
      f"{m['obs_shapes']} x {m['n_obs_steps']} frames -> actions "
      f"({m['n_action_steps']}, {m['action_dim']})",
      flush=True,
    )

  common.run_guarded(run)


if __name__ == "__main__":
  common.run_app(main)
