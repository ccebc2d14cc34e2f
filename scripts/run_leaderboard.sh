#!/usr/bin/env bash
# The 50-task MetaWorld leaderboard (quick preset, state observations, real MetaWorld):
# seed 0 of every task (Medium, Hard, Very hard first, then Easy), then seeds 1 and 2 of the
# 22 Medium / Hard / Very hard tasks. Resumable: rerun the same command after a stop; finished
# cells are skipped and an interrupted one resumes from its checkpoint. Writes
# runs/leaderboard/report.md (and its pictures, summary.json) after each invocation;
# `python -m launch.report --workdir=runs/leaderboard` regenerates them from the cells.
# Starting it a second time while the first runs adds a second worker on the same grid (each
# cell is claimed by the process training it): on a 2-core CPU one sweep keeps ~1.3 cores
# busy (MetaWorld evaluation is single-threaded), so two finish the grid sooner. Pin each to
# its own core (`taskset -c 0 bash scripts/run_leaderboard.sh`, then `taskset -c 1 ...`):
# the quick step's ops are too small to split over threads, and two one-core workers train
# 2 x 20 steps/s against 30 for one two-thread process (quick teacher, 2-core AMD EPYC,
# 2026-12-03; docs/speed.md).
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-runs/leaderboard}
common=(--methods=teacher,sdm,cd,step --preset=quick --workdir="$root" --eval_every=500
        --episodes=20 --honest_episodes=100 --honest_seed=1000)
# the whole grid first, so the report counts every planned cell from the start
python -m launch.sweep --tasks=medium,hard,very_hard --seeds=1,2 "${common[@]}" --plan_only
python -m launch.sweep --tasks=medium,hard,very_hard,easy --seeds=0 "${common[@]}"
python -m launch.sweep --tasks=medium,hard,very_hard --seeds=1,2 "${common[@]}"
