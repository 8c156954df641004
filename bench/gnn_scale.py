"""The GNN extrapolator at N = 1e4, 1e5 and 1e6 nodes: kNN graph, one training epoch in mini-batches of sampled
neighbourhoods, and the full-graph inference that follows it, with seconds and peak-RSS growth per stage.

Synthetic clustered embeddings (d = DIM) with scores that vary with the cluster; SUBSET of the nodes are scored.
The graph over all N nodes is built once with an IVF index (`knn_graph(index="ivf")`, the library's IVF defaults:
an exact graph is N^2 d flops) and passed to `GNNExtrapolator(graph=...)`; training runs `epochs=1` with
`batch_size=BATCH` (neighbourhoods sampled with "fanin", `fanout` neighbours per hop: the default GCN has 3 layers,
so a scored node's sampled neighbourhood holds up to fanout^3 nodes) and validation off, so the "epoch" stage is one pass over the scored nodes plus one eval-mode
forward pass over the whole graph, which is what `predict` returns. Each N runs in its own child process.

Usage (one thread; keep the output as bench/gnn_scale.log):
    OMP_NUM_THREADS=1 .venv/bin/python bench/gnn_scale.py | tee bench/gnn_scale.log     (--quick: 1e3, 1e4)
Merged into bench/results.json under "gnn_scale".
"""
import argparse, json, os, platform, subprocess, sys
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from scale import exponent, measured  # noqa: E402

DIM, K, SUBSET, BATCH = 64, 10, 0.1, 1024
HERE = Path(__file__).parent


def child(n: int, fanout: int) -> dict:
    import torch
    from scoreextrap.gnn import GNNExtrapolator, knn_graph
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((100, DIM)).astype(np.float32) * 2
    cluster = rng.integers(0, 100, n)
    emb = centres[cluster] + rng.standard_normal((n, DIM), dtype=np.float32)
    scores = cluster / 100 + 0.1 * rng.standard_normal(n)
    m = int(SUBSET * n)  # the first m nodes are the scored ones (the order GNNExtrapolator expects: fitted, then queries)
    graph = {}
    warm = emb[:2000]
    GNNExtrapolator(k=K, epochs=1, batch_size=BATCH, val_frac=0.0, device="cpu").fit(warm[:200], scores[:200]).predict(warm[200:])  # warm-up
    res = dict(graph=measured(lambda: graph.update(g=knn_graph(emb, k=K, index="ivf"))))
    ext = GNNExtrapolator(k=K, epochs=1, batch_size=BATCH, fanout=fanout, sampler="fanin", val_frac=0.0, graph=graph["g"], device="cpu").fit(emb[:m], scores[:m])
    res["epoch"] = measured(lambda: ext.predict(emb[m:]))
    res["edges"] = int(graph["g"][0].shape[1])
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true"); ap.add_argument("--child", type=int); ap.add_argument("--fanout", type=int)
    a = ap.parse_args()
    if a.child: print(json.dumps(child(a.child, a.fanout))); return
    runs = [(1_000, K), (10_000, K), (10_000, 3)] if a.quick else [(10_000, K), (100_000, K), (10_000, 3), (100_000, 3), (1_000_000, 3)]
    print(f"GNN scale: d={DIM}, k={K}, {SUBSET:.0%} scored, batches of {BATCH} scored nodes, default GCN (hidden 512, 256); "
          f"one thread; load average at start {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for n, fanout in runs:
        out = subprocess.run([sys.executable, __file__, "--child", str(n), "--fanout", str(fanout)], capture_output=True, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
        if out.returncode:
            print(f"N={n:,}, fanout {fanout}: the child failed (rc {out.returncode}): {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ''}", flush=True)
            rows.append(dict(n=n, fanout=fanout, failed=out.returncode)); continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(dict(n=n, fanout=fanout, **r))
        print(f"N={n:>9,}, fanout {fanout:2d}: graph {r['graph']['cpu_s']:.1f} CPU-s ({r['graph']['wall_s']:.1f} wall), +{r['graph']['rss_growth_mb']:.0f} MB; "
              f"epoch + full-graph inference {r['epoch']['cpu_s']:.1f} CPU-s ({r['epoch']['wall_s']:.1f} wall), +{r['epoch']['rss_growth_mb']:.0f} MB, "
              f"peak RSS {r['epoch']['peak_rss_mb']:.0f} MB", flush=True)
    fits = {}
    for fanout in sorted({f for _, f in runs}):
        ok = [r for r in rows if "failed" not in r and r["fanout"] == fanout]
        if len(ok) > 1: fits.update({f"{s}, fanout {fanout}": dict(seconds_exponent=exponent([r["n"] for r in ok], [r[s]["cpu_s"] for r in ok]),
                                     memory_exponent=exponent([r["n"] for r in ok], [max(r[s]["rss_growth_mb"], 0.1) for r in ok])) for s in ("graph", "epoch")})
    for s, v in fits.items(): print(f"growth exponent, {s}: seconds {v['seconds_exponent']:.2f}, memory {v['memory_exponent']:.2f}")
    print(f"load average at end {os.getloadavg()[0]:.1f}")
    if a.quick: return
    import torch
    out = HERE / "results.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results["gnn_scale"] = dict(rows=rows, exponents=fits, dim=DIM, k=K, subset_frac=SUBSET, batch=BATCH,
                                machine=f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread, load average {os.getloadavg()[0]:.1f}",
                                date=str(date.today()))
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
