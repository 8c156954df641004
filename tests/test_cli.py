"The `scoreextrap` command as a user runs it, and the README's promises."
import re, shutil, subprocess, sys
from pathlib import Path

import nbformat

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


def _commands(text):
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)


def test_readme_and_index_state_the_same_two_commands():
    readme = _commands((ROOT / "README.md").read_text())
    index = _commands("\n".join(c.source.replace("\n# ", "\n") for c in nbformat.read(ROOT / "nbs" / "index.ipynb", 4).cells if c.cell_type == "markdown"))
    assert len(readme) == 2 and readme == index


def test_ci_runs_the_readme_test_command():
    assert _commands((ROOT / "README.md").read_text())[1] in (ROOT / ".ci" / "run").read_text()
