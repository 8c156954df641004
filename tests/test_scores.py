"Scorers against slow per-sample loops, hand-worked examples and a real recording (issue 3)."
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st, HealthCheck
from hypothesis.extra.numpy import arrays

from scoreextrap.dynamics import Dynamics, DynamicsRecorder
from scoreextrap.train import fit
from scoreextrap.data import load_dataset, IndexedDataset
from scoreextrap.scores import (SCORERS, aum, dual, dynamic_uncertainty, el2n, entropy, forgetting, grand,
                                p_true_mean, random_scores, ssl_prototypes, tdds)


# ---------- slow reference computations (loops over samples and windows) ----------
def forgetting_loop(correct, never=None):
    out = []
    for row in np.asarray(correct, bool):
        if not row.any(): out.append(len(row) if never is None else never); continue
        out.append(sum(1 for t in range(1, len(row)) if row[t - 1] and not row[t]))
    return np.array(out, float)

def window_loop(p, J, f):
    return np.array([np.mean([f(r[k:k + J]) for k in range(len(r) - J + 1)]) for r in p])

def kd_from_probs(pr):
    kd = np.full(pr.shape[:2], np.nan)
    for t in range(1, pr.shape[1]):
        kd[:, t] = np.abs(pr[:, t] * (np.log(pr[:, t] + 1e-8) - np.log(pr[:, t - 1] + 1e-8))).sum(-1)
    return kd

def tdds_loop(pr, T, K, decay=0.9, start=0):
    "Transcription of the reference loop (zhangxin-xd/Dataset-Pruning-TDDS importance_evaluation.py), per sample."
    out = np.zeros(len(pr))
    for i in range(len(pr)):
        for k in range(T - K + 1):
            win = pr[i, start + k:start + k + K]
            kds = [np.abs(win[j + 1] * (np.log(win[j + 1] + 1e-8) - np.log(win[j] + 1e-8))).sum() for j in range(K - 1)]
            out[i] += np.linalg.norm(np.array(kds) - np.sum(kds) / (K - 1)) * decay * (1 - decay) ** (T - K - k)
    return out


@pytest.fixture(scope="module")
def recorded():
    "A real recording: small CNN-free linear model on the synthetic set, full probabilities kept."
    ds = load_dataset("synthetic", n=300, n_classes=4, img_size=8, channels=1, seed=0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    rec = DynamicsRecorder(len(ds), 4, labels=ds.targets, keep_probs=True, dtype=np.float64)
    fit(model, ds, epochs=14, batch_size=32, lr=0.05, recorder=rec, seed=0, progress=False, device="cpu")
    return ds, model, rec.dynamics


def test_scores_on_recorded_dynamics(recorded):
    ds, model, dyn = recorded
    pr = dyn.probs.astype(np.float64)
    y = np.asarray(ds.targets)
    n, T = dyn.n_samples, dyn.n_epochs
    # EL2N from the full probabilities
    onehot = np.eye(4)[y]
    np.testing.assert_allclose(el2n(dyn, epoch=5), np.linalg.norm(pr[:, 5] - onehot, axis=1), rtol=1e-5, atol=1e-6)
    # forgetting from argmax of the probabilities
    correct = pr.argmax(-1) == y[:, None]
    np.testing.assert_array_equal(forgetting(dyn), forgetting_loop(correct))
    # entropy
    np.testing.assert_allclose(entropy(dyn), [-(p * np.log(p + 1e-10)).sum() for p in pr[:, -1]], rtol=1e-5, atol=1e-6)
    # DU and DUAL from p_true = probs[y]
    ptrue = pr[np.arange(n), :, y]
    np.testing.assert_allclose(dynamic_uncertainty(dyn, window=5), window_loop(ptrue, 5, lambda w: np.std(w, ddof=1)), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dual(dyn, T=12, window=4), window_loop(ptrue[:, :12], 4, lambda w: np.std(w, ddof=1) * (1 - w.mean())),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(p_true_mean(dyn, T=12), ptrue[:, :12].mean(1), rtol=1e-5)
    # TDDS from the recorder's kd equals the reference loop on the full probabilities: checks the kd column indexing
    np.testing.assert_allclose(tdds(dyn, T=12, K=4), tdds_loop(pr, 12, 4), rtol=1e-4, atol=1e-9)  # recorder's float32 kd vs a float64 loop
    np.testing.assert_allclose(tdds(dyn, T=10, K=5, epochs="last"), tdds_loop(pr, 10, 5, start=T - 10), rtol=1e-4, atol=1e-9)
    # AUM: -mean logit margin
    np.testing.assert_allclose(aum(dyn), -dyn.margin.astype(np.float64).mean(1))
    for name, entry in SCORERS.items():  # every registered scorer runs on recorded dynamics with its default options
        s, side = entry.run(dyn)
        assert s.dtype == np.float64 and s.shape == (n,) and np.isfinite(s).all(), name
        assert all(v.shape == (n,) for v in side.values()), name
    np.testing.assert_allclose(SCORERS["dual"].run(dyn)[1]["p_mean"], ptrue[:, :min(30, T)].mean(1), rtol=1e-5)  # float32 p_true


def test_grand_matches_backward_loop(recorded):
    ds, model, _ = recorded
    sub = ds.subset(np.arange(37))
    g = grand(model, sub, batch_size=8)
    model.eval()
    ref = []
    for i in range(len(sub)):
        x, y = sub[i]
        model.zero_grad()
        F.cross_entropy(model(x[None]), y[None]).backward()
        ref.append(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters())).item())
    model.zero_grad()
    np.testing.assert_allclose(g, ref, rtol=1e-5)
    # same result through an IndexedDataset and with another batch size; averaged over a list of models
    np.testing.assert_allclose(grand(model, IndexedDataset(sub), batch_size=5), g, rtol=1e-5)
    np.testing.assert_allclose(grand([model, model], sub), g, rtol=1e-5)


