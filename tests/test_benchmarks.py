"""The benchmarks run (tiny preset, a few calls) and write complete JSON. No timing asserts."""

import importlib.util
import json

import jax
import numpy as np
import pytest

import configs
from benchmarks import common, gpu_suite, latency, rollout, training
from jaxpolicy import nets as nets_lib
from jaxpolicy.methods import teacher

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _positive(row, keys):
  for k in keys:
    assert isinstance(row[k], (int, float)) and row[k] > 0, (k, row[k])


@pytest.mark.slow
def test_latency_tiny(tmp_path):
  out = tmp_path / "latency.json"
  argv = [
    "--preset=tiny",
    "--batch=1",
    "--iters=3",
    "--warmup=1",
    f"--out={out}",
    "--policies=teacher_ddim10,sdm_1step,teacher_ddim2_trailing,step_k2,step_predictor_only,"
    "bc_1step,meanflow_1step,mip_2step",
    "--probe_mb=8",
    "--probe_n=256",
  ]
  if HAS_TORCH:
    argv += ["--torch", "--torch_threads=1"]
  latency.main(argv)
  r = json.loads(out.read_text())
  assert r["benchmark"] == "latency" and r["preset"] == "tiny"
  assert r["environment"]["packages"]["jax"]
  assert r["probe"]["bandwidth_Bps"] > 0 and r["probe"]["peak_flops"] > 0
  rows = {(x["policy"], x["batch"]): x for x in r["results"]}
  assert set(rows) == {
    (p, b)
    for p in (
      "teacher_ddim10",
      "sdm_1step",
      "teacher_ddim2_trailing",
      "step_k2",
      "step_predictor_only",
      "bc_1step",
      "meanflow_1step",
      "mip_2step",
    )
    for b in (1,)
  }
  b = 1
  for row in rows.values():
    _positive(
      row,
      [
        "compile_s",
        "median_ms",
        "p90_ms",
        "hz",
        "samples_per_s",
        "flops",
        "flops_per_nfe",
        "floor_bytes",
        "floor_ms",
        "achieved_over_floor",
        "unet_params",
        "unet_params_run",
      ],
    )
    assert row["calls"] >= 3 and row["p90_ms"] >= row["median_ms"] >= row["min_ms"]
    assert row["bound"] in ("memory", "compute")
    assert min(1, row["nfe"]) <= row["xla_counted_nfe"] <= row["nfe"]
  assert rows[("teacher_ddim10", 1)]["nfe"] == 10 and rows[("sdm_1step", 1)]["nfe"] == 1
  # ten evaluations cost about ten times the FLOPs of one (the scan body is counted once by
  # XLA; the benchmark adds the other nine)
  t, s = rows[("teacher_ddim10", 1)], rows[("sdm_1step", 1)]
  assert 8 * s["flops"] < t["flops"] < 12 * s["flops"]
  assert t["floor_bytes"] > 5 * s["floor_bytes"]
  # STEP k = 2 is costed as its steady call, the teacher's two steps and the predictor (XLA
  # alone would count its lax.cond's costlier branch: the first call's ten-step sampler)
  # (the predictor alone costs less than one U-Net evaluation)
  k2, d2, p0 = (rows[(n, b)] for n in ("step_k2", "teacher_ddim2_trailing", "step_predictor_only"))
  assert p0["flops"] < rows[("sdm_1step", b)]["flops"]
  assert 0 < k2["flops"] - d2["flops"] <= p0["flops"]
  # the methods trained from data run the same U-Net: bc and MeanFlow once (MeanFlow with
  # its second time embedding), MIP twice
  sdm_f = rows[("sdm_1step", b)]["flops"]
  assert rows[("bc_1step", b)]["nfe"] == rows[("meanflow_1step", b)]["nfe"] == 1
  assert abs(rows[("bc_1step", b)]["flops"] / sdm_f - 1) < 0.05
  assert 1 <= rows[("meanflow_1step", b)]["flops"] / sdm_f < 1.3
  assert rows[("mip_2step", b)]["nfe"] == 2
  assert 1.8 < rows[("mip_2step", b)]["flops"] / sdm_f < 2.2
  # horizon 4: dead-tap pruning runs fewer weights than the full U-Net has
  assert t["unet_params_run"] < t["unet_params"]
  assert r["summary"]["sdm_over_teacher_speedup"]["batch1"] > 0
  if HAS_TORCH:
    for name in ("teacher_ddim10", "sdm_1step"):
      tr = rows[(name, 1)]["torch"]
      assert tr["median_ms"] > 0 and tr["sampler"][0] in ("ddim", "one_step")
      assert rows[(name, 1)]["jax_over_torch"] > 0


