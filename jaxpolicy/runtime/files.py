"""Files other processes may read while they are written: they appear whole or not at all."""

import json
import os


def write_json(path: str, obj, indent: int | None = 2) -> str:
  """Writes `obj` as JSON to `path` atomically (a temporary file in the same directory, then
  os.replace): a reader in another process (a peer host, a second sweep, the report) never
  sees a half-written file. Returns `path`."""
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=indent)
  os.replace(tmp, path)
  return path
