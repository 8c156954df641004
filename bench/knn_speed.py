"""kNN score extrapolation: faiss vs brute force, and approximate indexes at 1M scale.

Part A: `scoreextrap.extrapolate.extrapolate` with kNN (faiss exact `IndexFlatL2`) against a brute-force torch version
(`torch.cdist` + `topk` in query blocks, the method of the reference code) on the same data: identical
neighbours/scores and the time ratio, runs alternated side by side, medians of several runs.
Part B: 1M synthetic clustered 512-d embeddings, a 100k scored subset: IVF and HNSW time, and Spearman /
recall of their extrapolated scores against exact search (exact is run on a random sample of the queries;
its full time is extrapolated from that sample and reported as such).

Usage (from the repo root; prints everything, keep it as bench/knn_speed.log):
    nice -n 5 .venv/bin/python bench/knn_speed.py | tee bench/knn_speed.log
Part A's ratios are merged into bench/results.json under "knn_speedup" (full sizes only).
Wall times depend on other jobs on the machine; CPU seconds (all threads, time.process_time) are printed beside them.
    .venv/bin/python bench/knn_speed.py --quick      # small sizes, a smoke test
"""
import argparse, gc, json, os, platform, time
from datetime import date
from pathlib import Path

import numpy as np
import torch
import faiss
from scipy import stats

from scoreextrap.knn import build_index, search
from scoreextrap.extrapolate import extrapolate


def brute_extrapolate(emb, sub, scores, k, weighting="mean", block=4096):
    "Reference-style brute force: torch.cdist over all subset samples, topk, then mean / softmax(-d) weights."
    x = torch.from_numpy(emb)
    xs = x[torch.from_numpy(sub)]
    s = torch.from_numpy(np.asarray(scores, np.float64))
    out = np.empty(len(emb)); out[sub] = scores
    rest = np.setdiff1d(np.arange(len(emb)), sub)
    nn_all = np.empty((len(rest), k), np.int64)
    for c in range(0, len(rest), block):
        b = torch.from_numpy(rest[c:c + block])
        d = torch.cdist(x[b], xs)  # [block, m] true L2
        dist, nn = d.topk(k, dim=1, largest=False)
        if weighting == "mean": w = torch.full(dist.shape, 1.0 / k, dtype=torch.float64)
        else: w = torch.softmax(-dist.double(), dim=1)
        out[rest[c:c + block]] = (w * s[nn]).sum(1).numpy()
        nn_all[c:c + len(b)] = nn.numpy()
    return out, nn_all


CPU = {}  # CPU seconds (all threads) of the last `timed` call: unlike wall time, barely affected by other jobs

def timed(f, *a, **kw):
    c0, t0 = time.process_time(), time.perf_counter(); r = f(*a, **kw)
    CPU["last"] = time.process_time() - c0
    return r, time.perf_counter() - t0


def part_a(n, d, m, k, repeats, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((10, d)).astype(np.float32) * 2
    emb = centres[rng.integers(0, 10, n)] + rng.standard_normal((n, d), dtype=np.float32)
    sub = np.sort(rng.choice(n, m, replace=False))
    sc = rng.random(m)
    rest = np.setdiff1d(np.arange(n), sub)
    print(f"\n== Part A: exact kNN extrapolation, N={n:,}, d={d}, subset m={m:,}, k={k} ==")
    out = dict(n=n, d=d, m=m, k=k, repeats=repeats)
    for weighting in ("mean", "softmax"):
        tf, tb, ratios, cf, cb = [], [], [], [], []
        for r in range(repeats):
            order = (0, 1) if r % 2 == 0 else (1, 0)  # alternate which runs first
            res = {}
            for o in order:
                if o == 0: res["faiss"], t = timed(extrapolate, emb, sub, sc, k=k, weighting=weighting); tf.append(t); cf.append(CPU["last"])
                else: res["brute"], t = timed(brute_extrapolate, emb, sub, sc, k, weighting); tb.append(t); cb.append(CPU["last"])
            ratios.append(tb[-1] / tf[-1])
        pf, (pb, nnb) = res["faiss"], res["brute"]
        _, nnf = search(build_index(emb[sub]), emb[rest], k)
        diff = np.flatnonzero([set(a) != set(b) for a, b in zip(nnf, nnb)])
        same_rows = 1 - len(diff) / len(rest)
        # where the sets differ, compare the float64 distances of the two sets: equal up to float32 rounding = a tie
        q = emb[rest[diff]].astype(np.float64); db = emb[sub].astype(np.float64)
        gap = max([np.abs(np.sort(np.linalg.norm(db[nnf[i]] - q[j], axis=1)) - np.sort(np.linalg.norm(db[nnb[i]] - q[j], axis=1))).max()
                   for j, i in enumerate(diff)], default=0.0)
        print(f"[{weighting:7s}] faiss flat  median {np.median(tf):7.3f}s  runs {np.round(tf, 3).tolist()}")
        print(f"[{weighting:7s}] cdist+topk  median {np.median(tb):7.3f}s  runs {np.round(tb, 3).tolist()}")
        print(f"[{weighting:7s}] time ratio brute/faiss: median {np.median(ratios):.2f}x wall (per-pair {np.round(ratios, 2).tolist()}); "
              f"CPU seconds median faiss {np.median(cf):.2f} / brute {np.median(cb):.2f} = {np.median(cb) / np.median(cf):.2f}x")
        print(f"[{weighting:7s}] identical neighbour sets: {same_rows:.5f} of {len(rest):,} queries; "
              f"max |score diff| {np.abs(pf - pb).max():.2e}; scores allclose(1e-6): {np.allclose(pf, pb, atol=1e-6)}; "
              f"rows that differ: max float64 distance gap between the two neighbour lists {gap:.1e} (float32 ties)")
        out[weighting] = dict(wall_ratio_median=float(np.median(ratios)), wall_ratios=[float(x) for x in ratios],
                              cpu_ratio=float(np.median(cb) / np.median(cf)), identical_neighbour_rows=float(same_rows))
    return out


def make_clustered(n, d=512, n_clusters=1000, latent=8, seed=0, block=100_000):
    "Clustered embeddings on a low-dimensional manifold + a score that is a smooth function of position."
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, d)).astype(np.float32) * 0.5
    A = (rng.standard_normal((d, latent)) / np.sqrt(latent)).astype(np.float32) * 2
    base = rng.random(n_clusters)
    lab = rng.integers(0, n_clusters, n)
    X = np.empty((n, d), np.float32); score = np.empty(n)
    for s in range(0, n, block):
        e = min(n, s + block); z = rng.standard_normal((e - s, latent)).astype(np.float32)
        X[s:e] = centres[lab[s:e]] + z @ A.T + 0.1 * rng.standard_normal((e - s, d), dtype=np.float32)
        score[s:e] = base[lab[s:e]] + 0.3 * np.sin(2 * z[:, 0]) + 0.2 * z[:, 1] + 0.02 * rng.standard_normal(e - s)
    return X, score


