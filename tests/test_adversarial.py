"""Property tests of the adversarial module: PGD's invariants over random models, inputs and budgets, its first step
against the closed-form gradient of a linear softmax model, and the training step's reduction to cross-entropy."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch import nn

from scoreextrap.adversarial import AdversarialRecorder, adversarial_step, pgd_attack, robust_accuracy
from scoreextrap.data import TensorImageDataset
from scoreextrap.train import cross_entropy_step

SEEDS = st.integers(0, 2**31 - 1)


def _linear(seed, c=2, hw=4, k=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(c * hw * hw, k))


def _batch(seed, b=6, c=2, hw=4, k=3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, hw, hw, generator=g), torch.randint(0, k, (b,), generator=g)


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, eps=st.floats(0, 0.5), steps=st.integers(1, 4), step_size=st.floats(0.001, 0.5),
       mean=st.floats(-1, 1), std=st.floats(0.1, 3), random_start=st.booleans())
def test_pgd_stays_in_the_ball_and_in_valid_pixels(seed, eps, steps, step_size, mean, std, random_start):
    model = _linear(seed)
    p, y = _batch(seed)
    x = (p - mean) / std  # normalised inputs whose pixels are p
    x_adv = pgd_attack(model, x, y, eps=eps, steps=steps, step_size=step_size, mean=mean, std=std, random_start=random_start, seed=seed)
    p_adv = x_adv * std + mean
    tol = 1e-5 * max(1.0, std)  # float32 rounding of normalising and back, scaled by std
    assert (p_adv - p).abs().max() <= eps + tol
    assert p_adv.min() >= -tol and p_adv.max() <= 1 + tol
    assert x_adv.shape == x.shape and not x_adv.requires_grad


@settings(max_examples=40, deadline=None)
@given(seed=SEEDS, eps=st.floats(0.001, 0.3))
def test_one_step_without_random_start_is_fgsm(seed, eps):
    "The input gradient of CE(W p + b, y) is W^T (softmax - onehot): one step of size eps is the fast gradient sign method."
    model = _linear(seed)
    p, y = _batch(seed)
    W, b = model[1].weight.detach(), model[1].bias.detach()
    with torch.no_grad():
        grad = (F.softmax(p.flatten(1) @ W.T + b, 1) - F.one_hot(y, 3)) @ W
    expected = (p.flatten(1) + eps * grad.sign()).clamp(0, 1).view_as(p)
    got = pgd_attack(model, p, y, eps=eps, steps=1, step_size=eps, random_start=False)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


@settings(max_examples=20, deadline=None)
@given(seed=SEEDS, train_mode=st.booleans())
def test_pgd_leaves_the_model_as_it_was(seed, train_mode):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(48, 3)).train(train_mode)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = _batch(seed)
    pgd_attack(model, x, y, eps=0.1, steps=3, step_size=0.03, seed=seed)
    assert model.training == train_mode
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # batch-norm statistics untouched


@settings(max_examples=20, deadline=None)
@given(seed=SEEDS, trades=st.sampled_from([None, 0.5, 5.0]))
def test_eps_zero_step_is_cross_entropy(seed, trades):
    model = _linear(seed).train()
    x, y = _batch(seed)
    ref_loss, ref_logits, _ = cross_entropy_step(model, x, y, torch.arange(len(y)))
    loss, logits, targets = adversarial_step(eps=0.0, steps=2, step_size=0.1, trades_beta=trades)(model, x, y, torch.arange(len(y)))
    torch.testing.assert_close(loss, ref_loss, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(logits, ref_logits, atol=1e-6, rtol=1e-6)
    assert torch.equal(targets, y)


def test_robust_accuracy_clean_part_and_bounds():
    "Clean accuracy in odd-sized batches equals one forward pass over all images; robust accuracy lies in [0, clean]."
    torch.manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 4, 4), dtype=torch.uint8)
    ds = TensorImageDataset(images, torch.randint(0, 3, (40,)), mean=[0.0], std=[1.0])
    model = _linear(3, c=1)
    out = robust_accuracy(model, ds, eps=0.05, steps=3, step_size=0.02, batch_size=7, restarts=2)
    x, y = ds[list(range(40))]
    with torch.no_grad(): clean = model(x).argmax(1) == y
    assert out["acc"] == clean.float().mean().item() and out["n"] == 40
    assert 0 <= out["robust_acc"] <= out["acc"]


@pytest.mark.parametrize("kwargs, words", [
    (dict(eps=1.5, steps=2, step_size=0.1), ["eps"]),
    (dict(eps=0.1, steps=0, step_size=0.1), ["steps"]),
    (dict(eps=0.1, steps=2, step_size=0.0), ["step_size"]),
])
def test_attack_options_refused(kwargs, words):
    model = _linear(0)
    x, y = _batch(0)
    for call in (lambda: pgd_attack(model, x, y, **kwargs), lambda: adversarial_step(**kwargs),
                 lambda: AdversarialRecorder(model, TensorImageDataset(torch.zeros(4, 2, 4, 4, dtype=torch.uint8), [0, 1, 2, 0]), 3, **kwargs)):
        with pytest.raises(ValueError, match=words[0]): call()


def test_mean_std_refused():
    model = _linear(0)
    x, y = _batch(0)
    with pytest.raises(ValueError, match="std must be finite and positive"):
        pgd_attack(model, x, y, eps=0.1, steps=1, step_size=0.1, std=[1.0, 0.0])
    with pytest.raises(ValueError, match=r"one value per channel \(2\)"):
        pgd_attack(model, x, y, eps=0.1, steps=1, step_size=0.1, mean=[0.1, 0.2, 0.3])
