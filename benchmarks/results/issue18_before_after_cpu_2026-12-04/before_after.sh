#!/usr/bin/env bash
# Issue 18's before/after figures in one sitting on one idle machine, old code in worktrees:
#   16d8279  the commit before any of issue 18's work (full-kernel training, the first
#            inference path): the quick state teacher's step and paper batch-1 latency
#   690b115  the commit before the point-cloud encoder work (live taps already in): the
#            512-point quick teacher step
#   after    this tree
# Each pair runs before/after then after/before (latency: once each, it compiles for minutes).
#   git worktree add --detach /tmp/wt16 16d8279 && git worktree add --detach /tmp/wt69 690b115
#   OLD=/tmp/wt16 PC_OLD=/tmp/wt69 bash benchmarks/results/issue18_before_after_cpu_2026-12-04/before_after.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
AFTER="$(cd "$HERE/../../.." && pwd)"
OLD="${OLD:?checkout of 16d8279}"; PC_OLD="${PC_OLD:?checkout of 690b115}"
run() { local tree=$1; shift; echo "== $(date -u +%T) $tree: $*"; (cd "$tree" && python "$@"); }
state=(-m benchmarks.training --preset=quick --methods=teacher --iters=150 --max_seconds=10)
pc=(-m benchmarks.training --preset=quick --methods=teacher --obs=pointcloud --num_points=512
    --iters=10 --max_seconds=15)
for r in 1 2; do
  order=(before after); [ $r = 2 ] && order=(after before)
  for side in "${order[@]}"; do
    if [ $side = before ]; then
      run "$OLD" "${state[@]}" --out="$HERE/train_state_before_$r.json"
      run "$PC_OLD" "${pc[@]}" --out="$HERE/train_pc512_before_$r.json"
    else
      run "$AFTER" "${state[@]}" --obs=state --out="$HERE/train_state_after_$r.json"
      run "$AFTER" "${pc[@]}" --out="$HERE/train_pc512_after_$r.json"
    fi
  done
done
lat=(-m benchmarks.latency --preset=paper --batch=1 --policies=sdm_1step,teacher_ddim10
     --iters=30 --max_seconds=8)
for dtype in float32 bfloat16; do
  run "$OLD" "${lat[@]}" --dtype=$dtype --out="$HERE/latency_paper_${dtype}_before.json"
  extra=(); [ $dtype = float32 ] && extra=(--torch --torch_threads=2)
  run "$AFTER" "${lat[@]}" --dtype=$dtype "${extra[@]}" --out="$HERE/latency_paper_${dtype}_after.json"
done
echo "== $(date -u +%T) done"
