#!/usr/bin/env bash
# Point clouds at the papers' size (512 points from a 128x128 depth image, as DP3): the quick
# teacher with the table in view (DP3's crop, pointcloud.table=keep) and with the table
# hidden (table=hide), on drawer-open and coffee-push, seed 0, real MetaWorld. Each crop is
# its own sweep (runs/pc512_keep, runs/pc512_hide): evaluations every 500 steps (20
# episodes) and the honest protocol (100 paired episodes, the same initial states for both
# crops), wall and CPU time per cell in cell.json, report.md per sweep. Resumable: rerun the
# same command; finished cells are skipped. ~45 min per teacher on an idle 2-core CPU.
# Then, with the crop that measured better, the five tasks' teachers and SDM students:
#   bash scripts/run_pointcloud_crops.sh runs/pc512 hide \
#     drawer-open,door-open,button-press-topdown,coffee-push,sweep-into teacher,sdm
#   bash scripts/run_pointcloud_crops.sh [root] [tables] [tasks] [methods] [seeds]
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-runs/pc512}
tables=${2:-keep,hide}
tasks=${3:-drawer-open,coffee-push}
methods=${4:-teacher}
seeds=${5:-0}
for table in ${tables//,/ }; do
  python -m launch.sweep --tasks="$tasks" --seeds="$seeds" --methods="$methods" --preset=quick \
    --workdir="${root}_${table}" --eval_every=500 --episodes=20 --honest_episodes=100 \
    --honest_seed=1000 --set=obs=pointcloud --set=pointcloud.num_points=512 \
    --set=pointcloud.image_size=128 --set=pointcloud.table="$table"
done
