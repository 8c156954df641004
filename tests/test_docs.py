"Documentation checks: the README's commands, the notebooks as published pages."
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def _commands(text):
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)


def test_readme_and_index_state_the_same_two_commands():
    readme = _commands((ROOT / "README.md").read_text())
    index = _commands("\n".join(c.source.replace("\n# ", "\n") for c in nbformat.read(ROOT / "nbs" / "index.ipynb", 4).cells if c.cell_type == "markdown"))
    assert len(readme) == 2 and readme == index


def test_ci_runs_the_readme_test_command():
    assert _commands((ROOT / "README.md").read_text())[1] in (ROOT / ".ci" / "run").read_text()
