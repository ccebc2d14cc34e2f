from setuptools import find_packages, setup

setup(
  name="jaxpolicy",
  version="0.1.0",
  description="Fast diffusion policies for robot manipulation in JAX/Flax: teacher, SDM "
  "one-step distillation, STEP, consistency distillation; MetaWorld evaluation.",
  # the library only: configs/, launch/ and benchmarks/ run from a checkout
  # (python -m launch.train ...), and the library never imports them
  packages=find_packages(include=["jaxpolicy", "jaxpolicy.*"]),
  python_requires=">=3.10",
  install_requires=[
    "jax",
    "flax",
    "optax",
    "orbax-checkpoint",
    "chex",
    "numpy",
    "ml_collections",
    "absl-py",
    "zarr>=3",  # DP3-layout datasets (written as zarr format 2)
    "matplotlib",  # report learning curves, point-cloud pictures
    "flatbuffers",  # jax.export serialisation (launch.export, jaxpolicy.exported)
    "tensorboardX",  # TensorBoard event files in every run's workdir (runtime/logs.py)
    "metaworld==3.1.1",
    "mujoco==3.3.0",  # metaworld 3.1.1 needs this exact version
    "mujoco-mjx==3.3.0",
  ],
  extras_require={
    # pytest-xdist: the suite runs on two workers (pytest.ini), halving CI's wall time; ruff:
    # the linter and formatter .ci/run applies (ruff.toml);
    # the formats' libraries write the datasets the readers are tested on; tensorboard's
    # own reader checks the event files; wandb's offline mode is tested; the pusht suite
    "test": [
      "pytest",
      "pytest-xdist",
      "pyarrow",
      "av",
      "h5py",
      "tensorboard",
      "wandb",
      "gym-pusht>=0.1.8,<0.2",
      "ruff>=0.17,<0.18",
    ],
    # datasets in LeRobot (parquet via pyarrow, mp4 via PyAV) and robomimic (HDF5 via h5py)
    # format (jaxpolicy/data/formats.py); the DP3-layout zarr needs none of them
    "formats": ["pyarrow", "av", "h5py"],
    # the pusht suite: Push-T in gym-pusht, the environment LeRobot evaluates it in
    # (pymunk physics, pygame drawing; jaxpolicy/suites/pusht)
    "pusht": ["gym-pusht>=0.1.8,<0.2"],
    # Weights & Biases logging (--config.log.wandb=True)
    "wandb": ["wandb"],
    # the PyTorch reference for benchmarks and the weight-bridge / diffusers parity tests
    "torch": ["torch==2.13.0", "diffusers"],
  },
)
