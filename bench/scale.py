"""Scale curves: recording, scoring and kNN extrapolation at N = 1e4, 1e5 and 1e6 samples (synthetic logits and embeddings).

Every (stage, N, configuration) runs in a child process of its own, which reports its seconds (wall and CPU) and the
growth of its peak resident memory over what the child held before the stage began (its inputs: logits, embeddings).
The parent prints a table, fits the growth exponent b of seconds ~ N^b and memory ~ N^b per stage (least squares
on log-log), and merges the results into bench/results.json under "scale".

Stages (EPOCHS epochs of CLASSES-class logits; embeddings of DIM dimensions):
- record: a `DynamicsRecorder` fed shuffled batches of BATCH logits every epoch, two configurations side by side:
  every field in float32 in RAM (the default), and only `p_true` in float16 in memory-mapped files (the scale setting).
- score: Dynamic Uncertainty and DUAL from the memory-mapped `p_true` the record stage wrote.
- knn: scores of a SUBSET fraction extrapolated to the rest, `KNNExtrapolator(k=K, index="ivf")` (library defaults).

Usage (one thread; keep the output as bench/scale.log):
    OMP_NUM_THREADS=1 .venv/bin/python bench/scale.py | tee bench/scale.log
    OMP_NUM_THREADS=1 .venv/bin/python bench/scale.py --quick      # N = 1e3, 1e4: a smoke test, results.json untouched
"""
import argparse, json, os, platform, resource, subprocess, sys, tempfile, time
from datetime import date
from pathlib import Path

import numpy as np

EPOCHS, CLASSES, BATCH, DIM, K, SUBSET = 20, 10, 1024, 128, 20, 0.1
CONFIGS = {"all fields, float32, RAM": {}, "p_true, float16, memmap": dict(fields=("p_true",), dtype="float16", memmap=True)}
HERE = Path(__file__).parent


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def measured(work) -> dict:
    "Run `work()`; its wall and CPU seconds and the growth of this process's peak RSS (MB) while it ran."
    before, c0, t0 = peak_mb(), time.process_time(), time.perf_counter()
    work()
    return dict(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0, rss_growth_mb=peak_mb() - before, peak_rss_mb=peak_mb())


def stage_record(n: int, config: str, folder: Path) -> dict:
    import torch
    from scoreextrap.dynamics import DynamicsRecorder
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    base, drift = torch.randn(n, CLASSES, generator=g), torch.randn(n, CLASSES, generator=g)  # epoch e: base + e/EPOCHS * drift
    y = torch.randint(0, CLASSES, (n,), generator=g)
    opts = dict(CONFIGS[config])
    if opts.pop("memmap", False): opts.update(memmap_dir=folder, max_epochs=EPOCHS)
    def work(m=n, where=folder):
        rec = DynamicsRecorder(m, CLASSES, **opts | (dict(memmap_dir=where) if "memmap_dir" in opts else {}))
        for e in range(EPOCHS):
            for b in torch.randperm(m, generator=g).split(BATCH): rec.update(b, base[b] + (e / EPOCHS) * drift[b], y[b])
            rec.end_epoch()
        assert rec.dynamics.n_epochs == EPOCHS
    with tempfile.TemporaryDirectory() as warm: work(min(n, 2 * BATCH), Path(warm))  # first calls allocate torch's own buffers: not the stage's growth
    return measured(work)


def stage_score(n: int, folder: Path) -> dict:
    from scoreextrap.dynamics import Dynamics
    from scoreextrap.scores import dual, dynamic_uncertainty
    def work(m=n):
        p_true = np.load(folder / "p_true.npy", mmap_mode="r")[:, :m]  # [EPOCHS, n], as the recorder wrote it
        dyn = Dynamics(p_true=p_true.T)
        du, du_al = dynamic_uncertainty(dyn, window=10), dual(dyn, T=EPOCHS, window=10)
        assert du.shape == du_al.shape == (m,) and np.isfinite(du).all()
    work(min(n, 1000))  # warm-up
    return measured(work)


