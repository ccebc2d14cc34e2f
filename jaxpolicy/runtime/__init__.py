"""Process-level machinery every run needs: checkpoints (orbax), device meshes / hosts, and
files written whole for readers in other processes, and the host's CPU (what every timing
records it ran on)."""
