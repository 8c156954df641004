"Tests of scoreextrap.knn against independent brute-force numpy computations."
import numpy as np, pytest, torch
from hypothesis import given, settings, strategies as st
from scoreextrap.knn import KNNExtrapolator, build_index, search, neighbour_weights
from scoreextrap.extrapolate import extrapolate

def brute(emb, sub, scores, k, weighting, metric="l2", temperature=1.0):
    e = np.asarray(emb, np.float64)
    if metric == "cosine": e = e / np.linalg.norm(e, axis=1, keepdims=True)
    out = np.empty(len(e)); out[sub] = scores
    rest = np.setdiff1d(np.arange(len(e)), sub)
    if metric == "l2": d = np.sqrt(((e[rest, None, :] - e[None, sub, :]) ** 2).sum(-1))
    else: d = 1 - e[rest] @ e[sub].T
    nn = np.argsort(d, 1, kind="stable")[:, :k]
    dn = np.take_along_axis(d, nn, 1)
    w = np.ones_like(dn) if weighting == "mean" else np.exp(-(dn - dn.min(1, keepdims=True)) / temperature)
    out[rest] = (w * scores[nn]).sum(1) / w.sum(1)
    return out

@settings(max_examples=40, deadline=None)
@given(st.integers(20, 200), st.integers(2, 12), st.floats(0.05, 0.9), st.integers(1, 10),
       st.sampled_from(["mean", "softmax"]), st.sampled_from(["l2", "cosine"]), st.integers(0, 1000))
def test_exact_matches_brute_force(n, d, frac, k, weighting, metric, seed):
    # d >= 2: in 1-d, cosine neighbours are all exact ties (every vector is +-1)
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, d)).astype(np.float32)
    m = max(k, int(frac * n))
    sub = rng.choice(n, m, replace=False); sc = rng.random(m)
    got = extrapolate(emb, sub, sc, k=k, weighting=weighting, metric=metric, temperature=0.5)
    exp = brute(emb, sub, sc, k, weighting, metric, temperature=0.5)
    assert got.dtype == np.float64 and got.shape == (n,)
    np.testing.assert_array_equal(got[sub], sc)
    # float32 search may swap near-tied k-th neighbours; nearly all samples must agree exactly
    close = np.isclose(got, exp, atol=1e-5)
    assert close.mean() >= 0.97, close.mean()

def test_softmax_no_underflow():
    rng = np.random.default_rng(0)
    emb = (rng.standard_normal((200, 16)) * 1000).astype(np.float32)  # distances in the thousands
    sub = np.arange(50); sc = rng.random(50)
    out = extrapolate(emb, sub, sc, k=5, weighting="softmax")
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, brute(emb, sub, sc, 5, "softmax"), atol=1e-4)  # float32 distances ~1e3

def test_weights_rows_sum_to_one():
    d = np.random.default_rng(0).random((10, 7)) * 50
    for w in ("mean", "softmax"): np.testing.assert_allclose(neighbour_weights(d, weighting=w).sum(1), 1)

@pytest.mark.parametrize("index,opts", [("ivf", dict(nlist=16, nprobe=16)), ("hnsw", dict(ef_search=256))])
def test_approximate_indexes_close_to_exact(index, opts):
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((3000, 32)).astype(np.float32)
    sub = rng.choice(3000, 600, replace=False); sc = rng.random(600)
    exact = extrapolate(emb, sub, sc, k=10)
    approx = extrapolate(emb, sub, sc, k=10, index=index, **opts)
    assert np.corrcoef(exact, approx)[0, 1] > 0.99

def test_extrapolator_fit_predict_equals_extrapolate():
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((500, 8)).astype(np.float32)
    sub = rng.choice(500, 100, replace=False); sc = rng.random(100)
    ext = KNNExtrapolator(k=4).fit(emb[sub], sc)
    rest = np.setdiff1d(np.arange(500), sub)
    np.testing.assert_allclose(ext.predict(emb[rest]), extrapolate(emb, sub, sc, k=4)[rest])
    D, I = ext.kneighbors(emb[sub][:5])
    np.testing.assert_array_equal(I[:, 0], np.arange(5)); np.testing.assert_allclose(D[:, 0], 0, atol=1e-3)

def test_full_subset_and_bad_inputs():
    emb = np.random.default_rng(0).standard_normal((10, 3))
    np.testing.assert_array_equal(extrapolate(emb, np.arange(10), np.arange(10.0), k=2), np.arange(10.0))
    with pytest.raises(ValueError, match="k=11 is larger than the subset"): extrapolate(emb, np.arange(10), np.zeros(10), k=11)
    with pytest.raises(ValueError, match="subset_idx is empty"): extrapolate(emb, [], [])
    with pytest.raises(ValueError, match="must lie in"): extrapolate(emb, [10], [1.0], k=1)
    with pytest.raises(ValueError, match="duplicate"): extrapolate(emb, [1, 1], [1.0, 2.0], k=1)
    with pytest.raises(ValueError, match="2-D"): extrapolate(emb[0], [0], [1.0], k=1)
    with pytest.raises(ValueError, match="unknown metric 'l1'"): extrapolate(emb, [0, 1], [1.0, 2.0], k=1, metric="l1")
    with pytest.raises(ValueError, match="call fit"): KNNExtrapolator().predict(emb)
    with pytest.raises(ValueError, match="dim"): search(build_index(emb), emb[:, :2], 1)

