"""CUB-10 (ugach_core.data.cub10): the real file, its seeded stratified split, damaged files,
and ``data prepare cub10 [--download]`` against a loopback HTTP server (never the internet).

Tests on the real file use the ``cub10`` / ``cub10_root`` fixtures (``$UGACH_DATA/cub10``)
and skip without it; the others write small or fake ``.mat`` files in ``tmp_path``."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from ugach_core.cli import main
from ugach_core.data import download as dl
from ugach_core.data import find_cub10, load, load_cub10
from ugach_core.data.cub10 import FILE, stratified_split
from ugach_core.data.download import Remote

URL = ("https://raw.githubusercontent.com/XLearning-SCU/2023-IJCAI-ProImp/"
       "7f993ecc3e3ca29aa2d7d6a6c3bea0bac0e932c1/data/cub_googlenet_doc2vec_c10.mat")


def write_mat(path: Path, img: np.ndarray | None = None, txt: np.ndarray | None = None,
              gt: np.ndarray | None = None, drop: str | None = None) -> Path:
    """A CUB-10-like .mat file: random features of the right shapes unless given."""
    rng = np.random.default_rng(7)
    img = rng.random((600, 1024)) if img is None else img
    txt = rng.standard_normal((600, 300)) if txt is None else txt
    gt = np.repeat(np.arange(1, 11, dtype=np.uint8), 60)[:, None] if gt is None else gt
    cell = np.empty((1, 2), dtype=object)
    cell[0, 0], cell[0, 1] = img, txt
    mat = {"X": cell, "gt": gt}
    if drop:
        del mat[drop]
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, mat)
    return path


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """A data root whose cub10/ holds a fake file of the real shapes (60 pairs per class)."""
    write_mat(tmp_path / "cub10" / FILE)
    return tmp_path


def knn_precision(x: np.ndarray, classes: np.ndarray, k: int = 5) -> float:
    """Leave-one-out k-NN label precision, Euclidean."""
    x = x.astype(np.float64)
    sq = (x * x).sum(1)
    d = sq[:, None] + sq[None, :] - 2 * x @ x.T
    np.fill_diagonal(d, np.inf)
    nb = np.argsort(d, axis=1, kind="stable")[:, :k]
    return float((classes[nb] == classes[:, None]).mean())


def check_split(d, per_class: int = 12) -> None:
    """120 queries, ``per_class`` of each class; 480 database = training pairs; disjoint."""
    assert len(d.query_idx) == 120 and len(d.db_idx) == 480
    np.testing.assert_array_equal(d.labels[d.query_idx].sum(0), np.full(10, per_class))
    np.testing.assert_array_equal(d.db_idx, d.train_idx)
    assert np.intersect1d(d.query_idx, d.db_idx).size == 0
    np.testing.assert_array_equal(np.union1d(d.query_idx, d.db_idx), np.arange(600))


# ------------------------------------------------------------------ the real file


def test_cub10_shapes_and_classes(cub10):
    """600 pairs, 1,024-d image / 300-d text float32, 10 one-hot classes of 60 pairs each."""
    assert cub10.name == "cub10" and not cub10.synthetic
    assert cub10.n == 600 and cub10.dims == (1024, 300)
    assert cub10.img.dtype == np.float32 and cub10.txt.dtype == np.float32
    assert cub10.labels.shape == (600, 10)
    np.testing.assert_array_equal(cub10.labels.sum(1), np.ones(600))
    np.testing.assert_array_equal(cub10.labels.sum(0), np.full(10, 60))
    assert len(cub10.label_names) == 10 and "split seed 0" in cub10.protocol


def test_cub10_features_are_the_mat_file_unscaled(cub10, cub10_root):
    """X{1}, X{2} and gt as stored (only cast to float32); GoogLeNet features are post-ReLU."""
    mat = scipy.io.loadmat(cub10_root / FILE)
    np.testing.assert_allclose(cub10.img, mat["X"][0, 0], rtol=1e-6)
    np.testing.assert_allclose(cub10.txt, mat["X"][0, 1], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(cub10.labels.argmax(1) + 1, mat["gt"].ravel())
    assert cub10.img.min() == 0 and 0.15 < (cub10.img == 0).mean() < 0.25


def test_cub10_split(cub10):
    """Split seed 0: 12 queries per class, the other 480 pairs database = training set."""
    check_split(cub10)


def test_cub10_split_deterministic_and_seeded(cub10, cub10_root):
    """The same split seed gives the same split; another seed another split (and name)."""
    again = load_cub10(cub10_root)
    np.testing.assert_array_equal(again.query_idx, cub10.query_idx)
    other = load("cub10", root=cub10_root, split_seed=3)
    check_split(other)
    assert not np.array_equal(other.query_idx, cub10.query_idx)
    assert other.name == "cub10-split3" and "split seed 3" in other.protocol
    np.testing.assert_array_equal(other.img, cub10.img)


def test_cub10_neighbours_carry_the_labels(cub10):
    """Leave-one-out 5-NN label precision as the data README measured it (image 0.80, text
    0.58, chance 0.10): the features and labels are not scrambled or misaligned."""
    classes = cub10.labels.argmax(1)
    assert knn_precision(cub10.img, classes) == pytest.approx(0.80, abs=0.02)
    assert knn_precision(cub10.txt, classes) == pytest.approx(0.58, abs=0.02)


def test_cub10_registry_matches_the_real_file(cub10_root):
    (r,) = dl.REMOTES["cub10"]
    f = cub10_root / r.name
    assert f.stat().st_size == r.size and dl.md5sum(f) == r.md5


def test_cli_graph_on_cub10(cub10_root, capsys):
    """`--data cub10` works on the command line (root = the folder above cub10/)."""
    assert main(["graph", "--data", "cub10", "--root", str(cub10_root.parent),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cub10: 600 pairs") and "train 480, query 120" in out


# ------------------------------------------------------------------ fake files, no real data


def test_fake_file_loads_with_the_protocol(fake_root):
    """The loader on a file of the right shapes: root, root/cub10 or the file's own folder."""
    d = load("CUB10", root=fake_root)
    check_split(d)
    assert find_cub10(fake_root) == fake_root / "cub10"
    assert find_cub10(fake_root / "cub10") == fake_root / "cub10"
    np.testing.assert_array_equal(load_cub10(fake_root / "cub10").query_idx, d.query_idx)


