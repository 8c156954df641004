"""Bad inputs across the API and the CLI: each case asserts the exception type, that the message names the
argument, and that no file under a watched folder changed (sha256 of every file before and after)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from scoreextrap import checks

# Each case: (id, call(watch) -> None, exception type, words the message must contain).
CHECKS_CASES = [
    ("keep_frac bool", lambda w: checks.check_keep_frac(True), ValueError, ["keep_frac"]),
    ("keep_frac string", lambda w: checks.check_keep_frac("0.5"), ValueError, ["keep_frac"]),
    ("int given as float", lambda w: checks.check_int(3.0, "window", low=1), ValueError, ["window"]),
    ("complex scores", lambda w: checks.check_scores([1j, 2]), ValueError, ["scores", "real"]),
    ("out path is a folder", lambda w: checks.check_out_path(w, "--out"), ValueError, ["--out", "folder"]),
    ("out path below a file", lambda w: checks.check_out_path(w / "existing.npz" / "keep.npy", "--out"), ValueError, ["--out", "existing.npz"]),
    ("out path wrong suffix", lambda w: checks.check_out_path(w / "keep.txt", "--out", suffix=".npy"), ValueError, ["--out", ".npy"]),
    ("out path not a path", lambda w: checks.check_out_path(3, "out"), ValueError, ["out"]),
    ("in file missing", lambda w: checks.check_in_file(w / "missing.npz", "--scores"), FileNotFoundError, ["--scores", "missing.npz"]),
    ("in file is a folder", lambda w: checks.check_in_file(w, "--scores"), ValueError, ["--scores", "not a regular file"]),
    ("n_keep rounds to zero", lambda w: checks.n_keep(0.01, 10), ValueError, ["keep_frac", "rounds to 0"]),
    ("number NaN", lambda w: checks.check_number(float("nan"), "decay", low=0, high=1), ValueError, ["decay"]),
    ("number open end", lambda w: checks.check_number(0.0, "temperature", low=0, low_open=True), ValueError, ["temperature", "(0"]),
    ("labels fractional", lambda w: checks.check_labels([0.5, 1.7, np.nan]), ValueError, ["labels", "0.5"]),
    ("labels bool", lambda w: checks.check_labels([True, False]), ValueError, ["labels", "booleans"]),
    ("labels out of range", lambda w: checks.check_labels([0, 3], "targets", n_classes=3), ValueError, ["targets", "n_classes=3"]),
    ("indices out of range", lambda w: checks.check_indices([0, 5], "subset_idx", n=5), ValueError, ["subset_idx", "[0, 4]"]),
    ("indices strings", lambda w: checks.check_indices(["0"], "subset_idx", n=5), ValueError, ["subset_idx", "numbers"]),
    ("embeddings overflow float32", lambda w: checks.check_embeddings(np.full((2, 3), 1e300)), ValueError, ["embeddings", "NaN/inf"]),
    ("array ragged", lambda w: checks.check_array([[1, 2], [3]], "probs"), ValueError, ["probs"]),
    ("bool given as int", lambda w: checks.check_bool(1, "keep_probs"), ValueError, ["keep_probs", "True or False"]),
    ("choice wrong case", lambda w: checks.check_choice("KNN", "extrapolator", ("knn", "gnn")), ValueError, ["extrapolator", "knn, gnn"]),
]


@pytest.mark.parametrize("call, exc, words", [pytest.param(c, e, n, id=i) for i, c, e, n in CHECKS_CASES])
def test_checks_refuse(call, exc, words, tmp_path, refused):
    (tmp_path / "existing.npz").write_bytes(b"precious")
    refused(lambda: call(tmp_path), exc, words, tmp_path)


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.booleans(), st.floats(allow_nan=True), st.text(max_size=3), st.complex_numbers()))
def test_keep_frac_rule_is_one_rule(value):
    "check_keep_frac accepts exactly the real non-bool numbers in (0, 1]."
    ok = isinstance(value, float) and 0 < value <= 1
    if ok: assert checks.check_keep_frac(value) == value
    else:
        with pytest.raises(ValueError, match="keep_frac"): checks.check_keep_frac(value)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_atomic_write_honours_the_umask(mask, tmp_path):
    "A file written atomically gets the mode a plain open() would give it, not mkstemp's 0600."
    import os
    from scoreextrap.core import atomic_write
    old = os.umask(mask)
    try:
        atomic_write(tmp_path / "a.npz", lambda f: f.write(b"x"))
        with open(tmp_path / "plain", "wb") as f: f.write(b"x")
    finally: os.umask(old)
    assert (tmp_path / "a.npz").stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777 == 0o666 & ~mask