def _recall(I, I_true): return np.mean([len(set(a) & set(b)) / I.shape[1] for a, b in zip(I, I_true)])

@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_torch_index_matches_brute_force(metric):
    rng = np.random.default_rng(4)
    db, q = rng.standard_normal((1500, 24)).astype(np.float32), rng.standard_normal((300, 24)).astype(np.float32)
    D, I = search(build_index(db, metric=metric, index="torch", device="cpu", query_block=64), q, 10)
    e, f = db.astype(np.float64), q.astype(np.float64)
    if metric == "l2": d = np.sqrt(((f[:, None, :] - e[None, :, :]) ** 2).sum(-1))
    else: d = 1 - (f / np.linalg.norm(f, axis=1, keepdims=True)) @ (e / np.linalg.norm(e, axis=1, keepdims=True)).T
    I_bf = np.argsort(d, 1, kind="stable")[:, :10]
    # float32 |q|^2 - 2 q.x + |x|^2 can swap a near-tied 10th neighbour; distances agree to float32 rounding of ~25
    assert (I == I_bf).all(1).mean() >= 0.99
    np.testing.assert_allclose(D, np.sort(d, 1)[:, :10], atol=1e-3)

def test_torch_extrapolation_equals_faiss_flat():
    rng = np.random.default_rng(5)
    emb = rng.standard_normal((2000, 16)).astype(np.float32)
    sub = rng.choice(2000, 400, replace=False); sc = rng.random(400)
    a = extrapolate(emb, sub, sc, k=8, index="torch", device="cpu")
    b = extrapolate(emb, sub, sc, k=8)
    assert np.isclose(a, b, atol=1e-9).mean() >= 0.995  # both exact: only float32 ties may differ

def test_ivf_query_order_changes_no_result():
    rng = np.random.default_rng(6)
    db, q = rng.standard_normal((3000, 32)).astype(np.float32), rng.standard_normal((500, 32)).astype(np.float32)
    ix = build_index(db, index="ivf", nlist=32, nprobe=4)
    D, I = search(ix, q, 7, batch_size=100)  # sorts each block of 100 queries by cell
    D0, I0 = ix.search(q, 7)  # faiss, in the given order
    np.testing.assert_array_equal(I, I0); np.testing.assert_allclose(D, np.sqrt(np.maximum(D0, 0)))

def test_pca_rerank_close_to_exact_on_low_dimensional_data():
    # 512-d vectors that vary in 8 directions (+ small noise), like trained features: PCA to 32 loses next to nothing
    rng = np.random.default_rng(7)
    emb = (rng.standard_normal((6000, 8)) @ rng.standard_normal((8, 512)) + 0.05 * rng.standard_normal((6000, 512))).astype(np.float32)
    sub = rng.choice(6000, 1500, replace=False); sc = rng.random(1500)
    rest = np.setdiff1d(np.arange(6000), sub)
    exact = KNNExtrapolator(k=10).fit(emb[sub], sc)
    fast = KNNExtrapolator(k=10, index="ivf", nlist=16, nprobe=16, pca_dim=32, rerank=2).fit(emb[sub], sc)
    # every cell scanned: PCA is the only approximation and re-ranking makes the kept neighbours' distances exact;
    # the dropped 480 directions carry only the 0.05 noise, so at most a few near-tied 10th neighbours may differ
    assert _recall(fast.kneighbors(emb[rest])[1], exact.kneighbors(emb[rest])[1]) >= 0.98
    D_fast, I_fast = fast.kneighbors(emb[rest[:50]])
    d_true = np.linalg.norm(emb[sub][I_fast].astype(np.float64) - emb[rest[:50], None, :], axis=2)
    np.testing.assert_allclose(D_fast, d_true, rtol=1e-4)  # re-ranked distances are exact 512-d distances
    assert np.corrcoef(fast.predict(emb[rest]), exact.predict(emb[rest]))[0, 1] > 0.99

def test_new_index_options_are_checked():
    emb = np.random.default_rng(0).standard_normal((100, 8)).astype(np.float32)
    with pytest.raises(ValueError, match="pca_dim must be in \\[1, 8\\]"): build_index(emb, index="ivf", pca_dim=9)
    with pytest.raises(ValueError, match="pca_dim needs metric='l2'"): build_index(emb, index="ivf", metric="cosine", pca_dim=4)
    with pytest.raises(ValueError, match="rerank must be an int >= 1"): build_index(emb, index="ivf", rerank=0)
    with pytest.raises(ValueError, match="unknown option\\(s\\) \\['pca_dim'\\] for index='torch'"): build_index(emb, index="torch", pca_dim=4)
    with pytest.raises(ValueError, match="device must be a torch device"): KNNExtrapolator(index="torch", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="torch sees no CUDA GPU"): build_index(emb, index="torch", device="cuda")
