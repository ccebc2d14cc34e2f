"""What a dataset holds, as the trainer will see it: format and version, episodes, frames, fps,
features (shape, dtype, min / max / mean), the key mapping a run would use, every fault found.

    python -m launch.inspect_data PATH [--state_keys=a,b] [--cameras=top] [--action_key=...]
                                       [--json] [--noread]

Exit code 0 when no fault was found, 1 otherwise. Reading decodes every video once, into the
frame cache the trainer reads later (JAXPOLICY_FRAME_CACHE); --noread skips the data.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("state_keys", [], "Features concatenated into the state (data.state_keys).")
flags.DEFINE_list("cameras", [], "Camera features (data.cameras).")
flags.DEFINE_string("action_key", "", "The action feature (data.action_key).")
flags.DEFINE_bool("json", False, "Print the summary as JSON.")
flags.DEFINE_bool("read", True, "Read the data (statistics, video decoding); --noread: metadata.")


def _num(x) -> str:
  return f"{x:.4g}" if isinstance(x, float) else str(x)


def _vec(values) -> str:
  return "[" + " ".join(f"{v:.3g}" for v in values) + "]"


def format_summary(s: dict) -> str:
  """The summary `formats.inspect` returns, as lines for a terminal."""
  lines = [f"dataset   {s['path']}"]
  if "format" in s:
    length = s.get("episode_length") or {}
    fps = f"{s['fps']:g}" if s.get("fps") else "not recorded"
    lines += [
      f"format    {s['format']} ({s['version']})",
      f"episodes  {s['episodes']}  frames {s['frames']}  episode length "
      f"{length.get('min')}-{length.get('max')}  fps {fps}",
      "features",
    ]
    width = max([len(n) for n in s.get("features", {})] + [8])
    for name, f in s.get("features", {}).items():
      kind = " camera" if f.get("camera") else ""
      row = f"  {name:<{width}}  {str(tuple(f['shape'])):<14} {f['dtype']:<8}{kind}"
      if "min" in f:
        row += f"  min {_num(f['min'])}  max {_num(f['max'])}  mean {_num(f['mean'])}"
      lines.append(row)
      dims = f.get("dims")
      if dims and len(f["shape"]) == 1 and f["shape"][0] > 1:
        lines.append(f"  {'':<{width}}  per dim min {_vec(dims['min'])}")
        lines.append(f"  {'':<{width}}          max {_vec(dims['max'])}")
        lines.append(f"  {'':<{width}}          mean {_vec(dims['mean'])}")
    lines.append("a run reads")
    for key, source in s.get("mapping", {}).items():
      lines.append(f"  {key:<10} <- {', '.join(source) if isinstance(source, list) else source}")
  faults = s.get("faults", [])
  lines.append(f"faults    {len(faults) or 'none'}")
  lines += [f"  - {f}" for f in faults]
  return "\n".join(lines)


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("usage: python -m launch.inspect_data PATH [flags]")
  from jaxpolicy.data import formats  # pylint: disable=g-import-not-at-top

  mapping = formats.Mapping(tuple(FLAGS.state_keys), tuple(FLAGS.cameras), FLAGS.action_key)
  summary = formats.inspect(argv[1], mapping, read=FLAGS.read)
  print(json.dumps(summary, indent=1) if FLAGS.json else format_summary(summary), flush=True)
  sys.exit(1 if summary["faults"] else 0)


if __name__ == "__main__":
  app.run(main)
