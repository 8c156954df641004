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


# --- the notebooks as pages ---------------------------------------------------------------------------------

import ast, json, os, shutil, subprocess, sys

NBS = ROOT / "nbs"
NOTEBOOKS = sorted(p for p in NBS.rglob("*.ipynb") if not any(part.startswith((".", "_")) for part in p.relative_to(NBS).parts))
COLAB = "https://colab.research.google.com/github/scoreextrap/scoreextrap/blob/main/"


def _cells(p, kind=None):
    return [c for c in nbformat.read(p, 4).cells if kind is None or c.cell_type == kind]


def test_every_notebook_has_its_colab_badge():
    for p in NOTEBOOKS:
        md = "\n".join(c.source for c in _cells(p, "markdown"))
        assert COLAB + p.relative_to(ROOT).as_posix() + ")" in md, f"{p.name}: missing or wrong Open-in-Colab badge"


def test_colab_install_cell_comes_first_and_is_hidden():
    for p in NOTEBOOKS:
        code = [c for c in _cells(p, "code") if "default_exp" not in c.source]
        assert '"google.colab" in sys.modules' in code[0].source and "#| hide" in code[0].source, f"{p.name}: first code cell must be the hidden Colab install cell"


def test_no_error_outputs_or_local_paths():
    for p in NOTEBOOKS:
        for c in _cells(p, "code"):
            for o in c.get("outputs", []):
                assert o.get("output_type") != "error", f"{p.name}: stored error output in cell {c.source[:60]!r}"
                text = json.dumps(o)
                for local in ("/work/", "/root/", "/home/", "/tmp/", "/Users/"):
                    assert local not in text, f"{p.name}: output shows the local path {local!r} in cell {c.source[:60]!r}"


def test_sidebar_lists_every_page_and_only_existing_ones():
    listed = re.findall(r"(?:-|href:)\s+(\S+\.ipynb)", (NBS / "sidebar.yml").read_text())
    assert sorted(listed) == sorted(p.relative_to(NBS).as_posix() for p in NOTEBOOKS)
    tutorials = (NBS / "sidebar.yml").read_text().split("section: Tutorials")[1].split("section:")[0]
    assert "tutorials/fashion_mnist.ipynb" in tutorials and "tutorials/cifar10_colab.ipynb" in tutorials and "09_theory.ipynb" in tutorials


