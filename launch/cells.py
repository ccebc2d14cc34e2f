"""A sweep's results as one compact file, and back: what a repository keeps of a grid.

    python -m launch.cells pack runs/leaderboard docs/results/leaderboard/cells.json.gz
    python -m launch.cells unpack docs/results/leaderboard/cells.json.gz runs/leaderboard [--resume]

`pack` keeps every file the report reads and none of the weights; `unpack` writes them back,
so `launch.report` regenerates the report from them. Which files, and what --resume leaves
out: docs/evaluation.md, "Reports".
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os

FORMAT = "jaxpolicy.cells/1"
GRID_FILES = ("sweep.json", "latency.json")
CELL_FILES = (
  "cell.json",
  "eval.json",
  "evals.jsonl",
  "metrics.jsonl",
  "config.json",
  "failed.json",
)


def _read(path: str):
  with open(path) as f:
    if path.endswith(".jsonl"):
      return [json.loads(line) for line in f if line.strip()]
    return json.load(f)


def _cell_dirs(root: str):
  """Relative paths <task>/s<seed>/<method> of the cell folders under root."""
  for task in sorted(os.listdir(root)):
    tdir = os.path.join(root, task)
    if not os.path.isdir(tdir) or task == "data":
      continue
    for sd in sorted(d for d in os.listdir(tdir) if d.startswith("s") and d[1:].isdigit()):
      for method in sorted(os.listdir(os.path.join(tdir, sd))):
        if os.path.isdir(os.path.join(tdir, sd, method)):
          yield f"{task}/{sd}/{method}"


def pack(root: str, out: str) -> dict:
  """Writes the grid under `root` to `out` (gzip'd JSON); returns {"cells", "files"} counts."""
  files = {
    name: _read(os.path.join(root, name))
    for name in GRID_FILES
    if os.path.exists(os.path.join(root, name))
  }
  n_cells = 0
  for rel in _cell_dirs(root):
    present = [n for n in CELL_FILES if os.path.exists(os.path.join(root, rel, n))]
    if "cell.json" in present or "failed.json" in present:
      n_cells += 1
      files.update({f"{rel}/{n}": _read(os.path.join(root, rel, n)) for n in present})
  if not n_cells:
    raise FileNotFoundError(f"no finished or failed sweep cells under {root}")
  text = json.dumps({"format": FORMAT, "files": files}, separators=(",", ":"))
  buf = io.BytesIO()
  with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as f:  # same bytes
    f.write(text.encode())  # for same files
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out + ".tmp", "wb") as f:
    f.write(buf.getvalue())
  os.replace(out + ".tmp", out)
  return {"cells": n_cells, "files": len(files)}


def load(path: str) -> dict:
  """{relative path: parsed JSON (a list of rows for .jsonl)} of a file written by `pack`."""
  try:
    with gzip.open(path, "rt") as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"{path} is not a cells file written by launch.cells pack ({e})") from None
  if not isinstance(data, dict) or data.get("format") != FORMAT:
    raise ValueError(f"{path} is not a cells file of format {FORMAT} (launch.cells pack)")
  return data["files"]


def _unfinished_teachers(files: dict) -> set:
  """<task>/s<seed>/teacher of the task-seeds where a method of the grid has no cell.json."""
  methods = files.get("sweep.json", {}).get("methods", [])
  pairs = {rel.rsplit("/", 2)[0] for rel in files if rel.count("/") == 3}
  return {f"{p}/teacher" for p in pairs if any(f"{p}/{m}/cell.json" not in files for m in methods)}


def unpack(path: str, root: str, resume: bool = False, log=print) -> int:
  """Writes the files of `path` under `root`, keeping any that exist; returns how many it
  wrote. resume: leave out the teachers of unfinished task-seeds whose checkpoints are not
  in `root` (a continued sweep trains them again)."""
  files = load(path)
  skip = _unfinished_teachers(files) if resume else set()
  written, noted = 0, set()
  for rel, content in files.items():
    cell = rel.rsplit("/", 1)[0]
    if cell in skip and not os.path.isdir(os.path.join(root, cell, "checkpoints")):
      if cell not in noted:
        log(f"{cell}: unfinished task and seed, its teacher will be trained again")
        noted.add(cell)
      continue
    target = os.path.join(root, *rel.split("/"))
    if os.path.exists(target):
      continue
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target + ".tmp", "w") as f:
      if rel.endswith(".jsonl"):
        f.writelines(json.dumps(row) + "\n" for row in content)
      else:
        json.dump(content, f, indent=2)
    os.replace(target + ".tmp", target)
    written += 1
  return written


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  sub = p.add_subparsers(dest="command", required=True)
  a = sub.add_parser("pack", help="a sweep's workdir -> one cells file")
  a.add_argument("workdir")
  a.add_argument("out")
  b = sub.add_parser("unpack", help="a cells file -> a sweep's workdir")
  b.add_argument("cells")
  b.add_argument("workdir")
  b.add_argument(
    "--resume",
    action="store_true",
    help="leave out the teachers of unfinished task-seeds (to continue a grid)",
  )
  args = p.parse_args(argv)
  try:
    if args.command == "pack":
      n = pack(args.workdir, args.out)
      print(f"packed {n['cells']} cells ({n['files']} files) into {args.out}")
    else:
      n = unpack(args.cells, args.workdir, resume=args.resume)
      print(f"wrote {n} files into {args.workdir}")
  except (ValueError, FileNotFoundError) as e:
    raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
  main()
