"""Bad inputs to kNN, GNN, the pipeline and the `scoreextrap` command: each case asserts the exception type (for the
command: exit status 2 and one line on stderr), that the message names the argument or the flag, and that no file
under the watched folder changed (sha256 of every file before and after; an existing keep.npy survives byte for byte)."""
import contextlib, io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import scoreextrap.cli as cli
from scoreextrap.cli import main, save_scores, load_scores
from scoreextrap.data import load_dataset
from scoreextrap.extrapolate import extrapolate
from scoreextrap.pipeline import ScoreResult, pruning_experiment, retrain_epochs, score_dataset, subset_indices

N = 30  # samples in the watched scores file


class CLIError(Exception):
    "A `main()` run that returned a non-zero status; the message is its stderr."
    def __init__(self, rc, err): super().__init__(err); self.rc, self.err = rc, err


def run_cli(*argv):
    "Run `main(argv)` in-process; raise CLIError(rc, stderr) unless it returned 0."
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in argv])
    if rc != 0: raise CLIError(rc, err.getvalue())


@pytest.fixture
def watch(tmp_path):
    "A folder with a valid scores file, an existing keep.npy and a few files that are not scores files."
    rng = np.random.default_rng(0)
    res = ScoreResult(rng.random(N), np.arange(N), None, {"total": 1.0}, "dual", None, side_outputs={"p_mean": rng.random(N)})
    save_scores(tmp_path / "scores.npz", res, "synthetic")
    np.save(tmp_path / "keep.npy", np.arange(5))
    (tmp_path / "notes.txt").write_text("a text file, not scores\n")
    (tmp_path / "dir.npy").mkdir(); (tmp_path / "dir.npz").mkdir()
    np.savez(tmp_path / "flat2d.npz", scores=np.zeros((N, 1)), scorer="dual", dataset="synthetic", n=N)
    np.savez(tmp_path / "nan.npz", scores=np.r_[np.nan, np.zeros(N - 1)], scorer="dual", dataset="synthetic", n=N)
    np.save(tmp_path / "array.npy", np.zeros(N))
    (tmp_path / "truncated.npz").write_bytes((tmp_path / "scores.npz").read_bytes()[:60])
    return tmp_path


def refused_cli(refused, watch, argv, flag):
    "The command exits with 2, prints exactly one line naming `flag`, and changes no file under `watch`."
    msg = refused(lambda: run_cli(*argv), CLIError, [flag], watch)
    assert msg.startswith("scoreextrap: error:") and msg.count("\n") == 1 and "Traceback" not in msg, msg
    return msg


# ---------------------------------------------------------------------------------------------------- kNN and GNN
EMB = np.random.default_rng(1).standard_normal((40, 4)).astype(np.float32)
SUB = np.arange(0, 40, 4)
GSUB = np.arange(0, 40, 2)  # 20 nodes: val_frac=0.2 holds out 4 (>= 3 for a Pearson r), so only the bad argument is wrong
EVERY = np.arange(40)  # the subset is the whole dataset: nothing to predict, the options must be checked anyway

API_CASES = [
    ("knn whole subset k=0", lambda: extrapolate(EMB, EVERY, np.zeros(40), k=0), ValueError, ["k"]),
    ("knn whole subset weighting typo", lambda: extrapolate(EMB, EVERY, np.zeros(40), weighting="gauss"), ValueError, ["weighting"]),
    ("knn whole subset metric typo", lambda: extrapolate(EMB, EVERY, np.zeros(40), metric="cos"), ValueError, ["metric"]),
    ("knn whole subset index option typo", lambda: extrapolate(EMB, EVERY, np.zeros(40), index="ivf", nlists=4), ValueError, ["nlists"]),
    ("knn whole subset temperature<0", lambda: extrapolate(EMB, EVERY, np.zeros(40), temperature=-1.0), ValueError, ["temperature"]),
    ("knn k=True", lambda: extrapolate(EMB, SUB, np.zeros(10), k=True), ValueError, ["k must be an int"]),
    ("knn nlist float", lambda: extrapolate(EMB, SUB, np.zeros(10), k=2, index="ivf", nlist=2.5), ValueError, ["nlist"]),
    ("knn complex embeddings", lambda: extrapolate(EMB + 1j, SUB, np.zeros(10), k=2), ValueError, ["embeddings", "real"]),
    ("knn float subset_idx", lambda: extrapolate(EMB, SUB.astype(float), np.zeros(10), k=2), ValueError, ["subset_idx"]),
    ("gnn epochs float", lambda: extrapolate(EMB, GSUB, np.arange(20.0), extrapolator="gnn", val_frac=0.2, k=3, epochs=2.5), ValueError, ["epochs"]),
    ("gnn fractional labels", lambda: extrapolate(EMB, GSUB, np.arange(20.0), extrapolator="gnn", val_frac=0.2, k=3, labels=np.full(40, 0.5)), ValueError, ["labels"]),
    ("gnn hidden int", lambda: extrapolate(EMB, GSUB, np.arange(20.0), extrapolator="gnn", val_frac=0.2, k=3, hidden=64), ValueError, ["hidden"]),
    ("gnn seed<0", lambda: extrapolate(EMB, GSUB, np.arange(20.0), extrapolator="gnn", val_frac=0.2, k=3, seed=-1), ValueError, ["seed"]),
    ("gnn lr=0", lambda: extrapolate(EMB, GSUB, np.arange(20.0), extrapolator="gnn", val_frac=0.2, k=3, lr=0), ValueError, ["lr"]),
    ("gnn dropout>1", lambda: extrapolate(EMB, GSUB, np.arange(20.0), extrapolator="gnn", val_frac=0.2, k=3, dropout=1.5), ValueError, ["dropout"]),
    ("gnn k>=N", lambda: extrapolate(EMB, GSUB, np.arange(20.0), extrapolator="gnn", val_frac=0.2, k=40), ValueError, ["k", "[1, 39]"]),
    ("subset_indices fractional labels", lambda: subset_indices(40, 0.5, labels=np.full(40, 0.5)), ValueError, ["labels"]),
    ("subset_indices frac bool", lambda: subset_indices(40, True), ValueError, ["subset_frac"]),
    ("retrain_epochs n_kept bool", lambda: retrain_epochs(100, True, 5), ValueError, ["n_kept"]),
]