def part_b(n, m, k, n_check, configs, seed=0):
    print(f"\n== Part B: N={n:,} synthetic clustered 512-d embeddings, subset m={m:,}, k={k} ==")
    (X, score), t = timed(make_clustered, n, seed=seed)
    print(f"generated {X.nbytes / 2**30:.2f} GiB in {t:.1f}s")
    rng = np.random.default_rng(seed + 1)
    sub = np.sort(rng.choice(n, m, replace=False))
    rest = np.setdiff1d(np.arange(n), sub)
    check = np.sort(rng.choice(rest, n_check, replace=False))
    ix, t_build = timed(build_index, X[sub])
    (D, I_exact), t_search = timed(search, ix, X[check], k)
    exact = score[sub][I_exact].mean(1)
    est = t_build + t_search * len(rest) / n_check
    print(f"exact (flat) on {n_check:,} sampled queries: {t_build + t_search:.1f}s wall ({CPU['last']:.1f} CPU-s for the search) "
          f"-> full {len(rest):,} queries est. {est:.0f}s wall")
    del ix; gc.collect()
    for name, index, opts in configs:
        pred, t = timed(extrapolate, X, sub, score[sub], k=k, index=index, **opts)
        ix = build_index(X[sub], index=index, **opts)
        _, I = search(ix, X[check], k); del ix
        recall = np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(I, I_exact)])
        rho = stats.spearmanr(pred[check], exact).statistic
        rho_true = stats.spearmanr(pred[rest], score[rest]).statistic
        print(f"{name:28s} total {t:6.1f}s wall, {CPU['last']:6.1f} CPU-s  Spearman vs exact {rho:.4f}  recall@{k} {recall:.3f}  "
              f"(Spearman vs the true synthetic score on all {len(rest):,}: {rho_true:.4f})")
        gc.collect()
    print(f"exact-kNN Spearman vs the true synthetic score on the {n_check:,} sampled queries: "
          f"{stats.spearmanr(exact, score[check]).statistic:.4f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-b", action="store_true")
    ap.add_argument("--large", action="store_true", help="also Part A at N=200k, d=512 (slow on 2 cores)")
    a = ap.parse_args()
    print(f"host: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), faiss {faiss.__version__} ({faiss.omp_get_max_threads()} threads), "
          f"load avg at start {os.getloadavg()[0]:.1f}")
    if a.quick:
        part_a(5_000, 32, 500, 20, 3)
        if not a.skip_b: part_b(50_000, 5_000, 20, 2_000, [("ivf (defaults)", "ivf", {}), ("hnsw (defaults)", "hnsw", {})])
    else:
        res = part_a(60_000, 128, 6_000, 20, a.repeats)    # Fashion-MNIST-sized: SmallCNN features, 10% subset
        res.update(median=res["mean"]["wall_ratio_median"], baseline="torch.cdist + topk (exact, blocks of 4096 queries)",
                   machine=f"{platform.machine()}, {os.cpu_count()} cores, faiss {faiss.__version__}, load average {os.getloadavg()[0]:.1f}",
                   date=str(date.today()))
        out = Path(__file__).with_name("results.json")
        results = json.loads(out.read_text()) if out.exists() else {}
        results["knn_speedup"] = res
        out.write_text(json.dumps(results, indent=2) + "\n")
        if a.large: part_a(200_000, 512, 20_000, 20, 3)  # larger, ResNet-sized features
        if not a.skip_b:
            part_b(1_000_000, 100_000, 20, 10_000, [
                ("ivf (defaults)", "ivf", {}),
                ("ivf nprobe=4", "ivf", dict(nprobe=4)),
                ("hnsw M=16 efC=40 efS=64", "hnsw", dict(M=16, ef_construction=40, ef_search=64)),
            ])
    print(f"load avg at end {os.getloadavg()[0]:.1f}")
