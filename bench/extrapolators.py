"""kNN, GNN and ridge extrapolation of DUAL on Fashion-MNIST, against the run-to-run ceiling.

The protocol of nbs/05_knn.ipynb: a pixel MLP (784-512-256-10) trained for 30 epochs on a random 10% subset (draw
seed = training seed), DUAL (T = 30, window 10) on that subset, the subset model's 256-d embeddings of all 60 000
images, and the reference DUAL of a full-data run (seed 0). Spearman on the 54 000 samples outside the subset; the
ceiling is the Spearman between the full-data DUAL of seeds 0 and 1 on the same samples. Every extrapolator gets one
fit and one predict through `scoreextrap.extrapolate.extrapolate`; the GNN gets the class labels (its supervised
variant) and a CPU-sized GCN. Runs are cached like the notebook's (SCOREEXTRAP_CACHE, default ~/.cache/scoreextrap).

    python bench/extrapolators.py | tee bench/extrapolators.log
"""
import os, platform, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
from scipy import stats

from scoreextrap.data import load_dataset
from scoreextrap.dynamics import Dynamics, DynamicsRecorder
from scoreextrap.extrapolate import extrapolate
from scoreextrap.models import embed
from scoreextrap.scores import dual
from scoreextrap.train import fit

CACHE = Path(os.environ.get("SCOREEXTRAP_CACHE", Path.home() / ".cache" / "scoreextrap")) / "runs"
EPOCHS = T = 30
DRAWS = (0, 1, 2)
METHODS = {"knn": dict(k=20), "ridge": dict(),
           "gnn": dict(k=10, hidden=(64, 32), epochs=40, lr=1e-2)}  # CPU-sized GCN, full batch

def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 10))

def subset_indices(n, frac, seed=0):
    return np.sort(np.random.default_rng(seed).choice(n, int(round(frac * n)), replace=False))

def recorded_run(train, idx, seed, epochs=EPOCHS):
    "The cached run of nbs/05_knn.ipynb (same folder names): (Dynamics, model)."
    folder = CACHE / f"fmnist_mlp_n{len(idx)}_sub{int(idx[:50].sum()) % 100003}_seed{seed}_e{epochs}"
    torch.manual_seed(seed)
    model = mlp()
    if (folder / "dynamics.npz").exists():
        model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
        return Dynamics.load(folder / "dynamics.npz"), model
    rec = DynamicsRecorder(len(idx), 10)
    fit(model, train.subset(idx), epochs, recorder=rec, seed=seed, progress=False, device="cpu")
    folder.mkdir(parents=True, exist_ok=True)
    rec.dynamics.save(folder / "dynamics.npz"); torch.save(model.state_dict(), folder / "model.pt")
    return rec.dynamics, model

def main():
    print(f"# {platform.node()} torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    train = load_dataset("fashion_mnist"); N = len(train); labels = train.targets.numpy()
    true = dual(recorded_run(train, np.arange(N), 0)[0], T=T, window=10)
    other = dual(recorded_run(train, np.arange(N), 1)[0], T=T, window=10)
    rows = []
    for draw in DRAWS:
        idx = subset_indices(N, 0.1, seed=draw)
        dyn, model = recorded_run(train, idx, draw)
        emb, sub_dual = embed(model, train), dual(dyn, T=T, window=10)
        rest = np.setdiff1d(np.arange(N), idx)
        rows.append(dict(draw=draw, method="ceiling (full runs, seed 1 vs 0)", spearman=stats.spearmanr(other[rest], true[rest]).statistic, seconds=np.nan))
        for name, opts in METHODS.items():
            t0 = time.perf_counter()
            pred = extrapolate(emb, idx, sub_dual, extrapolator=name, labels=labels if name == "gnn" else None, **opts)
            sec = time.perf_counter() - t0
            rows.append(dict(draw=draw, method=name, spearman=stats.spearmanr(pred[rest], true[rest]).statistic, seconds=sec))
            print(f"draw {draw} {name:5s} spearman {rows[-1]['spearman']:.4f}  fit+predict {sec:.1f}s", flush=True)
    df = pd.DataFrame(rows)
    print("\nper draw:\n" + df.pivot(index="draw", columns="method", values="spearman").round(4).to_string())
    g = df.groupby("method", sort=False)
    table = pd.DataFrame({"spearman_median": g.spearman.median(), "spearman_min": g.spearman.min(), "spearman_max": g.spearman.max(),
                          "seconds_median": g.seconds.median()})
    print(f"\nDUAL, 10% subset, Spearman on the {N - len(idx)} samples outside it; {len(DRAWS)} subset draws; options {METHODS}:")
    print(table.round(3).to_string())

if __name__ == "__main__":
    main()