def test_grand_frozen_parameters_excluded():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    for p in m[0].parameters(): p.requires_grad_(False)
    x, y = torch.randn(6, 3), torch.randint(0, 2, (6,))
    g = grand(m, torch.utils.data.TensorDataset(x, y))
    ref = []
    for i in range(6):
        m.zero_grad(); F.cross_entropy(m(x[i:i + 1]), y[i:i + 1]).backward()
        ref.append(torch.sqrt(sum((p.grad ** 2).sum() for p in m[2].parameters())).item())
    np.testing.assert_allclose(g, ref, rtol=1e-5)


def test_hand_worked():
    d = Dynamics(correct=np.array([[0, 1, 1, 0, 1, 0], [1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0]], bool))
    np.testing.assert_array_equal(forgetting(d), [2, 0, 0, 6])
    np.testing.assert_array_equal(forgetting([d, d]), [4, 0, 0, 12])
    assert forgetting(d, never_learned=np.inf)[3] == np.inf
    # DU / DUAL: [0, 1, 0, 1] with J = 2: every window std sqrt(.5) (ddof 1), mean .5
    d = Dynamics(p_true=np.array([[0, 1, 0, 1.], [1, 1, 1, 1.]]))
    np.testing.assert_allclose(dynamic_uncertainty(d, window=2), [np.sqrt(.5), 0])
    np.testing.assert_allclose(dynamic_uncertainty(d, window=2, ddof=0), [.5, 0])
    np.testing.assert_allclose(dual(d, T=4, window=2), [np.sqrt(.5) / 2, 0])
    np.testing.assert_allclose(dual(d, T=4, window=2, scale=10), [10 * np.sqrt(.5) / 2, 0])
    # TDDS with T = K = 3: one window with kd_1, kd_2 -> beta * |kd_2 - kd_1| / sqrt 2
    np.testing.assert_allclose(tdds(Dynamics(kd=np.array([[np.nan, .1, .5]])), T=3, K=3), [.9 * .4 / np.sqrt(2)])
    # T = 4, K = 3: windows (kd1, kd2), (kd2, kd3) weighted 0.9 * 0.1 and 0.9
    kd = np.array([[np.nan, .1, .5, .2]])
    np.testing.assert_allclose(tdds(Dynamics(kd=kd), T=4, K=3), [.09 * .4 / np.sqrt(2) + .9 * .3 / np.sqrt(2)])
    # AUM: margins 2, 4, 6 -> -4
    np.testing.assert_allclose(aum(Dynamics(margin=np.array([[2., 4, 6]]))), [-4.])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(3, 12)), elements=st.floats(0, 1)),
       st.integers(1, 3), st.integers(0, 1), st.integers(0, 2))
