import sys, time, json
from jaxpolicy import runs
from jaxpolicy.envs import metaworld_evaluator as ev
out = []
for wd in sys.argv[1:]:
  run = runs.restore_run(wd)
  pols = run.main_and_baselines()
  name = sorted(pols)[0] if len(pols) == 1 else [n for n in pols if "ddim10" in n or n.startswith(("sdm", "cd", "step"))][0]
  pol = pols[name]
  for stop in (False, True, False, True):
    t = time.perf_counter()
    r = ev.evaluate(pol, run.config.task, episodes=100, seed=1000, episode_length=run.config.eval.episode_length, stop_on_success=stop)
    row = {"workdir": wd, "policy": name, "stop_on_success": stop, "seconds": round(time.perf_counter() - t, 1),
           "env_steps": r["env_steps"], "success_rate": r["success_rate"], "first_success_step_mean": sum(f for f in r["first_success_step"] if f >= 0) / max(1, sum(r["successes"]))}
    print(json.dumps(row), flush=True); out.append(row)
json.dump(out, open("/tmp/eval_timing.json", "w"), indent=1)
