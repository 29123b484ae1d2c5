"""The repository address lives in _config.yml; badges and setup cells must agree with it."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import book_repo  # noqa: E402


def test_every_chapter_agrees_with_config() -> None:
    assert book_repo.problems() == []
    assert len(book_repo.chapters()) == 10


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copy(REPO / "_config.yml", tmp_path)
    shutil.copytree(REPO / "book", tmp_path / "book",
                    ignore=shutil.ignore_patterns("_build", "results"))
    return tmp_path


def test_changing_the_url_rewrites_badges_and_setup_cells(copy: Path) -> None:
    book_repo.sync(copy, url="https://github.com/a-reader/ugach-fork", branch="dev")
    assert book_repo.configured(copy) == ("https://github.com/a-reader/ugach-fork", "dev")
    assert book_repo.problems(copy) == []
    nb = (copy / "book" / "04_generator.ipynb").read_text()
    assert ("https://colab.research.google.com/github/a-reader/ugach-fork/blob/dev/book/"
            "04_generator.ipynb") in nb
    assert 'REPO_URL = \\"https://github.com/a-reader/ugach-fork\\"' in nb
    assert "ugach-book/ugach-book" not in nb


def test_a_disagreeing_badge_or_cell_is_reported(copy: Path) -> None:
    p = copy / "book" / "02_hash_networks.ipynb"
    nb = json.loads(p.read_text())
    nb["cells"][0]["source"] = [s.replace("/blob/main/", "/blob/master/")
                                for s in nb["cells"][0]["source"]]
    cell = next(c for c in nb["cells"] if "remove-cell" in c["metadata"].get("tags", []))
    cell["source"] = [s.replace("ugach-book/ugach-book", "someone/else") for s in cell["source"]]
    p.write_text(json.dumps(nb, indent=1))
    found = book_repo.problems(copy)
    assert len(found) == 2
    assert found[0].startswith("02_hash_networks.ipynb: Colab badge")
    assert found[1].startswith("02_hash_networks.ipynb: setup cell")


def test_a_url_that_colab_cannot_open_is_refused(copy: Path) -> None:
    with pytest.raises(SystemExit, match="repository.url must be https://github.com/"):
        book_repo.sync(copy, url="https://gitlab.com/a/b")
