import json, sys, time
sys.argv = sys.argv[:1] + sys.argv[1:]
from launch.sweep import honest_eval
from absl import flags
flags.FLAGS(["x"])
out = {}
for wd in sys.argv[1:]:
  t = time.time()
  new = honest_eval(wd, 100, 1000)
  old = json.load(open(wd + "/cell.json"))["honest"]
  for name, r in new.items():
    same = r["successes"] == old[name]["successes"]
    print(wd, name, "new", r["success_rate"], "stored", old[name]["success_rate"], "identical episodes:", same, flush=True)
  print(wd, "wall", round(time.time() - t, 1), flush=True)
