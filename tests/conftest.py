"""Shared fixtures: where the real data lives, and small helpers.

The real data is found through ``$UGACH_DATA`` only (CI sets ``../shared/data``, relative to
the repository root, for its real-data step), as a user's data is.  Without it, the tests
that need real files skip: they carry the marker ``realdata`` (added here to every test
that uses one of :data:`REAL_DATA_FIXTURES`), and ``--require-data`` turns their skip into
a failure, so that CI can prove none of them skipped.  Nothing is ever downloaded.
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
    return roots


MIR_FILES = ("mirflickr25k-yall.mat", "mirflickr25k-lall.mat")
CUB10_FILES = ("cub_googlenet_doc2vec_c10.mat",)


def find_data_folder(name: str, files: tuple[str, ...]) -> Path | None:
    """The first ``<root>/<name>`` among the candidate roots that holds all ``files``."""
    for root in _candidate_roots():
        if all((root / name / f).is_file() for f in files):
            return (root / name).resolve()
    return None


#: Fixtures that hand a test real data files; a test using any of them is a real-data test.
REAL_DATA_FIXTURES = frozenset({"data_root_path", "mir_root", "wiki_root", "wiki", "wiki_copy",
                                "cub10_root", "cub10"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--require-data", action="store_true",
                     help="fail (instead of skip) a real-data test whose files are missing")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.realdata)


_realdata_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "realdata" in report.keywords:
        _realdata_skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ``--require-data``: print how many real-data tests skipped; fail if any did."""
    if not session.config.getoption("--require-data"):
        return
    print(f"\nreal-data tests skipped: {len(_realdata_skipped)}")
    if _realdata_skipped:
        print("  " + "\n  ".join(_realdata_skipped))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _data_folder_or_skip(request: pytest.FixtureRequest, name: str,
                         files: tuple[str, ...]) -> Path:
    folder = find_data_folder(name, files)
    if folder is None:
        msg = (f"real {name} files ({', '.join(files)}) not found under $UGACH_DATA/{name} "
               "(set UGACH_DATA to the folder that holds it, e.g. ../shared/data)")
        if request.config.getoption("--require-data"):
            pytest.fail(msg + "; --require-data forbids skipping")
        pytest.skip(msg)
    return folder


@pytest.fixture(scope="session")
def data_root_path(request: pytest.FixtureRequest) -> Path:
    """Root of the real data (``<root>/wikipedia/...``); skips when absent."""
    return _data_folder_or_skip(request, "wikipedia", WIKI_FILES).parent


@pytest.fixture(scope="session")
def mir_root(request: pytest.FixtureRequest) -> Path:
    """The real MIRFlickr-25K folder (text side, labels, samples); skips when absent."""
    return _data_folder_or_skip(request, "mirflickr25k", MIR_FILES)


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


@pytest.fixture(scope="session")
def cub10_root(request: pytest.FixtureRequest) -> Path:
    """The real CUB-10 folder (``$UGACH_DATA/cub10``); skips when absent."""
    return _data_folder_or_skip(request, "cub10", CUB10_FILES)


@pytest.fixture(scope="session")
def cub10(cub10_root: Path):
    """The real CUB-10 data set (split seed 0), loaded once per session."""
    from ugach_core.data import load
    return load("cub10", root=cub10_root)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def torch_seed() -> int:
    """Seed torch's global RNG (weight init, randn) so a test does not depend on test order."""
    torch.manual_seed(0)
    return 0


@pytest.fixture(scope="session")
def tiny():
    """A small SYNTHETIC data set (240 pairs, 5 classes) for trainer tests."""
    from ugach_core.data import make_synthetic

    return make_synthetic(n=240, d_img=24, d_txt=12, n_classes=5, seed=3)


@pytest.fixture
def tiny_cfg():
    """A factory of tiny configurations for trainer tests on ``tiny``: the smoke preset at
    8 bits with a 32-wide network, 2 pretraining epochs and 2 rounds; keyword arguments
    change further fields."""
    from ugach_core.config import smoke

    def make(**kw):
        base = dict(hidden=32, pretrain_epochs=2, rounds=2, d_batch=64, g_batch=64,
                    pretrain_batch=64, pool_fraction=0.25)
        base.update(kw)
        return smoke(8).replace(**base)

    return make
