"Pipeline on synthetic data: subsets, scores, timings, retraining budgets."
import math

import numpy as np
import pytest

from scoreextrap.data import load_dataset
from scoreextrap.dynamics import Dynamics
from scoreextrap.models import SmallCNN
from scoreextrap.pipeline import (ScoreResult, default_model_fn, pruning_experiment, retrain_epochs, score_dataset,
                                  subset_indices)
from scoreextrap.scores import dual, p_true_mean

FIT = dict(batch_size=64)


@pytest.fixture(scope="module")
def data():
    train = load_dataset("synthetic", n=400, img_size=16, seed=1)
    test = load_dataset("synthetic", n=200, img_size=16, seed=1, train=False)
    return train, test, default_model_fn(train, width=4, hidden=16)


def run(train, model_fn, **kw):
    kw = {"epochs": 4, "model_fn": model_fn, "fit_kwargs": FIT, "device": "cpu", "progress": False, **kw}
    return score_dataset(train, "dual", **kw)


@pytest.fixture(scope="module")
def subset_run(data):
    train, _, mf = data
    return run(train, mf, subset_frac=0.25, seed=3)


def test_subset_indices_valid_and_seeded(subset_run, data):
    train = data[0]
    idx = subset_run.subset_idx
    assert idx.dtype == np.int64 and len(idx) == 100
    assert len(np.unique(idx)) == 100 and idx.min() >= 0 and idx.max() < len(train) and (np.diff(idx) > 0).all()
    np.testing.assert_array_equal(idx, subset_indices(len(train), 0.25, seed=3))
    assert not np.array_equal(idx, subset_indices(len(train), 0.25, seed=4))


def test_subset_keeps_own_scores(subset_run):
    r = subset_run
    assert isinstance(r, ScoreResult) and isinstance(r.dynamics, Dynamics)
    assert r.dynamics.n_samples == len(r.subset_idx) and r.dynamics.n_epochs == 4
    # independent: DUAL of the recorded subset dynamics, by a loop over windows
    p = r.dynamics.p_true.astype(np.float64)
    ref = np.mean([p[:, k:k + 2].std(1, ddof=1) * (1 - p[:, k:k + 2].mean(1)) for k in range(3)], axis=0)
    np.testing.assert_allclose(r.scores[r.subset_idx], ref, rtol=1e-6, atol=1e-9)  # float32 p_true, float64 loop: rounding ~1e-7 relative
    assert r.scores.shape == (400,) and r.scores.dtype == np.float64 and np.isfinite(r.scores).all()
    assert r.p_mean.shape == (400,) and (0 <= r.p_mean).all() and (r.p_mean <= 1).all()
    np.testing.assert_allclose(r.p_mean[r.subset_idx], p.mean(1), atol=1e-6)
    assert r.extrapolator == "knn"


def test_timings_present(subset_run):
    t = subset_run.timings
    assert set(t) == {"train", "score", "embed", "extrapolate", "total"}
    assert all(v >= 0 for v in t.values()) and t["train"] > 0 and t["embed"] > 0
    assert t["total"] >= t["train"] + t["embed"] + t["extrapolate"] - 1e-6


def test_same_seed_same_scores(subset_run, data):
    train, _, mf = data
    again = run(train, mf, subset_frac=0.25, seed=3)
    np.testing.assert_array_equal(again.subset_idx, subset_run.subset_idx)
    np.testing.assert_allclose(again.scores, subset_run.scores)


def test_full_run_when_subset_frac_none(data):
    train, _, mf = data
    r = run(train, mf, subset_frac=None)
    np.testing.assert_array_equal(r.subset_idx, np.arange(len(train)))
    assert r.dynamics.n_samples == len(train) and r.extrapolator is None
    np.testing.assert_allclose(r.scores, dual(r.dynamics, T=4, window=2))
    np.testing.assert_allclose(r.p_mean, p_true_mean(r.dynamics, T=4))
    assert r.timings["embed"] == 0.0 and r.timings["extrapolate"] == 0.0


def test_other_scorer_and_callable(data):
    train, _, mf = data
    r = score_dataset(train, "forgetting", epochs=2, model_fn=mf, fit_kwargs=FIT, device="cpu", progress=False)
    assert r.p_mean is None and r.scores.shape == (400,)
    r = score_dataset(train, lambda d: d.loss[:, -1], epochs=1, model_fn=mf, fit_kwargs=FIT, device="cpu", progress=False)
    np.testing.assert_allclose(r.scores, r.dynamics.loss[:, -1])


@pytest.mark.parametrize("kw,msg", [(dict(scorer="nope"), "unknown scorer"), (dict(subset_frac=0.0), "subset_frac must be"),
                                    (dict(subset_frac=0.1, extrapolator="rf"), "unknown extrapolator"),
                                    (dict(epochs=3, score_kwargs=dict(T=5)), "T=5 but only 3 epochs were recorded"), (dict(epochs=0), "epochs must be")])
def test_score_dataset_errors(data, kw, msg):
    with pytest.raises(ValueError, match=msg): score_dataset(data[0], **kw)


