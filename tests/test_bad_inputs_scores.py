"""Bad inputs to the scorers, samplers, metrics and the perceptron theory: each case asserts the exception type, that
the message names the argument, and that no file under a watched folder changed (see `refused` in conftest.py)."""
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from conftest import assert_refused
from scoreextrap import metrics, sampling, scores, theory

rng = np.random.default_rng(0)
P = rng.random((6, 12))  # p_true-like values of 6 samples over 12 epochs
S = rng.random(6)  # six finite scores
D_, PM = rng.exponential(size=20) + 0.1, rng.uniform(0.05, 0.95, 20)  # DUAL scores and mean p_true for Beta sampling
CORRECT = P > 0.5


def dyn(**fields):
    "A duck-typed Dynamics: the scorers read attributes only, so the cases do not depend on the Dynamics constructor."
    return SimpleNamespace(**fields)


def holes(a, *cells):
    "`a` as float64 with NaN (a sample not seen in an epoch) at the given (sample, epoch) cells."
    a = np.array(a, dtype=np.float64)
    for i, t in cells: a[i, t] = np.nan
    return a


def tiny_model_and_data():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)), torch.utils.data.TensorDataset(torch.randn(5, 4), torch.randint(0, 3, (5,)))


# Each case: (id, call() -> None, exception type, words the message must contain).
CASES = [
    # scorers: options
    ("du window str", lambda: scores.dynamic_uncertainty(dyn(p_true=P), window="3"), ValueError, ["window"]),
    ("du skip float", lambda: scores.dynamic_uncertainty(dyn(p_true=P), window=3, skip=1.5), ValueError, ["skip"]),
    ("du ddof str", lambda: scores.dynamic_uncertainty(dyn(p_true=P), window=3, ddof="1"), ValueError, ["ddof"]),
    ("du scale str", lambda: scores.dynamic_uncertainty(dyn(p_true=P), window=3, scale="10"), ValueError, ["scale"]),
    ("dual T str", lambda: scores.dual(dyn(p_true=P), T="12", window=3), ValueError, ["T"]),
    ("dual window float", lambda: scores.dual(dyn(p_true=P), T=12, window=3.0), ValueError, ["window"]),
    ("tdds decay str", lambda: scores.tdds(dyn(kd=P), T=12, K=3, decay="0.9"), ValueError, ["decay"]),
    ("tdds K bool", lambda: scores.tdds(dyn(kd=P), T=12, K=True), ValueError, ["K"]),
    ("tdds epochs None", lambda: scores.tdds(dyn(kd=P), T=12, K=3, epochs=None), ValueError, ["epochs"]),
    ("el2n epoch float", lambda: scores.el2n(dyn(el2n=P), epoch=1.0), ValueError, ["epoch"]),
    ("aum T bool", lambda: scores.aum(dyn(margin=P), T=True), ValueError, ["T"]),
    ("p_true_mean T str", lambda: scores.p_true_mean(dyn(p_true=P), T="5"), ValueError, ["T"]),
    ("forgetting never_learned str", lambda: scores.forgetting(dyn(correct=CORRECT), never_learned="6"), ValueError, ["never_learned"]),
    ("random_scores seed str", lambda: scores.random_scores(5, seed="0"), ValueError, ["seed"]),
    ("random_scores n float", lambda: scores.random_scores(5.0), ValueError, ["n"]),
    ("ssl_prototypes labels fractional", lambda: scores.ssl_prototypes(P, 1, labels=[0.5] * 6), ValueError, ["labels"]),
    ("ssl_prototypes niter 0", lambda: scores.ssl_prototypes(P, 1, niter=0), ValueError, ["niter"]),
    ("ssl_prototypes complex", lambda: scores.ssl_prototypes(P + 1j, 1), ValueError, ["embeddings", "real"]),
    ("grand batch_size str", lambda: scores.grand(*tiny_model_and_data(), batch_size="64"), ValueError, ["batch_size"]),
    # scorers: unseen samples (NaN) and non-numbers in the epochs read
    ("forgetting unseen", lambda: scores.forgetting(dyn(correct=holes(CORRECT, (2, 3)))), ValueError, ["dyn.correct", "1 of 6 samples", "1 of those 12 epochs"]),
    ("forgetting non-0/1", lambda: scores.forgetting(dyn(correct=P)), ValueError, ["dyn.correct", "0/1"]),
    ("aum unseen", lambda: scores.aum(dyn(margin=holes(P, (0, 0), (1, 0)))), ValueError, ["dyn.margin", "2 of 6 samples", "1 of those 12 epochs"]),
    ("el2n unseen at its epoch", lambda: scores.el2n(dyn(el2n=holes(P, (4, 5))), epoch=5), ValueError, ["dyn.el2n", "never seen"]),
    ("dual unseen", lambda: scores.dual(dyn(p_true=holes(P, (0, 2), (0, 7))), T=12, window=3), ValueError, ["dyn.p_true", "1 of 6 samples", "2 of those 12 epochs"]),
    ("du unseen", lambda: scores.dynamic_uncertainty(dyn(p_true=holes(P, (5, 11))), window=3), ValueError, ["dyn.p_true", "never seen"]),
    ("tdds unseen after epoch 0", lambda: scores.tdds(dyn(kd=holes(P, (0, 0), (1, 0), (3, 4))), T=12, K=3), ValueError, ["dyn.kd", "1 of 6 samples"]),
    ("entropy unseen", lambda: scores.entropy(dyn(entropy=holes(P, (0, 11)))), ValueError, ["dyn.entropy", "never seen"]),
    ("dual complex p_true", lambda: scores.dual(dyn(p_true=P + 0j), T=12, window=3), ValueError, ["dyn.p_true", "real"]),
    ("aum string margin", lambda: scores.aum(dyn(margin=P.astype(str))), ValueError, ["dyn.margin"]),
    # samplers
    ("select_top NaN labels", lambda: sampling.select_top(np.arange(6.), 0.5, labels=[0, 0, np.nan, np.nan, 1, 1]), ValueError, ["labels"]),
    ("select_top fractional labels", lambda: sampling.select_top(S, 0.5, labels=[0, 0.5, 1, 1, 0, 0]), ValueError, ["labels"]),
    ("select_top complex scores", lambda: sampling.select_top([1j, 2, 3], 0.5), ValueError, ["scores", "real"]),
    ("select_top keep_frac str", lambda: sampling.select_top(S, "0.5"), ValueError, ["keep_frac"]),
    ("select_random seed negative", lambda: sampling.select_random(10, 0.5, seed=-1), ValueError, ["seed"]),
    ("select_random n bool", lambda: sampling.select_random(True, 1.0), ValueError, ["n"]),
    ("select_ccs hard_cutoff str", lambda: sampling.select_ccs(S, 0.5, hard_cutoff="0.1"), ValueError, ["hard_cutoff"]),
    ("select_ccs seed float", lambda: sampling.select_ccs(S, 0.5, seed=1.5), ValueError, ["seed"]),
    ("select_ccs n_strata bool", lambda: sampling.select_ccs(S, 0.5, n_strata=True), ValueError, ["n_strata"]),
    ("select_ccs complex cutoff", lambda: sampling.select_ccs(S, 0.5, cutoff_scores=S + 1j), ValueError, ["cutoff_scores", "real"]),
    ("select_beta eps str", lambda: sampling.select_beta(D_, PM, 0.5, eps="1e-6"), ValueError, ["eps"]),
    ("select_beta c_d str", lambda: sampling.select_beta(D_, PM, 0.5, c_d="4"), ValueError, ["c_d"]),
    ("select_beta c_beta 0", lambda: sampling.select_beta(D_, PM, 0.5, c_beta=0), ValueError, ["c_beta"]),
    ("select_beta seed str", lambda: sampling.select_beta(D_, PM, 0.5, seed="1"), ValueError, ["seed"]),
    ("beta_params n_anchor float", lambda: sampling.beta_params(D_, PM, 0.5, n_anchor=2.0), ValueError, ["n_anchor"]),
    ("beta_params complex p_mean", lambda: sampling.beta_params(D_, PM + 0j, 0.5), ValueError, ["p_mean", "real"]),
    ("stratum_budgets budget float", lambda: sampling.stratum_budgets([1, 2], 1.5), ValueError, ["budget"]),
    ("stratum_budgets counts negative", lambda: sampling.stratum_budgets([1, -2], 0), ValueError, ["counts"]),
    ("class_quotas keep_frac bool", lambda: sampling.class_quotas([0, 0, 1, 1], True), ValueError, ["keep_frac"]),
    ("select method None", lambda: sampling.select(S, 0.5, method=None), ValueError, ["method"]),
    # metrics
    ("kept_overlap keep_frac bool", lambda: metrics.kept_overlap(S, S, keep_fracs=True), ValueError, ["keep_fracs"]),
    ("kept_overlap rounds to 0", lambda: metrics.kept_overlap(np.arange(10.), np.arange(10.), keep_fracs=0.01), ValueError, ["keep_fracs", "rounds to 0"]),
    ("kept_overlap one bad among several", lambda: metrics.kept_overlap(S, S, keep_fracs=(0.5, "0.3")), ValueError, ["keep_fracs"]),
    ("rank_agreement complex", lambda: metrics.rank_agreement(S + 1j, S), ValueError, ["pred", "real"]),
    ("extrapolation_report float subset", lambda: metrics.extrapolation_report(S, S, [0.5]), ValueError, ["subset_idx"]),
    ("extrapolation_report subset out of range", lambda: metrics.extrapolation_report(S, S, [0, 6]), ValueError, ["subset_idx"]),
    # theory
    ("perceptron_theory f str", lambda: theory.perceptron_theory(1.0, "0.5"), ValueError, ["f"]),
    ("perceptron_theory alpha_tot str", lambda: theory.perceptron_theory("1", 0.5), ValueError, ["alpha_tot"]),
    ("perceptron_theory keep None", lambda: theory.perceptron_theory(1.0, 0.5, keep=None), ValueError, ["keep"]),
    ("perceptron_theory theta bool", lambda: theory.perceptron_theory(1.0, 0.5, theta=True), ValueError, ["theta"]),
    ("prune_by_margin X 1-D", lambda: theory.prune_by_margin(np.ones(3), np.ones(3), 0.5), ValueError, ["X"]),
    ("prune_by_margin probe length", lambda: theory.prune_by_margin(np.ones((4, 3)), np.ones(2), 0.5), ValueError, ["probe"]),
    ("prune_by_margin f rounds to 0", lambda: theory.prune_by_margin(np.ones((4, 3)), np.ones(3), 0.1), ValueError, ["f", "rounds to 0"]),
    ("probe zero teacher", lambda: theory.probe(np.zeros(3)), ValueError, ["teacher"]),
    ("simulate_perceptron seed negative", lambda: theory.simulate_perceptron(20, 2.0, 0.5, seed=-1), ValueError, ["seed"]),
    ("simulate_perceptron method", lambda: theory.simulate_perceptron(20, 2.0, 0.5, method="cvx"), ValueError, ["method"]),
    ("teacher_data n_dim float", lambda: theory.teacher_data(50.0, 2), ValueError, ["n_dim"]),
    ("test_error zero student", lambda: theory.test_error(np.zeros(3), np.ones(3)), ValueError, ["student"]),
    ("max_margin_student X 1-D", lambda: theory.max_margin_student(np.ones(3), np.ones(3)), ValueError, ["X"]),
]


