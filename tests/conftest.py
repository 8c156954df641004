"Shared fixtures. `refused` runs one bad call and checks how it fails (see tests/test_bad_inputs.py)."
import hashlib, re
from pathlib import Path

import pytest


def _snapshot(folder: Path) -> dict:
    "Relative path -> sha256 of every file below `folder`, and the set of folders."
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def assert_refused(call, exc, names, watch: Path):
    """`call()` raises exactly `exc` (or a subclass), its message names every word in `names`,
    and no file or folder under `watch` was created, changed or removed."""
    before = _snapshot(watch)
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    for name in ([names] if isinstance(names, str) else names):
        assert re.search(re.escape(name), msg), f"message does not name {name!r}: {msg!r}"
    assert _snapshot(watch) == before, "a refused call changed files under the watched folder"
    return msg


@pytest.fixture
def refused():
    return assert_refused
