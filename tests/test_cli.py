"The `scoreextrap` command as a user runs it: score -> prune round trip, the demo, and one-line errors."
import os, re, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def scoreextrap(*args, cwd=None):
    exe = shutil.which("scoreextrap") or str(Path(sys.executable).with_name("scoreextrap"))
    env = {**os.environ, "SCOREEXTRAP_PROGRESS": "0"}
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=900, cwd=cwd, env=env)


def assert_one_line_error(r, contains):
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert r.stderr.startswith("scoreextrap: error:") and contains in r.stderr, r.stderr


def test_help_lists_commands():
    r = scoreextrap("--help")
    assert r.returncode == 0 and all(c in r.stdout for c in ("score", "prune", "demo"))
    for cmd, opt in (("demo", "--quick"), ("score", "--subset-frac"), ("prune", "--keep-frac")):
        r = scoreextrap(cmd, "--help")
        assert r.returncode == 0 and opt in r.stdout, r.stdout
    assert "T=30" in scoreextrap("demo", "--help").stdout  # the help says what the demo's sizes are vs the paper's


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    r = scoreextrap("score", "--dataset", "synthetic", "--n", 300, "--scorer", "dual", "--subset-frac", 0.2,
                    "--extrapolator", "knn", "--epochs", 4, "--k", 10, "--out", d / "scores.npz")
    assert r.returncode == 0, r.stderr
    return d


def test_score_file_contents(scored):
    with np.load(scored / "scores.npz", allow_pickle=False) as f:
        assert f["scores"].shape == (300,) and f["scores"].dtype == np.float64 and np.isfinite(f["scores"]).all()
        assert str(f["scorer"]) == "dual" and str(f["dataset"]) == "synthetic" and int(f["n"]) == 300
        assert str(f["extrapolator"]) == "knn" and len(f["subset_idx"]) == 60 and f["p_mean"].shape == (300,)
        assert set(f["timing_names"].tolist()) == {"train", "score", "embed", "extrapolate", "total"}
    assert not list(scored.glob("*.part")) and not list(scored.glob(".*scoreextrap-tmp"))  # atomic write left no temporary file


def test_score_prune_round_trip(scored):
    r = scoreextrap("prune", "--scores", scored / "scores.npz", "--keep-frac", 0.3, "--method", "beta", "--dataset", "synthetic",
                    "--n", 300, "--out", scored / "keep.npy")
    assert r.returncode == 0, r.stderr
    keep = np.load(scored / "keep.npy", allow_pickle=False)
    assert keep.dtype == np.int64 and len(keep) == 90 and len(np.unique(keep)) == 90 and (np.diff(keep) > 0).all()
    assert keep.min() >= 0 and keep.max() < 300 and "90 sorted indices" in r.stdout
    again = scoreextrap("prune", "--scores", scored / "scores.npz", "--keep-frac", 0.3, "--method", "beta", "--out", scored / "k2.npy")
    np.testing.assert_array_equal(np.load(scored / "k2.npy"), keep)  # seeded
    r = scoreextrap("prune", "--scores", scored / "scores.npz", "--keep-frac", 0.5, "--method", "top", "--out", scored / "top.npy")
    with np.load(scored / "scores.npz") as f: s = f["scores"]
    np.testing.assert_array_equal(np.load(scored / "top.npy"), np.sort(np.argsort(-s, kind="stable")[:150]))


def test_user_errors_are_one_line_without_traceback(scored, tmp_path):
    s = scored / "scores.npz"
    assert_one_line_error(scoreextrap("prune", "--scores", tmp_path / "missing.npz", "--keep-frac", 0.3), "not found")
    assert_one_line_error(scoreextrap("score", "--dataset", "synthetic", "--scorer", "dull", "--out", tmp_path / "x.npz"), "unknown --scorer")
    assert_one_line_error(scoreextrap("prune", "--scores", s, "--keep-frac", 0), "--keep-frac")
    assert_one_line_error(scoreextrap("prune", "--scores", s, "--keep-frac", "abc"), "--keep-frac")
    assert_one_line_error(scoreextrap("prune", "--scores", s, "--keep-frac", 0.3, "--dataset", "synthetic", "--n", 500), "holds scores for 300")
    assert_one_line_error(scoreextrap("prune", "--scores", s, "--keep-frac", 0.3, "--method", "best"), "unknown --method")
    (tmp_path / "junk.npz").write_text("not a zip")
    assert_one_line_error(scoreextrap("prune", "--scores", tmp_path / "junk.npz", "--keep-frac", 0.3), "not a .npz scores file")
    assert_one_line_error(scoreextrap("score", "--dataset", "imagenet99"), "unknown --dataset")
    assert_one_line_error(scoreextrap("score", "--dataset", "synthetic", "--subset-frac", 2), "--subset-frac")
    assert_one_line_error(scoreextrap("prune", "--keep-frac", 0.3), "--scores")
    assert_one_line_error(scoreextrap("demo", "--n", 0), "--n must be")


def test_beta_needs_dual_scores(tmp_path):
    r = scoreextrap("score", "--dataset", "synthetic", "--n", 200, "--scorer", "forgetting", "--epochs", 2, "--out", tmp_path / "f.npz")
    assert r.returncode == 0, r.stderr
    assert_one_line_error(scoreextrap("prune", "--scores", tmp_path / "f.npz", "--keep-frac", 0.3, "--method", "beta"), "needs a DUAL")


def test_demo_quick_prints_tables(tmp_path):
    r = scoreextrap("demo", "--quick", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Scoring cost" in r.stdout and "Spearman" in r.stdout and "Test accuracy" in r.stdout and "Paired difference to random" in r.stdout
    for strategy in ("random", "DUAL full + beta(c_d=", "DUAL 10% kNN + beta(c_d="): assert strategy in r.stdout
    assert re.search(r"0\.3\s+0\.5", r.stdout)
    verdict = r.stdout.split("Verdict:")[1].splitlines()[1:5]  # one sentence per pruned strategy and keep_frac: 2 x 2
    assert all(re.match(r"- keep 0\.[35]: DUAL .* (beats|loses to|and) random", v) for v in verdict), verdict
    by_cost = r.stdout.split("Against full-data training at the same total cost")[1].splitlines()[1:7]  # 3 strategies x 2 keep_fracs
    assert all(re.match(r"- keep 0\.[35]: .* (points (above|below|on) full-data training|than every full-data run; no comparison)", v) for v in by_cost), by_cost
    assert (tmp_path / "scoreextrap_demo.png").exists()
    assert "--quick checks the mechanics only" in r.stdout  # its numbers are flagged as meaningless