@pytest.mark.slow
def test_training_tiny(tmp_path):
  out = tmp_path / "training.json"
  # two of the four methods (their train steps compile in test_sdm / test_cd too); STEP
  # shares the random teacher's state, the path the others take
  # the teacher one step per call and the tiny preset's 5 steps per call (a lax.scan)
  training.main(
    [
      "--preset=tiny",
      "--iters=3",
      "--warmup=1",
      f"--out={out}",
      "--methods=teacher,step",
      "--steps_per_call=1,5",
    ]
  )
  r = json.loads(out.read_text())
  assert r["benchmark"] == "training" and r["environment"]["platform"]
  rows = {(x["method"], x["steps_per_call"]): x for x in r["results"]}
  assert set(rows) == {("teacher", 1), ("step", 1), ("teacher", 5), ("step", 5)}
  for row in rows.values():
    _positive(
      row,
      [
        "compile_s",
        "median_ms",
        "p90_ms",
        "steps_per_s",
        "samples_per_s",
        "batch_size",
        "unet_params",
        "flops_xla",
      ],
    )
    # at least 3 timed calls; each of n steps
    assert row["steps_timed"] == 3 * row["steps_per_call"] and row["metrics_finite"]
  # the FLOPs are one step's either way
  assert rows["teacher", 5]["flops_xla"] == pytest.approx(rows["teacher", 1]["flops_xla"])


@pytest.mark.slow
@pytest.mark.skipif(not HAS_TORCH, reason="needs torch (pip install torch==2.13.0)")
def test_training_beside_pytorch_tiny(tmp_path):
  """--torch: the PyTorch SDM step runs beside ours (state observations; the GPU suite's
  smoke test below runs the teacher's with point clouds)."""
  out = tmp_path / "training_torch.json"
  training.main(
    [
      "--preset=tiny",
      "--iters=2",
      "--warmup=1",
      f"--out={out}",
      "--torch",
      "--methods=sdm",
      "--torch_threads=1",
    ]
  )
  r = json.loads(out.read_text())
  rows = {x["method"]: x for x in r["results"]}
  assert set(rows) == {"sdm"} and r["peak_flops"] > 0 and rows["sdm"]["conditionals"] >= 1
  for row in rows.values():
    _positive(row, ["steps_per_s", "torch_steps_per_s", "ratio", "floor_ms", "floor_ratio"])
    assert row["ratio"] == pytest.approx(row["steps_per_s"] / row["torch_steps_per_s"])
    assert row["torch_device"] == "cpu" and row["live_taps"] and row["obs"] == "state"


@pytest.mark.slow
def test_torch_training_steps_learn():
  """The PyTorch reference steps are real training: the teacher's loss falls on a fixed
  batch, and SDM's fake score D fits the generator's samples."""
  torch = pytest.importorskip("torch")
  config = configs.load("teacher", "tiny")
  step, (obs, action) = training.torch_step("teacher", config)
  first = float(step(obs, action))
  for _ in range(60):
    last = float(step(obs, action))
  assert last < 0.7 * first, (first, last)
  sconfig = configs.load("sdm", "tiny")
  sstep, (obs, action) = training.torch_step("sdm", sconfig)
  losses = [float(sstep(obs, action)[0]) for _ in range(3)]
  assert all(np.isfinite(losses)) and torch.is_tensor(sstep(obs, action)[1])


@pytest.mark.slow
def test_gpu_suite_smoke_tiny(tmp_path):
  """The GPU suite at the tiny preset on this CPU: every section runs and both files are
  written (its figures are only meaningful on a GPU)."""
  r = gpu_suite.main(["--preset=tiny", f"--out_dir={tmp_path}", "--budget_s=1200"])
  s = r["sections"]
  assert set(s) == set(gpu_suite.SECTIONS)
  for dtype in ("float32", "bfloat16"):
    assert [x["policy"] for x in s["latency"][dtype]["rows"]] == ["sdm_1step"]
  train = s["training"]["rows"]
  assert [(x["method"], x["obs"], x["steps_per_call"]) for x in train] == [
    ("teacher", "pointcloud", 5)
  ]  # the tiny preset's steps per call
  assert all((x["torch_steps_per_s"] or 0) > 0 for x in train) == HAS_TORCH
  assert s["mjx_throughput"]["rows"][0]["env_steps_per_s"] > 0
  e = s["mjx_eval"]
  assert e["implied_50_tasks_s"]["end_to_end_s"] == pytest.approx(
    50 * e["mean_per_task"]["end_to_end_s"]
  )
  assert (tmp_path / "gpu_suite.json").exists()
  md = (tmp_path / "gpu_suite.md").read_text()
  assert "Implied 50-task evaluation" in md and "## Training" in md


@pytest.mark.slow
def test_rollout_tiny_metaworld(tmp_path):
  """The rollout benchmark on the real MetaWorld (its MJX path is the evaluator's own
  compiled rollout, run in tests/test_mjx.py)."""
  out = tmp_path / "rollout.json"
  rollout.main(["--backend=cpu", "--batch=1,2", "--steps=4", "--repeats=1", f"--out={out}"])
  r = json.loads(out.read_text())
  assert [row["batch"] for row in r["rows"]] == [1, 2]
  for row in r["rows"]:
    assert row["backend"] == "cpu" and row["policy"] == "sdm_1step" and row["nfe"] == 1
    _positive(row, ["compile_s", "median_ms", "env_steps_per_s"])
    assert row["env_steps_per_s"] == pytest.approx(row["batch"] * 4 / (row["median_ms"] / 1e3))


