"Samplers: property tests (size, uniqueness, determinism, class balance), CCS allocation, Beta density vs scipy (issue 3)."
import itertools

import numpy as np
import pytest
import scipy.stats
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from scoreextrap.sampling import (SAMPLERS, beta_params, beta_sampling_weights, class_quotas, select, select_beta, select_ccs,
                                  select_random, select_top, stratum_budgets)

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
scores_st = arrays(np.float64, st.integers(1, 300), elements=finite)
frac_st = st.floats(0.001, 1.0)


def check_indices(idx, n, k):
    assert idx.dtype == np.int64
    assert len(idx) == k
    assert (np.diff(idx) > 0).all(), "sorted and unique"
    assert idx.min() >= 0 and idx.max() < n


@settings(max_examples=150, deadline=None)
@given(scores_st, frac_st, st.integers(0, 3))
def test_all_samplers_size_unique_deterministic(s, f, seed):
    n, k = len(s), int(round(f * len(s)))
    assume(k >= 1)
    top = select_top(s, f)
    check_indices(top, n, k)
    dropped = np.setdiff1d(np.arange(n), top)
    if len(dropped): assert s[top].min() >= s[dropped].max()
    r = select_random(n, f, seed=seed)
    check_indices(r, n, k)
    np.testing.assert_array_equal(r, select_random(n, f, seed=seed))
    c = select_ccs(s, f, seed=seed)
    check_indices(c, n, k)
    np.testing.assert_array_equal(c, select_ccs(s, f, seed=seed))
    d, p = np.abs(s) + 1e-3, (np.abs(s) % 1.0)
    b = select_beta(d, p, f, seed=seed, n_anchor=min(10, n))
    check_indices(b, n, k)
    np.testing.assert_array_equal(b, select_beta(d, p, f, seed=seed, n_anchor=min(10, n)))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=200), frac_st, st.integers(0, 100))
def test_class_balance(labels, f, seed):
    y = np.array(labels)
    n, k = len(y), int(round(f * len(y)))
    assume(k >= 1)
    s = np.random.default_rng(seed).standard_normal(n)
    classes, counts = np.unique(y, return_counts=True)
    exact = f * counts
    try:
        idx = select_top(s, f, labels=y)
    except ValueError as e:
        assert "class balance is impossible" in str(e)
        assert (np.floor(exact) == 0).any()  # only a class whose exact share is below 1 can end up empty
        return
    check_indices(idx, n, k)
    kept = np.array([(y[idx] == c).sum() for c in classes])
    assert (kept >= np.floor(exact)).all() and (kept <= np.ceil(exact)).all(), "each class keeps floor or ceil of its share"
    assert (kept >= 1).all()
    for c in classes:  # inside a class, the highest scores
        m = y == c
        kc, rest = np.intersect1d(idx, np.flatnonzero(m)), np.setdiff1d(np.flatnonzero(m), idx)
        if len(rest): assert s[kc].min() >= s[rest].max()


def test_class_quotas_hand():
    assert class_quotas([0] * 6 + [1] * 4, 0.5) == {0: 3, 1: 2}
    assert class_quotas([0] * 7 + [1] * 3, 0.5) == {0: 3, 1: 2}  # 3.5 / 1.5: the tie goes to the smaller quota
    assert class_quotas([0.0] * 9 + [1.0] * 1, 1.0) == {0: 9, 1: 1}  # integer-valued floats are class indices
    with pytest.raises(ValueError, match="labels must hold numbers"): class_quotas(["a"] * 9 + ["b"] * 1, 1.0)  # indices, not names
    with pytest.raises(ValueError, match="class balance is impossible: class 1 has 1 samples"):
        select_top(np.arange(6.), 0.34, labels=[0, 0, 0, 0, 0, 1])


