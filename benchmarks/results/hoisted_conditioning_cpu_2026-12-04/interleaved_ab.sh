#!/usr/bin/env bash
# Hoisted timestep conditioning, before (b9d6c42, a worktree at $BEFORE) against after (this
# tree), interleaved on one idle machine: two rounds of each, paper batch 1 and quick batch 1/20.
#   git worktree add --detach /tmp/before b9d6c42
#   BEFORE=/tmp/before bash benchmarks/results/hoisted_conditioning_cpu_2026-12-04/interleaved_ab.sh
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
AFTER="$(cd "$HERE/../../.." && pwd)"
BEFORE="${BEFORE:?set BEFORE to a checkout of b9d6c42}"
PAPER="teacher_ddim10,teacher_ddim2_trailing,step_k2,step_k4,sdm_1step"
for round in 1 2; do
  for side in before after; do
    tree=$AFTER; [ "$side" = before ] && tree=$BEFORE
    (cd "$tree" && python -m benchmarks.latency --preset=paper --batch=1 --policies="$PAPER" \
        --iters=30 --max_seconds=8 --out="$HERE/paper_${side}_${round}.json")
    (cd "$tree" && python -m benchmarks.latency --preset=quick --batch=1,20 \
        --iters=200 --max_seconds=8 --out="$HERE/quick_${side}_${round}.json")
  done
done