def test_imports_stand_in_their_own_cells():
    "The docs build executes every cell that imports something; such a cell must not also compute (the Colab cell excepted)."
    for p in NOTEBOOKS:
        for c in _cells(p, "code"):
            if '"google.colab" in sys.modules' in c.source or c.source.lstrip().startswith(("#| export", "#|export")): continue
            try: tree = ast.parse("\n".join(l for l in c.source.splitlines() if not l.lstrip().startswith(("!", "%"))))
            except SyntaxError: continue
            if any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree)):
                other = [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
                assert not other, f"{p.name}: cell mixes imports with other code: {c.source[:80]!r}"


def test_links_between_notebooks_resolve():
    link = re.compile(r"\]\(([^)#\s]+\.(?:ipynb|md|qmd))(?:#[^)]*)?\)")
    for p in NOTEBOOKS:
        for c in _cells(p, "markdown"):
            for target in link.findall(c.source):
                if target.startswith(("http://", "https://")): continue
                assert (p.parent / target).exists(), f"{p.name}: link to {target} does not resolve"


def test_site_processes_and_renders_to_html(tmp_path):
    "nbdev-proc-nbs (quarto itself is not needed to process) succeeds; every processed page converts to HTML; every public name is documented."
    from nbconvert import HTMLExporter
    stub = tmp_path / "bin"; stub.mkdir()
    (stub / "quarto").write_text("#!/bin/sh\necho 'quarto is not installed here' >&2\nexit 1\n"); (stub / "quarto").chmod(0o755)
    env = {**os.environ, "PATH": f"{stub}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = ROOT / "_proc"
    shutil.rmtree(proc, ignore_errors=True)  # (not --force: that would also regenerate our custom sidebar.yml)
    r = subprocess.run(["nbdev-proc-nbs"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (NBS / "sidebar.yml").read_text().count("section:") >= 2, "the custom sidebar was overwritten"
    pages = sorted(proc.rglob("*.ipynb"))
    assert len(pages) == len(NOTEBOOKS)
    documented = prose = ""
    for page in pages:
        nb = nbformat.read(page, 4)
        prose += "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        for c in nb.cells:
            for o in c.get("outputs", []) if c.cell_type == "code" else []:
                assert o.get("output_type") != "error", f"{page.name}: error output after processing"
                documented += json.dumps(o.get("data", {}))
        for c in nb.cells:  # nbdev marks cells for quarto (e.g. `has_sd`); nbconvert's schema check does not know these keys
            for k in set(c) - {"cell_type", "execution_count", "id", "metadata", "outputs", "source", "attachments"}: del c[k]
            c.metadata.pop("execution", None)
        html, _ = HTMLExporter().from_notebook_node(nb)
        assert "<html" in html
    import importlib
    missing = []
    for mod in sorted((ROOT / "scoreextrap").glob("[!_]*.py")):
        m = importlib.import_module(f"scoreextrap.{mod.stem}")
        for name in getattr(m, "__all__", []):
            # functions and classes need a show_doc entry; constants at least a mention in the page's text
            where = documented if callable(getattr(m, name)) else documented + prose
            if not re.search(rf"\b{re.escape(name)}\b", where): missing.append(f"{mod.stem}.{name}")
    assert not missing, f"public names without documentation: {missing}"


def _undemonstrated(p):
    "(notebook, name) for each public function/class of an `#| export` cell not used in the code cells before the next `#| export` cell."
    cells = _cells(p, "code")
    missing = []
    for i, c in enumerate(cells):
        if not c.source.startswith("#| export"): continue
        try: tree = ast.parse("\n".join(l for l in c.source.splitlines() if not l.startswith("#|")))
        except SyntaxError: continue
        names = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")]
        demo = ""
        for d in cells[i + 1:]:
            if d.source.startswith("#| export"): break
            demo += d.source + "\n"
        missing += [(p.name, n) for n in names if not re.search(rf"\b{re.escape(n)}\b", demo)]
    return missing


def test_every_exported_definition_is_demonstrated_after_its_show_doc():
    "nbdev renders a `show_doc` after each export cell; the code cells that follow it must use every public name it defines."
    missing = [m for p in sorted(NBS.glob("[0-9]*.ipynb")) for m in _undemonstrated(p)]
    assert not missing, f"exported definitions without a demonstrating cell after them: {missing}"


MAX_EXPORT_LINES = 20  # fastcore's and nbdev's own notebooks: a cell defines one thing and is read at a glance


def _export_size(source):
    "Non-blank code lines of an export cell, `#|` directives left out; a signature counts as one line (docments put a parameter on each line)."
    code = "\n".join(l for l in source.splitlines() if not l.startswith("#|"))
    n = sum(1 for l in code.splitlines() if l.strip())
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n -= max(node.body[0].lineno - node.lineno - 1, 0)
    return n


def test_export_size_counts_a_docments_signature_once():
    src = "#| export\ndef f(a, # first\n      b, # second\n     ):\n    \"doc\"\n\n    return a + b\n"
    assert _export_size(src) == 3  # the three signature lines count as one, then the docstring and the return; the blank line not at all


def test_export_cells_are_small():
    big = [(p.name, i, n) for p in sorted(NBS.glob("[0-9]*.ipynb")) for i, c in enumerate(_cells(p, "code"))
           if c.source.startswith("#| export") and (n := _export_size(c.source)) > MAX_EXPORT_LINES]
    assert not big, f"export cells over {MAX_EXPORT_LINES} lines (notebook, code cell, lines): {big}"
