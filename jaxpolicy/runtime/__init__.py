"""Process-level machinery every run needs: checkpoints (orbax) and device meshes / hosts."""
