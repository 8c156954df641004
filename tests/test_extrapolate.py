"""Tests of scoreextrap.extrapolate: the registry, `make_extrapolator`, `extrapolate`, the ridge baseline against
independent solves, a user-defined extrapolator, and bad inputs (type, message naming the argument, no file touched)."""
import numpy as np
import pytest

from scoreextrap.extrapolate import EXTRAPOLATORS, RidgeExtrapolator, extrapolate, make_extrapolator
from scoreextrap.gnn import GNNExtrapolator
from scoreextrap.knn import KNNExtrapolator

RNG = np.random.default_rng(0)
EMB = RNG.standard_normal((120, 5)).astype(np.float32)
SUB = RNG.permutation(120)[:40]  # unsorted on purpose
TWO = np.c_[EMB[SUB, 0].astype(np.float64) ** 2, RNG.random(40)]
GNN_FAST = dict(hidden=(8,), epochs=3)
FAST = {"knn": dict(k=3), "gnn": GNN_FAST, "ridge": {}}


def test_registry():
    assert EXTRAPOLATORS == {"knn": KNNExtrapolator, "gnn": GNNExtrapolator, "ridge": RidgeExtrapolator}
    assert [c.uses_labels for c in EXTRAPOLATORS.values()] == [False, True, False]
    assert isinstance(make_extrapolator("ridge", alpha=1.0), RidgeExtrapolator)
    assert make_extrapolator("knn", k=7).k == 7 and make_extrapolator(KNNExtrapolator, k=2).k == 2
    obj = RidgeExtrapolator()
    assert make_extrapolator(obj) is obj


@pytest.mark.parametrize("name", list(EXTRAPOLATORS))
def test_subset_keeps_its_values_exactly(name):
    out = extrapolate(EMB, SUB, TWO, extrapolator=name, **FAST[name])
    assert out.dtype == np.float64 and out.shape == (120, 2)
    np.testing.assert_array_equal(out[SUB], TWO)
    one = extrapolate(EMB, SUB, TWO[:, 1], extrapolator=name, **FAST[name])
    assert one.shape == (120,)
    np.testing.assert_array_equal(one[SUB], TWO[:, 1])
    assert np.isfinite(out).all() and np.isfinite(one).all()


def test_multi_output_knn_equals_single_fits_exactly():
    for weighting in ("mean", "softmax"):
        both = extrapolate(EMB, SUB, TWO, k=6, weighting=weighting, batch_size=7)  # several predict blocks
        single = np.c_[[extrapolate(EMB, SUB, TWO[:, j], k=6, weighting=weighting) for j in (0, 1)]].T
        np.testing.assert_array_equal(both, single)  # same neighbours, same weights, same sums


def test_gnn_seed_reproducible_multi_output():
    a = extrapolate(EMB, SUB, TWO, extrapolator="gnn", seed=3, **GNN_FAST)
    b = extrapolate(EMB, SUB, TWO, extrapolator="gnn", seed=3, **GNN_FAST)
    np.testing.assert_array_equal(a, b)
    c = extrapolate(EMB, SUB, TWO, extrapolator="gnn", seed=4, **GNN_FAST)
    assert not np.array_equal(a, c)


def _design(x, mu, sd): return np.c_[np.ones(len(x)), (x - mu) / sd]


def test_ridge_matches_normal_equations():
    x64 = EMB[SUB].astype(np.float64); mu, sd = x64.mean(0), x64.std(0)
    A = _design(x64, mu, sd)
    P = 2.5 * np.diag(np.r_[0.0, np.ones(5)])  # the intercept is not penalised
    coef = np.linalg.solve(A.T @ A + P, A.T @ TWO)
    rest = np.setdiff1d(np.arange(120), SUB)
    want = _design(EMB[rest].astype(np.float64), mu, sd) @ coef
    got = extrapolate(EMB, SUB, TWO, extrapolator="ridge", alpha=2.5)[rest]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)  # SVD vs Cholesky-free solve in float64: ~1e-14 apart


