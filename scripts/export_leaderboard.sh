#!/usr/bin/env bash
# Regenerates the leaderboard report from the finished cells and copies what a reader needs
# into the repository: report.md, its pictures, summary.json, cells.csv, and the grid itself
# as one compact file, cells.json.gz (python -m launch.cells pack: sweep.json, latency.json
# and every cell's cell.json / eval.json / evals.jsonl / metrics.jsonl / config.json /
# failed.json; no checkpoints), from which `python -m launch.report --cells=...` regenerates
# the report. Measure the batch-1 latencies apart first (with the sweep stopped):
# python -m launch.report --workdir=runs/leaderboard --latency.
#   bash scripts/export_leaderboard.sh [runs/leaderboard] [docs/results/leaderboard]
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-runs/leaderboard}
out=${2:-docs/results/leaderboard}
python -m launch.report --workdir="$root" > /dev/null
mkdir -p "$out"
cp "$root"/report.md "$root"/*.png "$root"/summary.json "$root"/cells.csv "$out"/
python -m launch.cells pack "$root" "$out/cells.json.gz"
