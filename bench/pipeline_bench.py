"""The end-to-end job on Fashion-MNIST with SmallCNN: scoring cost, rank quality and pruned accuracy (issue 5's goals).

Measured in one run, side by side on the same data:
- cost_ratio: wall time of the extrapolated DUAL (10% subset training + embedding + kNN) / the full-data DUAL run,
  for several scoring seeds (median reported);
- rank_quality_ratio: Spearman(extrapolated, full seed 0) / Spearman(full seed 0, full seed 1), both on the
  samples outside the subset;
- acc: keep_frac -> strategy -> mean test accuracy over retraining seeds (with the standard deviation and the
  per-seed values), for random, DUAL+Beta from the full run, DUAL+Beta extrapolated, and EL2N top-k.

Usage (from the repo root; keep the output as bench/pipeline_bench.log):
    OMP_NUM_THREADS=1 .venv/bin/python bench/pipeline_bench.py | tee bench/pipeline_bench.log
    OMP_NUM_THREADS=1 .venv/bin/python bench/pipeline_bench.py --quick   # small sizes, a smoke test; writes nothing
Results are merged into bench/results.json under "cost_ratio" (wall, and CPU seconds, which other jobs on a shared
machine do not inflate), "rank_quality_ratio" and "acc", with the settings under "scoring_bench" and "retrain_bench".
`--no-retrain` re-measures the first two only. Retraining runs are appended to bench/pipeline_runs.csv as they
finish, so an interrupted run resumes where it stopped.
"""
import argparse, json, os, platform, statistics, time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from scoreextrap.cli import cli_dataset
from scoreextrap.core import atomic_write
from scoreextrap.metrics import rank_agreement
from scoreextrap.pipeline import pruning_experiment, score_dataset
from scoreextrap import scores as S

