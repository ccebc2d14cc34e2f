#!/usr/bin/env bash
# Continues the committed leaderboard on a fresh machine: writes the cells of its compact file
# (docs/results/leaderboard/cells.json.gz: cell.json, eval.json, evals.jsonl, ..., no
# checkpoints) back into the sweep's workdir, so `bash scripts/run_leaderboard.sh` skips them.
# A task and seed whose methods are not all finished needs its teacher's checkpoint for the
# students still to train: its teacher cell is left out (--resume), and the sweep trains that
# teacher again (training is deterministic on one machine, software stack and code version:
# two retrained teachers gave the same 100 honest episodes, episode for episode; across a
# numerics change a retrained teacher is the same function only to float rounding, so its
# students' paired episodes may differ). To regenerate the report only:
# python -m launch.report --cells=docs/results/leaderboard/cells.json.gz --workdir=DIR.
#   bash scripts/restore_leaderboard.sh [docs/results/leaderboard/cells.json.gz] [runs/leaderboard]
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-docs/results/leaderboard/cells.json.gz}
root=${2:-runs/leaderboard}
python -m launch.cells unpack "$src" "$root" --resume
