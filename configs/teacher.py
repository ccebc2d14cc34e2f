"""Diffusion-policy teacher (DP3-style U-Net, DDPM, DDIM-10).

    python -m launch.train --config=configs/teacher.py --config.task=drawer-open

The quick preset (default) collects 10 scripted demonstrations, is sized to train on a
2-core CPU, and evaluates on 20 real-MetaWorld episodes; what it reaches per task is in
docs/results.md. Presets: quick | paper | tiny (e.g. --config=configs/teacher.py:paper).
"""

from configs import common


def get_config(arg=None):
  c = common.base_config(common.parse_arg(arg))
  c.method = "teacher"
  return c
