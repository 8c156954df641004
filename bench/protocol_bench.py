"""Pruning under the papers' protocol on Fashion-MNIST: every strategy against random, paired by seed, with its cost.

The protocol (the functions of scoreextrap.pipeline):
- a stratified validation part of the training set is held out (`holdout_split`); no model trains on it;
- scores come from the first `--epochs` of a `--schedule-epochs` cosine schedule (DUAL: 30 of 200), on the rest
  (full data) or on a random `--subset-frac` of it, extrapolated by kNN or by the GNN;
- Beta sampling's c_d and CCS's hard cutoff are chosen on the validation part (`choose_options`) at the smallest
  keep_fracs, never on the test set; the class-balanced variants use the same c_d;
- every kept set retrains a fresh SmallCNN for `--retrain-epochs` at every keep_frac, for every seed; full-data
  training at several schedule lengths gives the learning curve and the compute baseline;
- the difference to random is paired by seed (`paired_difference`, 95% t interval).

Phases, each resumable (finished work is cached under --cache and in the run logs next to this file):
    python bench/protocol_bench.py --phase score                 # the scoring runs (one process)
    python bench/protocol_bench.py --phase choose --part 0 &     # validation runs, split over --parts processes
    python bench/protocol_bench.py --phase choose --part 1
    python bench/protocol_bench.py --phase retrain --part 0 &    # test runs, split the same way
    python bench/protocol_bench.py --phase retrain --part 1
    python bench/protocol_bench.py --phase report                # tables, figures, bench/results.json "protocol" and "acc"
Run each process with OMP_NUM_THREADS=1. `--quick` runs every phase on tiny sizes into a temporary folder (a smoke test).
"""
import argparse, json, os, pickle, platform, tempfile, time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from scoreextrap.cli import cli_dataset
from scoreextrap.core import atomic_write
from scoreextrap.pipeline import (choose_options, default_model_fn, describe_difference, describe_gap, full_data_runs, gap_to_full_data, holdout_split,
                                  paired_difference, plot_compute, plot_pruning, pruning_experiment, score_dataset)
from scoreextrap.sampling import select_ccs
from scoreextrap import scores as S

HERE = Path(__file__).parent


