"Extending scoreextrap without touching library code: a new scorer, a new extrapolator and a new training step, through score_dataset."
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scoreextrap.data import load_dataset
from scoreextrap.models import embed
from scoreextrap.pipeline import default_model_fn, score_dataset, subset_indices
from scoreextrap.scores import SCORERS, register_scorer


def late_loss(dyn, *, start:int=0):  # a new scorer: mean loss from epoch `start` on (high = still hard late in training)
    return dyn.loss[:, start:].astype(np.float64).mean(1)


class NearestNeighbour:  # a new extrapolator: brute-force 1-NN, multi-output
    uses_labels = False
    def fit(self, embeddings, targets, *, labels=None):
        self.x, self.y = np.asarray(embeddings, np.float64), np.asarray(targets, np.float64)
        return self
    def predict(self, embeddings, *, labels=None):
        d = ((np.asarray(embeddings, np.float64)[:, None] - self.x[None]) ** 2).sum(-1)
        return self.y[d.argmin(1)]


@pytest.fixture
def late_loss_registered():
    register_scorer("late_loss", late_loss, fields=("loss",), defaults=lambda n, o: {"start": n // 2, **o},
                    side_outputs=lambda d, o: {"first_loss": d.loss[:, 0].astype(np.float64)})
    yield
    del SCORERS["late_loss"]


def test_new_scorer_extrapolator_and_step_through_score_dataset(late_loss_registered):
    train = load_dataset("synthetic", n=300, img_size=16, seed=4)
    permuted = train.targets[torch.randperm(len(train), generator=torch.Generator().manual_seed(0))]
    sub = subset_indices(len(train), 0.3, seed=1)
    def permuted_label_step(model, x, y, idx):  # a new step: idx indexes the trained subset
        targets = permuted[torch.as_tensor(sub)[idx]].to(y.device)
        logits = model(x)
        return F.cross_entropy(logits, targets), logits, targets

    r = score_dataset(train, "late_loss", subset_frac=0.3, extrapolator=NearestNeighbour(), epochs=4, seed=1,
                      model_fn=default_model_fn(train, width=4, hidden=16), device="cpu", progress=False,
                      fit_kwargs=dict(batch_size=64, step=permuted_label_step))
    np.testing.assert_array_equal(r.subset_idx, sub)
    assert r.scorer == "late_loss" and r.extrapolator == "NearestNeighbour"
    # the step's targets reached the recorder: per-sample losses average to the history's training loss (float32 sums)
    np.testing.assert_allclose(r.dynamics.loss.mean(0), r.history.train_loss.values, rtol=1e-4)
    # the registry's default (start = 4 // 2) was applied, on the trained samples
    np.testing.assert_allclose(r.scores[sub], r.dynamics.loss[:, 2:].astype(np.float64).mean(1))
    # every other sample got the score and the side output of its nearest trained sample, from one fit on both
    emb = embed(r.model, train).astype(np.float64)
    rest = np.setdiff1d(np.arange(len(train)), sub)
    nearest = sub[((emb[rest][:, None] - emb[sub][None]) ** 2).sum(-1).argmin(1)]
    np.testing.assert_allclose(r.scores[rest], r.scores[nearest])
    np.testing.assert_allclose(r.side_outputs["first_loss"][rest], r.side_outputs["first_loss"][nearest])
    np.testing.assert_allclose(r.side_outputs["first_loss"][sub], r.dynamics.loss[:, 0])


def test_an_unregistered_function_is_a_scorer_too():
    train = load_dataset("synthetic", n=120, img_size=16, seed=5)
    r = score_dataset(train, lambda d: d.p_true[:, -1], epochs=1, model_fn=default_model_fn(train, width=4, hidden=16),
                      fit_kwargs=dict(batch_size=64), device="cpu", progress=False)
    np.testing.assert_allclose(r.scores, r.dynamics.p_true[:, -1])
    assert r.side_outputs == {} and r.p_mean is None