def test_stratified_split_rules():
    classes = np.repeat(np.arange(10), 60)
    q0, db0 = stratified_split(classes, 0)
    q0b, _ = stratified_split(classes, 0)
    q1, _ = stratified_split(classes, 1)
    np.testing.assert_array_equal(q0, q0b)
    assert not np.array_equal(q0, q1)
    np.testing.assert_array_equal(np.bincount(classes[q0]), np.full(10, 12))
    assert len(db0) == 480 and np.intersect1d(q0, db0).size == 0
    # unequal classes: 20% of each, rounded
    q, _ = stratified_split(np.array([0] * 10 + [1] * 21), 0)
    assert np.bincount(np.array([0] * 10 + [1] * 21)[q]).tolist() == [2, 4]


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_bad_split_seed(fake_root, seed):
    with pytest.raises(ValueError, match="split_seed must be a non-negative integer"):
        load_cub10(fake_root, split_seed=seed)


def test_load_options_only_where_taken(fake_root):
    with pytest.raises(ValueError, match=r"'cub10' takes only split_seed; got seed"):
        load("cub10", root=fake_root, seed=1)
    with pytest.raises(ValueError, match=r"'wikipedia' takes no options; got split_seed"):
        load("wikipedia", root=fake_root, split_seed=1)
    with pytest.raises(ValueError, match=r"apply only to a registered data set.*'auto'"):
        load("auto", root=fake_root, split_seed=1)


def test_auto_does_not_pick_cub10(fake_root, capsys):
    """'auto' stays Wikipedia-or-synthetic: CUB-10 alone under the root gives synthetic."""
    assert load("auto", root=fake_root).synthetic
    assert "SYNTHETIC" in capsys.readouterr().err


def test_missing_folder_says_how_to_fix(tmp_path):
    """The error names the folder searched, the file, and both ways to get it."""
    for call in (lambda: load("cub10", root=tmp_path), lambda: load_cub10(tmp_path)):
        with pytest.raises(FileNotFoundError, match="data prepare cub10 --download") as e:
            call()
        msg = str(e.value)
        assert str(tmp_path / "cub10") in msg and FILE in msg and "UGACH_DATA" in msg


