"""Windows with DP padding, the normaliser, zarr storage (DP3 layout) and its error checks."""

import numpy as np
import pytest
import zarr

from jaxpolicy.data import storage
from jaxpolicy.data.dataset import load_demos, window_indices
from jaxpolicy.data.normalizer import MinMax


def _episodes(lengths, obs_dim=3):
  eps, base = [], 0
  for L in lengths:
    steps = np.arange(base, base + L, dtype=np.float32)
    eps.append(
      {
        "action": np.stack([steps, -steps], 1),
        "full_state": np.repeat(steps[:, None], obs_dim, 1),
        "state": np.repeat(steps[:, None], 9, 1),
      }
    )
    base += L
  return eps


def test_window_indices_dp_padding():
  ends = np.array([6, 10])
  idx = window_indices(ends, horizon=4, pad_before=1, pad_after=2)
  # episode 0 (length 6): starts -1..4, episode 1 (length 4): starts -1..2
  assert len(idx) == 6 + 4
  assert idx[0].tolist() == [0, 0, 1, 2]  # first obs repeated
  assert idx[5].tolist() == [4, 5, 5, 5]  # last step repeated
  assert idx[6].tolist() == [6, 6, 7, 8]  # never crosses episodes
  assert idx[-1].tolist() == [8, 9, 9, 9]
  # previous-chunk alignment: shifted windows are the same windows n_action_steps earlier
  prev = window_indices(ends, 4, 1, 2, shift=-3)
  assert idx[4].tolist() == [3, 4, 5, 5] and prev[4].tolist() == [0, 1, 2, 3]
  assert prev[0].tolist() == [0, 0, 0, 0]  # edge-padded at the episode start


def test_minmax_normaliser():
  x = np.array([[0.0, 5.0, 1.0], [2.0, 5.0, 3.0], [1.0, 5.0, 2.0]])
  n = MinMax.fit(x)
  y = n.normalize(x)
  np.testing.assert_allclose(y[:, 0], [-1, 1, 0])
  np.testing.assert_allclose(y[:, 1], 0)  # constant channel -> 0
  np.testing.assert_allclose(n.unnormalize(y), x, atol=1e-6)
  assert MinMax.from_json(n.to_json()).scale.tolist() == n.scale.tolist()


def test_storage_roundtrip_and_windows(tmp_path):
  path = str(tmp_path / "d.zarr")
  storage.write_episodes(path, _episodes([12, 9, 10]))
  data = load_demos(
    path, ("full_state",), horizon=4, n_obs_steps=2, n_action_steps=3, val_episodes=1, seed=0
  )
  assert data.num_episodes == 3 and data.action_dim == 2
  assert len(data.train_episodes) == 2 and len(data.val_episodes) == 1
  batch = data.train.take(np.arange(data.train.num_windows))
  act = data.normalizer["action"].unnormalize(np.asarray(batch["action"]))
  obs = data.normalizer["full_state"].unnormalize(np.asarray(batch["obs"]["full_state"]))
  # action column 0 is the absolute step index: consecutive inside a window (or padded)
  d = np.diff(act[..., 0], axis=1)
  assert np.all((np.abs(d - 1) < 1e-3) | (np.abs(d) < 1e-3))
  # the observations are the first n_obs_steps steps of the action window
  np.testing.assert_allclose(obs[:, :, 0], act[:, :2, 0], atol=1e-3)
  # the normaliser maps training actions into [-1, 1]
  assert float(np.abs(np.asarray(batch["action"])).max()) <= 1 + 1e-5


def test_dp3_layout_written_by_plain_zarr_loads(tmp_path):
  path = str(tmp_path / "dp3.zarr")
  root = zarr.open_group(path, mode="w", zarr_format=2)
  n = 30
  root.create_array("data/state", shape=(n, 9), dtype="float32")[...] = np.random.rand(n, 9)
  root.create_array("data/action", shape=(n, 4), dtype="float32")[...] = np.random.rand(n, 4)
  root.create_array("data/full_state", shape=(n, 39), dtype="float32")[...] = np.random.rand(n, 39)
  root.create_array("meta/episode_ends", shape=(2,), dtype="int64")[...] = [14, 30]
  data = load_demos(path, ("full_state",), 4, 2, 3, val_episodes=0)
  assert data.num_episodes == 2 and data.obs_shapes == {"full_state": (39,)}


def test_corrupt_datasets_are_refused(tmp_path):
  path = str(tmp_path / "bad.zarr")
  storage.write_episodes(path, _episodes([5, 5]))
  with pytest.raises(storage.DatasetError, match="lacks data/point_cloud"):
    storage.read_episodes(path, ("point_cloud", "action"))
  root = zarr.open_group(path, mode="a")
  root["meta/episode_ends"][...] = np.array([5, 12])
  with pytest.raises(storage.DatasetError, match="inconsistent lengths"):
    storage.read_episodes(path, ("action",))
  with pytest.raises(storage.DatasetError, match="no dataset"):
    storage.read_episodes(str(tmp_path / "missing.zarr"), ("action",))
  (tmp_path / "junk.zarr").mkdir()
  with pytest.raises(storage.DatasetError, match="corrupt or incomplete"):
    storage.read_episodes(str(tmp_path / "junk.zarr"), ("action",))
