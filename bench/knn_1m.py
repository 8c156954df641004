"""A million samples extrapolated: 900k queries against a 100k scored subset, d = 512, k = 20, plain mean.

For each search method: seconds (wall and CPU) end to end (index build + search + weighting), the Spearman
correlation of its extrapolated scores with those of exact search, and its recall@k against the exact neighbours.
Exact search over all 900k queries is 9.2e13 flops, so exact (faiss flat, and torch on the CPU) runs on a random
sample of the queries; that sample is the ground truth of every comparison, and the full exact time is extrapolated
from it (printed as "est."). Methods too slow to run in full are timed the same way on a larger query sample:
their build time is measured, their search time scaled by 900k / sample size, and they are marked "est.".

Data: (1) `make_clustered` from bench/knn_speed.py (1 000 clusters on an 8-dimensional linear manifold plus small
isotropic noise; the data of the earlier 1M measurement); (2) `make_relu_features` below: a 32-dimensional latent
with a decaying spectrum (class + sub-cluster centres), through a random linear layer and a ReLU into 512
non-negative dimensions, as a network's penultimate features are; the score is a smooth function of the latent.

Usage (repo root; one thread unless the machine is idle):
    OMP_NUM_THREADS=1 python bench/knn_1m.py | tee bench/knn_1m.log
    python bench/knn_1m.py --quick      # 10x smaller smoke test, writes nothing
Writes the `knn_1m` block of bench/results.json (full run only).
"""
import argparse, contextlib, gc, io, json, os, platform, time
from datetime import date
from pathlib import Path

import numpy as np
import faiss
import torch
from faiss.contrib.big_batch_search import big_batch_search
from scipy import stats

from scoreextrap.knn import KNNExtrapolator, build_index, search
from knn_speed import make_clustered


def make_relu_features(n, d=512, n_classes=10, n_sub=100, latent=32, seed=0, block=100_000):
    "Non-negative 512-d features from a 32-d latent (decaying spectrum), a random linear map and a ReLU; a smooth score."
    rng = np.random.default_rng(seed)
    scale = (1.0 + np.arange(latent)) ** -0.5  # latent standard deviations 1, 0.71, 0.58, ... 0.18
    centres = (rng.standard_normal((n_classes, latent)) * 2 * scale)[:, None] + rng.standard_normal((n_classes, n_sub, latent)) * scale
    centres = centres.reshape(-1, latent).astype(np.float32)
    W = (rng.standard_normal((latent, d)) / np.sqrt(latent)).astype(np.float32)
    lab = rng.integers(0, n_classes * n_sub, n)
    X = np.empty((n, d), np.float32); score = np.empty(n)
    for s in range(0, n, block):
        e = min(n, s + block)
        z = centres[lab[s:e]] + (rng.standard_normal((e - s, latent)) * scale).astype(np.float32)
        X[s:e] = np.maximum(z @ W + 0.1, 0) + 0.02 * rng.standard_normal((e - s, d), dtype=np.float32)
        score[s:e] = np.sin(2 * z[:, 0]) + 0.5 * z[:, 1] + 0.3 * np.cos(3 * z[:, 2]) + 0.05 * rng.standard_normal(e - s)
    return X, score


def clock(f, *a, **kw):
    "(result, wall seconds, CPU seconds of all threads)."
    c0, t0 = time.process_time(), time.perf_counter()
    r = f(*a, **kw)
    return r, time.perf_counter() - t0, time.process_time() - c0


def recall_at_k(I, I_exact):
    return float(np.mean((I[:, :, None] == I_exact[:, None, :]).any(2)))


