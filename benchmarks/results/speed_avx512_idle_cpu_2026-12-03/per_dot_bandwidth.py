# usage: python per_dot_bandwidth.py /tmp/jaxpolicy_trace_<policy>_<dtype>  (after profile_policy_call.py)
import collections, glob, gzip, json, re, sys
d = sys.argv[1]
hlo = open(f"{d}/hlo.txt").read()
f = glob.glob(f"{d}/**/*.trace.json.gz", recursive=True)[0]
ev = [e for e in json.load(gzip.open(f))["traceEvents"] if e.get("ph") == "X"]
dur = collections.defaultdict(list)
for e in ev:
  if re.match(r"^(ynn_fusion|dot)(\.\d+)?$", e["name"]): dur[e["name"]].append(e["dur"])
rows = []
for name, ds in dur.items():
  m = re.search(r"%" + re.escape(name) + r" = (\S+) (?:fusion|dot)\(([^)]*)\)(.*)", hlo)
  if not m: continue
  ops = [o.strip().lstrip("%") for o in m.group(2).split(",")]
  shapes = []
  for o in ops:
    mm = re.search(r"%" + re.escape(o) + r" = (\w+)\[([\d,]*)\]", hlo)
    shapes.append((mm.group(1), mm.group(2)) if mm else ("?", ""))
  nbytes = 0
  for dt, s in shapes:
    n = 1
    for v in s.split(","):
      if v: n *= int(v)
    nbytes = max(nbytes, n * {"bf16": 2, "f32": 4}.get(dt, 4))
  us = sorted(ds)[len(ds) // 2]
  op = re.search(r'op_name="([^"]*)"', m.group(3))
  rows.append((us, nbytes, name, shapes, op.group(1).split("/")[-2:] if op else ""))
rows.sort(key=lambda r: -r[0])
tot_us = sum(r[0] for r in rows); tot_b = sum(r[1] for r in rows)
print(f"total {tot_us/1e3:.2f} ms, {tot_b/1e6:.0f} MB, {tot_b/tot_us/1e3:.1f} GB/s")
for us, b, n, s, op in rows:
  print(f"{us:7.0f}us {b/1e6:6.1f}MB {b/us/1e3:5.1f}GB/s {n:16s} {s} {op}")