def test_missing_folder_on_the_command_line(tmp_path, capsys):
    assert main(["graph", "--data", "cub10", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data prepare cub10 --download" in err[0]


def test_corrupt_file(tmp_path):
    (tmp_path / FILE).write_bytes(b"\x00garbage\xff" * 500)
    with pytest.raises(ValueError, match=r"cub_googlenet_doc2vec_c10\.mat.*corrupt.*delete "
                                         r".*cub_googlenet_doc2vec_c10\.mat.*--download"):
        load_cub10(tmp_path)


@pytest.mark.parametrize("kw, match", [
    ({"img": np.ones((600, 1000))},
     r"X\{1\} \(image features\) has shape \(600, 1000\), expected \(600, 1024\)"),
    ({"txt": np.ones((599, 300))},
     r"X\{2\} \(text features\) has shape \(599, 300\), expected \(600, 300\)"),
    ({"gt": np.ones((10, 1), dtype=np.uint8)}, r"gt has shape \(10, 1\), expected \(600, 1\)"),
    ({"gt": np.full((600, 1), 11, dtype=np.uint8)}, r"gt must hold class numbers 1\.\.10"),
    ({"drop": "gt"}, r"has no variable 'gt' \(it has \['X'\]\); it is not the CUB-10 file"),
    ({"img": np.where(np.arange(1024) == 5, np.nan, 1.0) * np.ones((600, 1))},
     r"X\{1\} \(image features\) has 600 NaN/inf values in 600 rows"),
])
def test_wrong_file_contents(tmp_path, kw, match):
    """A .mat file that is not the CUB-10 file (shapes, variables, values) is a ValueError."""
    write_mat(tmp_path / FILE, **kw)
    with pytest.raises(ValueError, match=match):
        load_cub10(tmp_path)


def test_x_not_a_cell(tmp_path):
    scipy.io.savemat(tmp_path / FILE, {"X": np.ones((600, 1024)),
                                       "gt": np.ones((600, 1), dtype=np.uint8)})
    with pytest.raises(ValueError, match=r"X must be a 1x2 cell"):
        load_cub10(tmp_path)


# ------------------------------------------------------------------ download (loopback only)


def test_registry_entry():
    (r,) = dl.REMOTES["cub10"]
    assert r.name == FILE and r.url == URL
    assert r.size == 3_182_590 and r.md5 == "5a19dd40bf61ef6ece08114f10560408"


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, bytes]]:
    """A fake CUB-10 file on a loopback HTTP server; REMOTES['cub10'] points at it with the
    file's own size and md5.  Yields (url, payload)."""
    src = write_mat(tmp_path / "server" / FILE)
    payload = src.read_bytes()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(src.parent))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/{FILE}"
    monkeypatch.setitem(dl.REMOTES, "cub10", [
        Remote(FILE, url, len(payload), hashlib.md5(payload).hexdigest())])
    try:
        yield url, payload
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_prepare_cub10_downloads_checks_and_loads(served, tmp_path, capsys):
    """Without --download: says what to put where, fetches nothing; with it: the file lands
    in ROOT/cub10, passes its md5 check and loads; a second run downloads nothing."""
    url, payload = served
    root = tmp_path / "root"
    assert main(["data", "prepare", "cub10", "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"{FILE} ({len(payload):,} bytes" in err and "--download" in err and url in err
    assert not root.exists() or not any(root.rglob("*.mat"))
    assert main(["data", "prepare", "cub10", "--root", str(root), "--download",
                 "--no-progress"]) == 0
    assert "cub10: 600 pairs" in capsys.readouterr().out
    assert (root / "cub10" / FILE).read_bytes() == payload
    check_split(load("cub10", root=root))
    files = sorted(p.name for p in (root / "cub10").iterdir())
    assert main(["data", "prepare", "cub10", "--root", str(root), "--download",
                 "--no-progress"]) == 0
    assert sorted(p.name for p in (root / "cub10").iterdir()) == files == [FILE]


def test_prepare_cub10_checksum_mismatch(served, tmp_path, monkeypatch, capsys):
    """A download whose md5 differs is kept as .bad, never as the data file; exit code 2."""
    url, payload = served
    wrong = "0" * 32
    monkeypatch.setitem(dl.REMOTES, "cub10", [Remote(FILE, url, len(payload), wrong)])
    root = tmp_path / "root"
    assert main(["data", "prepare", "cub10", "--root", str(root), "--download",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"expected {wrong}" in err and ".bad" in err
    assert (root / "cub10" / f"{FILE}.bad").read_bytes() == payload
    assert not (root / "cub10" / FILE).exists()
    with pytest.raises(FileNotFoundError, match="data prepare cub10 --download"):
        load("cub10", root=root)


def test_cli_train_draws_one_split_per_seed(fake_root, tmp_path):
    """`train --data cub10 --seeds 0 1`: seed s trains and tests on split s (no official
    split), and each row names its split."""
    out = tmp_path / "run"
    assert main(["train", "--data", "cub10", "--root", str(fake_root), "--preset", "smoke",
                 "--bits", "8", "--seeds", "0", "1", "--rounds", "0", "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [(r["seed"], r["dataset"]) for r in rows] == [(0, "cub10"), (1, "cub10-split1")]