def args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", choices=("score", "choose", "retrain", "report", "all"), default="all")
    ap.add_argument("--part", type=int, default=0); ap.add_argument("--parts", type=int, default=2)
    ap.add_argument("--n", type=int, default=20_000, help="training images, the first n of Fashion-MNIST (60000: all)")
    ap.add_argument("--val-frac", type=float, default=0.2)
    ap.add_argument("--epochs", type=int, default=8, help="recorded epochs (DUAL's T)")
    ap.add_argument("--schedule-epochs", type=int, default=50)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--subset-frac", type=float, default=0.1)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--width", type=int, default=16, help="SmallCNN width")
    ap.add_argument("--retrain-epochs", type=int, default=12)
    ap.add_argument("--keep-fracs", type=float, nargs="+", default=[0.1, 0.3, 0.5])
    ap.add_argument("--choose-at", type=float, nargs="+", default=[0.1, 0.3], help="keep_fracs at which the constants are chosen")
    ap.add_argument("--c-d", type=float, nargs="+", default=[1, 2, 4])
    ap.add_argument("--hard-cutoff", type=float, nargs="+", default=[0.0, 0.1, 0.2])
    ap.add_argument("--full-epochs", type=int, nargs="+", default=[3, 6, 12, 24], help="full-data schedule lengths (the learning curve, seed 0)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "scoreextrap" / "protocol_bench"))
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.quick:
        a.n, a.epochs, a.schedule_epochs, a.window, a.retrain_epochs, a.seeds = 1500, 3, 15, 2, 2, 2
        a.full_epochs, a.keep_fracs, a.choose_at, a.c_d, a.hard_cutoff = [1, 2], [0.3, 0.5], [0.3], [1, 4], [0.0, 0.1]
        a.cache, a.logs, a.parts = tempfile.mkdtemp(), Path(tempfile.mkdtemp()), 1
    else: a.logs = HERE
    a.cache = Path(a.cache) / f"n{a.n}_T{a.epochs}of{a.schedule_epochs}_w{a.width}"
    a.cache.mkdir(parents=True, exist_ok=True)
    return a


def data(a):
    train, test = cli_dataset("fashion_mnist", n=a.n), cli_dataset("fashion_mnist", n=1000 if a.quick else None, train=False)
    fit_ds, val_ds = holdout_split(train, a.val_frac, seed=0)
    return fit_ds, val_ds, test, default_model_fn(train, width=a.width)


def score_phase(a, fit_ds, model_fn):
    "The scoring runs: DUAL (and the other dynamics scores) from a full-data run, DUAL extrapolated by kNN and by the GNN."
    out = a.cache / "scores.pkl"
    if out.exists(): return pickle.loads(out.read_bytes())
    kw = dict(epochs=a.epochs, schedule_epochs=a.schedule_epochs, score_kwargs=dict(T=a.epochs, window=a.window), model_fn=model_fn, progress=False)
    full = score_dataset(fit_ds, "dual", **kw)
    knn = score_dataset(fit_ds, "dual", subset_frac=a.subset_frac, extrapolator="knn", extrapolator_kwargs=dict(k=a.k), **kw)
    gnn = score_dataset(fit_ds, "dual", subset_frac=a.subset_frac, extrapolator="gnn", **kw)
    dyn = full.dynamics
    el2n_epoch = min(max(1, round(0.1 * a.schedule_epochs)), a.epochs) - 1  # EL2N early: 10% of the schedule, as the paper's epoch 20 of 200
    options = dict(dynamic_uncertainty=dict(window=a.window), tdds={}, el2n=dict(epoch=el2n_epoch), forgetting={}, aum={})  # {}: the registry's defaults
    other = {name: S.SCORERS[name].run(dyn, opts)[0] for name, opts in options.items()}
    for r in (full, knn, gnn): r.model = None
    res = dict(full=full, knn=knn, gnn=gnn, other=other, el2n_epoch=el2n_epoch)
    for name, r in (("full", full), ("knn", knn), ("gnn", gnn)): print(name, r, flush=True)
    atomic_write(out, lambda f: f.write(pickle.dumps(res)))
    return res


def ccs_capped(scores, keep_frac, *, seed, hard_cutoff, cutoff_scores):
    "CCS with the hard cutoff capped at 1 - keep_frac (a cutoff chosen at small keep_fracs must still leave enough samples)."
    return select_ccs(scores, keep_frac, cutoff_scores=cutoff_scores, hard_cutoff=min(hard_cutoff, round(1 - keep_frac, 6)), seed=seed)


def choose_jobs(a, sc):
    "(name, score, sampler, grid, fixed options) for every constant chosen on the validation part."
    jobs = [(f"dual_{src}", sc[src], "beta", {"c_d": tuple(a.c_d)}, None) for src in ("full", "knn", "gnn")]
    jobs.append(("ccs_aum", sc["other"]["aum"], ccs_capped, {"hard_cutoff": tuple(a.hard_cutoff)}, {"cutoff_scores": sc["other"]["aum"]}))
    return jobs


def choose_phase(a, fit_ds, val_ds, model_fn, sc):
    for i, (name, score, method, grid, options) in enumerate(choose_jobs(a, sc)):
        out = a.cache / f"choose_{name}.pkl"
        if i % a.parts != a.part or out.exists(): continue
        t0 = time.perf_counter()
        best, table = choose_options(fit_ds, val_ds, score, method=method, grid=grid, options=options, keep_fracs=tuple(a.choose_at),
                                     epochs=a.retrain_epochs, seeds=(0,), model_fn=model_fn, progress=False)
        print(f"{name}: chose {best} in {time.perf_counter() - t0:.0f} s\n{table.round(4).to_string()}", flush=True)
        atomic_write(out, lambda f: f.write(pickle.dumps(dict(best=best, table=table))))


def chosen(a, name):
    p = a.cache / f"choose_{name}.pkl"
    if not p.exists(): raise SystemExit(f"{p} is missing: run --phase choose (all parts) first")
    return pickle.loads(p.read_bytes())


def strategies(a, sc):
    "{label: (score, sampler spec)} of every strategy retrained on the test side (random is added by pruning_experiment)."
    c = {src: chosen(a, f"dual_{src}")["best"] for src in ("full", "knn", "gnn")}
    cut = chosen(a, "ccs_aum")["best"]["hard_cutoff"]
    o = sc["other"]
    return {"DUAL full + Beta": (sc["full"], ("beta", c["full"])),
            "DUAL full + Beta, class-balanced": (sc["full"], ("beta", {**c["full"], "class_balanced": True})),
            "DUAL 10% kNN + Beta": (sc["knn"], ("beta", c["knn"])),
            "DUAL 10% kNN + Beta, class-balanced": (sc["knn"], ("beta", {**c["knn"], "class_balanced": True})),
            "DUAL 10% GNN + Beta": (sc["gnn"], ("beta", c["gnn"])),
            "DU top-k": (o["dynamic_uncertainty"], "top"), "TDDS top-k": (o["tdds"], "top"), "EL2N top-k": (o["el2n"], "top"),
            "EL2N top-k, class-balanced": (o["el2n"], ("top", {"class_balanced": True})), "forgetting top-k": (o["forgetting"], "top"),
            "CCS (AUM)": (o["aum"], (ccs_capped, {"hard_cutoff": cut, "cutoff_scores": o["aum"]}))}


def retrain_jobs(a, sc):
    jobs = [("random", None, f, s) for f in a.keep_fracs for s in range(a.seeds)]
    jobs += [(name, spec, f, s) for name, spec in strategies(a, sc).items() for f in a.keep_fracs for s in range(a.seeds)]
    jobs += [("full data", e, 1.0, 0) for e in a.full_epochs] + [("full data", a.retrain_epochs, 1.0, s) for s in range(1, a.seeds)]
    return jobs


def run_job(a, job, fit_ds, test, model_fn):
    name, spec, f, seed = job
    kw = dict(seeds=(seed,), model_fn=model_fn, progress=False)
    if name == "full data": return full_data_runs(fit_ds, test, epochs=(spec,), **kw)
    if name == "random": return pruning_experiment(fit_ds, test, {}, keep_fracs=(f,), epochs=a.retrain_epochs, **kw)
    score, method = spec
    df = pruning_experiment(fit_ds, test, {name: score}, keep_fracs=(f,), methods=[method], epochs=a.retrain_epochs, random=False, **kw)
    return df.assign(strategy=name)


def retrain_phase(a, fit_ds, test, model_fn, sc):
    log = a.logs / f"protocol_runs_n{a.n}_part{a.part}.csv"
    done = pd.read_csv(log) if log.exists() else pd.DataFrame(columns=["job"])
    others = [p for p in a.logs.glob(f"protocol_runs_n{a.n}_part*.csv") if p != log]
    finished = set(done.job).union(*(set(pd.read_csv(p).job) for p in others))  # a job another part already ran is not repeated
    for i, job in enumerate(retrain_jobs(a, sc)):
        key = f"{job[0]}|{job[1] if job[0] == 'full data' else ''}|{job[2]}|{job[3]}"
        if i % a.parts != a.part or key in finished: continue
        row = run_job(a, job, fit_ds, test, model_fn).assign(job=key)
        print(row[["strategy", "keep_frac", "seed", "epochs", "test_acc", "total_sample_epochs", "total_seconds"]].to_string(index=False, header=False), flush=True)
        done, finished = pd.concat([done, row], ignore_index=True), finished | {key}
        atomic_write(log, lambda fh: fh.write(done.to_csv(index=False).encode()))


def report_phase(a, sc):
    runs = pd.concat([pd.read_csv(p) for p in sorted(a.logs.glob(f"protocol_runs_n{a.n}_part*.csv"))], ignore_index=True)
    full, pruned = runs[runs.strategy == "full data"], runs[runs.strategy != "full data"].copy()
    from_full = pruned.scoring_sample_epochs.isna() & (pruned.strategy != "random")  # scores read off the full-data run's dynamics: its cost
    pruned.loc[from_full, "scoring_sample_epochs"] = sc["full"].trained_sample_epochs
    pruned.loc[from_full, "scoring_seconds"] = sc["full"].timings["total"]
    pruned["total_sample_epochs"] = pruned.scoring_sample_epochs + pruned.n_kept * pruned.epochs
    pruned["total_seconds"] = pruned.scoring_seconds + pruned.train_seconds
    pruned.attrs.update(budget="epochs", epochs=a.retrain_epochs)
    order = ["random", *strategies(a, sc)]
    acc = pruned.groupby(["strategy", "keep_frac"]).test_acc.agg(["mean", "std", "count"]).unstack("keep_frac").reindex(order)
    print(f"test accuracy in %, mean over seeds (retraining budget: {a.retrain_epochs} epochs at every keep_frac):")
    print((100 * acc["mean"]).round(2).to_string())
    diff = paired_difference(pruned)
    print("\npaired difference to random, accuracy points (95% t interval):")
    print((100 * diff[["mean_diff", "ci_low", "ci_high"]]).round(2).join(diff.n_seeds).to_string())
    print("\n" + "\n".join(describe_difference(r) for _, r in diff.iterrows()))
    curve = full.groupby("epochs").test_acc.agg(["mean", "count"])
    print("\nfull data (learning curve; seed 0 only except at the retraining budget):\n" + (100 * curve["mean"]).round(2).to_string())
    cost = pruned.groupby(["strategy", "keep_frac"])[["total_sample_epochs", "total_seconds"]].mean().unstack("keep_frac").reindex(order)
    print("\ntotal cost of a model (scoring run + retraining), trained sample-epochs:\n" + cost["total_sample_epochs"].round(0).to_string())
    gap = gap_to_full_data(pruned, full)
    print(f"\nagainst full-data training at the same total cost (full data on seed 0, {a.seeds} seeds at the retraining budget):\n"
          + "\n".join(describe_gap(r) for _, r in gap.reindex(order, level="strategy").iterrows()))
    import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(15, 5.5))
    plot_pruning(pruned, ax=ax[0]); plot_compute(pruned, full, ax=ax[1])
    for x in ax: x.legend(fontsize=6)
    fig.tight_layout(); fig.savefig(a.logs / f"protocol_bench_n{a.n}.png", dpi=110); plt.close(fig)
    if a.quick: return
    per_seed = {str(f): {s: [float(v) for v in g.sort_values("seed").test_acc] for s, g in grp.groupby("strategy")} for f, grp in pruned.groupby("keep_frac")}
    choices = {n: chosen(a, n)["best"] for n in ("dual_full", "dual_knn", "dual_gnn", "ccs_aum")}
    results = json.loads((HERE / "results.json").read_text())
    results["protocol"] = dict(n_train_images=a.n, val_frac=a.val_frac, n_fit=int(len(sc["full"].scores)), score_T=a.epochs,
                               schedule_epochs=a.schedule_epochs, score_fraction_of_schedule=a.epochs / a.schedule_epochs, window=a.window,
                               el2n_epoch=sc["el2n_epoch"] + 1, subset_frac=a.subset_frac, k=a.k, model=f"SmallCNN(width={a.width})",
                               budget="epochs", retrain_epochs=a.retrain_epochs, keep_fracs=a.keep_fracs, seeds=list(range(a.seeds)),
                               constants=dict(chosen=choices, how=f"best mean validation accuracy at keep_fracs {a.choose_at}, seed 0, on the "
                                              f"held-out {a.val_frac:.0%} of the training images", c_d_grid=a.c_d, hard_cutoff_grid=a.hard_cutoff),
                               learning_curve={int(e): float(v) for e, v in curve["mean"].items()},
                               machine=f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}", date=str(date.today()))
    results["acc"] = dict(per_seed=per_seed, gap_to_full_data={f"{s} @ {f}": None if r.outside else float(r.gap) for (s, f), r in gap.iterrows()},
                          paired_difference_to_random={f"{s} @ {f}": dict(mean=float(r.mean_diff), ci_low=float(r.ci_low),
                          ci_high=float(r.ci_high), n_seeds=int(r.n_seeds)) for (s, f), r in diff.iterrows()})
    atomic_write(HERE / "results.json", lambda f: f.write((json.dumps(results, indent=2) + "\n").encode()))


def main():
    a = args()
    fit_ds, val_ds, test, model_fn = data(a)
    phases = ("score", "choose", "retrain", "report") if a.phase == "all" else (a.phase,)
    sc = score_phase(a, fit_ds, model_fn)
    if "choose" in phases: choose_phase(a, fit_ds, val_ds, model_fn, sc)
    if "retrain" in phases: retrain_phase(a, fit_ds, test, model_fn, sc)
    if "report" in phases: report_phase(a, sc)


if __name__ == "__main__":
    main()
