"""What score extrapolation saves under adversarial training, beside clean training, measured side by side.

Scoring the whole training set means recording T epochs on all N images; the extrapolated route records T epochs on
a 10% subset, then embeds all N images once and runs kNN (k = 12). This script times one recorded epoch of each
kind, interleaved over several rounds (medians), on the adversarial notebook's setting: a random 6 000-image
Fashion-MNIST training set, SmallCNN(width=16, hidden=64), training attack PGD eps 0.1, 5 steps of 0.025. Epochs:
- adversarial, Nieth et al.'s dynamics: adversarial training plus the eval-mode attack of the training set (AdversarialRecorder);
- adversarial, the training step's own logits (plain DynamicsRecorder: no second attack);
- clean training with the DynamicsRecorder.
Process CPU time is the robust measure on a shared machine (run with OMP_NUM_THREADS=1); wall time is printed too.

    python bench/adversarial_cost.py [--n 6000] [--T 12] [--repeats 3]
Results are merged into bench/results.json under "adversarial_cost".
"""
import argparse, json, os, platform, statistics, time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from scoreextrap.adversarial import AdversarialRecorder, adversarial_step, normalisation_of
from scoreextrap.data import load_dataset
from scoreextrap.dynamics import DynamicsRecorder
from scoreextrap.extrapolate import extrapolate
from scoreextrap.models import SmallCNN, embed
from scoreextrap.pipeline import subset_indices
from scoreextrap.train import fit

ATTACK = dict(eps=0.1, steps=5, step_size=0.025)


def timed(fn):
    "(wall, cpu) seconds of fn()."
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def epoch(ds, kind, seed):
    "(wall, cpu) of one recorded training epoch of `kind` ('nieth', 'steps' or 'clean') on `ds`."
    torch.manual_seed(seed)
    model = SmallCNN(width=16, hidden=64)
    step = None if kind == "clean" else adversarial_step(**ATTACK, **normalisation_of(ds))
    rec = AdversarialRecorder(model, ds, 10, **ATTACK, record_steps=False) if kind == "nieth" else DynamicsRecorder(len(ds), 10)
    return timed(lambda: fit(model, ds, 1, step=step, recorder=rec, seed=seed, device="cpu", progress=False))


def embed_and_knn(train, sub_idx):
    "(wall, cpu) of embedding every image with a (fresh) model and extrapolating subset values to the rest with kNN k=12."
    model = SmallCNN(width=16, hidden=64)
    return timed(lambda: extrapolate(embed(model, train), sub_idx, np.random.default_rng(0).random(len(sub_idx)), extrapolator="knn", k=12))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6000, help="training images (a seeded random subset of Fashion-MNIST)")
    ap.add_argument("--T", type=int, default=12, help="recorded epochs of a scoring run")
    ap.add_argument("--subset-frac", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds (medians taken)")
    args = ap.parse_args()
    fm = load_dataset("fashion_mnist")
    train = fm.subset(np.sort(np.random.default_rng(0).choice(len(fm), args.n, replace=False)))
    sub_idx = subset_indices(args.n, args.subset_frac, seed=0)
    sub = train.subset(sub_idx)
    epoch(sub, "nieth", 0)  # warm-up
    rows = {k: [] for k in ("nieth_full", "nieth_sub", "steps_full", "steps_sub", "clean_full", "clean_sub", "embed_knn")}
    for r in range(args.repeats):
        jobs = [("nieth_full", lambda: epoch(train, "nieth", r)), ("nieth_sub", lambda: epoch(sub, "nieth", r)),
                ("steps_full", lambda: epoch(train, "steps", r)), ("steps_sub", lambda: epoch(sub, "steps", r)),
                ("clean_full", lambda: epoch(train, "clean", r)), ("clean_sub", lambda: epoch(sub, "clean", r)),
                ("embed_knn", lambda: embed_and_knn(train, sub_idx))]
        for name, job in (jobs if r % 2 == 0 else jobs[::-1]):  # alternate the order so a drifting load favours no side
            rows[name].append(job())
        print(f"round {r}: " + ", ".join(f"{k} {v[-1][1]:.1f}s cpu" for k, v in rows.items()), flush=True)
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in rows.items()}
    res = dict(n=args.n, T=args.T, subset_frac=args.subset_frac, repeats=args.repeats, attack=ATTACK,
               median_seconds={k: dict(wall=w, cpu=c) for k, (w, c) in med.items()})
    for kind in ("nieth", "steps", "clean"):
        for j, unit in enumerate(("wall", "cpu")):
            full = args.T * med[f"{kind}_full"][j]
            ext = args.T * med[f"{kind}_sub"][j] + med["embed_knn"][j]
            res[f"{kind}_{unit}"] = dict(full_scoring=full, extrapolated_scoring=ext, saving=full / ext)
        r = res[f"{kind}_cpu"]
        print(f"{kind:6s}: full-data scoring {r['full_scoring']:.0f} s cpu, {args.subset_frac:.0%} subset + embed + kNN {r['extrapolated_scoring']:.0f} s cpu: "
              f"{r['saving']:.1f}x less (wall {res[f'{kind}_wall']['saving']:.1f}x)")
    print(f"one full-data scoring epoch, cpu: Nieth's adversarial {med['nieth_full'][1]:.1f} s, training-step logits {med['steps_full'][1]:.1f} s, "
          f"clean {med['clean_full'][1]:.1f} s ({med['nieth_full'][1] / med['clean_full'][1]:.1f}x and {med['steps_full'][1] / med['clean_full'][1]:.1f}x clean)")
    res.update(machine=f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}", date=str(date.today()))
    out = Path(__file__).with_name("results.json")
    results = json.loads(out.read_text()) if out.exists() else {}
    results["adversarial_cost"] = res
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