def test_ridge_alpha_by_brute_force_leave_one_out():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((15, 3)).astype(np.float32)
    y = np.c_[x @ [2.0, -1.0, 0.5] + 0.1 * rng.standard_normal(15), rng.standard_normal(15)]
    grid = (1e-3, 0.1, 10.0, 1e3)
    x64 = x.astype(np.float64); A = _design(x64, x64.mean(0), x64.std(0))
    def loo(a, j):
        err = []
        for i in range(15):
            keep = np.arange(15) != i
            c = np.linalg.solve(A[keep].T @ A[keep] + a * np.diag([0, 1, 1, 1.0]), A[keep].T @ y[keep, j])
            err.append((y[i, j] - A[i] @ c) ** 2)
        return np.mean(err)
    want = np.array([[loo(a, j) for j in (0, 1)] for a in grid])
    r = RidgeExtrapolator(alphas=grid).fit(x, y)
    np.testing.assert_allclose(r.loo_mse_, want, rtol=1e-9)  # an exact identity: float64 rounding only
    np.testing.assert_array_equal(r.alpha_, np.array(grid)[want.argmin(0)])
    assert r.alpha_[0] < r.alpha_[1]  # the linear column needs less shrinkage than the noise column


class ClassMean:
    "A user-defined extrapolator: the mean target of the query's class among the fitted samples."
    uses_labels = True
    def fit(self, embeddings, targets, *, labels=None):
        self.means_ = {c: np.mean(np.asarray(targets)[labels == c], 0) for c in np.unique(labels)}; return self
    def predict(self, embeddings, *, labels=None): return np.array([self.means_[c] for c in labels])


def test_user_defined_extrapolator():
    lab = (EMB[:, 1] > 0).astype(int)
    rest = np.setdiff1d(np.arange(120), SUB)
    for ext in (ClassMean, ClassMean()):
        out = extrapolate(EMB, SUB, TWO, extrapolator=ext, labels=lab)
        np.testing.assert_array_equal(out[SUB], TWO)
        for c in (0, 1):
            np.testing.assert_allclose(out[rest[lab[rest] == c]], np.broadcast_to(TWO[lab[SUB] == c].mean(0), ((lab[rest] == c).sum(), 2)))


class NoLabels:
    "fit and predict, but no uses_labels attribute: labels are refused."
    def fit(self, embeddings, targets): self.m_ = np.mean(targets); return self
    def predict(self, embeddings): return np.full(len(embeddings), self.m_)


class WrongShape(NoLabels):
    def predict(self, embeddings): return np.zeros((len(embeddings), 3))


