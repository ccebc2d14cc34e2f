"""Write the Markdown report and learning curves of a sweep directory.

    python -m launch.report --workdir=runs/sweep [--out=runs/sweep/report.md]
"""
from absl import app, flags

from launch import common

flags.DEFINE_string("workdir", "runs/sweep", "Sweep directory.")
flags.DEFINE_string("out", "", "Markdown file (default <workdir>/report.md).")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  common.setup()
  from jaxpolicy import report  # pylint: disable=g-import-not-at-top
  print(common.run_guarded(lambda: report.write_report(FLAGS.workdir, FLAGS.out or None)))


if __name__ == "__main__":
  app.run(main)
