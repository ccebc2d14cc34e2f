"""Write the Markdown report and learning curves of a sweep directory.

    python -m launch.report --workdir=runs/sweep [--out=runs/sweep/report.md] [--latency]
    python -m launch.report --cells=docs/results/leaderboard/cells.json.gz --workdir=DIR

--latency first measures every policy's batch-1 latency apart from the sweep (stop the sweep
first) into <workdir>/latency.json; --cells first writes a cells file (launch.cells) into
--workdir. What the report holds and how to read it: docs/evaluation.md, "Reports".
"""

from absl import app, flags

from launch import common

flags.DEFINE_string("workdir", "runs/sweep", "Sweep directory.")
flags.DEFINE_string("out", "", "Markdown file (default <workdir>/report.md).")
flags.DEFINE_bool(
  "latency",
  False,
  "Measure every policy's batch-1 latency apart from the "
  "sweep first (nothing else should run), into <workdir>/latency.json.",
)
flags.DEFINE_integer("latency_calls", 200, "Timed calls per policy for --latency.")
flags.DEFINE_string(
  "cells",
  "",
  "A cells file (launch.cells pack) to write into --workdir "
  "first; the report is then written from it.",
)
FLAGS = flags.FLAGS


def main(argv):
  del argv
  common.setup()
  from jaxpolicy import report  # pylint: disable=g-import-not-at-top

  def go():
    if FLAGS.cells:
      from launch import cells  # pylint: disable=g-import-not-at-top

      print(f"cells: {cells.unpack(FLAGS.cells, FLAGS.workdir)} files written into {FLAGS.workdir}")
    if FLAGS.latency:
      print("latency:", report.measure_latency(FLAGS.workdir, FLAGS.latency_calls))
    return report.write_report(FLAGS.workdir, FLAGS.out or None)

  print(common.run_guarded(go))


if __name__ == "__main__":
  app.run(main)
