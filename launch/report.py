"""Write the Markdown report and learning curves of a sweep directory.

    python -m launch.report --workdir=runs/sweep [--out=runs/sweep/report.md] [--latency]

--latency first measures the batch-1 latency of every policy in the grid apart from the
sweep (run it with nothing else running: stop the sweep first): each method's main policy
and its untrained baselines (the teacher's DDIM-1/2), on one finished cell per method
(every cell of a method runs the same network shapes), into <workdir>/latency.json. The
report then uses those figures instead of the ones each cell measured beside training.

--cells=FILE first writes a cells file (launch.cells pack; e.g. the committed
docs/results/leaderboard/cells.json.gz) into --workdir, keeping files already there, then
writes the report from it: report.md, its pictures, summary.json and cells.csv.
"""
from absl import app, flags

from launch import common

flags.DEFINE_string("workdir", "runs/sweep", "Sweep directory.")
flags.DEFINE_string("out", "", "Markdown file (default <workdir>/report.md).")
flags.DEFINE_bool("latency", False, "Measure every policy's batch-1 latency apart from the "
                  "sweep first (nothing else should run), into <workdir>/latency.json.")
flags.DEFINE_integer("latency_calls", 200, "Timed calls per policy for --latency.")
flags.DEFINE_string("cells", "", "A cells file (launch.cells pack) to write into --workdir "
                    "first; the report is then written from it.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  common.setup()
  from jaxpolicy import report  # pylint: disable=g-import-not-at-top

  def go():
    if FLAGS.cells:
      from launch import cells  # pylint: disable=g-import-not-at-top
      print(f"cells: {cells.unpack(FLAGS.cells, FLAGS.workdir)} files written into "
            f"{FLAGS.workdir}")
    if FLAGS.latency:
      print("latency:", report.measure_latency(FLAGS.workdir, FLAGS.latency_calls))
    return report.write_report(FLAGS.workdir, FLAGS.out or None)

  print(common.run_guarded(go))


if __name__ == "__main__":
  app.run(main)
