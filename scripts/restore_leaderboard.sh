#!/usr/bin/env bash
# Continues the committed leaderboard on a fresh machine: copies the exported cells
# (benchmarks/results/leaderboard_quick_cpu/cells: cell.json, eval.json, evals.jsonl, no
# checkpoints) back into the sweep's workdir, so `bash scripts/run_leaderboard.sh` skips them.
# A task and seed whose methods are not all finished needs its teacher's checkpoint for the
# students still to train: its teacher cell is left out, and the sweep trains that teacher
# again (training is deterministic on one machine, software stack and code version: on
# 2026-12-02 two retrained teachers gave the same 100 honest episodes, episode for episode;
# across a numerics change such as the one-exp Mish of 2026-12-03 a retrained teacher is the
# same function only to float rounding, so its students' paired episodes may differ).
#   bash scripts/restore_leaderboard.sh [benchmarks/results/leaderboard_quick_cpu] [runs/leaderboard]
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-benchmarks/results/leaderboard_quick_cpu}
root=${2:-runs/leaderboard}
methods=$(python -c "import json,sys; print(' '.join(json.load(open(sys.argv[1]))['methods']))" \
          "$src/sweep.json")
mkdir -p "$root"
[ -f "$root/sweep.json" ] || cp "$src/sweep.json" "$root/"
[ -f "$src/latency.json" ] && [ ! -f "$root/latency.json" ] && cp "$src/latency.json" "$root/"
n=0
for ts in "$src"/cells/*/s*; do
  rel=${ts#"$src/cells/"}
  complete=1
  for m in $methods; do [ -f "$ts/$m/cell.json" ] || complete=0; done
  for cell in "$ts"/*/; do
    m=$(basename "$cell")
    if [ -f "$root/$rel/$m/cell.json" ]; then continue; fi
    if [ "$m" = teacher ] && [ $complete = 0 ] && [ ! -d "$root/$rel/teacher/checkpoints" ]; then
      echo "$rel: unfinished, its teacher will be trained again"; continue
    fi
    if [ -e "$root/$rel/$m" ]; then echo "$rel/$m: $root has a partial run; kept"; continue; fi
    mkdir -p "$root/$rel/$m" && cp "$cell"/* "$root/$rel/$m/" && n=$((n + 1))
  done
done
echo "restored $n cells into $root"
