"""What every dataset reader gives: its episodes, its features and a way to read each one."""
from __future__ import annotations

import dataclasses
import difflib

import numpy as np

from jaxpolicy.data.storage import DatasetError


@dataclasses.dataclass(frozen=True)
class Feature:
  name: str
  shape: tuple            # per frame
  dtype: str
  camera: bool = False    # frames: uint8 (H, W, 3)


class Source:
  """One dataset, opened: its episodes and features; `read(name)` -> (N, *shape) array."""
  format = ""
  version = ""
  fps: float | None = None

  def __init__(self, path: str):
    self.path = path
    self.episode_ends = np.zeros(0, np.int64)
    self.features: dict[str, Feature] = {}

  # what a format defines
  def read(self, name: str) -> np.ndarray:
    raise NotImplementedError

  def default_state(self, key: str) -> tuple[str, ...]:
    """The features of dataset key `key` ("state" / "full_state") when none are named."""
    raise NotImplementedError

  def default_action(self) -> str:
    raise NotImplementedError

  def problems(self, videos: bool = False) -> list[str]:
    """Faults found without reading the data (counts, timestamps, files); `videos`: also
    the videos' declared frame rates (opens every video file)."""
    del videos
    return []

  def canonical(self, name: str) -> str:
    """A feature named as a user may write it -> its name in `features`."""
    return name

  def short_name(self, name: str) -> str:
    """A camera feature's short name (its dataset key "img_<short>" among several)."""
    return name

  # shared
  def where(self) -> str:
    return f"{self.format} dataset {self.path}"

  def missing(self, name: str, field: str) -> DatasetError:
    names = sorted(self.features)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]}?" if close else ""
    return DatasetError(f"{self.where()} has no feature {name!r} ({field}); it has "
                        f"{', '.join(names)}.{hint}")

  def cameras(self) -> list[str]:
    return [n for n, f in self.features.items() if f.camera]
