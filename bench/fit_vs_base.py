"""Training loop and pipeline, this checkout against an older one (a refactor must not slow them), side by side.

Each measurement runs in a fresh subprocess, alternating base / this checkout (the order inside a pair alternates),
with the same data and seeds. The measurements (`--what`, default fit and pipeline):
  - fit: one epoch of `fit` with a DynamicsRecorder on n Fashion-MNIST images (wall and process CPU seconds);
  - pipeline: `score_dataset(..., "dual", subset_frac=0.1, extrapolator="knn")` on n images, seconds per stage;
  - demo: the whole `scoreextrap demo` at its default sizes (n is ignored), seconds per stage of both scoring runs
    and the total.
Ratios are this checkout / base; medians over the pairs.

    git worktree add /tmp/base/wt <old commit>
    OMP_NUM_THREADS=1 python bench/fit_vs_base.py --base /tmp/base/wt [--n 10000] [--pairs 5] [--what fit pipeline demo]
"""
import argparse, json, os, statistics, subprocess, sys
from pathlib import Path

WORKER = r'''
import json, sys, time, torch
from scoreextrap.data import load_dataset
from scoreextrap.dynamics import DynamicsRecorder
try: from scoreextrap.train import fit  # this checkout
except ImportError: from scoreextrap.dynamics import fit  # before the train module
from scoreextrap.models import SmallCNN
from scoreextrap.pipeline import score_dataset
what, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ds = load_dataset("fashion_mnist").subset(range(n))
if what == "fit":
    torch.manual_seed(seed)
    model, rec = SmallCNN(), DynamicsRecorder(len(ds), 10)
    t0, c0 = time.perf_counter(), time.process_time()
    fit(model, ds, epochs=1, recorder=rec, seed=seed, device="cpu", progress=False)
    out = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
elif what == "pipeline":
    r = score_dataset(ds, "dual", subset_frac=0.1, extrapolator="knn", epochs=4, seed=seed, device="cpu", progress=False)
    out = dict(r.timings)
if what == "demo":
    from scoreextrap.cli import demo
    d = demo(plot=None, progress=False)
    out = {f"{run} {stage}": float(v) for run, row in d["cost"].iterrows() for stage, v in row.items() if stage.endswith(" s")}
    out["total"] = d["seconds"]
print(json.dumps(out))
'''

def run(root, what, n, seed):
    env = {**os.environ, "PYTHONPATH": str(root), "SCOREEXTRAP_PROGRESS": "0"}
    p = subprocess.run([sys.executable, "-c", WORKER, what, str(n), str(seed)], env=env, capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True); ap.add_argument("--n", type=int, default=10_000); ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--what", nargs="+", default=["fit", "pipeline"], choices=["fit", "pipeline", "demo"])
    a = ap.parse_args()
    here = Path(__file__).resolve().parents[1]
    for what in a.what:
        ratios = {}
        for i in range(a.pairs):
            order = [("base", a.base), ("new", here)] if i % 2 == 0 else [("new", here), ("base", a.base)]
            got = {name: run(root, what, a.n, seed=i) for name, root in order}
            for k in got["new"]:
                if got["base"].get(k, 0) > 0: ratios.setdefault(k, []).append(got["new"][k] / got["base"][k])
            print(f"{what} pair {i}: " + ", ".join(f"{k} {got['base'][k]:.2f}s -> {got['new'][k]:.2f}s" for k in got["new"] if k in got["base"]), flush=True)
        print(f"{what}: median ratio new/base over {a.pairs} pairs (n={a.n}): " + ", ".join(f"{k} {statistics.median(v):.3f}x" for k, v in ratios.items()), flush=True)

if __name__ == "__main__": main()
