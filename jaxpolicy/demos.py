"""The demonstrations a config trains on (collected on demand from its suite's scripted
expert, or a dataset of your own) and the run's sensor (point clouds or cameras), which
collection and evaluation share.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import functools
import os
import time

import jax

from jaxpolicy import obs as obs_lib
from jaxpolicy import suites
from jaxpolicy.data import collect, formats
from jaxpolicy.data.dataset import DemoData, load_demos
from jaxpolicy.envs import camera, pointcloud
from jaxpolicy.runs import offline
from jaxpolicy.runtime import sharding


@contextlib.contextmanager
def open_sensor(config, sensor=None):
  """The run's sensor -- the point-cloud sensor or the cameras -- `sensor` when given, else a
  new one for `config` (collection and evaluation share it), closed on exit; None for
  state observations."""
  wants = obs_lib.uses_sensor(config) or obs_lib.uses_camera(config)
  if sensor is not None or not wants or (offline(config) and not config.eval.get("task")):
    yield sensor
    return
  sensor = (
    pointcloud.make_sensor(config)
    if obs_lib.uses_sensor(config)
    else camera.make_camera_sensor(config)
  )
  try:
    yield sensor
  finally:
    sensor.close()


def ensure_demo_data(config) -> str:
  """The demonstrations a config trains on: collected on demand by process 0; other
  processes wait for the file (datasets appear atomically) instead of a collective barrier,
  whose 30 s rendezvous limit a long collection would exceed. Point-cloud datasets are
  named by a hash of the sensor settings, which are also stored in their attributes. A
  dataset of your own (data.path) is used as it is."""
  if offline(config):
    formats.detect(config.data.path)  # one line when it is none of the formats
    return config.data.path
  tag, attrs = "", {}
  if obs_lib.uses_sensor(config) or obs_lib.uses_camera(config):
    spec = (
      pointcloud.sensor_spec(config) if obs_lib.uses_sensor(config) else camera.camera_spec(config)
    )
    attrs = {"sensor": spec.to_dict()}
    tag = hashlib.sha1(json.dumps(attrs, sort_keys=True).encode()).hexdigest()[:8]
  suite = suites.suite_of(config.task)
  path = collect.demo_path(
    config.data.dir, suite, config.task, config.data.num_episodes, config.obs, tag
  )
  if not sharding.is_primary():
    deadline = time.time() + 3600
    while not os.path.isdir(path):
      if time.time() > deadline:
        raise TimeoutError(f"process {jax.process_index()}: {path} did not appear in an hour")
      time.sleep(1.0)
  ensure = functools.partial(
    collect.ensure_demos,
    config.data.dir,
    suite,
    config.task,
    config.data.num_episodes,
    seed=config.data.seed,
    obs_type=config.obs,
    tag=tag,
    attrs=attrs,
  )
  if os.path.isdir(path):  # no sensor (and no renderer) needed
    return ensure()
  with open_sensor(config) as sensor:
    return ensure(sensor=sensor)


def load_demo_data(config, normalizer=None) -> DemoData:
  """Demonstration windows for a config (see `ensure_demo_data`)."""
  path = ensure_demo_data(config)
  p = config.policy
  return load_demos(
    path,
    obs_lib.keys_of(config),
    p.horizon,
    p.n_obs_steps,
    p.n_action_steps,
    val_episodes=config.data.val_episodes,
    seed=config.data.seed,
    normalizer=normalizer,
    mapping=formats.Mapping.from_config(config.data),
  )
