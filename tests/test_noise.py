"Label noise and image corruption: corrupt_images and the label-aware kNN (same_label=True), against independent computations."
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from scoreextrap.data import CORRUPTIONS, corrupt_images, load_dataset
from scoreextrap.extrapolate import extrapolate
from scoreextrap.knn import KNNExtrapolator
from scoreextrap.models import embed
from scoreextrap.pipeline import default_model_fn, score_dataset


# --- corrupt_images -------------------------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(st.integers(1, 60), st.floats(0, 1), st.sampled_from(CORRUPTIONS), st.sampled_from([1, 3]), st.integers(0, 10_000))
def test_corrupt_images_counts_and_leaves_the_rest(n, frac, kind, channels, seed):
    x = torch.randint(0, 256, (n, channels, 12, 12), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    before = x.clone()
    out, hit = corrupt_images(x, frac, kind=kind, severity=1.0 if kind == "blur" else 0.2, seed=seed)
    assert int(hit.sum()) == round(frac * n)
    assert torch.equal(out[~hit], x[~hit]) and torch.equal(x, before)
    # random pixels: a blur or noise of this strength changes every chosen image
    assert bool((out[hit] != x[hit]).flatten(1).any(1).all())


def _hand_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    "2-D Gaussian blur of one [H, W] image in [0, 1] by an explicit double sum over a (2r+1)^2 kernel, reflected borders, float64."
    r = math.ceil(3 * sigma)
    t = np.arange(-r, r + 1)
    k2 = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma ** 2)); k2 /= k2.sum()  # the outer product of the 1-D kernels
    p = np.pad(img, r, mode="reflect")
    h, w = img.shape
    return np.array([[(k2 * p[i:i + 2 * r + 1, j:j + 2 * r + 1]).sum() for j in range(w)] for i in range(h)])


def test_blur_acts_on_each_channel_of_colour_images():
    x = torch.randint(0, 256, (6, 3, 10, 10), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out, hit = corrupt_images(x, 0.5, kind="blur", severity=0.8, seed=2)
    for i in np.flatnonzero(hit.numpy()):
        for c in range(3):
            want = _hand_blur(x[i, c].numpy() / 255, 0.8) * 255
            assert np.abs(out[i, c].numpy() - want).max() <= 1 + 1e-6  # one grey level: rounding to uint8


def test_noise_is_independent_across_images_and_channels():
    "Flat mid-grey colour images, small std (no clipping): per-channel differences have the right std and no correlation."
    grey = torch.full((40, 3, 16, 16), 128, dtype=torch.uint8)
    d = corrupt_images(grey, 1.0, kind="noise", severity=0.04)[0].double() - 128
    sd = 0.04 * 255  # 10.2 grey levels; 0 and 255 are > 12 sd away
    # 10 240 pixels per channel: the sample std has a relative error of about 0.7%, so 4% is safe
    for c in range(3): assert abs(d[:, c].std().item() - sd) < 0.04 * sd
    r = np.corrcoef(d[:, 0].flatten().numpy(), d[:, 1].flatten().numpy())[0, 1]
    assert abs(r) < 0.05  # independent draws: |r| ~ 1/sqrt(10 240) = 0.01


def test_seed_choice_and_numpy_round_trip():
    x = np.random.default_rng(0).integers(0, 256, (30, 8, 8), dtype=np.uint8)
    a, ma = corrupt_images(x, 0.4, kind="noise", severity=0.1, seed=7)
    b, mb = corrupt_images(x, 0.4, kind="noise", severity=0.1, seed=7)
    assert isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.shape == x.shape and mb.dtype == bool
    np.testing.assert_array_equal(a, b); np.testing.assert_array_equal(ma, mb)
    assert not np.array_equal(corrupt_images(x, 0.4, kind="noise", severity=0.1, seed=8)[1], ma)


@pytest.mark.parametrize("call, msg", [
    (lambda x: corrupt_images(x, -0.1), "frac must be a number in [0, 1]"),
    (lambda x: corrupt_images(x, float("nan")), "frac must be a number"),
    (lambda x: corrupt_images(x, 0.5, kind="pixelate"), "unknown kind 'pixelate'"),
    (lambda x: corrupt_images(x, 0.5, severity=-1.0), "severity must be a number in (0, inf]"),
    (lambda x: corrupt_images(x.to(torch.int16), 0.5), "images must be uint8 pixels"),
    (lambda x: corrupt_images(x[None], 0.5), "got shape (1, 4, 1, 8, 8)"),
    (lambda x: corrupt_images(x, 0.5, severity=3.0), "too strong a blur for 8x8 images"),
    (lambda x: corrupt_images(x, 0.5, seed=1.5), "seed must be an int"),
])
def test_corrupt_images_refuses_bad_input(call, msg):
    x = torch.zeros((4, 1, 8, 8), dtype=torch.uint8)
    with pytest.raises(ValueError) as e: call(x)
    assert msg in str(e.value)


# --- label-aware kNN ------------------------------------------------------------------------------------------

def same_label_brute(emb, sub, scores, labels, k):
    "Mean score of the k nearest subset samples with the same label, by float64 distances in a loop; the subset keeps its scores."
    e = np.asarray(emb, np.float64)
    out = np.empty(len(e)); out[sub] = scores
    pos = {int(j): t for t, j in enumerate(sub)}
    for i in np.setdiff1d(np.arange(len(e)), sub):
        cand = [int(j) for j in sub if labels[j] == labels[i]]
        d = [np.sqrt(((e[j] - e[i]) ** 2).sum()) for j in cand]
        out[i] = np.mean([scores[pos[cand[t]]] for t in np.argsort(d, kind="stable")[:k]])
    return out


@settings(max_examples=30, deadline=None)
@given(st.integers(60, 200), st.integers(2, 5), st.integers(1, 6), st.integers(0, 10_000))  # >= 12 per class: room for k + 4 scored and some unscored
def test_same_label_matches_brute_force(n, n_classes, k, seed):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, 6)).astype(np.float32)
    labels = np.arange(n) % n_classes  # every class present
    sub = np.concatenate([rng.choice(np.flatnonzero(labels == c), k + int(rng.integers(0, 5)), replace=False) for c in range(n_classes)])
    sc = rng.random(len(sub))
    got = extrapolate(emb, sub, sc, k=k, same_label=True, labels=labels)
    want = same_label_brute(emb, sub, sc, labels, k)
    # float32 search can swap near-tied k-th neighbours; nearly all samples must agree
    assert np.isclose(got, want, atol=1e-6).mean() >= 0.97


