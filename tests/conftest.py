"""Shared fixtures: where the real data lives, and small helpers.

The real data is found through ``$UGACH_DATA`` (CI sets ``../shared/data``, relative to the
repository root) or, failing that, ``<repo>/../shared/data``.  Data tests are skipped only
when neither holds the Wikipedia files.  Nothing is ever downloaded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
WIKI_FILES = ("raw_features.mat", "trainset_txt_img_cat.list", "testset_txt_img_cat.list")


def _candidate_roots() -> list[Path]:
    roots = []
    env = os.environ.get("UGACH_DATA")
    if env:
        p = Path(env).expanduser()
        roots.append(p)
        if not p.is_absolute():
            roots.append(REPO / p)  # CI gives it relative to the repository root
    roots.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    return roots


def find_data_root() -> Path | None:
    """The first candidate root that holds ``wikipedia/`` with all release files."""
    for root in _candidate_roots():
        if all((root / "wikipedia" / f).is_file() for f in WIKI_FILES):
            return root.resolve()
    return None


@pytest.fixture(scope="session")
def data_root_path() -> Path:
    """Root of the real data (``<root>/wikipedia/...``); skips when absent."""
    root = find_data_root()
    if root is None:
        pytest.skip("real data not found (set UGACH_DATA or provide ../shared/data)")
    return root


@pytest.fixture(scope="session")
def wiki_root(data_root_path: Path) -> Path:
    """The folder that holds the official Wikipedia release files."""
    return data_root_path / "wikipedia"


@pytest.fixture(scope="session")
def wiki(data_root_path: Path):
    """The real Wikipedia data set, loaded once per session."""
    from ugach_core.data import load
    return load("wikipedia", root=data_root_path)


@pytest.fixture
def wiki_copy(wiki_root: Path, tmp_path: Path) -> Path:
    """A writable copy of the Wikipedia folder (about 1.3 MB) for corruption tests."""
    dst = tmp_path / "wikipedia"
    dst.mkdir()
    for f in (*WIKI_FILES, "categories.list"):
        if (wiki_root / f).is_file():
            shutil.copyfile(wiki_root / f, dst / f)
            os.chmod(dst / f, 0o644)
    return dst


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def torch_seed() -> int:
    """Seed torch's global RNG (weight init, randn) so a test does not depend on test order."""
    torch.manual_seed(0)
    return 0
