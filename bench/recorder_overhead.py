"""Recorder overhead: epoch time of `fit` with the DynamicsRecorder / without it, measured side by side.

Interleaved runs (without, with, without, with, ...) on a Fashion-MNIST subset with the small CNN, median of the
ratios of each pair (the order inside a pair alternates, so that a drifting machine load does not favour one
side), in wall-clock and in process CPU time (CPU time is the robust one on a shared machine: run
with OMP_NUM_THREADS=1 there, so that no thread spins waiting for a busy core). Also: seconds per epoch on the full
60k and the share of it spent serving data, and the recorder's own CPU time over an epoch's batches in isolation.

    python bench/recorder_overhead.py [--n 10000] [--repeats 7] [--full]
Results are merged into bench/results.json under "recorder_overhead".
"""
import argparse, json, os, platform, statistics, time
from datetime import date
from pathlib import Path

import torch

from scoreextrap.data import IndexedDataset, load_dataset, make_loader
from scoreextrap.dynamics import DynamicsRecorder
from scoreextrap.train import fit
from scoreextrap.models import SmallCNN


def epoch_seconds(ds, with_recorder, seed):
    "(wall, cpu) seconds of one epoch of `fit`."
    torch.manual_seed(seed)
    model, rec = SmallCNN(), DynamicsRecorder(len(ds), 10) if with_recorder else None
    t0, c0 = time.perf_counter(), time.process_time()
    fit(model, ds, epochs=1, recorder=rec, seed=seed, device="cpu", progress=False)
    return time.perf_counter() - t0, time.process_time() - c0


def loading_seconds(ds):
    "(wall, cpu) seconds of one shuffled pass of the loader, no model."
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in make_loader(IndexedDataset(ds), batch_size=128, shuffle=True): pass
    return time.perf_counter() - t0, time.process_time() - c0


def isolated_recorder_seconds(n, n_classes=10, batch_size=128, repeats=5):
    "Median CPU seconds of `update` over one epoch of random logits in shuffled batches, plus `end_epoch`."
    logits, y = torch.randn(n, n_classes), torch.randint(0, n_classes, (n,))
    rec, times = DynamicsRecorder(n, n_classes), []
    for _ in range(repeats):
        c0 = time.process_time()
        for b in torch.randperm(n).split(batch_size): rec.update(b, logits[b], y[b])
        rec.end_epoch()
        times.append(time.process_time() - c0)
    return statistics.median(times)


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
        if r % 2: with_, without = epoch_seconds(sub, True, r), epoch_seconds(sub, False, r)
        else: without, with_ = epoch_seconds(sub, False, r), epoch_seconds(sub, True, r)
        pairs.append((without, with_))
        print(f"pair {r}: wall {without[0]:.2f}s -> {with_[0]:.2f}s ({with_[0] / without[0]:.3f}x)  "
              f"cpu {without[1]:.2f}s -> {with_[1]:.2f}s ({with_[1] / without[1]:.3f}x)", flush=True)
    med = statistics.median
    res = dict(n=args.n, repeats=args.repeats,
               wall_ratio_median=med(w[0] / wo[0] for wo, w in pairs), cpu_ratio_median=med(w[1] / wo[1] for wo, w in pairs),
               wall_ratios=[w[0] / wo[0] for wo, w in pairs], cpu_ratios=[w[1] / wo[1] for wo, w in pairs],
               wall_seconds_without_median=med(p[0][0] for p in pairs), wall_seconds_with_median=med(p[1][0] for p in pairs))
    print(f"recorder overhead, median of {args.repeats} interleaved pairs (n={args.n}): "
          f"wall {res['wall_ratio_median']:.3f}x, cpu {res['cpu_ratio_median']:.3f}x")
    res["isolated_recorder_cpu_seconds"] = isolated_recorder_seconds(len(sub))
    res["isolated_share_of_epoch_cpu"] = res["isolated_recorder_cpu_seconds"] / med(p[0][1] for p in pairs)
    print(f"the recorder alone (update on an epoch's batches + end_epoch): {res['isolated_recorder_cpu_seconds']:.3f}s cpu = "
          f"{100 * res['isolated_share_of_epoch_cpu']:.2f}% of an epoch without it")
    if args.full:
        epochs = [epoch_seconds(fm, True, r) for r in range(3)]
        loads = [loading_seconds(fm) for _ in range(3)]
        res.update(full_epoch_wall_median=med(e[0] for e in epochs), full_epoch_cpu_median=med(e[1] for e in epochs),
                   full_loading_wall_median=med(l[0] for l in loads), full_loading_cpu_median=med(l[1] for l in loads))
        res["full_loading_share_cpu"] = res["full_loading_cpu_median"] / res["full_epoch_cpu_median"]
        print(f"full 60k epoch with recorder: wall {res['full_epoch_wall_median']:.1f}s, cpu {res['full_epoch_cpu_median']:.1f}s (median of 3); "
              f"serving the data alone: wall {res['full_loading_wall_median']:.2f}s, cpu {res['full_loading_cpu_median']:.2f}s "
              f"= {100 * res['full_loading_share_cpu']:.1f}% of the epoch's cpu time")
    res.update(machine=f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}", date=str(date.today()))
    out = Path(__file__).with_name("results.json")
    results = json.loads(out.read_text()) if out.exists() else {}
    results["recorder_overhead"] = res
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
