"""Several train steps per jitted call (`train.steps_per_call`) are the same steps.

The loop hands the state to one `lax.scan` of n steps instead of n calls, to pay the host's
dispatch once. A call of n steps from step s must give the state n one-step calls from s
give (to float tolerance: XLA may fuse the scan's body differently), and the metrics of
each of its steps; and the loop must cut every log interval on its boundary.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import configs
from benchmarks.training import synthetic_windows
from jaxpolicy import methods, training
from jaxpolicy import nets as nets_lib
from jaxpolicy.runtime import sharding

pytestmark = pytest.mark.slow  # minutes on a 2-core CPU: the full tier only

ACTION_DIM = 4


@pytest.mark.parametrize(
  "start,total,log_every,per_call,plan",
  [
    (0, 20, 5, 5, [5, 5, 5, 5]),
    (0, 20, 10, 3, [3, 3, 3, 1] * 2),  # each interval ends on its boundary
    (7, 20, 10, 5, [1, 1, 1, 5, 5]),  # resumed mid-interval: one by one to it
    (0, 12, 5, 5, [5, 5, 1, 1]),  # the last, short interval
    (0, 6, 1, 5, [1] * 6),  # log every step: one step per call
    (0, 6, 100, 1, [1] * 6),
  ],
)
def test_step_plan(start, total, log_every, per_call, plan):
  assert training.step_plan(start, total, log_every, per_call) == plan


def _setup(method):
  c = configs.load(method, "tiny")
  if method == "sdm":
    c.sdm.gen_every = 2  # G's update on every other step: the scan must see each step
  nets = nets_lib.build_nets(c, ACTION_DIM)
  shapes = {"full_state": (39,)}
  teacher = None
  if methods.get(method).INFO.needs_teacher:
    tc = configs.load("teacher", "tiny")
    teacher = methods.get("teacher").init(
      tc, nets_lib.build_nets(tc, ACTION_DIM), shapes, jax.random.PRNGKey(1)
    )
  state = methods.get(method).init(c, nets, shapes, jax.random.PRNGKey(0), teacher)
  windows = synthetic_windows(c, episodes=3, length=30)  # MetaWorld's 39-d state
  return c, nets, state, windows


@pytest.mark.parametrize("method", ["teacher", "sdm"])
def test_one_call_of_n_steps_equals_n_calls(method):
  c, nets, state, windows = _setup(method)
  mesh = sharding.make_mesh(1)
  n, first = 4, 3
  one = training.make_train_step(c, methods.get(method), nets, mesh)
  several = training.make_train_step(c, methods.get(method), nets, mesh, n)
  copy = lambda t: jax.tree_util.tree_map(jnp.array, t)
  a, history = copy(state), []
  for i in range(first, first + n):
    a, m = one(a, windows, np.int32(i))
    history.append((1, m))
  b, stacked = several(copy(state), windows, np.int32(first))
  per_step = training._per_step(jax.device_get([(n, stacked)]))  # pylint: disable=protected-access
  expected = training._per_step(jax.device_get(history))  # pylint: disable=protected-access
  assert len(per_step) == len(expected) == n
  for got, want in zip(per_step, expected):
    assert got.keys() == want.keys()
    for k in want:
      np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-6, err_msg=k)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)
  # and the steps do move the state (a call that skipped them could not pass the above
  # against a moving reference, but say it plainly)
  moved = [
    not np.allclose(np.asarray(x), np.asarray(y))
    for x, y in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(b))
  ]
  assert any(moved)
