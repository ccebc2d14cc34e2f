"""Diffusion-policy teacher (DP3-style U-Net, DDPM, DDIM-10).

    python -m launch.train --config=configs/teacher.py --config.task=drawer-open

The quick preset (default) collects 10 scripted demonstrations, trains on a 2-core CPU in
about 10 minutes and should reach >= 0.8 success on drawer-open over 20 real-MetaWorld
episodes. Presets: quick | paper | tiny (e.g. --config=configs/teacher.py:paper).
"""
from configs import common


def get_config(arg=None):
  c = common.base_config(common.parse_arg(arg))
  c.method = "teacher"
  return c
