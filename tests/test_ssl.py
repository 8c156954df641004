"""Property tests of the SimCLR pieces: NT-Xent against a plain loop and its invariances, the views' reproducibility and
identity settings, the step on `fit`'s contract, and the probes against independent computations."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from scoreextrap.models import SmallCNN
from scoreextrap.ssl import SimCLRNet, knn_accuracy, linear_probe, nt_xent_loss, simclr_augment, simclr_step
from scoreextrap.train import _run_step

SEEDS = st.integers(0, 2**31 - 1)


def _loop(z1, z2, tau):
    "NT-Xent written out anchor by anchor in float64."
    z = [v / v.norm() for v in torch.cat([z1, z2]).double()]
    n, b = len(z), len(z1)
    total = 0.0
    for i in range(n):
        logits = [float(z[i] @ z[k]) / tau for k in range(n) if k != i]
        m = max(logits)
        lse = m + math.log(sum(math.exp(l - m) for l in logits))
        total += lse - float(z[i] @ z[(i + b) % n]) / tau
    return total / n


def _pair(seed, b, d):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=g), torch.randn(b, d, generator=g)


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, b=st.integers(2, 6), d=st.integers(1, 5), tau=st.floats(0.05, 5))
def test_nt_xent_matches_the_loop(seed, b, d, tau):
    z1, z2 = _pair(seed, b, d)
    # float32 similarities divided by tau down to 0.05: relative error about 1e-6 of logits up to 20
    assert abs(nt_xent_loss(z1, z2, temperature=tau).item() - _loop(z1, z2, tau)) < 1e-4 * max(1.0, 1 / tau)


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS, b=st.integers(2, 6), d=st.integers(2, 5), scale=st.floats(0.01, 100))
def test_nt_xent_invariances(seed, b, d, scale):
    z1, z2 = _pair(seed, b, d)
    base = nt_xent_loss(z1, z2).item()
    perm = torch.randperm(b, generator=torch.Generator().manual_seed(seed))
    tol = 1e-5 * max(1.0, base)  # float32 sums in another order
    assert abs(nt_xent_loss(scale * z1, z2).item() - base) < tol          # rows are normalised
    assert abs(nt_xent_loss(z2, z1).item() - base) < tol                  # the two views play the same role
    assert abs(nt_xent_loss(z1[perm], z2[perm]).item() - base) < tol      # the order of the images does not matter
    assert base > 0


def test_nt_xent_extremes():
    b, tau = 5, 0.5
    eye = torch.eye(b)
    assert nt_xent_loss(eye, eye, temperature=tau).item() == pytest.approx(math.log(1 + (2 * b - 2) * math.exp(-1 / tau)), rel=1e-5)
    same = torch.ones(b, 3)  # every view identical: the partner is one of 2B - 1 equal choices
    assert nt_xent_loss(same, same).item() == pytest.approx(math.log(2 * b - 1), rel=1e-6)
    with pytest.raises(ValueError, match="temperature"): nt_xent_loss(eye, eye, temperature=0)
    with pytest.raises(ValueError, match="same shape"): nt_xent_loss(eye, eye[:3])
    with pytest.raises(ValueError, match="2-D tensor"): nt_xent_loss(eye[0], eye[0])


@settings(max_examples=20, deadline=None)
@given(seed=SEEDS, b=st.integers(1, 5), c=st.integers(1, 3), hw=st.sampled_from([8, 28]))
def test_views_are_seeded_and_identity_settings_return_the_image(seed, b, c, hw):
    x = torch.randn(b, c, hw, hw, generator=torch.Generator().manual_seed(seed))
    v1 = simclr_augment(x, generator=torch.Generator().manual_seed(seed))
    v2 = simclr_augment(x, generator=torch.Generator().manual_seed(seed))
    assert v1.shape == x.shape and torch.equal(v1, v2) and torch.isfinite(v1).all()
    off = dict(scale=(1, 1), ratio=(1, 1), flip=0.0, rotate=0.0, jitter=0.0, noise=0.0)
    assert torch.allclose(simclr_augment(x, **off), x, atol=1e-5)  # identity resampling: float32 rounding only
    assert torch.allclose(simclr_augment(x, **{**off, "flip": 1.0}), x.flip(-1), atol=1e-5)


def test_view_options_are_checked():
    x = torch.zeros(2, 1, 8, 8)
    for kw, word in ((dict(scale=(0, 1)), "scale[0]"), (dict(ratio=(2, 1)), "ratio[1]"), (dict(rotate=-1), "rotate"), (dict(noise=-0.1), "noise"),
                     (dict(jitter=1.0), "jitter")):
        with pytest.raises(ValueError, match=word.replace("[", r"\[").replace("]", r"\]")): simclr_augment(x, **kw)


def test_step_meets_fits_contract():
    torch.manual_seed(0)
    net, x = SimCLRNet(SmallCNN(), proj_dim=8), torch.randn(6, 1, 28, 28)
    loss, logits, targets = _run_step(simclr_step(), net, x, torch.zeros(6, dtype=torch.long), torch.arange(6))
    assert logits.shape == (6, 12) and targets.tolist() == list(range(6, 12)) and torch.isinf(logits[torch.arange(6), torch.arange(6)]).all()
    loss.backward()
    assert net.encoder.features[0].weight.grad is not None and net.encoder.fc.weight.grad is None  # the classifier head is not trained


def test_knn_accuracy_against_brute_force():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((120, 4)), rng.standard_normal((40, 4))
    ya, yb = rng.integers(0, 3, 120), rng.integers(0, 3, 40)
    an, bn = a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)
    for k in (1, 7):
        pred = [np.argmax(np.bincount(ya[np.argsort(-(an @ q))[:k]], minlength=3)) for q in bn]
        assert knn_accuracy(a, ya, b, yb, k=k) == pytest.approx(np.mean(np.array(pred) == yb), abs=1e-6)


def test_linear_probe_separates_what_is_separable():
    rng = np.random.default_rng(2)
    y_tr, y_te = rng.integers(0, 4, 400), rng.integers(0, 4, 200)
    centres = 5 * rng.standard_normal((4, 6))
    tr, te = centres[y_tr] + rng.standard_normal((400, 6)), centres[y_te] + rng.standard_normal((200, 6))
    # the Bayes rule for equal spherical Gaussians: nearest centre; the probe must come close to it
    bayes = np.mean(np.argmin(((te[:, None] - centres[None]) ** 2).sum(-1), 1) == y_te)
    assert linear_probe(tr, y_tr, te, y_te) >= bayes - 0.03
    with pytest.raises(ValueError, match="l2"): linear_probe(tr, y_tr, te, y_te, l2=-1)
