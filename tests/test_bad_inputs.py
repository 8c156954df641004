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
