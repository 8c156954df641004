"""Recorder overhead: epoch time of `fit` with the DynamicsRecorder / without it, measured side by side.

Interleaved runs (without, with, without, with, ...) on a Fashion-MNIST subset with the small CNN, median of the
ratios of each pair. Also: seconds per epoch on the full 60k and the share of it spent serving data.

    python bench/recorder_overhead.py [--n 10000] [--repeats 7] [--full]
Results are merged into bench/results.json under "recorder_overhead".
"""
import argparse, json, os, platform, statistics, time
from datetime import date
from pathlib import Path

import torch

from scoreextrap.data import IndexedDataset, load_dataset, make_loader
from scoreextrap.dynamics import DynamicsRecorder, fit
from scoreextrap.models import SmallCNN


def epoch_seconds(ds, with_recorder, seed):
    torch.manual_seed(seed)
    rec = DynamicsRecorder(len(ds), 10) if with_recorder else None
    return fit(SmallCNN(), ds, epochs=1, recorder=rec, seed=seed, device="cpu", progress=False).seconds.iloc[0]


def loading_seconds(ds):
    t0 = time.perf_counter()
    for _ in make_loader(IndexedDataset(ds), batch_size=128, shuffle=True): pass
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="subset size for the overhead ratio")
    ap.add_argument("--repeats", type=int, default=7, help="interleaved pairs (median taken)")
    ap.add_argument("--full", action="store_true", help="also time epochs on the full 60k")
    args = ap.parse_args()
    fm = load_dataset("fashion_mnist")
    sub = fm.subset(torch.randperm(len(fm), generator=torch.Generator().manual_seed(0))[:args.n])
    epoch_seconds(sub, True, 0)  # warm-up
    pairs = []
    for r in range(args.repeats):
        without, with_ = epoch_seconds(sub, False, r), epoch_seconds(sub, True, r)
        pairs.append((without, with_))
        print(f"pair {r}: without {without:.2f}s  with {with_:.2f}s  ratio {with_ / without:.3f}", flush=True)
    ratios = [w / wo for wo, w in pairs]
    res = dict(n=args.n, repeats=args.repeats, ratio_median=statistics.median(ratios), ratios=ratios,
               seconds_without_median=statistics.median(p[0] for p in pairs), seconds_with_median=statistics.median(p[1] for p in pairs))
    print(f"recorder overhead (median of {args.repeats} interleaved pairs, n={args.n}): {res['ratio_median']:.3f}x")
    if args.full:
        full_epochs = [epoch_seconds(fm, True, r) for r in range(3)]
        loads = [loading_seconds(fm) for _ in range(3)]
        res.update(full_epoch_seconds_median=statistics.median(full_epochs), full_loading_seconds_median=statistics.median(loads),
                   full_loading_share=statistics.median(loads) / statistics.median(full_epochs))
        print(f"full 60k epoch with recorder: {res['full_epoch_seconds_median']:.1f}s (median of 3); "
              f"serving the data alone: {res['full_loading_seconds_median']:.2f}s = {100 * res['full_loading_share']:.1f}% of the epoch")
    res.update(machine=f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads", date=str(date.today()))
    out = Path(__file__).with_name("results.json")
    results = json.loads(out.read_text()) if out.exists() else {}
    results["recorder_overhead"] = res
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