def stage_knn(n: int) -> dict:
    from scoreextrap.knn import KNNExtrapolator
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((100, DIM)).astype(np.float32) * 2
    cluster = rng.integers(0, 100, n)
    emb = centres[cluster] + rng.standard_normal((n, DIM), dtype=np.float32)
    scores = cluster / 100 + 0.1 * rng.standard_normal(n)  # scores that vary smoothly with the embedding
    sub = np.sort(rng.choice(n, int(SUBSET * n), replace=False))
    rest = np.setdiff1d(np.arange(n), sub)
    def work(s=sub, r=rest): KNNExtrapolator(k=K, index="ivf").fit(emb[s], scores[s]).predict(emb[r])
    work(sub[:200], rest[:1000])  # warm-up
    return measured(work)


def child(stage: str, n: int, config: str, folder: str) -> dict:
    import torch
    torch.set_num_threads(1)
    if stage == "record": return stage_record(n, config, Path(folder))
    if stage == "score": return stage_score(n, Path(folder))
    return stage_knn(n)


def run_child(stage: str, n: int, config: str, folder: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", stage, "--n", str(n), "--config", config, "--folder", str(folder)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def exponent(ns, values) -> float:
    return float(np.polyfit(np.log(ns), np.log(np.maximum(values, 1e-9)), 1)[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child"); ap.add_argument("--n", type=int); ap.add_argument("--config", default=""); ap.add_argument("--folder", default="")
    a = ap.parse_args()
    if a.child: print(json.dumps(child(a.child, a.n, a.config, a.folder))); return
    ns = [1_000, 10_000] if a.quick else [10_000, 100_000, 1_000_000]
    print(f"scale: {EPOCHS} epochs, {CLASSES} classes, batches of {BATCH}; kNN: d={DIM}, k={K}, subset {SUBSET:.0%}; "
          f"one thread per stage; load average at start {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for n in ns:
        with tempfile.TemporaryDirectory() as d:
            for config in CONFIGS: rows.append(dict(stage="record", config=config, n=n, **run_child("record", n, config, Path(d))))
            rows.append(dict(stage="score", config="DU + DUAL from the memmap", n=n, **run_child("score", n, "", Path(d))))
            rows.append(dict(stage="disk", config="p_true.npy", n=n, file_mb=os.path.getsize(Path(d) / "p_true.npy") / 1e6))
        rows.append(dict(stage="knn", config=f"ivf, {SUBSET:.0%} scored, the rest queried", n=n, **run_child("knn", n, "", Path("."))))
        for r in rows[-5:]: print(json.dumps(r), flush=True)
    fits = {}
    for key in dict.fromkeys((r["stage"], r["config"]) for r in rows if r["stage"] != "disk"):
        sel = [r for r in rows if (r["stage"], r["config"]) == key]
        fits[f"{key[0]}: {key[1]}"] = dict(seconds_exponent=exponent([r["n"] for r in sel], [r["cpu_s"] for r in sel]),
                                           memory_exponent=exponent([r["n"] for r in sel], [max(r["rss_growth_mb"], 0.1) for r in sel]))
    print("\nstage / configuration / N: CPU s, wall s, peak-RSS growth MB")
    for r in rows:
        if r["stage"] == "disk": print(f"  {r['stage']:7s} {r['config']:40s} {r['n']:>9,}: file {r['file_mb']:.1f} MB")
        else: print(f"  {r['stage']:7s} {r['config']:40s} {r['n']:>9,}: {r['cpu_s']:8.2f} {r['wall_s']:8.2f} {r['rss_growth_mb']:9.1f}")
    print("\ngrowth exponents b (quantity ~ N^b, least squares over the sizes; CPU seconds, RSS growth floored at 0.1 MB):")
    for k, v in fits.items(): print(f"  {k:55s} seconds {v['seconds_exponent']:.2f}   memory {v['memory_exponent']:.2f}")
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    if a.quick: return
    import torch
    res = dict(rows=rows, exponents=fits, epochs=EPOCHS, classes=CLASSES, batch=BATCH, dim=DIM, k=K, subset_frac=SUBSET,
               machine=f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread per stage, load average {os.getloadavg()[0]:.1f}",
               date=str(date.today()))
    out = HERE / "results.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results["scale"] = res
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
