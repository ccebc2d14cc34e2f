"""MetaWorld v3 tasks in MuJoCo MJX: converted models, pure batched environments, the
compiled evaluator and scripted experts (see DESIGN.md, "MJX MetaWorld-style envs").

    from jaxpolicy.envs.mjx.convert import convert_model   # MJX-ready MjModel of a task
    from jaxpolicy.envs.mjx.env import MJXEnv, State       # reset(rng) / step(state, action)
    from jaxpolicy.envs.mjx import evaluator, experts

On CPU set XLA_FLAGS=--xla_cpu_use_fusion_emitters=false before JAX starts.
"""
