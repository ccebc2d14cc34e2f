"""Config of the throwaway fifth method (tests/helpers/fifth_method.py): the shared fields."""

from configs import common


def get_config(arg=None):
  c = common.base_config(common.parse_arg(arg))
  c.method = "fifth"
  return c
