"The `scoreextrap` command as a user runs it, and the README's promises."
import re, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def scoreextrap(*args):
    exe = shutil.which("scoreextrap") or str(Path(sys.executable).with_name("scoreextrap"))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=600)


def test_help_lists_commands():
    r = scoreextrap("--help")
    assert r.returncode == 0 and "demo" in r.stdout
    r = scoreextrap("demo", "--help")
    assert r.returncode == 0 and "--quick" in r.stdout


def test_demo_quick_prints_dynamics_table():
    r = scoreextrap("demo", "--quick")
    assert r.returncode == 0, r.stderr
    assert "per-sample training dynamics" in r.stdout and "mean p_true" in r.stdout
    assert re.search(r"count\s+2000\.0", r.stdout)


def test_user_errors_are_one_line_without_traceback():
    r = scoreextrap("demo", "--n", "0")
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0 and "--n must be" in r.stderr
