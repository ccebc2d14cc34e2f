"""The MJX side of any suite: the compiled batched evaluator (`evaluator`) and the
point-cloud sensor by ray casting (`pointcloud`). A suite's MJX form lives with the suite
(MetaWorld's: jaxpolicy.suites.metaworld.mjx). On CPU set
XLA_FLAGS=--xla_cpu_use_fusion_emitters=false before JAX starts.
"""