@pytest.mark.parametrize("n,kept,epochs,bs", [(50_000, 15_000, 200, 128), (1000, 333, 3, 64), (1000, 1, 2, 100), (999, 999, 5, 10)])
def test_retrain_epochs_fixed_iterations(n, kept, epochs, bs):
    e = retrain_epochs(n, kept, epochs, batch_size=bs, budget="iterations")
    full_steps = epochs * -(-n // bs)
    steps = -(-kept // bs)
    # the closest whole number of epochs to the full run's optimizer steps
    assert abs(e * steps - full_steps) <= steps / 2 + 1e-9
    assert retrain_epochs(n, kept, epochs, batch_size=bs, budget="epochs") == epochs
    assert retrain_epochs(n, n, epochs, batch_size=bs, budget="iterations") == epochs


def test_pruning_experiment_table(data, subset_run):
    train, test, mf = data
    df = pruning_experiment(train, test, {"ext": subset_run, "rand": np.random.default_rng(0).random(400)},
                            keep_fracs=(0.5, 1.0), methods={"ext": ["beta", "top"], "rand": ["top"]}, epochs=2, seeds=(0, 1),
                            budget="iterations", model_fn=mf, fit_kwargs=FIT, device="cpu", progress=False)
    assert len(df) == 4 * 2 * 2
    assert set(df.strategy) == {"random", "ext + beta", "ext + top", "rand + top"}
    for col in ("score", "method", "keep_frac", "seed", "test_acc", "train_seconds", "epochs", "iterations", "n_kept"):
        assert col in df
    half = df[df.keep_frac == 0.5]
    assert (half.n_kept == 200).all() and (half.epochs == round(2 * math.ceil(400 / 64) / math.ceil(200 / 64))).all()
    assert (df[df.keep_frac == 1.0].epochs == 2).all()
    assert df.test_acc.between(0, 1).all() and df.attrs["budget"] == "iterations"


def test_pruning_experiment_errors(data, subset_run):
    train, test, mf = data
    with pytest.raises(ValueError, match=r"has 3 values but there are"): pruning_experiment(train, test, {"x": np.zeros(3)})
    with pytest.raises(ValueError, match="keep_fracs"): pruning_experiment(train, test, {"x": subset_run}, keep_fracs=(0,))
    with pytest.raises(ValueError, match="needs p_mean"): pruning_experiment(train, test, {"x": subset_run.scores}, methods=["beta"])
    with pytest.raises(ValueError, match="budget"): pruning_experiment(train, test, {"x": subset_run}, budget="steps")


def test_gnn_extrapolator(data):
    train, _, mf = data
    r = run(train, mf, subset_frac=0.25, extrapolator="gnn", extrapolator_kwargs=dict(epochs=10, hidden=(16, 8)))
    assert r.extrapolator == "gnn" and r.scores.shape == (400,) and np.isfinite(r.scores).all()
    np.testing.assert_allclose(r.scores[r.subset_idx], dual(r.dynamics, T=4, window=2))
    assert r.timings["extrapolate"] > 0 and (0 <= r.p_mean).all() and (r.p_mean <= 1).all()


def test_a_custom_training_step_runs_through_score_dataset(data):
    "A step that trains on shuffled labels needs no library change: the recorder scores against the step's targets."
    import torch
    import torch.nn.functional as F
    train, _, mf = data
    shuffled = train.targets[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))]
    sub = subset_indices(len(train), 0.5, seed=2)
    def shuffled_label_step(model, x, y, idx):  # idx indexes the trained subset, 0..len(sub)-1
        targets = shuffled[torch.as_tensor(sub)[idx]].to(y.device)
        logits = model(x)
        return F.cross_entropy(logits, targets), logits, targets
    r = run(train, mf, subset_frac=0.5, seed=2, fit_kwargs={**FIT, "step": shuffled_label_step})
    assert (r.subset_idx == sub).all()
    # the recorded per-sample loss averaged over each epoch is that epoch's training loss (float32 sums of 200 losses)
    np.testing.assert_allclose(r.dynamics.loss.mean(0), r.history.train_loss.values, rtol=1e-4)
    # and differs from what the true labels would give: the shuffled targets disagree with most labels
    assert (shuffled[sub] != train.targets[sub]).float().mean() > 0.5


def test_recording_only_the_scorers_fields_in_float16_on_disk(subset_run, data, tmp_path):
    "fields='scorer', float16 and memory-mapped files: the same run, DUAL's one field kept, scores within float16 rounding."
    train, _, mf = data
    r = run(train, mf, subset_frac=0.25, seed=3, recorder_kwargs=dict(fields="scorer", dtype=np.float16, memmap_dir=tmp_path))
    assert r.dynamics.fields == ("p_true",) and r.dynamics.p_true.dtype == np.float16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p_true.npy"]
    np.testing.assert_array_equal(r.dynamics.p_true, subset_run.dynamics.p_true.astype(np.float16))  # same seed, same training
    # DUAL is a mean of products of std and (1 - mean) of p_true in [0, 1]: float16's rounding of p_true (<= 2**-11 relative) moves it by < 1e-3
    np.testing.assert_allclose(r.scores[r.subset_idx], subset_run.scores[r.subset_idx], atol=1e-3)
    with pytest.raises(ValueError, match="must not set labels"):
        run(train, mf, recorder_kwargs=dict(labels=np.zeros(400, int)))
