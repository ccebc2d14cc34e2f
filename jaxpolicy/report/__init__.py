"""Reports of a sweep: both protocols' tables, the honest protocol's plain-words reading,
summary.json, cells.csv and pictures, from the cells on disk.

  groups   the suites' groups as reports order and name them; the papers' own rows
  load     a sweep's cells, failures and latency measured apart, read from disk
  stats    the arithmetic of the papers' protocol and the honest one (tested on hand-made
           cells)
  text     tables, the reading, summary.json, cells.csv and report.md (`write_report`)
  plots    learning curves, success against Hz, per-task success
  latency  batch-1 latency of every policy, measured apart (launch.report --latency)
"""

from jaxpolicy.report.latency import measure_latency
from jaxpolicy.report.load import (
  FAILED,
  LATENCY_FILE,
  apply_latency,
  load_failures,
  load_sweep,
  read_cell,
)
from jaxpolicy.report.stats import aggregate, cell_metrics, complete_cells, top_k_mean
from jaxpolicy.report.text import write_report

__all__ = [
  "FAILED",
  "LATENCY_FILE",
  "aggregate",
  "apply_latency",
  "cell_metrics",
  "complete_cells",
  "load_failures",
  "load_sweep",
  "measure_latency",
  "read_cell",
  "top_k_mean",
  "write_report",
]
