"""Fields shared by every method's config, with the three presets.

tiny   -- seconds; for tests
quick  -- the default; minutes on a 2-core laptop CPU
paper  -- the papers' sizes (GPU/TPU; docs/design.md)
"""

from __future__ import annotations

import ml_collections
from ml_collections.config_dict import placeholder

PRESETS = ("quick", "paper", "tiny")


def parse_arg(arg):
  preset = arg or "quick"
  if preset not in PRESETS:
    raise ValueError(f"unknown preset {preset!r}; choose one of {PRESETS}")
  return preset


# the teacher's (and STEP's) single optimiser; SDM and CD configure their own networks'
# optimisers in their sections instead (sdm.gen_lr / sdm.fake_lr, cd.lr, ...)
TRAIN_OPTIMIZER_FIELDS = ("lr", "weight_decay", "betas", "warmup_steps", "grad_clip")


def drop_train_optimizer(c: ml_collections.ConfigDict) -> None:
  """Removes the train.* optimiser fields from a config whose method does not read them,
  so `--config.train.lr=...` is refused (naming the method's own fields) instead of being
  silently ignored."""
  for name in TRAIN_OPTIMIZER_FIELDS:
    delattr(c.train, name)


def student_config(preset: str, method: str) -> ml_collections.ConfigDict:
  """The base of a distillation method's config: the shared fields, plus `teacher_train`,
  the training settings of the teacher it trains first when none exists (the library
  builds that teacher from the student config alone, jaxpolicy.runs.teacher_config)."""
  c = base_config(preset)
  c.method = method
  c.teacher_train = ml_collections.ConfigDict(c.train.to_dict())
  return c