class Bench:
    def __init__(self, X, score, m, k, n_check, seed=0):
        self.X, self.score, self.k = X, score, k
        rng = np.random.default_rng(seed + 1)
        self.sub = np.sort(rng.choice(len(X), m, replace=False))
        self.rest = np.setdiff1d(np.arange(len(X)), self.sub)
        self.check = np.sort(rng.choice(len(self.rest), n_check, replace=False))  # positions in `rest`
        self.rows = []

    def ground_truth(self):
        xb, xq = self.X[self.sub], self.X[self.rest[self.check]]
        ix, tb, cb = clock(build_index, xb)
        (_, self.I_exact), ts, cs = clock(search, ix, xq, self.k)
        self.exact = self.score[self.sub][self.I_exact].mean(1)
        self._row("exact: faiss flat", "flat", {}, tb, cb, ts, cs, len(self.check), self.I_exact)
        del ix; gc.collect()

    def _row(self, name, index, opts, tb, cb, ts, cs, n_searched, I_check, pred_check=None):
        f = len(self.rest) / n_searched
        pred = self.score[self.sub][I_check].mean(1) if pred_check is None else pred_check
        row = dict(method=name, index=index, options={key: str(v) for key, v in opts.items()},
                   estimated=n_searched < len(self.rest), queries_searched=int(n_searched),
                   seconds_wall=tb + ts * f, seconds_cpu=cb + cs * f, build_wall=tb,
                   spearman_vs_exact=float(stats.spearmanr(pred, self.exact).statistic),
                   recall_at_k=recall_at_k(I_check, self.I_exact))
        self.rows.append(row)
        est = "est." if row["estimated"] else "    "
        print(f"{name:52s} {est} {row['seconds_wall']:7.1f}s wall {row['seconds_cpu']:7.1f} CPU-s "
              f"(build {tb:5.1f}s; searched {n_searched:,} queries)  Spearman {row['spearman_vs_exact']:.4f}  "
              f"recall@{self.k} {row['recall_at_k']:.4f}", flush=True)

    def full(self, name, index, **opts):
        "End to end on all queries through KNNExtrapolator (fit = build, predict = search + mean)."
        ext, tb, cb = clock(KNNExtrapolator(k=self.k, index=index, **opts).fit, self.X[self.sub], self.score[self.sub])
        pred, ts, cs = clock(ext.predict, self.X[self.rest])
        _, I = ext.kneighbors(self.X[self.rest[self.check]])
        self._row(name, index, opts, tb, cb, ts, cs, len(self.rest), I, pred_check=pred[self.check])
        del ext, pred; gc.collect()

    def sampled(self, name, index, n_queries, build, searcher, **opts):
        "Build in full, search `n_queries` random queries (the check sample among them), scale the search time."
        ix, tb, cb = clock(build)
        rng = np.random.default_rng(7)
        others = np.setdiff1d(np.arange(len(self.rest)), self.check)
        pos = np.sort(np.r_[self.check, rng.choice(others, n_queries - len(self.check), replace=False)])
        (_, I), ts, cs = clock(searcher, ix, self.X[self.rest[pos]])
        I_check = I[np.searchsorted(pos, self.check)]
        self._row(name, index, opts, tb, cb, ts, cs, n_queries, I_check)
        del ix; gc.collect()


def natural_order_search(ix, xq, k):
    "faiss's own search of the queries in the order given (what `search` did before it sorted IVF queries by cell)."
    return ix.search(xq, k)