def test_windowed_scores_property(p, J, ddof, skip):
    J = max(J, ddof + 1)
    d = Dynamics(p_true=p)
    if p.shape[1] - skip >= J:
        np.testing.assert_allclose(dynamic_uncertainty(d, window=J, ddof=ddof, skip=skip),
                                   window_loop(p[:, skip:], J, lambda w: np.std(w, ddof=ddof)), atol=1e-12)  # float64 on values in [0, 1]
    else:
        with pytest.raises(ValueError): dynamic_uncertainty(d, window=J, ddof=ddof, skip=skip)
    T = p.shape[1]
    if T >= J:
        np.testing.assert_allclose(dual(d, T=T, window=J, ddof=ddof),
                                   window_loop(p, J, lambda w: np.std(w, ddof=ddof) * (1 - w.mean())), atol=1e-12)  # float64 on values in [0, 1]


@settings(max_examples=40, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 10), st.integers(1, 10))))
def test_forgetting_property(c):
    np.testing.assert_array_equal(forgetting(Dynamics(correct=c)), forgetting_loop(c))
    np.testing.assert_array_equal(forgetting(Dynamics(correct=c.astype(np.float16))), forgetting_loop(c))  # 0/1 floats, as a recorder stores them


@settings(max_examples=40, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 10), st.integers(1, 10))), st.data())
def test_unseen_samples_refused_by_every_scorer(c, data):
    "One NaN (a sample not seen in an epoch) inside the epochs a scorer reads is refused, with the counts of samples and epochs."
    n, t = c.shape
    i, j = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, t - 1))
    holes = c.astype(np.float64); holes[i, j] = np.nan
    msg = f"1 of {n} samples were never seen in 1 of those"
    with pytest.raises(ValueError, match=f"dyn.correct is NaN.*{msg}"): forgetting(Dynamics(correct=holes))
    with pytest.raises(ValueError, match=f"dyn.margin is NaN.*{msg} {t} epochs"): aum(Dynamics(margin=holes))
    with pytest.raises(ValueError, match=f"dyn.el2n is NaN.*{msg} 1 epochs"): el2n(Dynamics(el2n=holes), epoch=j)
    with pytest.raises(ValueError, match=f"dyn.p_true is NaN.*{msg} {t} epochs"): dual(Dynamics(p_true=holes), T=t, window=1, ddof=0)
    with pytest.raises(ValueError, match="dyn.p_true is NaN"): dynamic_uncertainty(Dynamics(p_true=holes), window=1, ddof=0)
    with pytest.raises(ValueError, match="dyn.p_true is NaN"): p_true_mean(Dynamics(p_true=holes), T=None)
    with pytest.raises(ValueError, match="dyn.entropy is NaN"): entropy(Dynamics(entropy=holes), epoch=j)
    if t > 1:  # an epoch the scorer does not read may hold NaN
        np.testing.assert_array_equal(el2n(Dynamics(el2n=holes), epoch=(j + 1) % t), c[:, (j + 1) % t])
    if j > 0 and t >= 3:  # tdds reads kd[:, 1:T]; kd[:, 0] is NaN by definition and allowed
        kd = np.random.default_rng(0).random((n, t)); kd[:, 0] = np.nan
        assert np.isfinite(tdds(Dynamics(kd=kd), T=t, K=2)).all()
        kd[i, j] = np.nan
        with pytest.raises(ValueError, match=f"dyn.kd is NaN.*{msg} {t - 1} epochs"): tdds(Dynamics(kd=kd), T=t, K=2)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(2, 6), st.integers(0, 4), st.floats(0.05, 1.0), st.integers(0, 10_000))