def test_the_teacher_declares_its_ddim_baselines():
  """Shapes only (jax.eval_shape): which baselines the teacher declares, and their NFE."""
  config = configs.load("teacher", "tiny")
  nets = nets_lib.build_nets(config, latency.ACTION_DIM)
  state = jax.eval_shape(
    lambda: teacher.init(config, nets, latency.OBS_SHAPES, jax.random.PRNGKey(0))
  )
  specs = teacher.INFO.baselines(config, nets, state)
  assert {n: s.nfe for n, s in specs.items()} == {
    "teacher_ddim1_trailing": 1,
    "teacher_ddim2_trailing": 2,
  }


def test_helpers():
  t = common.time_calls(lambda: None, iters=5, warmup=1)
  assert t["calls"] == 5 and t["p90_ms"] >= t["median_ms"] >= 0
  f = common.floor_ms(2e9, 1e9, bandwidth=1e9, peak_flops=1e12)
  assert f["bound"] == "memory" and f["floor_ms"] == pytest.approx(1e3)
  text = common.format_table([{"a": "x", "b": 1.23456}], [("A", "a"), ("B", "b")])
  assert "1.23" in text and text.splitlines()[0].startswith("A")


@pytest.mark.slow
def test_training_benchmark_reads_real_clouds_and_their_gather_size(tmp_path):
  """--clouds: the benchmark trains on a DP3-layout dataset's clouds (the first N points of
  each, FPS order), and reports the mean gather size of the encoder's backward pass on
  them (points per frame): clouds of 20 repeated points take about 20 (their selections, padded
  to a row count), uniform noise nearly all 64."""
  from jaxpolicy.data import storage  # pylint: disable=g-import-not-at-top

  r = np.random.default_rng(0)
  clouds = np.tile(r.uniform(-1, 1, (60, 20, 3)), (1, 5, 1)).astype(np.float32)  # 100 points
  ep = lambda c: {
    "point_cloud": c,
    "state": r.normal(size=(30, 9)).astype(np.float32),
    "action": r.uniform(-1, 1, (30, 4)).astype(np.float32),
  }
  path = str(tmp_path / "clouds.zarr")
  storage.write_episodes(path, [ep(clouds[:30]), ep(clouds[30:])])
  config = training.bench_config("teacher", "tiny", "pointcloud", 64, True)
  nets = nets_lib.build_nets(config, 4)
  w = training.demo_windows(config, path)
  assert w.obs["point_cloud"].shape[1:] == (64, 3)
  np.testing.assert_allclose(
    np.asarray(w.obs["point_cloud"][:, :20]), np.asarray(w.obs["point_cloud"][:, 20:40])
  )  # the first 64
  few = training.mean_gather_size(config, nets, w, batches=1)
  assert few["top"] == 64 and 20 <= few["mean"] <= 24, few
  noise = training.synthetic_windows(config)
  many = training.mean_gather_size(config, nets, noise, batches=1)
  assert many["top"] == 64 and 48 <= many["mean"] <= 64, many
  with pytest.raises(SystemExit, match="at least 128 points"):
    training.demo_windows(training.bench_config("teacher", "tiny", "pointcloud", 128, True), path)


@pytest.mark.parametrize(
  "flags,units,native",
  [
    ("fpu sse2 avx avx2 fma", ["AVX2"], False),
    ("fpu avx2 avx512f avx512bw avx512_bf16", ["AVX512-BF16", "AVX-512", "AVX2"], True),
    ("fpu avx2 avx512f amx_bf16 amx_tile", ["AMX-BF16", "AVX-512", "AVX2"], True),
  ],
)
def test_measurements_name_the_cpu_units(flags, units, native, tmp_path, monkeypatch):
  """Two guests both called "AMD EPYC" ran 2-3x apart (AVX2 against AVX-512): every timing
  JSON names the vector units, and bf16 counts as native only with AVX512-BF16 or AMX."""
  from jaxpolicy.runtime import host

  info = tmp_path / "cpuinfo"
  info.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: {flags}\n\n")
  monkeypatch.setattr(host, "CPUINFO", str(info))
  host.cpu_flags.cache_clear()
  nets_lib.native_bf16.cache_clear()
  monkeypatch.setattr(nets_lib.jax, "default_backend", lambda: "cpu")
  try:
    assert host.cpu_units() == units
    assert host.describe().startswith(f"AMD EPYC ({', '.join(units)}), ")
    assert common.environment()["cpu_units"] == units
    assert nets_lib.native_bf16() is native
  finally:
    host.cpu_flags.cache_clear()
    nets_lib.native_bf16.cache_clear()


def test_an_unreadable_cpuinfo_names_no_units(tmp_path, monkeypatch):
  from jaxpolicy.runtime import host

  monkeypatch.setattr(host, "CPUINFO", str(tmp_path / "missing"))
  host.cpu_flags.cache_clear()
  try:
    assert host.cpu_units() == [] and "(" not in host.describe()
  finally:
    host.cpu_flags.cache_clear()
