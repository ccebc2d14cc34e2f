"""The error every layer raises for bad configuration: one line naming the problem and fix."""

from __future__ import annotations


class ConfigError(ValueError):
  pass
