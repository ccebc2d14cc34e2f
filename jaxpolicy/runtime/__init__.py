"""Process-level machinery every run needs: checkpoints (orbax), device meshes / hosts, and
files written whole for readers in other processes, the host's CPU (what every timing
records it ran on), and the logs people read (metrics.jsonl, TensorBoard, W&B)."""