def test_neighbours_share_the_query_label():
    rng = np.random.default_rng(0)
    emb, lab = rng.standard_normal((500, 4)).astype(np.float32), rng.integers(0, 4, 500)
    ext = KNNExtrapolator(k=5, same_label=True, batch_size=64).fit(emb[:200], rng.random(200), labels=lab[:200])
    _, idx = ext.kneighbors(emb[200:], labels=lab[200:])
    assert (lab[:200][idx] == lab[200:, None]).all()
    assert all(len(set(row)) == 5 for row in idx.tolist())  # k distinct fitted samples


def test_one_label_is_plain_knn_and_the_default_refuses_labels():
    rng = np.random.default_rng(1)
    emb, t = rng.standard_normal((300, 5)).astype(np.float32), rng.random((60, 2))
    sub = rng.choice(300, 60, replace=False)
    np.testing.assert_array_equal(extrapolate(emb, sub, t, k=9, same_label=True, labels=np.zeros(300, int)), extrapolate(emb, sub, t, k=9))
    with pytest.raises(ValueError, match="does not use class labels"): extrapolate(emb, sub, t, k=9, labels=np.zeros(300, int))
    with pytest.raises(ValueError, match="does not use class labels"): KNNExtrapolator(k=2).fit(emb[:5], t[:5, 0]).kneighbors(emb, labels=np.zeros(300, int))


def test_score_dataset_passes_labels_to_the_label_aware_knn():
    "The pipeline hands the given labels to fit and predict: the extrapolated scores are the same-label neighbour means in the subset model's embedding."
    train = load_dataset("synthetic", n=300, img_size=12, seed=2)
    r = score_dataset(train, "el2n", subset_frac=0.3, stratify=True, epochs=2, model_fn=default_model_fn(train, width=4, hidden=16),
                      extrapolator_kwargs=dict(k=4, same_label=True), fit_kwargs=dict(batch_size=64), device="cpu", progress=False)
    labels = train.targets.numpy()
    emb = embed(r.model, train)
    sub_scores = r.scores[r.subset_idx]  # the subset keeps its own scores
    want = same_label_brute(emb, r.subset_idx, sub_scores, labels, 4)
    assert np.isclose(r.scores, want, atol=1e-6).mean() >= 0.97
    plain = score_dataset(train, "el2n", subset_frac=0.3, stratify=True, epochs=2, model_fn=default_model_fn(train, width=4, hidden=16),
                          extrapolator_kwargs=dict(k=4), fit_kwargs=dict(batch_size=64), device="cpu", progress=False)
    np.testing.assert_array_equal(plain.scores[r.subset_idx], sub_scores)  # same subset, same training
    assert not np.allclose(plain.scores, r.scores)
