#!/usr/bin/env bash
# Regenerates the leaderboard report from the finished cells and copies what a reader needs
# into the repository: report.md, its pictures, summary.json, cells.csv, sweep.json and every
# finished cell's cell.json / eval.json / evals.jsonl / metrics.jsonl (no checkpoints), each
# failed cell's failed.json; latency.json when the batch-1 latencies were measured apart
# (python -m launch.report --workdir=runs/leaderboard --latency, with the sweep stopped).
#   bash scripts/export_leaderboard.sh [runs/leaderboard] [benchmarks/results/leaderboard_quick_cpu]
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-runs/leaderboard}
out=${2:-benchmarks/results/leaderboard_quick_cpu}
python -m launch.report --workdir="$root" > /dev/null
mkdir -p "$out/cells"
cp "$root"/report.md "$root"/*.png "$root"/summary.json "$root"/cells.csv "$root"/sweep.json \
   "$out"/
if [ -f "$root"/latency.json ]; then cp "$root"/latency.json "$out"/; fi
for cell in "$root"/*/s*/*/cell.json; do
  wd=$(dirname "$cell")
  rel=${wd#"$root"/}
  mkdir -p "$out/cells/$rel"
  cp "$wd"/cell.json "$wd"/eval.json "$wd"/evals.jsonl "$out/cells/$rel"/
  rm -f "$out/cells/$rel"/failed.json   # it failed in an earlier export, finished since
  # training's loss and wall time per 100 steps (cells restored from older exports lack it)
  if [ -f "$wd"/metrics.jsonl ]; then cp "$wd"/metrics.jsonl "$out/cells/$rel"/; fi
done
# cells that could not be trained: their reason (launch.sweep's failed.json)
for rec in "$root"/*/s*/*/failed.json; do
  [ -f "$rec" ] || continue
  wd=$(dirname "$rec")
  [ -f "$wd"/cell.json ] && continue
  mkdir -p "$out/cells/${wd#"$root"/}"
  cp "$rec" "$out/cells/${wd#"$root"/}"/
done
echo "exported $(ls "$root"/*/s*/*/cell.json | wc -l) cells to $out"