HERE = Path(__file__).parent


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="training images (the first n of Fashion-MNIST)")
    ap.add_argument("--epochs", type=int, default=8, help="scoring epochs; DUAL's T equals it")
    ap.add_argument("--window", type=int, default=4, help="DUAL window J")
    ap.add_argument("--subset-frac", type=float, default=0.1)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--score-seeds", type=int, default=3, help="extrapolated scoring runs (seeds 0..)")
    ap.add_argument("--retrain-epochs", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=3, help="retraining seeds")
    ap.add_argument("--keep-fracs", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    ap.add_argument("--no-retrain", action="store_true", help="measure cost and rank quality only; keep the stored acc")
    ap.add_argument("--suffix", default="", help="appended to the results.json keys of cost and rank quality (another configuration)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes; prints only")
    a = ap.parse_args()
    if a.quick: a.n, a.epochs, a.window, a.retrain_epochs, a.seeds, a.score_seeds = 2000, 4, 2, 1, 2, 2
    train, test = cli_dataset("fashion_mnist", n=a.n), cli_dataset("fashion_mnist", n=2000 if a.quick else None, train=False)
    kw = dict(epochs=a.epochs, score_kwargs=dict(T=a.epochs, window=a.window), progress=False)

    cpu = {}  # CPU seconds of each scoring run: with one thread, the work done, whatever else runs on the machine
    def timed_score(key, **opts):
        c0 = time.process_time(); r = score_dataset(train, "dual", **opts, **kw); cpu[key] = time.process_time() - c0
        print(r, f"cpu {cpu[key]:.1f}s", flush=True); return r
    full = [timed_score(("full", s), seed=s) for s in (0, 1)]
    ext = [timed_score(("ext", s), subset_frac=a.subset_frac, extrapolator="knn", extrapolator_kwargs=dict(k=a.k), seed=s)
           for s in range(a.score_seeds)]
    ext_cost = lambda r: r.timings["train"] + r.timings["score"] + r.timings["embed"] + r.timings["extrapolate"]
    ratios = [ext_cost(r) / full[0].timings["total"] for r in ext]
    cpu_ratios = [cpu[("ext", s)] / cpu[("full", 0)] for s in range(a.score_seeds)]
    print(f"cost_ratio in CPU seconds per scoring seed: {[round(x, 3) for x in cpu_ratios]} -> median {statistics.median(cpu_ratios):.3f}")
    agree, ceil = [], []
    for r in ext:
        rest = np.setdiff1d(np.arange(len(train)), r.subset_idx)
        agree.append(rank_agreement(r.scores[rest], full[0].scores[rest])["spearman"])
        ceil.append(rank_agreement(full[1].scores[rest], full[0].scores[rest])["spearman"])
    quality = [x / c for x, c in zip(agree, ceil)]
    print(f"cost_ratio per scoring seed: {[round(x, 3) for x in ratios]} -> median {statistics.median(ratios):.3f}")
    print(f"Spearman(ext, full0): {[round(x, 3) for x in agree]}; ceiling Spearman(full1, full0): {[round(x, 3) for x in ceil]}")
    print(f"rank_quality_ratio: {[round(x, 3) for x in quality]} -> median {statistics.median(quality):.3f}", flush=True)

    settings = dict(n=a.n, n_test=len(test), model="SmallCNN", scorer="dual", epochs=a.epochs, T=a.epochs, window=a.window,
                    subset_frac=a.subset_frac, extrapolator="knn", k=a.k, timings={"full": [r.timings for r in full], "extrapolated": [r.timings for r in ext]},
                    cpu_seconds={"full": [cpu[("full", s)] for s in (0, 1)], "extrapolated": [cpu[("ext", s)] for s in range(a.score_seeds)]},
                    machine=f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, "
                            f"load average {os.getloadavg()[0]:.1f}", date=str(date.today()))
    out = HERE / "results.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    if not a.quick:
        results.update({"cost_ratio" + a.suffix: dict(median=statistics.median(ratios), per_seed=ratios, cpu_median=statistics.median(cpu_ratios),
                                                      cpu_per_seed=cpu_ratios),
                        "rank_quality_ratio" + a.suffix: dict(median=statistics.median(quality), per_seed=quality, spearman_extrapolated=agree,
                                                              spearman_ceiling=ceil),
                        "scoring_bench" + a.suffix: settings})
        atomic_write(out, lambda f: f.write((json.dumps(results, indent=2) + "\n").encode()))
    if a.no_retrain: return

    el2n_epoch = max(1, round(0.1 * a.epochs)) - 1  # 0-based; EL2N early in training: ~10% of the run (20 of 200 epochs in the paper)
    scores = {"dual_beta_full": full[0], "dual_beta_extrapolated": ext[0], "el2n_top": S.el2n(full[0].dynamics, epoch=el2n_epoch)}
    methods = {"dual_beta_full": ["beta"], "dual_beta_extrapolated": ["beta"], "el2n_top": ["top"]}
    log = HERE / "pipeline_runs.csv"
    done = pd.read_csv(log) if log.exists() and not a.quick else pd.DataFrame()
    for seed in range(a.seeds):
        if len(done) and (done.seed == seed).any(): print(f"seed {seed}: loaded from {log.name}"); continue
        res = pruning_experiment(train, test, scores, keep_fracs=a.keep_fracs, methods=methods, epochs=a.retrain_epochs, seeds=[seed], progress=False)
        res["strategy"] = res.strategy.str.replace(" + beta", "").str.replace(" + top", "")
        full_acc = pruning_experiment(train, test, {}, keep_fracs=[1.0], epochs=a.retrain_epochs, seeds=[seed], progress=False)
        full_acc["strategy"] = "full_data"
        res = pd.concat([res, full_acc], ignore_index=True)
        print(res[["strategy", "keep_frac", "seed", "test_acc", "train_seconds"]].to_string(index=False), flush=True)
        done = pd.concat([done, res], ignore_index=True)
        if not a.quick: atomic_write(log, lambda f: done.to_csv(f, index=False))
    table = done.groupby(["keep_frac", "strategy"]).test_acc.agg(["mean", "std", "min", "max", "count"])
    print(table.round(4).to_string())
    acc = {str(f): {s: dict(mean=float(g.test_acc.mean()), std=float(g.test_acc.std()), per_seed=[float(x) for x in g.sort_values("seed").test_acc])
                    for s, g in grp.groupby("strategy")} for f, grp in done.groupby("keep_frac")}
    f0 = str(min(a.keep_fracs))
    if f0 in acc and {"random", "dual_beta_extrapolated", "dual_beta_full"} <= acc[f0].keys():
        m = {s: acc[f0][s]["mean"] for s in acc[f0]}
        print(f"at keep_frac {f0}: extrapolated - random = {100 * (m['dual_beta_extrapolated'] - m['random']):+.2f} points (goal >= +1.0); "
              f"extrapolated - full = {100 * (m['dual_beta_extrapolated'] - m['dual_beta_full']):+.2f} points (goal >= -0.5)")
    if a.quick: return
    results = json.loads(out.read_text())
    results.update(acc=acc, retrain_bench=dict(n=a.n, n_test=len(test), model="SmallCNN", retrain_epochs=a.retrain_epochs, budget="epochs",
                                               retrain_seeds=a.seeds, keep_fracs=a.keep_fracs, el2n_epoch=el2n_epoch, scores_from="scoring seed 0",
                                               date=str(date.today())))
    atomic_write(out, lambda f: f.write((json.dumps(results, indent=2) + "\n").encode()))


if __name__ == "__main__":
    main()