def reference_bin_allocate(num, bins):
    "Transcription of bin_allocate (haizhongzheng/Coverage-centric-coreset-selection core/data/Coreset.py), stable order."
    sorted_index = np.argsort(bins, kind="stable")
    rest, budgets = num, []
    for i in range(len(bins)):
        cur = min(bins[sorted_index[i]], rest // (len(bins) - i))
        budgets.append(cur); rest -= cur
    out = np.zeros(len(bins), int)
    out[sorted_index] = budgets
    return out


def test_stratum_budgets_exhaustive():
    "Every histogram of up to 4 strata with populations 0..5, every budget up to the total: exact and as the reference."
    for m in range(1, 5):
        for counts in itertools.product(range(6), repeat=m):
            for budget in range(sum(counts) + 1):
                b = stratum_budgets(counts, budget)
                assert b.sum() == budget and (b <= np.array(counts)).all() and (b >= 0).all()
                np.testing.assert_array_equal(b, reference_bin_allocate(budget, np.array(counts)))


def test_stratum_budgets_hand():
    np.testing.assert_array_equal(stratum_budgets([2, 30, 5, 0, 100], 40), [2, 16, 5, 0, 17])
    np.testing.assert_array_equal(stratum_budgets([0] * 50, 0), [0] * 50)
    with pytest.raises(ValueError, match=r"budget must be an int in \[0, 3\], got 4"): stratum_budgets([1, 2], 4)


def test_ccs_strata_histogram():
    "Hand-made histogram: 50 strata, counts 100, 1, 0, 3, ... ; the number kept per stratum is the allocation."
    counts = np.zeros(50, int); counts[[0, 1, 3, 10, 49]] = [100, 1, 3, 40, 6]
    # scores at the stratum centres of [0, 50]: stratum j holds scores in [j, j+1); 50 itself falls in the last one
    s = np.concatenate([np.full(c, j + 0.5) for j, c in enumerate(counts)] + [[0.0, 50.0]])
    counts[0] += 1; counts[49] += 1
    n = len(s)
    for f in [0.05, 0.2, 0.5, 0.9]:
        k = int(round(f * n))
        idx = select_ccs(s, f, seed=1)
        per = np.bincount(np.minimum(np.floor(s[idx]).astype(int), 49), minlength=50)
        np.testing.assert_array_equal(per, reference_bin_allocate(k, counts))


@settings(max_examples=80, deadline=None)
@given(scores_st, st.floats(0.01, 0.6), st.floats(0.0, 0.4), st.integers(1, 60), st.integers(0, 5))
def test_ccs_cutoff_property(s, f, cutoff, n_strata, seed):
    n, k = len(s), int(round(f * len(s)))
    n_cut = int(round(cutoff * n))
    assume(k >= 1 and k <= n - n_cut)
    cut_scores = np.random.default_rng(seed).permutation(n).astype(float)
    idx = select_ccs(s, f, cutoff_scores=cut_scores, hard_cutoff=cutoff, n_strata=n_strata, seed=seed)
    check_indices(idx, n, k)
    hardest = np.argsort(-cut_scores)[:n_cut]
    assert not np.isin(idx, hardest).any()


def test_beta_density_against_scipy():
    rng = np.random.default_rng(0)
    n = 1000
    d, p = rng.exponential(size=n), rng.uniform(0.001, 0.999, n)
    for f in [0.9, 0.5, 0.2, 0.05]:
        for c_alpha in [15, 16]:
            a, b = beta_params(d, p, f, c_alpha=c_alpha)
            anchor = p[np.argsort(-d, kind="stable")[:10]].mean()
            r = 1 - f
            assert np.isclose(b, 15 * (1 - anchor) * (1 - r ** 4)) and np.isclose(a, c_alpha - b)
            w = beta_sampling_weights(d, p, f, c_alpha=c_alpha)
            ref = scipy.stats.beta.pdf(p, a, b) * d
            np.testing.assert_allclose(w, ref / ref.sum(), rtol=1e-9)  # one float64 formula, two evaluations: ~1e-15 apart
            assert np.isclose(w.sum(), 1.0)


def test_beta_shifts_to_easy_as_keep_frac_falls():
    rng = np.random.default_rng(0)
    n = 5000
    p = rng.uniform(0, 1, n)
    d = np.sqrt(p * (1 - p)) * (1 - p) + 0.01  # DUAL-like: high for uncertain, not-yet-learned samples
    fracs = [0.99, 0.9, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05, 0.01]
    beta_means = [a / (a + b) for a, b in (beta_params(d, p, f) for f in fracs)]
    assert all(x < y for x, y in zip(beta_means, beta_means[1:])), beta_means  # the density moves towards p = 1
    means = [p[select_beta(d, p, f, seed=0)].mean() for f in [0.5, 0.2, 0.05]]  # (near 1, the kept set is almost everything)
    assert all(x < y for x, y in zip(means, means[1:])), means


def test_beta_zero_weights_fill_last():
    d = np.r_[np.ones(10), np.zeros(90)]
    p = np.linspace(0.05, 0.95, 100)
    idx = select_beta(d, p, 0.05)
    assert len(idx) == 5 and (idx < 10).all()  # enough positive weights: zeros never drawn
    idx = select_beta(d, p, 0.5)
    check_indices(idx, 100, 50)
    assert np.isin(np.arange(10), idx).all()  # all positive weights first, zeros fill the rest


def test_beta_draw_matches_numpy_sequential_sampling():
    "Inclusion frequencies of the Gumbel-top-k draw vs numpy's choice(replace=False, p=...)."
    rng = np.random.default_rng(1)
    n = 30
    d, p = rng.exponential(size=n), rng.uniform(0.05, 0.95, n)
    w = beta_sampling_weights(d, p, 0.3)
    ours = np.zeros(n); theirs = np.zeros(n)
    for s in range(3000):
        ours[select_beta(d, p, 0.3, seed=s)] += 1
        theirs[np.random.default_rng(10_000 + s).choice(n, 9, replace=False, p=w)] += 1
    np.testing.assert_allclose(ours / 3000, theirs / 3000, atol=0.05)


@pytest.mark.parametrize("call, msg", [
    (lambda: select_top([1.0, np.nan, 2.0], 0.5), "1 NaN/inf values"),
    (lambda: select_top([1.0, np.inf], 0.5), "NaN/inf"),
    (lambda: select_ccs([1.0, 2.0], 0.5, cutoff_scores=[np.nan, 1.0]), "cutoff_scores has 1 NaN/inf"),
    (lambda: select_top([1.0, 2.0], 0.0), "keep_frac must be a number in (0, 1]"),
    (lambda: select_top([1.0, 2.0], 1.01), "keep_frac must be a number in (0, 1]"),
    (lambda: select_top([1.0, 2.0], -0.5), "keep_frac must be a number in (0, 1]"),
    (lambda: select_top([1.0, 2.0], float("nan")), "keep_frac must be a number in (0, 1]"),
    (lambda: select_random(10, 0.01), "rounds to 0 kept samples"),
    (lambda: select_top([1.0, 2.0, 3.0], 0.5, labels=[0, 1]), "labels must have shape (3,)"),
    (lambda: select_ccs([1.0, 2.0], 0.5, cutoff_scores=[1.0]), "cutoff_scores has 1 values but there are 2 samples"),
    (lambda: select_ccs(np.arange(10.), 0.8, hard_cutoff=0.3), "keep_frac + hard_cutoff must be <= 1"),
    (lambda: select_ccs(np.arange(10.), 0.5, hard_cutoff=1.0), "hard_cutoff must be a number in [0, 1)"),
    (lambda: select_ccs(np.arange(10.), 0.5, n_strata=0), "n_strata must be an int >= 1"),
    (lambda: select_beta([1.0, 2.0], [0.5], 0.5), "p_mean has 1 values but there are 2 samples"),
    (lambda: select_beta([1.0, -2.0], [0.5, 0.5], 0.5, n_anchor=1), "dual_scores must be >= 0"),
    (lambda: select_beta([1.0, 2.0], [0.5, 1.5], 0.5, n_anchor=1), "p_mean must lie in [0, 1]"),
    (lambda: select_beta([1.0, 2.0], [1.0, 1.0], 0.5, n_anchor=1), "Beta parameters are invalid"),
    (lambda: select_beta([0.0, 0.0], [0.5, 0.5], 0.5, n_anchor=1), "all dual_scores are 0"),
    (lambda: select_beta([1.0, 2.0], [0.5, 0.5], 0.5), "n_anchor must be an int in [1, 2]"),
    (lambda: select([1.0, 2.0], 0.5, method="bottom"), "unknown method 'bottom'; choose one of top, random, ccs, beta"),
    (lambda: select([1.0, 2.0], 0.5, method="beta"), "needs p_mean"),
    (lambda: select_top(np.ones((2, 2)), 0.5), "1-D array"),
    (lambda: select_top([], 0.5), "is empty"),
])
def test_bad_inputs(call, msg):
    with pytest.raises(ValueError, match=None) as e: call()
    assert msg in str(e.value), str(e.value)


def test_select_dispatch():
    s = np.random.default_rng(0).random(200)
    p = np.random.default_rng(1).random(200)
    assert set(SAMPLERS) == {"top", "random", "ccs", "beta"}
    np.testing.assert_array_equal(select(s, 0.3), select_top(s, 0.3))
    np.testing.assert_array_equal(select(s, 0.3, method="random", seed=2), select_random(200, 0.3, seed=2))
    np.testing.assert_array_equal(select(s, 0.3, method="ccs", hard_cutoff=0.1, seed=3), select_ccs(s, 0.3, hard_cutoff=0.1, seed=3))
    np.testing.assert_array_equal(select(s, 0.3, method="beta", p_mean=p, seed=4), select_beta(s, p, 0.3, seed=4))
