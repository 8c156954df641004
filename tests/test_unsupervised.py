"Tests for scoreextrap.unsupervised and metrics.cluster_accuracy, against independent computations."
import itertools
import numpy as np, pytest, torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from scoreextrap.metrics import cluster_accuracy
from scoreextrap.unsupervised import fit_inner, predict_clusters, pseudo_label_du, task_learner_loss, train_task_learner

def _brute_force(pred, true):
    "Best accuracy over every one-to-one renaming of the clusters (padded with 'no class'), counted sample by sample."
    cl, cs = sorted(set(pred)), sorted(set(true))
    D = max(len(cl), len(cs))
    best = 0
    for perm in itertools.permutations(range(D)):
        name = {c: cs[perm[i]] if perm[i] < len(cs) else None for i, c in enumerate(cl)}
        best = max(best, sum(name[a] == b for a, b in zip(pred, true)))
    return best / len(pred)

@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.integers(1, 6), st.integers(0, 10_000))
def test_cluster_accuracy_matches_brute_force(n, k_pred, k_true, seed):
    rng = np.random.default_rng(seed)
    pred, true = rng.integers(0, k_pred, n) * 3 + 1, rng.integers(0, k_true, n)  # non-contiguous cluster ids
    assert np.isclose(cluster_accuracy(pred, true), _brute_force(pred.tolist(), true.tolist()))

@settings(max_examples=50, deadline=None)
@given(st.integers(2, 60), st.integers(0, 10_000))
def test_cluster_accuracy_invariant_to_renaming_and_perfect_on_itself(n, seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 5, n)
    rename = rng.permutation(20)[:5]
    assert cluster_accuracy(rename[true], true) == 1.0
    pred = rng.integers(0, 5, n)
    assert np.isclose(cluster_accuracy(rename[pred], true), cluster_accuracy(pred, true))
    assert np.isclose(cluster_accuracy(pred, true), cluster_accuracy(true, pred))  # the matching is symmetric

def test_cluster_accuracy_hand_examples_and_bad_inputs():
    assert np.isclose(cluster_accuracy([1, 1, 0, 0, 0, 2], [0, 0, 0, 1, 1, 2]), 5 / 6)
    assert np.isclose(cluster_accuracy(np.arange(8), [0] * 4 + [1] * 4), 2 / 8)  # 8 singletons, 2 classes: 2 matched
    assert np.isclose(cluster_accuracy([0, 0, 1, 1, 2, 2], [0, 0, 0, 0, 0, 0]), 2 / 6)  # surplus clusters count as wrong
    for pred, true, msg in (([0, 1], [0], "pred has 2 cluster ids but true has 1"), ([], [], "pred is empty"),
                            ([0, -2], [0, 0], "pred must be class indices >= 0"), ([[0, 1]], [0, 1], "pred must be a 1-D array"),
                            ([0, 1], [0.5, 1], "true must be integer class indices")):
        with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace("[", r"\[")): cluster_accuracy(pred, true)

def test_loss_pieces_against_numpy():
    rng = np.random.default_rng(0)
    for B, C, gamma in ((1, 2, 0.0), (9, 4, 10.0), (100, 10, 3.0)):
        p, l = rng.dirichlet(np.ones(C), B), 3 * rng.standard_normal((B, C))
        ce = np.mean([-sum(p[i, c] * (l[i, c] - np.log(np.exp(l[i]).sum())) for c in range(C)) for i in range(B)])
        pbar = p.mean(0)
        ent = -sum(q * np.log(q) for q in pbar if q > 0)
        out = task_learner_loss(torch.tensor(p), torch.tensor(l), gamma=gamma)
        assert np.isclose(out["ce"].item(), ce) and np.isclose(out["entropy"].item(), ent)
        assert np.isclose(out["loss"].item(), ce - gamma * ent)

def test_entropy_extremes_and_gradient_direction():
    C = 6
    uniform = torch.full((5, C), 1 / C)
    assert np.isclose(task_learner_loss(uniform, torch.zeros(5, C))["entropy"].item(), np.log(C))
    one = F.one_hot(torch.zeros(5, dtype=torch.long), C).float()
    assert np.isclose(task_learner_loss(one, torch.zeros(5, C))["entropy"].item(), 0.0)
    # the outer gradient w.r.t. the pseudo-labels is -log softmax(inner logits) / B (from ce) minus gamma * d entropy
    p = torch.tensor(np.random.default_rng(1).dirichlet(np.ones(C), 4), requires_grad=True)
    l = torch.randn(4, C, dtype=torch.float64)
    task_learner_loss(p, l, gamma=0.0)["loss"].backward()
    assert torch.allclose(p.grad, -F.log_softmax(l, 1) / 4)

def test_fit_inner_reaches_separable_targets():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(200, 5, generator=g)
    y = (z[:, 0] > 0).long()
    torch.manual_seed(0)
    inner = fit_inner(z * 5, y, 2, steps=200, lr=0.05)
    assert (inner(z * 5).argmax(1) == y).float().mean() > 0.97  # a linearly separable rule, learned

def _blobs(k=4, n_per=150, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)) * 3
    y = np.repeat(np.arange(k), n_per)
    x = centres[y] + 0.3 * rng.standard_normal((len(y), d))
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32), y

def test_task_learner_finds_blobs_and_is_deterministic():
    x, y = _blobs()
    kw = dict(epochs=40, batch_size=200, lr=0.05, inner_lr=0.05, progress=False)
    a, b, c = (train_task_learner(x, 4, seed=s, **kw) for s in (3, 3, 4))
    assert np.array_equal(a.probs, b.probs) and all(np.array_equal(a.history[k], b.history[k]) for k in a.history)
    assert not np.allclose(a.probs, c.probs)
    for run in (a, c): assert cluster_accuracy(predict_clusters(run.encoder, x)[1], y) > 0.95
    torch.manual_seed(123); before = torch.rand(3)
    torch.manual_seed(123); train_task_learner(x, 4, epochs=1, progress=False); after = torch.rand(3)
    assert torch.equal(before, after)  # the caller's random state is left alone

def test_pseudo_label_du_against_loop():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(3), (20, 15)).astype(np.float32)  # [N=20, T=15, C=3]
    final = rng.integers(0, 3, 20)
    J = 4
    want = [np.mean([np.std(probs[i, s:s + J, final[i]]) for s in range(15 - J + 1)]) for i in range(20)]
    assert np.allclose(pseudo_label_du(probs, final, window=J), want, atol=1e-6)
    with pytest.raises(ValueError, match="probs has NaN"): pseudo_label_du(np.full((2, 12, 3), np.nan))
