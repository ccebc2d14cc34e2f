"""Configs of every method, with the presets quick (default), paper and tiny.

`load(method, preset)` gives a registered method's config: configs/<method>.py, or the file a
method added elsewhere names in its INFO.config_file. The library never imports this package.
"""

from __future__ import annotations

import importlib
import importlib.util


def load(method: str, preset: str | None = None):
  """The config of `method` (a name in jaxpolicy.methods) at `preset`."""
  from jaxpolicy import methods  # pylint: disable=g-import-not-at-top

  path = methods.info(method).config_file
  if path:
    spec = importlib.util.spec_from_file_location(f"_jaxpolicy_config_{method}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
  else:
    module = importlib.import_module(f"configs.{method}")
  return module.get_config(preset)