@pytest.mark.parametrize("call, exc, words", [pytest.param(c, e, w, id=i) for i, c, e, w in API_CASES])
def test_api_refuses(call, exc, words, watch, refused):
    refused(call, exc, words, watch)


@pytest.fixture(scope="module")
def tiny():
    return load_dataset("synthetic", n=24, n_classes=3, img_size=8, seed=0), load_dataset("synthetic", n=12, n_classes=3, img_size=8, seed=0, train=False)


PIPE_CASES = [  # pruning_experiment: every one of these is refused before any retraining starts
    ("seeds empty", dict(seeds=()), ["seeds"]),
    ("seeds fractional", dict(seeds=(0.5,)), ["seeds"]),
    ("keep_fracs empty", dict(keep_fracs=()), ["keep_fracs"]),
    ("keep_fracs string", dict(keep_fracs=("0.5",)), ["keep_fracs"]),
    ("methods empty", dict(methods=[]), ["methods"]),
    ("methods a bare string", dict(methods="top"), ["methods must be a list"]),
    ("methods names an unknown score", dict(methods={"typo": ["top"]}), ["methods", "typo"]),
    ("epochs=0", dict(epochs=0), ["epochs"]),
]


@pytest.mark.parametrize("kw, words", [pytest.param(k, w, id=i) for i, k, w in PIPE_CASES])
def test_pruning_experiment_refuses(kw, words, tiny, watch, refused):
    train, test = tiny
    kw = {"epochs": 1, **kw}
    refused(lambda: pruning_experiment(train, test, {"x": np.arange(len(train), dtype=float)}, progress=False, **kw), ValueError, words, watch)


@pytest.mark.parametrize("scorer, words", [pytest.param(lambda d: np.zeros(5), ["returned 5 scores for 24 samples"], id="wrong length"),
                                           pytest.param(lambda d: np.zeros((24, 2)), ["returned 48 scores for 24 samples"], id="2-D"),
                                           pytest.param(lambda d: np.full(24, np.nan), ["non-finite"], id="NaN")])
def test_custom_scorer_output_is_checked(scorer, words, tiny, watch, refused):
    refused(lambda: score_dataset(tiny[0], scorer, epochs=1, device="cpu", progress=False), ValueError, words, watch)


def test_gnn_handles_huge_scores():
    "Scores of 1e200 square to inf in float64; the targets are standardised without overflow and come back at scale."
    x = np.random.default_rng(2).standard_normal((60, 4)).astype(np.float32)
    sub = np.arange(0, 60, 3); s = np.sin(np.arange(20.0))
    kw = dict(k=5, hidden=(8,), epochs=5, lr=1e-2, val_frac=0.2, device="cpu")
    p, q = extrapolate(x, sub, s, extrapolator="gnn", **kw), extrapolate(x, sub, s * 1e200, extrapolator="gnn", **kw)
    assert np.isfinite(q).all()
    # dividing by 1e200 again rounds once more: a few float64 ulps of the O(1) predictions, far below 1e-12
    np.testing.assert_allclose(q / 1e200, p, rtol=0, atol=1e-12 * np.abs(p).max())


# ---------------------------------------------------------------------------------------------------- the command
def prune(*extra, scores="scores.npz", out="keep.npy"):
    return ["prune", "--scores", scores, "--keep-frac", 0.3, "--out", out, *extra]