@pytest.mark.parametrize("call, exc, words", [pytest.param(c, e, n, id=i) for i, c, e, n in CASES])
def test_refused(call, exc, words, tmp_path, refused):
    (tmp_path / "existing.npz").write_bytes(b"precious")
    refused(call, exc, words, tmp_path)


def test_cases_are_distinct():
    assert len({i for i, *_ in CASES}) == len(CASES) >= 25


# ---------- property cases: a whole class of bad values, one rule ----------
not_a_fraction = st.one_of(st.booleans(), st.text(max_size=4), st.complex_numbers(), st.none(), st.lists(st.floats(), max_size=2).map(tuple),
                           st.floats(allow_nan=True).filter(lambda x: not 0 < x <= 1))
not_an_int = st.one_of(st.booleans(), st.text(max_size=3), st.floats(allow_nan=True), st.none(), st.complex_numbers())


def _watched(call, exc, words):
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "existing.npz").write_bytes(b"precious")
        assert_refused(call, exc, words, Path(d))


@settings(max_examples=60, deadline=None)
@given(not_a_fraction)
def test_any_non_fraction_keep_frac_refused(value):
    "The samplers, the kept-set overlap and the theory refuse anything but a real number in (0, 1], naming the argument."
    if isinstance(value, tuple) and value and all(isinstance(v, float) and 0 < v <= 1 for v in value): return  # a valid list of fractions
    _watched(lambda: sampling.select_top(S, value), ValueError, ["keep_frac"])
    _watched(lambda: sampling.select_ccs(S, value), ValueError, ["keep_frac"])
    _watched(lambda: sampling.select_random(6, value), ValueError, ["keep_frac"])
    _watched(lambda: metrics.kept_overlap(S, S, keep_fracs=value), ValueError, ["keep_fracs"])
    if not isinstance(value, tuple): _watched(lambda: theory.prune_by_margin(np.ones((4, 3)), np.ones(3), value), ValueError, ["f"])


@settings(max_examples=60, deadline=None)
@given(not_an_int, st.sampled_from(["window", "skip", "ddof"]))
def test_any_non_int_window_option_refused(value, arg):
    "Every integer option of the windowed scores refuses non-ints (bools, floats, strings, None), naming the argument."
    if arg == "skip" and value is None: return
    _watched(lambda: scores.dynamic_uncertainty(dyn(p_true=P), **{"window": 3, arg: value}), ValueError, [arg])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 5), st.integers(0, 11))
def test_any_unseen_cell_refused_with_counts(i, t):
    "One unseen (sample, epoch) anywhere in the epochs read: every full-trajectory scorer refuses and counts 1 sample in 1 epoch."
    h = holes(P, (i, t))
    for call, field in ((lambda: scores.aum(dyn(margin=h)), "dyn.margin"), (lambda: scores.forgetting(dyn(correct=holes(CORRECT, (i, t)))), "dyn.correct"),
                        (lambda: scores.p_true_mean(dyn(p_true=h), T=None), "dyn.p_true")):
        _watched(call, ValueError, [field, "1 of 6 samples were never seen in 1 of those 12 epochs"])
