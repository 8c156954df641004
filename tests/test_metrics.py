"Property tests for scoreextrap.metrics (checked against independent computations)."
import itertools
import numpy as np, pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from scoreextrap.metrics import rank_agreement, kept_overlap, extrapolation_report
from scoreextrap.sampling import select_top

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)

def _kendall_loop(a, b):
    "Kendall tau-a by counting pairs (no ties)."
    c = d = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        s = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
        c += s > 0; d += s < 0
    return (c - d) / (len(a) * (len(a) - 1) / 2)

@settings(max_examples=50, deadline=None)
@given(st.integers(3, 30), st.integers(0, 10_000))
def test_rank_agreement_matches_loops(n, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.permutation(n).astype(float), rng.permutation(n).astype(float)  # no ties
    r = rank_agreement(a, b)
    assert np.isclose(r["kendall"], _kendall_loop(a, b))
    d = a - b  # a, b are already ranks 0..n-1
    assert np.isclose(r["spearman"], 1 - 6 * (d ** 2).sum() / (n * (n ** 2 - 1)))
    assert np.isclose(r["pearson"], np.corrcoef(a, b)[0, 1])

@settings(max_examples=50, deadline=None)
@given(arrays(np.int64, st.integers(3, 50), elements=st.integers(-10_000, 10_000), unique=True))
def test_rank_agreement_invariant_to_monotone_maps(x):
    x = x.astype(float)
    r = rank_agreement(x ** 3 + 7, x)  # exact in float64 for these integers
    assert np.isclose(r["spearman"], 1) and np.isclose(r["kendall"], 1)

@settings(max_examples=100, deadline=None)
@given(st.integers(1, 80), st.integers(0, 10_000), st.floats(0.01, 1.0))
def test_kept_overlap_matches_sets(n, seed, f):
    rng = np.random.default_rng(seed)
    a, b = rng.random(n), rng.random(n)
    m = int(round(f * n))
    if m == 0:  # the sampler's rule: a keep_frac that keeps no sample is an error, not one sample
        with pytest.raises(ValueError, match="rounds to 0 kept samples"): kept_overlap(a, b, keep_fracs=f)
        return
    assert np.array_equal(select_top(a, f), np.sort(np.argsort(-a)[:m]))  # the set compared is exactly what pruning keeps
    A, B = set(np.argsort(-a)[:m]), set(np.argsort(-b)[:m])
    assert np.isclose(kept_overlap(a, b, keep_fracs=f), len(A & B) / len(A | B))
    assert kept_overlap(a, a, keep_fracs=f) == 1.0

def test_report_excludes_subset():
    rng = np.random.default_rng(0)
    t = rng.random(500); p = -t.copy(); sub = np.arange(100)
    p[sub] = t[sub]
    r = extrapolation_report(p, t, sub)
    assert r["n_eval"] == 400 and np.isclose(r["spearman"], -1)

@pytest.mark.parametrize("pred,true,msg", [
    ([1.0, np.nan, 2.0], [1, 2, 3], "NaN"),
    ([1.0, 2.0, np.inf], [1, 2, 3], "NaN/inf"),
    ([1, 2, 3], [1, 2, 3, 4], "same samples"),
    ([[1, 2, 3]], [1, 2, 3], "1-D"),
])
def test_bad_inputs(pred, true, msg):
    with pytest.raises(ValueError, match=msg.replace("/", ".")): rank_agreement(pred, true)
    with pytest.raises(ValueError): kept_overlap(pred, true, keep_fracs=0.5)

def test_bad_subset():
    t = np.arange(10.0)
    for sub, msg in (([], "empty"), ([0, 0], "duplicate"), ([10], r"\[0, 9\]"), ([0.5], "integer")):
        with pytest.raises(ValueError, match=msg): extrapolation_report(t, t, sub)


def test_report_one_keep_frac():
    "One keep_frac (not a tuple) gives the same jaccard column as the tuple form (it used to fail with AttributeError)."
    rng = np.random.default_rng(2)
    t = rng.random(200); p = t + 0.3 * rng.standard_normal(200)
    A, B = set(np.argsort(-p, kind="stable")[:60]), set(np.argsort(-t, kind="stable")[:60])
    assert extrapolation_report(p, t, keep_fracs=0.3)["jaccard@0.3"] == len(A & B) / len(A | B)
