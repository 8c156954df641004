"Property tests for scoreextrap.metrics (checked against independent computations)."
import itertools
import numpy as np, pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats
from scoreextrap.metrics import rank_agreement, kept_overlap, extrapolation_report, jaccard_chance, tail_agreement, noise_auroc, noise_share
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


def _chance_monte_carlo(n, k, draws, rng):
    "Mean Jaccard of `draws` pairs of independent random k-subsets of range(n)."
    js = []
    for _ in range(draws):
        a, b = set(rng.choice(n, k, replace=False).tolist()), set(rng.choice(n, k, replace=False).tolist())
        js.append(len(a & b) / len(a | b))
    return np.mean(js), np.std(js) / np.sqrt(draws)

@pytest.mark.parametrize("n,f", [(10, 0.3), (37, 0.5), (200, 0.1), (200, 0.9), (1000, 0.7)])
def test_jaccard_chance_matches_random_sets(n, f):
    "The exact chance level against a Monte Carlo of random subsets: within 5 standard errors of the simulated mean."
    m, se = _chance_monte_carlo(n, int(round(f * n)), 4000, np.random.default_rng(n))
    assert abs(jaccard_chance(f, n) - m) < 5 * se + 1e-12
    assert abs(jaccard_chance(f, n) - f / (2 - f)) < 1 / n  # the large-n limit, within 1/n at these fractions

def test_kept_overlap_with_chance_keeps_the_plain_values():
    rng = np.random.default_rng(5)
    a, b = rng.random(300), rng.random(300)
    plain, both = kept_overlap(a, b), kept_overlap(a, b, chance=True)
    assert list(plain) == list(both) and all(both[f]["jaccard"] == plain[f] for f in plain)
    assert all(both[f]["chance"] == jaccard_chance(f, 300) for f in plain)
    r = extrapolation_report(a, b, keep_fracs=(0.3, 0.7))
    assert [k for k in r if "@" in k] == ["jaccard@0.3", "chance@0.3", "jaccard@0.7", "chance@0.7"]

@settings(max_examples=60, deadline=None)
@given(st.integers(10, 200), st.integers(0, 10_000), st.floats(0.05, 1.0))
def test_tail_agreement_matches_subset_spearman_and_a_loop(n, seed, f):
    rng = np.random.default_rng(seed)
    t = rng.permutation(n).astype(float); p = t + rng.normal(0, n / 4, n)  # no ties in t; p continuous
    k = int(round(f * n))
    if k < 3:
        with pytest.raises(ValueError): tail_agreement(p, t, f)
        return
    r = tail_agreement(p, t, f)
    top_t = [i for i in range(n) if t[i] >= n - k]  # t is a permutation of 0..n-1: its top k are the values n-k..n-1
    top_p = set(np.argsort(-p, kind="stable")[:k].tolist())
    assert r["n_tail"] == k and r["recall_chance"] == k / n
    assert r["recall"] == sum(i in top_p for i in top_t) / k
    assert np.isclose(r["tail_spearman"], stats.spearmanr(p[top_t], t[top_t]).statistic)

@settings(max_examples=50, deadline=None)
@given(st.integers(2, 40), st.integers(0, 10_000))
def test_noise_auroc_counts_pairs(n, seed):
    "AUROC = share of (noisy, clean) pairs the noisy sample wins, ties half; reversing the score gives 1 - AUROC."
    rng = np.random.default_rng(seed)
    s, m = rng.integers(0, 4, n).astype(float), rng.random(n) < 0.4  # few values: ties are common
    m[0], m[1] = True, False
    wins = sum((a > b) + 0.5 * (a == b) for a in s[m] for b in s[~m])
    assert np.isclose(noise_auroc(s, m), wins / (m.sum() * (~m).sum()))
    assert np.isclose(noise_auroc(-s, m), 1 - noise_auroc(s, m))

@settings(max_examples=50, deadline=None)
@given(st.integers(2, 60), st.integers(0, 10_000))
def test_noise_share_counts(n, seed):
    "The noisy share and the noisy fraction kept, counted with Python sets."
    rng = np.random.default_rng(seed)
    m = rng.random(n) < 0.3; m[0] = True
    kept = rng.choice(n, rng.integers(1, n + 1), replace=False)
    noisy = {i for i in range(n) if m[i]}
    r = noise_share(kept, m)
    assert r["share"] == len(noisy & set(kept.tolist())) / len(kept)
    assert r["noisy_kept"] == len(noisy & set(kept.tolist())) / len(noisy)
    assert r["share_random"] == len(noisy) / n and r["noisy_kept_random"] == len(kept) / n