CLI_CASES = [  # (id, argv as a function of the watched folder, the flag the message must name)
    ("prune --out an existing folder", lambda w: prune(scores=w / "scores.npz", out=w / "dir.npy"), "--out"),
    ("prune --out below a regular file", lambda w: prune(scores=w / "scores.npz", out=w / "notes.txt" / "keep.npy"), "--out"),
    ("score --out an existing folder", lambda w: ["score", "--dataset", "synthetic", "--n", 40, "--epochs", 1, "--out", w / "dir.npz"], "--out"),
    ("score --out below a regular file", lambda w: ["score", "--dataset", "synthetic", "--n", 40, "--epochs", 1, "--out", w / "keep.npy" / "s.npz"], "--out"),
    ("prune --seed -1", lambda w: prune("--seed", -1, scores=w / "scores.npz", out=w / "keep.npy"), "--seed"),
    ("score --seed -1", lambda w: ["score", "--dataset", "synthetic", "--n", 40, "--epochs", 1, "--seed", -1, "--out", w / "s.npz"], "--seed"),
    ("score --k 0", lambda w: ["score", "--dataset", "synthetic", "--n", 40, "--epochs", 1, "--k", 0, "--out", w / "s.npz"], "--k"),
    ("score --epochs 0", lambda w: ["score", "--dataset", "synthetic", "--n", 40, "--epochs", 0, "--out", w / "s.npz"], "--epochs"),
    ("--scores a text file", lambda w: prune(scores=w / "notes.txt", out=w / "keep.npy"), "not a .npz scores file"),
    ("--scores a .npy array", lambda w: prune(scores=w / "array.npy", out=w / "keep.npy"), "not a .npz scores file"),
    ("--scores a folder", lambda w: prune(scores=w / "dir.npz", out=w / "keep.npy"), "--scores"),
    ("--scores truncated", lambda w: prune(scores=w / "truncated.npz", out=w / "keep.npy"), "--scores"),
    ("--scores with 2-D scores", lambda w: prune(scores=w / "flat2d.npz", out=w / "keep.npy"), "must be a 1-D array"),
    ("--scores with NaN scores", lambda w: prune(scores=w / "nan.npz", out=w / "keep.npy"), "--scores"),
    ("--keep-frac nan", lambda w: ["prune", "--scores", w / "scores.npz", "--keep-frac", "nan", "--out", w / "keep.npy"], "--keep-frac"),
    ("--class-balanced without --dataset", lambda w: prune("--class-balanced", scores=w / "scores.npz", out=w / "keep.npy"), "--dataset"),
    ("demo --seeds 0", lambda w: ["demo", "--seeds", 0, "--plot", w / "demo.png"], "--seeds"),
]


@pytest.mark.parametrize("argv, flag", [pytest.param(a, f, id=i) for i, a, f in CLI_CASES])
def test_cli_refuses(argv, flag, watch, refused):
    err = refused_cli(refused, watch, argv(watch), flag)
    assert "--" in err, f"a message for command-line users names a flag: {err!r}"


def test_cli_write_error_is_one_line_and_keeps_the_old_file(watch, refused, monkeypatch):
    "A disk that fills up while keep.npy is written: exit 2, one line naming --out, the old keep.npy byte-identical."
    real = cli.atomic_write
    def disk_full(path, write):
        def write_then_fail(f): write(f); raise OSError(28, "No space left on device")
        return real(path, write_then_fail)
    monkeypatch.setattr(cli, "atomic_write", disk_full)
    err = refused_cli(refused, watch, prune(scores=watch / "scores.npz", out=watch / "keep.npy"), "--out")
    assert "No space left" in err  # the reason is in the line


def test_cli_permission_error_on_write(watch, refused, monkeypatch):
    "We run as root, so a read-only folder would not stop the write: the writer itself refuses."
    def no_permission(path, write): raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(cli, "atomic_write", no_permission)
    refused_cli(refused, watch, prune(scores=watch / "scores.npz", out=watch / "keep.npy"), "--out")


def test_scores_file_with_only_the_required_keys_loads(tmp_path):
    np.savez(tmp_path / "min.npz", scores=np.arange(10.0), scorer="el2n", dataset="synthetic", n=10)
    f = load_scores(tmp_path / "min.npz")
    assert f["n"] == 10 and f["timings"] == {} and f["scorer"] == "el2n"
    run_cli("prune", "--scores", tmp_path / "min.npz", "--keep-frac", 0.5, "--out", tmp_path / "keep.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "keep.npy"), np.arange(5, 10))  # the 5 highest of 0..9


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(max_value=-1))
def test_any_negative_prune_seed_is_refused(seed, tmp_path_factory):
    w = tmp_path_factory.mktemp("seed")
    save_scores(w / "s.npz", ScoreResult(np.arange(8.0), np.arange(8), None, {}, "dual", None), "synthetic")
    with pytest.raises(CLIError) as info: run_cli("prune", "--scores", w / "s.npz", "--keep-frac", 0.5, "--seed", seed, "--method", "random", "--out", w / "k.npy")
    assert info.value.rc == 2 and "--seed" in info.value.err and info.value.err.count("\n") == 1
    assert not (w / "k.npy").exists()


@settings(max_examples=40, deadline=None)
@given(k=st.one_of(st.integers(max_value=0), st.floats(allow_nan=True), st.booleans(), st.text(max_size=2)))
def test_knn_k_rule_holds_for_the_whole_subset(k):
    "Whatever the subset, k is an int >= 1: the same rule as for a proper subset."
    with pytest.raises(ValueError, match="k"): extrapolate(EMB, EVERY, np.zeros(40), k=k)