LAB = np.zeros(120, int)
CASES = [
    ("unknown name", lambda: make_extrapolator("svm"), ValueError, ["extrapolator", "knn, gnn, ridge"]),
    ("not an extrapolator", lambda: make_extrapolator(42), ValueError, ["extrapolator", "fit and predict"]),
    ("options with an object", lambda: make_extrapolator(KNNExtrapolator(), k=3), ValueError, ["options", "['k']"]),
    ("unknown ridge option", lambda: make_extrapolator("ridge", k=3), ValueError, ["unknown option", "['k']", "alpha"]),
    ("unknown gnn option", lambda: extrapolate(EMB, SUB, TWO, extrapolator="gnn", epoch=3), ValueError, ["['epoch']"]),
    ("knn positional option", lambda: KNNExtrapolator(3), TypeError, ["positional"]),
    ("knn labels", lambda: extrapolate(EMB, SUB, TWO, labels=LAB), ValueError, ["labels", "KNNExtrapolator"]),
    ("ridge labels", lambda: extrapolate(EMB, SUB, TWO, extrapolator="ridge", labels=LAB), ValueError, ["labels", "RidgeExtrapolator"]),
    ("ridge fit labels", lambda: RidgeExtrapolator().fit(EMB[SUB], TWO, labels=LAB[:40]), ValueError, ["labels"]),
    ("knn predict labels", lambda: KNNExtrapolator(k=2).fit(EMB[SUB], TWO).predict(EMB, labels=LAB), ValueError, ["labels"]),
    ("user class without uses_labels", lambda: extrapolate(EMB, SUB, TWO, extrapolator=NoLabels, labels=LAB), ValueError, ["labels", "NoLabels"]),
    ("predict returns a wrong shape", lambda: extrapolate(EMB, SUB, TWO, extrapolator=WrongShape), ValueError, ["WrongShape.predict", "(80, 2)"]),
    ("knn predict before fit", lambda: KNNExtrapolator().predict(EMB), ValueError, ["call fit(...) before predict"]),
    ("gnn predict before fit", lambda: GNNExtrapolator().predict(EMB), ValueError, ["call fit(...) before predict"]),
    ("ridge predict before fit", lambda: RidgeExtrapolator().predict(EMB), ValueError, ["call fit(...) before predict"]),
    ("gnn labels only at fit", lambda: GNNExtrapolator().fit(EMB[SUB], TWO, labels=LAB[:40]).predict(EMB), ValueError, ["labels"]),
    ("gnn query dim", lambda: GNNExtrapolator().fit(EMB[SUB], TWO).predict(EMB[:, :3]), ValueError, ["embeddings", "dim 3"]),
    ("ridge query dim", lambda: RidgeExtrapolator().fit(EMB[SUB], TWO).predict(EMB[:, :3]), ValueError, ["embeddings", "dim 3"]),
    ("ridge alpha=0", lambda: RidgeExtrapolator(alpha=0), ValueError, ["alpha"]),
    ("ridge alpha str", lambda: RidgeExtrapolator(alpha="1"), ValueError, ["alpha"]),
    ("ridge alphas empty", lambda: RidgeExtrapolator(alphas=()), ValueError, ["alphas"]),
    ("ridge alphas negative", lambda: RidgeExtrapolator(alphas=(1.0, -2.0)), ValueError, ["alphas"]),
    ("ridge batch_size 0", lambda: RidgeExtrapolator(batch_size=0), ValueError, ["batch_size"]),
    ("knn batch_size 0", lambda: KNNExtrapolator(batch_size=0), ValueError, ["batch_size"]),
    ("ridge too few samples for LOO", lambda: RidgeExtrapolator().fit(EMB[:2], [1.0, 2.0]), ValueError, ["targets", "alpha"]),
    ("targets rows mismatch", lambda: extrapolate(EMB, SUB, TWO[:-1]), ValueError, ["subset_targets", "40"]),
    ("targets 3-D", lambda: extrapolate(EMB, SUB, TWO[:, :, None]), ValueError, ["subset_targets"]),
    ("targets NaN", lambda: extrapolate(EMB, SUB, np.r_[TWO[:-1, 0], np.nan]), ValueError, ["subset_targets", "NaN"]),
    ("fit targets mismatch", lambda: RidgeExtrapolator().fit(EMB[:10], np.zeros(9)), ValueError, ["targets"]),
    ("labels wrong length", lambda: extrapolate(EMB, SUB, TWO, extrapolator="gnn", labels=LAB[:5]), ValueError, ["labels", "(120,)"]),
    ("labels fractional", lambda: extrapolate(EMB, SUB, TWO, extrapolator="gnn", labels=np.full(120, 0.5)), ValueError, ["labels"]),
    ("subset_idx out of range", lambda: extrapolate(EMB, [0, 120], [1.0, 2.0], k=1), ValueError, ["subset_idx"]),
    ("subset_idx duplicate", lambda: extrapolate(EMB, [3, 3], [1.0, 2.0], k=1), ValueError, ["subset_idx", "duplicate"]),
    ("embeddings 1-D", lambda: extrapolate(EMB[:, 0], SUB, TWO), ValueError, ["embeddings"]),
    ("embeddings complex", lambda: extrapolate(EMB + 1j, SUB, TWO), ValueError, ["embeddings", "real"]),
    ("gnn k too large", lambda: extrapolate(EMB, SUB, TWO, extrapolator="gnn", k=120), ValueError, ["k", "[1, 119]"]),
]


@pytest.mark.parametrize("call,exc,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_inputs_refused(call, exc, words, tmp_path, refused):
    (tmp_path / "kept.npz").write_bytes(b"precious")
    refused(call, exc, words, tmp_path)
