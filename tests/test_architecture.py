"""The package's shape (chapter-independent): no import cycle between modules, no module
importing a private name of another, the method's modules small, ``ugach_core`` never
importing the chapter helpers, and chapter code that fits the rendered page."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "ugach_core"
BOOK = PKG.parent / "book"
# the method: what a reader of the paper needs (everything but data/, book/, cli, viz)
NOT_METHOD = {"cli", "viz", "__main__", "__init__"}
# The target is 2,000 lines; the core is still above it, so this ceiling keeps it from
# growing (2,340 after the refactor; +39 for the study's false-negative remedies; +137 for
# the paper schedule's deferred first layer, deferred.py and its use in train.py; +6 for
# its dense update of a batch larger than its rank budget; +19 for feature_norm="fc7", the
# input scaling of the study's issue; +69 for parallel.py, data parallelism of D's steps
# with torch.distributed; +19 for the deferred layer's sparse refresh of tag inputs; +4 for
# the trainer's nets named in full, generator and discriminator; +11 for the `tuned` preset,
# the study's choice; +42 for checks of bad input that used to end in a traceback or a wrong
# score: labels and ranks in metrics/retrieval, damaged checkpoints, file modes; +6 for the
# docstrings that say where `paper` departs from the authors' code; -3 since; +37 for
# utils.reuse_freed_memory, which the trainer enters: the same values, and a `paper` round
# with autograd 1.6x faster on the 2-core CPU, benchmarks/bench_train.py); +29 for D's
# whole-query batches (config.d_batches, sampling.query_batches: each query encoded once,
# benchmarks/bench_train.py): lower it whenever the core shrinks, until it reaches the target.
METHOD_LINES = 2755
CODE_WIDTH = 88


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) of every import outside ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", "") == "TYPE_CHECKING"
                   for n in ast.walk(node)}
    pkg = _module(path).split(".")
    if path.name != "__init__.py":
        pkg = pkg[:-1]
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            base = pkg[:len(pkg) - node.level + 1] if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names = [a.name for a in node.names]
            if not node.module:  # from . import x: x is a module
                out += [(f"{mod}.{n}", []) for n in names]
            else:
                out.append((mod, names))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
    return out


FILES = sorted(PKG.rglob("*.py"))
MODULES = {_module(p): p for p in FILES}


def _resolve(mod: str) -> str | None:
    while mod and mod not in MODULES:
        mod = mod.rpartition(".")[0]
    return mod or None


def test_no_module_imports_a_private_name_of_another():
    bad = [f"{_module(p)} imports {n} from {m}" for p in FILES for m, names in _imports(p)
           if m.startswith("ugach_core") for n in names if n.startswith("_")
           and not n.startswith("__")]
    assert not bad, bad


def test_no_import_cycle():
    graph = {m: {r for imp, _ in _imports(p) if imp.startswith("ugach_core")
                 for r in [_resolve(imp)] if r and r != m and not m.startswith(r + ".")
                 and r != "ugach_core"}
             for m, p in MODULES.items()}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for r in sorted(graph[m]):
            if state.get(r) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack + [m, r]))
            if r not in state:
                visit(r, stack + [m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_core_never_imports_the_chapter_helpers():
    bad = [f"{m} imports {imp}" for m, p in MODULES.items() if not m.startswith("ugach_core.book")
           and m != "ugach_core.cli" for imp, _ in _imports(p)
           if (_resolve(imp) or "").startswith("ugach_core.book")]
    assert not bad, bad


def test_method_modules_are_small():
    # every module but data/, book/ and the NOT_METHOD ones, in subpackages too
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in MODULES.items()
             if m != "ugach_core" and m.split(".")[1] not in NOT_METHOD
             and not m.startswith(("ugach_core.data", "ugach_core.book"))}
    assert sum(sizes.values()) <= METHOD_LINES, sorted(sizes.items(), key=lambda kv: -kv[1])


def test_fit_fits_on_one_screen():
    tree = ast.parse((PKG / "train.py").read_text(encoding="utf-8"))
    fit = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "fit")
    assert fit.end_lineno - fit.lineno + 1 <= 50


@pytest.mark.parametrize("nb", sorted(BOOK.glob("*.ipynb")), ids=lambda p: p.name)
def test_chapter_code_fits_the_page(nb: Path):
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    long = [(i, line) for i, c in enumerate(cells) if c["cell_type"] == "code"
            for line in "".join(c["source"]).splitlines() if len(line) > CODE_WIDTH]
    assert not long, f"{len(long)} code lines over {CODE_WIDTH} characters: {long[:3]}"


def test_public_functions_name_their_chapter():
    """Every public function and class of the method's modules names the chapter that
    derives it (plumbing in ``utils`` excepted)."""
    missing = []
    for m, p in MODULES.items():
        name = m.split(".")[-1]
        if m.count(".") != 1 or name in NOT_METHOD | {"utils"} or \
                m.startswith(("ugach_core.data", "ugach_core.book")):
            continue
        for n in ast.parse(p.read_text(encoding="utf-8")).body:
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_"):
                if "chapter" not in (ast.get_docstring(n) or "").lower():
                    missing.append(f"{name}.{n.name}")
    assert not missing, missing


def test_intro_names_every_preset():
    """The module table of book/intro.md once left out `tuned`, the command line's default."""
    from ugach_core.config import PRESETS
    row = next(line for line in (BOOK / "intro.md").read_text(encoding="utf-8").splitlines()
               if line.startswith("| `ugach_core.config`"))
    assert all(f"`{p}`" in row for p in PRESETS), row


@pytest.mark.parametrize("nb", sorted(BOOK.glob("*.ipynb")), ids=lambda p: p.name)
def test_markdown_tables_render_as_tables(nb: Path):
    """A code cell that displays a Markdown table needs ``mystnb.markdown_format: myst``:
    myst-nb renders ``text/markdown`` outputs as plain CommonMark by default, which has no
    tables, so the rows would reach the page as one paragraph of ``| a | b |`` text."""
    cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
    bad = [i for i, c in enumerate(cells) if c["cell_type"] == "code"
           and re.search(r"\|---|_table\(", "".join(c["source"]))
           and re.search(r"display\(Markdown\(|md_table\(", "".join(c["source"]))
           and c["metadata"].get("mystnb", {}).get("markdown_format") != "myst"]
    assert not bad, f"cells {bad}: add metadata mystnb.markdown_format = 'myst'"
