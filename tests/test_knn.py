"Tests of scoreextrap.knn against independent brute-force numpy computations."
import numpy as np, pytest
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
