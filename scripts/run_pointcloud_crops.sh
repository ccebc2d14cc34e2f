#!/usr/bin/env bash
# Point clouds at the papers' size (512 points from a 128x128 depth image, as DP3): the quick
# teacher with the table in view (DP3's crop, config.pointcloud.table=keep) and with the table
# hidden (table=hide), on drawer-open and coffee-push, seed 0, real MetaWorld, 20 evaluation
# episodes. Resumable: a finished run is skipped (it has eval.json), an interrupted one resumes
# from its checkpoint. ~45 min per teacher on an idle 2-core CPU (the quick 512-point step is
# ~0.9 s). Then compare the runs' eval.json; scripts/pointcloud_composition.py shows what
# their clouds hold.
#   bash scripts/run_pointcloud_crops.sh [runs/pc512] [tasks] [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-runs/pc512}
tasks=${2:-drawer-open,coffee-push}
seed=${3:-0}
for task in ${tasks//,/ }; do
  for table in keep hide; do
    wd="$root/teacher_${task}_table-${table}_s${seed}"
    if [ -f "$wd/eval.json" ]; then echo "done: $wd"; continue; fi
    python -m launch.train --config=configs/teacher.py --workdir="$wd" \
      --config.task="$task" --config.seed="$seed" --config.obs=pointcloud \
      --config.pointcloud.num_points=512 --config.pointcloud.image_size=128 \
      --config.pointcloud.table="$table"
  done
done
