"Property and cross-check tests of scoreextrap.theory (the teacher-student perceptron)."
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import optimize

import scoreextrap.theory as th  # module import: `th.test_error` must not be collected by pytest


@settings(max_examples=40, deadline=None)
@given(P=st.integers(1, 300), n=st.integers(2, 20), f=st.floats(0.001, 1.0), seed=st.integers(0, 10_000),
       theta=st.floats(0, 1.5))
def test_prune_sizes_and_order(P, n, f, seed, theta):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((P, n))
    t = rng.standard_normal(n)
    J = th.probe(t, theta=theta, seed=seed)
    m = np.abs(X @ J)
    k = round(f * P)
    if k == 0:  # the samplers' rule: an f that keeps no example is an error, not one example
        with pytest.raises(ValueError, match="rounds to 0 kept samples; raise f"): th.prune_by_margin(X, J, f)
        return
    out = {keep: th.prune_by_margin(X, J, f, keep=keep, seed=seed) for keep in th.KEEP_POLICIES}
    for keep, idx in out.items():
        assert len(idx) == k and len(np.unique(idx)) == k          # size round(f*P), no duplicates
        assert (np.diff(idx) > 0).all() and idx.min() >= 0 and idx.max() < P  # sorted, in range
    # keep hard takes the k smallest |margins|, keep easy the k largest (ties aside)
    assert m[out["hard"]].max() <= np.sort(m)[k - 1] + 1e-12
    assert m[out["easy"]].min() >= np.sort(m)[P - k] - 1e-12
    assert m[out["hard"]].mean() <= m[out["easy"]].mean() + 1e-12


def test_probe_angle():
    t = np.random.default_rng(0).standard_normal(30)
    for theta in (0.0, 0.1, 0.7, 1.5):
        J = th.probe(t, theta=theta, seed=3)
        assert np.isclose(np.linalg.norm(J), 1) and np.isclose(J @ t / np.linalg.norm(t), np.cos(theta))


def _slsqp_primal(X, y):
    "Independent solver: the primal min |w|^2/2 s.t. y_i w.x_i >= 1 with explicit constraints."
    G = X * y[:, None]
    res = optimize.minimize(lambda w: 0.5 * w @ w, G.mean(0) * 10, jac=lambda w: w, method="SLSQP",
                            constraints=[dict(type="ineq", fun=lambda w: G @ w - 1, jac=lambda w: G)],
                            options=dict(ftol=1e-14, maxiter=1000))
    # status 8 ("positive directional derivative in line search"): at ftol=1e-14 SLSQP can stall there once it has
    # converged, depending on the BLAS threads' rounding; accept it only when the point is feasible to 1e-9.
    assert res.status == 0 or (res.status == 8 and (G @ res.x).min() >= 1 - 1e-9), res.message
    return res.x


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("method", ["nnls", "lbfgsb"])
def test_qp_kkt_and_slsqp(seed, method):
    rng = np.random.default_rng(seed)
    n, P = int(rng.integers(3, 10)), int(rng.integers(5, 40))
    X, y, T = th.teacher_data(n, P / n, seed=seed)
    w, a = th.max_margin_student(X, y, method=method, return_dual=True)
    marg = y * (X @ w)
    tol = 1e-8 if method == "nnls" else 1e-4
    assert a.min() >= 0
    assert marg.min() >= 1 - tol                       # primal feasibility
    assert np.abs(a * (marg - 1)).max() <= tol         # complementary slackness
    assert np.allclose(w, (a * y) @ X)                 # stationarity
    assert np.allclose(w, _slsqp_primal(X, y), atol=10 * tol, rtol=10 * tol)


def test_qp_larger_problem_margins():
    X, y, T = th.teacher_data(200, 3, seed=5)
    idx = th.prune_by_margin(X, th.probe(T, theta=0.0, seed=1), 0.5, keep="hard")
    w, a = th.max_margin_student(X[idx], y[idx], return_dual=True)
    marg = y[idx] * (X[idx] @ w)
    assert marg.min() >= 1 - 1e-9 and np.abs(a * (marg - 1)).max() < 1e-8


def test_test_error_formula():
    t = np.array([1.0, 0, 0]); s = np.array([np.cos(0.3), np.sin(0.3), 0])
    assert np.isclose(th.test_error(s, t), 0.3 / np.pi)
    # Monte Carlo: disagreement rate on fresh Gaussian inputs
    x = np.random.default_rng(0).standard_normal((200_000, 3))
    assert abs(np.mean(np.sign(x @ s) != np.sign(x @ t)) - 0.3 / np.pi) < 0.003


@pytest.mark.parametrize("alpha,f", [(2.0, 0.5), (10.0, 0.2), (1.0, 0.9)])
def test_random_pruning_equals_unpruned(alpha, f):
    r = th.perceptron_theory(alpha, f, keep="random")
    assert r.err == th.perceptron_theory(alpha * f, 1.0).err
    # the weight-f integral of the 1-D solver gives the same number
    assert np.isclose(th._theory0(alpha, f, "random").err, r.err, atol=1e-8)
    # and the 2-D solver, where the probe is irrelevant, too
    assert np.isclose(th._theory2(alpha, f, "random", 0.2).err, r.err, atol=1e-6)


def test_theory_vs_simulation_unpruned():
    errs = [th.simulate_perceptron(400, 2.0, 1.0, seed=s) for s in range(4)]
    assert abs(np.mean(errs) - th.perceptron_theory(2.0, 1.0).err) < 0.02


def test_theory_vs_simulation_random_pruning():
    # random pruning in simulation follows the unpruned theory at alpha_tot * f
    errs = [th.simulate_perceptron(400, 8.0, 0.25, keep="random", seed=s) for s in range(4)]
    assert abs(np.mean(errs) - th.perceptron_theory(2.0, 1.0).err) < 0.02


def test_theory_monotone_and_asymptotic():
    e = [th.perceptron_theory(a, 1.0).err for a in (0.5, 1, 2, 4, 8)]
    assert all(np.diff(e) < 0)
    assert abs(200 * th.perceptron_theory(200, 1.0).err - 0.5) < 0.002


@pytest.mark.parametrize("bad,match", [
    (dict(f=0.0), r"f must be a number in \(0, 1\]"), (dict(f=1.5), r"f must be a number in \(0, 1\]"),
    (dict(alpha_tot=0.0), "alpha_tot"), (dict(alpha_tot=-1.0), "alpha_tot"), (dict(alpha_tot=np.inf), "alpha_tot"),
    (dict(keep="middle"), "unknown keep 'middle'"), (dict(theta=-0.1), "theta"), (dict(theta=np.pi / 2), "theta")])
def test_value_errors(bad, match):
    args = dict(alpha_tot=2.0, f=0.5, keep="hard", theta=0.0) | bad
    with pytest.raises(ValueError, match=match):
        th.perceptron_theory(**args)
    with pytest.raises(ValueError, match=match):
        th.simulate_perceptron(20, **args)


def test_value_errors_helpers():
    X, y, T = th.teacher_data(10, 2)
    with pytest.raises(ValueError, match="n_dim"): th.teacher_data(1, 2)
    with pytest.raises(ValueError, match="method"): th.max_margin_student(X, y, method="cvx")
    with pytest.raises(ValueError, match="-1 and \\+1"): th.max_margin_student(X, (y + 1) / 2)
    with pytest.raises(ValueError, match=r"y must have shape \(20,\)"): th.max_margin_student(X, y[:-1])