def base_config(preset: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.method = "teacher"
  c.task = "drawer-open"  # a task of any suite (jaxpolicy.suites.tasks())
  c.obs = "state"  # "state" (MetaWorld's 39-d), "lowdim" (data/state alone),
  # "pointcloud" (DP3: data/point_cloud + data/state) or "rgb"
  # (DP's images: data/img or data/img_<camera> + data/state)
  c.seed = 0
  c.teacher_workdir = ""  # distillation methods: trained teacher ('' = default/train)

  c.data = ml_collections.ConfigDict()
  c.data.path = ""  # a dataset of your own: train on it, no simulator
  # (evaluation = held-out action error); a DP3-layout zarr, a
  # LeRobot folder (v2.1 / v3.0) or a robomimic HDF5 file;
  # '' = MetaWorld demonstrations of `task`, collected on demand
  # which of data.path's features the policy reads (jaxpolicy/data/formats.py); () / '' =
  # the format's default: LeRobot observation.state, observation.images.*, action; zarr
  # data/state (data/full_state for obs=state), data/img, data/action; robomimic: state keys
  # must be named (e.g. robot0_eef_pos, robot0_eef_quat, robot0_gripper_qpos), actions
  c.data.state_keys = ()  # features concatenated into the policy's state vector
  c.data.cameras = ()  # camera features (full or short names, e.g. "top"); () = all
  c.data.action_key = ""  # the action feature
  c.data.dir = "data"  # demonstrations are collected here on demand
  c.data.num_episodes = placeholder(int)  # successful scripted-expert episodes; None = the
  # suite's (MetaWorld: 10, as DP3; blockpush: 100)
  c.data.val_episodes = 1  # held out for action-error metrics (DP3's val split)
  c.data.seed = 0

  c.policy = ml_collections.ConfigDict()
  c.policy.horizon = 4  # SDM / ManiCM setting; DP setting: 16 with 8 executed
  c.policy.n_obs_steps = 2
  c.policy.n_action_steps = 3

  c.model = ml_collections.ConfigDict()
  c.model.down_dims = (64, 128, 256)
  c.model.kernel_size = 5
  c.model.n_groups = 8
  c.model.step_embed_dim = 128
  c.model.encoder_hidden = (256,)
  c.model.encoder_out = 64

  c.diffusion = ml_collections.ConfigDict()
  c.diffusion.num_train_timesteps = 100
  c.diffusion.prediction_type = "sample"
  c.diffusion.clip_sample = True
  c.diffusion.num_inference_steps = 10
  c.diffusion.spacing = "leading"

  c.train = ml_collections.ConfigDict()
  c.train.steps = 3000
  c.train.batch_size = 128
  c.train.lr = 1e-4
  c.train.weight_decay = 1e-6
  c.train.betas = (0.95, 0.999)
  c.train.warmup_steps = 500
  c.train.grad_clip = 0.0  # 0 = off
  c.train.ema = True
  c.train.ema_power = 0.75
  c.train.ema_max = 0.9999
  c.train.live_taps = True  # U-Net steps update only the kernel taps that can see data at
  # this horizon (same function and gradients; checkpoints keep
  # full kernels); False: full kernels (the dead taps' gradients
  # are 0, AdamW only decays them)
  c.train.log_every = 100
  c.train.steps_per_call = 10  # steps per jitted call (one host dispatch of the ~600-leaf
  # state for 10 steps; 1 = one call per step). Log intervals
  # end on their boundary; a stop signal waits for the call
  c.train.ckpt_every = 1000
  c.train.num_devices = 0  # data-parallel devices (0 = all JAX sees); batch is global

  # point-cloud sensor (obs="pointcloud"; DP3), see jaxpolicy/envs/pointcloud.py. Shared by
  # demonstration collection and evaluation (CPU renderer and MJX ray casting alike).
  c.pointcloud = ml_collections.ConfigDict()
  # quick: 128 points from a 64x64 depth image (the PointNet's cost grows with the points,
  # so a CPU run keeps them few; docs/speed.md); paper: DP3's 512 points from 128x128.
  c.pointcloud.num_points = 128  # farthest-point samples per frame
  c.pointcloud.image_size = 64  # depth image, square; or (height, width)
  # camera, camera_pos, crop box and table: None = the suite's (MetaWorld: DP3's corner2
  # moved to (0.6, 0.295, 0.8), the workspace box (-0.6, 0.25, -0.01)-(0.6, 1.05, 0.7), table
  # hidden); camera_pos=() keeps the model's camera position
  c.pointcloud.camera = placeholder(str)
  c.pointcloud.camera_pos = placeholder(tuple)
  c.pointcloud.crop_low = placeholder(tuple)  # workspace box, world frame (metres)
  c.pointcloud.crop_high = placeholder(tuple)
  c.pointcloud.geoms = "light"  # light: collision geoms + primitives (= MJX); visual
  c.pointcloud.sites = True  # draw visible sites (MetaWorld's goal marker), as DP3
  # hide: no table geoms (MetaWorld's default, measured better than DP3's keep: see
  # docs/environments.md); keep: the table in view, as DP3
  c.pointcloud.table = placeholder(str)

  # what a run writes besides metrics.jsonl (jaxpolicy/runtime/logs.py); process 0 only
  c.log = ml_collections.ConfigDict()
  c.log.tensorboard = True  # TensorBoard event files in the workdir (tensorboardX)
  c.log.wandb = False  # Weights & Biases (pip install 'jaxpolicy[wandb]')
  c.log.wandb_mode = "online"  # online | offline (no network; `wandb sync` later) | disabled
  c.log.wandb_project = "jaxpolicy"
  c.log.wandb_entity = ""  # '' = your default entity

  # camera images (obs="rgb"; Diffusion Policy's image policies), see jaxpolicy/envs/camera.py
  # and jaxpolicy/nets/vision.py. One camera is data/img, several data/img_<camera>.
  c.rgb = ml_collections.ConfigDict()
  # cameras rendered on the CPU (not in MJX); None = the suite's (MetaWorld: corner2 moved
  # to DP3's position; blockpush: overhead). camera_pos: per-camera moves beyond the
  # suite's, e.g. `--config.rgb.camera_pos.corner2="()"` keeps the model's own
  c.rgb.cameras = placeholder(tuple)
  c.rgb.camera_pos = ml_collections.ConfigDict()
  # quick: 64x64 frames cropped to 56x56 and the quarter-width ResNet-18 (a 2-core CPU);
  # paper: DP's robomimic sizes, 84x84 cropped to 76x76, and the full ResNet-18
  c.rgb.image_size = (64, 64)  # rendered (height, width)
  c.rgb.crop = (56, 56)  # random crop in training, centre crop otherwise
  c.rgb.encoder = "resnet18_small"  # "resnet18" (DP) | "resnet18_small" (16-32-64-128)
  c.rgb.pooling = "spatial_softmax"  # "spatial_softmax" (DP: 32 keypoints + linear) | "avg"
  c.rgb.num_keypoints = 32
  c.rgb.feature_dim = 64  # per camera after spatial softmax's linear layer
  c.rgb.render = "fast"  # fast: no shadows/reflections/MSAA (far faster on a
  # CPU's software GL, docs/cameras.md); full: MuJoCo's
  # defaults
  c.rgb.imagenet_norm = False  # False: pixels to [-1, 1] (DP's default); True:
  # ImageNet mean/std (torchvision's pretrained weights)

  c.eval = ml_collections.ConfigDict()
  c.eval.episodes = 20
  c.eval.seed = 0
  c.eval.episode_length = placeholder(int)  # control steps; None = the suite's (MetaWorld 200)
  c.eval.every = 0  # 0 = evaluate only at the end
  c.eval.at_end = True  # False: no final evaluation (launch.evaluate does it later)
  c.eval.backend = "auto"  # auto | cpu (the suite's CPU simulator) | mjx
  c.eval.task = ""  # a run on data.path: the suite task its policies are evaluated
  # in (e.g. pusht; '' = offline: held-out action error)
  c.eval.use_ema = True
  c.eval.dtype = "float32"  # policy compute dtype: float32 | bfloat16 (bf16 inference)
  # real-time evaluation (docs/realtime.md): the environment advances one control step per
  # control period while the policy computes; off = time stands still during a call
  c.eval.realtime = False
  c.eval.control_hz = placeholder(float)  # None = the suite's (MetaWorld 80, blockpush 10)
  c.eval.latency_from = "fixed"  # fixed: eval.latency_ms | measured: the policy's own
  # batch-1 latency, measured warm before the episodes
  c.eval.latency_ms = 0.0
  c.eval.execution = "sync"  # sync: hold while computing | async: compute while moving
  c.eval.stitching = "none"  # async: none | ensemble (ACT) | rtc (guided inpainting)

  if preset == "paper":
    c.model.down_dims = (512, 1024, 2048)
    c.model.encoder_hidden = (256, 256)
    c.train.steps = 100_000
    c.train.batch_size = 256
    c.train.ckpt_every = 5000
    c.train.log_every = 500
    c.train.steps_per_call = 1  # a step takes seconds on a CPU: dispatch is nothing (on an
    # accelerator, where it takes tens of ms, raise it)
    c.eval.every = 10_000
    c.pointcloud.num_points = 512
    c.pointcloud.image_size = 128
    c.rgb.image_size = (84, 84)
    c.rgb.crop = (76, 76)
    c.rgb.encoder = "resnet18"
  elif preset == "tiny":
    c.data.num_episodes = 2
    c.model.down_dims = (16, 32)
    c.model.encoder_hidden = (32,)
    c.model.encoder_out = 16
    c.model.step_embed_dim = 16
    c.train.steps = 20
    c.train.batch_size = 16
    c.train.warmup_steps = 5
    c.train.log_every = 5
    c.train.steps_per_call = 5
    c.train.ckpt_every = 10
    c.eval.episodes = 2
    c.eval.episode_length = 12
    c.pointcloud.num_points = 64
    c.pointcloud.image_size = 32
    c.rgb.image_size = (40, 40)  # the smallest crop whose feature map is 2x2
    c.rgb.crop = (36, 36)
    c.rgb.num_keypoints = 8
    c.rgb.feature_dim = 16
  return c