def test_tdds_property(n, K, extra, decay, seed):
    T = K + extra
    pr = np.random.default_rng(seed).dirichlet(np.ones(3), size=(n, T + 2))
    d = Dynamics(kd=kd_from_probs(pr))
    np.testing.assert_allclose(tdds(d, T=T, K=K, decay=decay), tdds_loop(pr, T, K, decay), rtol=1e-9, atol=1e-12)  # both float64, same kd: summation order only
    np.testing.assert_allclose(tdds(d, T=T, K=K, decay=decay, epochs="last"), tdds_loop(pr, T, K, decay, start=2), rtol=1e-9, atol=1e-12)


def test_el2n_runs_and_errors():
    a, b = np.random.default_rng(0).random((2, 5, 4))
    np.testing.assert_allclose(el2n([Dynamics(el2n=a), Dynamics(el2n=b)], epoch=2), (a[:, 2] + b[:, 2]) / 2)
    with pytest.raises(ValueError, match="different numbers of samples"): el2n([Dynamics(el2n=a), Dynamics(el2n=b[:3])], epoch=1)
    with pytest.raises(ValueError, match="epoch=20 is outside"): el2n(Dynamics(el2n=a))
    with pytest.raises(ValueError, match="no `el2n` field"): el2n(Dynamics(p_true=a), epoch=1)
    with pytest.raises(ValueError, match="empty list"): el2n([], epoch=0)


def test_validation_messages():
    d = Dynamics(p_true=np.random.default_rng(0).random((4, 12)), kd=np.random.default_rng(1).random((4, 12)))
    with pytest.raises(ValueError, match="T=30 but only 12 epochs"): dual(d)
    with pytest.raises(ValueError, match="T=30 but only 12 epochs"): tdds(d)
    with pytest.raises(ValueError, match="unknown epochs 'middle'; choose one of first, last"): tdds(d, T=12, epochs="middle")
    with pytest.raises(ValueError, match="K must be an int >= 2"): tdds(d, T=12, K=1)
    with pytest.raises(ValueError, match=r"decay must be a number in \(0, 1\]"): tdds(d, T=12, decay=0)
    with pytest.raises(ValueError, match="skip=12 leaves none"): dynamic_uncertainty(d, window=1, ddof=0, skip=12)
    with pytest.raises(ValueError, match=r"ddof must be an int in \[0, 1\]"): dual(d, T=12, ddof=2)
    with pytest.raises(ValueError, match="dyn.kd is NaN in the epochs this score reads: 2 of 2 samples"): tdds(Dynamics(kd=np.full((2, 12), np.nan)), T=12)
    with pytest.raises(ValueError, match="embeddings has 3 rows with NaN"): ssl_prototypes(np.full((3, 2), np.nan), 1)
    with pytest.raises(ValueError, match="labels must have shape"): ssl_prototypes(np.ones((3, 2)), 1, labels=[0, 1])
    with pytest.raises(ValueError, match="n must be an int >= 1"): random_scores(0)


def test_ssl_prototypes_brute_force():
    "Per-class prototypes with k = 1 are the normalised class means: brute-force cosine distances."
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 5)).astype(np.float32)
    y = rng.integers(0, 3, 60)
    s = ssl_prototypes(x, 1, labels=y)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    for i in range(60):
        c = xn[y == y[i]].mean(0)
        assert abs(s[i] - (1 - xn[i] @ c / np.linalg.norm(c))) < 1e-5
    # k-means: every score is 1 - cosine to the best centroid, so within [0, 2]; deterministic per seed
    s2 = ssl_prototypes(x, 4, seed=1)
    assert s2.shape == (60,) and (s2 >= -1e-6).all() and (s2 <= 2 + 1e-6).all()
    np.testing.assert_array_equal(s2, ssl_prototypes(x, 4, seed=1))
