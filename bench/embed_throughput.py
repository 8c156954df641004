"""Embedding throughput (images/s) of `models.embed`: before (torch.no_grad, the earlier embed) and after
(torch.inference_mode, the current embed), side by side in one run, over batch sizes; medians of alternated repeats.

Models: SmallCNN on Fashion-MNIST (the first 10 000 training images) and resnet18_cifar on 32 px synthetic 3-channel
images (random weights: throughput does not depend on them). CPU, float32. Threads: 1, and also 2 when the machine
is idle at the start (1-minute load average below 0.5); the log says which ran.

Usage (repo root):
    OMP_NUM_THREADS=1 python bench/embed_throughput.py | tee bench/embed_throughput.log
    python bench/embed_throughput.py --quick    # tiny sizes, writes nothing
Writes the `embed_throughput` block of bench/results.json (full run only).
"""
import argparse, json, os, platform, time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from torch import nn

from scoreextrap.data import load_dataset
from scoreextrap.models import SmallCNN, embed, eval_batches, resnet18_cifar


@torch.no_grad()
def embed_no_grad(model, dataset, *, batch_size):
    "The earlier `embed`: the same loop and hook under torch.no_grad() instead of torch.inference_mode()."
    layer = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    out, captured = None, []
    hook = layer.register_forward_hook(lambda mod, inp, res: captured.append(inp[0].flatten(1)))
    try:
        with eval_batches(model, dataset, batch_size=batch_size) as batches:
            for x, _, idx in batches:
                captured.clear(); model(x)
                feats = captured[0].float().cpu().numpy()
                if out is None: out = np.empty((len(dataset), feats.shape[1]), dtype=np.float32)
                out[idx] = feats
    finally: hook.remove()
    return out


MODES = {"no_grad (before)": embed_no_grad, "inference_mode (after)": lambda m, ds, batch_size: embed(m, ds, batch_size=batch_size)}


def measure(model, ds, batch_sizes, repeats):
    "images/s per (mode, batch size): medians of `repeats` runs, the two modes alternating which goes first."
    rates = {(mode, bs): [] for mode in MODES for bs in batch_sizes}
    ref = embed_no_grad(model, ds, batch_size=batch_sizes[0])  # also a warm-up
    for bs in batch_sizes:
        for r in range(repeats):
            for mode in (list(MODES) if r % 2 == 0 else list(MODES)[::-1]):
                t0 = time.perf_counter(); out = MODES[mode](model, ds, batch_size=bs); dt = time.perf_counter() - t0
                assert np.array_equal(out, ref), "embeddings differ between modes or batch sizes"
                rates[(mode, bs)].append(len(ds) / dt)
    return {key: (float(np.median(v)), [round(x, 1) for x in v]) for key, v in rates.items()}


def report(name, res, batch_sizes, threads):
    print(f"\n{name}, {threads} thread(s): images/s, median of the repeats (all runs)")
    for bs in batch_sizes:
        before, after = res[("no_grad (before)", bs)], res[("inference_mode (after)", bs)]
        print(f"  batch {bs:5d}: no_grad {before[0]:8.1f}  inference_mode {after[0]:8.1f}  ratio {after[0] / before[0]:.3f}   "
              f"runs {before[1]} / {after[1]}", flush=True)
    return {f"batch_{bs}": {"no_grad": res[("no_grad (before)", bs)][0], "inference_mode": res[("inference_mode (after)", bs)][0],
                            "ratio": res[("inference_mode (after)", bs)][0] / res[("no_grad (before)", bs)][0]} for bs in batch_sizes}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    load0 = os.getloadavg()
    thread_counts = [1, 2] if load0[0] < 0.5 and os.cpu_count() >= 2 else [1]
    print(f"host: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; load average at start "
          f"{load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f}; thread counts measured: {thread_counts}"
          + ("" if len(thread_counts) > 1 else " (2 threads skipped: the machine is not idle)"), flush=True)
    n_small, n_res, repeats = (1000, 64, 3) if a.quick else (10_000, 1024, 3)
    fm = load_dataset("fashion_mnist").subset(np.arange(n_small))
    syn = load_dataset("synthetic", n=n_res, img_size=32, channels=3)
    torch.manual_seed(0)
    cnn, res18 = SmallCNN().eval(), resnet18_cifar().eval()
    out = {}
    for threads in thread_counts:
        torch.set_num_threads(threads)
        bs_small = [128, 256, 512, 1024]
        bs_res = [32, 64] if a.quick else [128, 1024]
        out[f"smallcnn_fashion_mnist_{threads}t"] = report(f"SmallCNN, Fashion-MNIST, {n_small:,} images", measure(cnn, fm, bs_small, repeats), bs_small, threads)
        out[f"resnet18_cifar_32px_{threads}t"] = report(f"resnet18_cifar, 32 px synthetic, {n_res:,} images", measure(res18, syn, bs_res, repeats), bs_res, threads)
    load1 = os.getloadavg()
    print(f"\nload average at end {load1[0]:.1f} / {load1[1]:.1f} / {load1[2]:.1f}")
    if not a.quick:
        path = Path(__file__).with_name("results.json")
        results = json.loads(path.read_text()) if path.exists() else {}
        results["embed_throughput"] = dict(
            unit="images per second (median of 3 alternated runs)", before="torch.no_grad (earlier embed)", after="torch.inference_mode (embed)",
            images={"smallcnn": n_small, "resnet18_cifar": n_res}, results=out, threads=thread_counts, device="cpu, float32",
            machine=f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
            load_average_start=list(load0), load_average_end=list(load1), date=str(date.today()), log="bench/embed_throughput.log")
        path.write_text(json.dumps(results, indent=2) + "\n")