def run(X, score, m, k, n_check, n_sample, label, full_methods, extra=True):
    print(f"\n== {label}: {len(X) - m:,} queries vs {m:,} scored, d={X.shape[1]}, k={k} ==", flush=True)
    b = Bench(X, score, m, k, n_check)
    b.ground_truth()
    xb = X[b.sub]
    if extra:
        b.sampled("exact: torch matmul + topk (CPU)", "torch", n_check, lambda: build_index(xb, index="torch", device="cpu"),
                  lambda ix, q: search(ix, q, k), device="cpu")
        b.sampled("ivf defaults, faiss search, queries as given", "ivf", n_sample, lambda: build_index(xb, index="ivf"),
                  lambda ix, q: natural_order_search(ix, q, k))
        b.sampled("ivf defaults, queries sorted by cell (search)", "ivf", n_sample, lambda: build_index(xb, index="ivf"),
                  lambda ix, q: search(ix, q, k))

        def bbs(ix, q):
            with contextlib.redirect_stdout(io.StringIO()):  # it prints progress even at verbose=0
                return big_batch_search(ix, q, k)
        b.sampled("ivf nlist=1024 nprobe=16, faiss big_batch_search", "ivf", n_sample,
                  lambda: build_index(xb, index="ivf", nlist=1024, nprobe=16), bbs, nlist=1024, nprobe=16)

        def ivfpq():
            ivf = faiss.IndexIVFPQ(faiss.IndexFlatL2(xb.shape[1]), xb.shape[1], 1024, 64, 8)
            ivf.cp.seed = 1234; ivf.nprobe = 16
            ix = faiss.IndexRefineFlat(ivf); ix.k_factor = 2
            ix.train(xb[np.random.default_rng(1234).choice(len(xb), min(len(xb), 65_536), replace=False)]); ix.add(xb)
            return ix
        b.sampled("ivf-pq 1024 cells, 64x8-bit codes, refine 2k", "ivf-pq (faiss, not in build_index)", n_sample, ivfpq,
                  lambda ix, q: search(ix, q, k), nlist=1024, pq="64x8", nprobe=16, rerank=2)
        b.sampled("pca64 + ivf nprobe=16 + rerank 2k, queries as given", "ivf", n_sample,
                  lambda: build_index(xb, index="ivf", nlist=1024, nprobe=16, pca_dim=64, rerank=2),
                  lambda ix, q: natural_order_search(ix, q, k), nlist=1024, nprobe=16, pca_dim=64, rerank=2)
    for name, opts in full_methods:
        b.full(name, "ivf", **opts)
    return b.rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10x smaller, writes nothing")
    a = ap.parse_args()
    n, m, n_check, n_sample = (100_000, 10_000, 2_000, 20_000) if a.quick else (1_000_000, 100_000, 20_000, 100_000)
    threads = faiss.omp_get_max_threads()
    load0 = os.getloadavg()
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
               f"faiss {faiss.__version__}, torch {torch.__version__}")
    print(f"host: {machine}; faiss threads {threads}, torch threads {torch.get_num_threads()}; load average at start "
          f"{load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f} (1/5/15 min)", flush=True)
    fast = [("pca64 + ivf nlist=1024 nprobe=16 + rerank 2k", dict(nlist=1024, nprobe=16, pca_dim=64, rerank=2)),
            ("pca64 + ivf nlist=1024 nprobe=32 + rerank 2k", dict(nlist=1024, nprobe=32, pca_dim=64, rerank=2))]
    (X, score), t, _ = clock(make_clustered, n)
    print(f"data 1 generated: {X.nbytes / 2**30:.2f} GiB in {t:.1f}s", flush=True)
    rows = run(X, score, m, 20, n_check, n_sample, "data 1, clustered on an 8-d manifold (knn_speed.py)", fast)
    del X, score; gc.collect()
    (X, score), t, _ = clock(make_relu_features, n)
    print(f"\ndata 2 generated: {X.nbytes / 2**30:.2f} GiB in {t:.1f}s", flush=True)
    rows2 = run(X, score, m, 20, n_check, n_sample, "data 2, ReLU features of a 32-d latent", fast, extra=False)
    load1 = os.getloadavg()
    print(f"\nload average at end {load1[0]:.1f} / {load1[1]:.1f} / {load1[2]:.1f}; threads: faiss {threads}, torch {torch.get_num_threads()}")
    if not a.quick:
        out = Path(__file__).with_name("results.json")
        results = json.loads(out.read_text()) if out.exists() else {}
        results["knn_1m"] = dict(
            queries=n - m, database=m, dim=512, k=20, weighting="mean", exact_sample=n_check, timing_sample=n_sample,
            data={"clustered_8d": "bench/knn_speed.py make_clustered: 1000 clusters on an 8-d linear manifold + noise",
                  "relu_32d": "bench/knn_1m.py make_relu_features: 32-d latent, decaying spectrum, random linear map + ReLU"},
            methods={"clustered_8d": rows, "relu_32d": rows2},
            goal="<= 120 s end to end with Spearman >= 0.99 against exact search (stretch 60 s)",
            threads=threads, machine=machine, load_average_start=list(load0), load_average_end=list(load1),
            date=str(date.today()), log="bench/knn_1m.log")
        out.write_text(json.dumps(results, indent=2) + "\n")
