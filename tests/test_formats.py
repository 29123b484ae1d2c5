"""File formats (ugach_core.data.formats): DCMH .mat files, the UGACH authors' text files and
MIRFlickr-25K from .mat files, on the real files in ``$UGACH_DATA/mirflickr25k`` (or
``../shared/data/mirflickr25k``); those tests skip only when the folder is absent."""

from __future__ import annotations

import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from ugach_core.data import formats
from ugach_core.utils import atomic_write
from ugach_core.data.formats import (load_mirflickr_mat, read_dcmh_mat, read_ugach_format,
                                     write_ugach_format)

N = 20015


@pytest.fixture(scope="module")
def mir(mir_root: Path) -> Path:
    return mir_root


@pytest.fixture(scope="module")
def yall(mir: Path) -> np.ndarray:
    return read_dcmh_mat(mir / "mirflickr25k-yall.mat")


@pytest.fixture(scope="module")
def lall(mir: Path) -> np.ndarray:
    return read_dcmh_mat(mir / "mirflickr25k-lall.mat", key="LAll")


@pytest.fixture
def samples(mir: Path) -> Path:
    d = mir / "ugach_samples"
    if not (d / "train_img.txt").is_file():
        pytest.skip("ugach_samples/ not found")
    return d


# ------------------------------------------------------------------------- DCMH .mat


def test_real_yall_lall_shapes_and_labels(mir, yall, lall):
    assert yall.shape == (N, 1386) and yall.dtype == np.uint8
    assert lall.shape == (N, 24)
    ref = np.loadtxt(mir / "all_labels.txt", dtype=np.uint8)
    np.testing.assert_array_equal(lall, ref)


def test_real_20015_pair_filter_holds(yall, lall):
    """Every pair has >= 1 of the 24 labels and >= 1 of the 1,386 tags; binary matrices."""
    assert set(np.unique(yall)) <= {0, 1} and set(np.unique(lall)) <= {0, 1}
    assert (lall.sum(1) >= 1).all()
    assert (yall.sum(1, dtype=np.int64) >= 1).all()
    assert lall.sum(1).max() == 14 and yall.sum(1, dtype=np.int64).max() == 57  # README stats


def test_mat_key_selection(tmp_path):
    p = tmp_path / "two.mat"
    scipy.io.savemat(p, {"XAll": np.ones((3, 2)), "LAll": np.eye(3)})
    with pytest.raises(ValueError, match=r"2 variables \['LAll', 'XAll'\].*key="):
        read_dcmh_mat(p)
    np.testing.assert_array_equal(read_dcmh_mat(p, "LAll"), np.eye(3))
    with pytest.raises(ValueError, match="no variable 'YAll'.*'LAll', 'XAll'"):
        read_dcmh_mat(p, "YAll")


def test_mat_missing_and_corrupt(mir, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_dcmh_mat(tmp_path / "nope.mat")
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"this is not a mat file at all" * 20)
    with pytest.raises(ValueError, match="junk.mat.*corrupt.*download it again"):
        read_dcmh_mat(junk)
    cut = tmp_path / "cut.mat"  # the real file, truncated
    cut.write_bytes((mir / "mirflickr25k-lall.mat").read_bytes()[:3000])
    with pytest.raises(ValueError, match="cut.mat.*corrupt"):
        read_dcmh_mat(cut)


def test_v73_without_h5py_says_pip_install(tmp_path, monkeypatch):
    """A MATLAB v7.3 header (version 0x0200) -> ImportError naming pip install h5py."""
    p = tmp_path / "v73.mat"
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan 1 2024 HDF5 schema"
    header = header.ljust(116, b" ") + b"\x00" * 8 + struct.pack("<H", 0x0200) + b"IM"
    p.write_bytes(header.ljust(512, b"\x00") + b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py fails, installed or not
    with pytest.raises(ImportError, match="pip install h5py"):
        read_dcmh_mat(p)


def test_v73_with_h5py_transposes(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(7, 5)).astype(np.uint8)
    p = tmp_path / "v73.mat"
    with h5py.File(p, "w", userblock_size=512) as f:
        f.create_dataset("YAll", data=x.T)  # MATLAB (column-major) order as HDF5 shows it
        f.create_dataset("#refs#", data=np.zeros(1))
    with open(p, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64")
    np.testing.assert_array_equal(read_dcmh_mat(p), x)
    np.testing.assert_array_equal(read_dcmh_mat(p, "YAll"), x)
    cut = tmp_path / "cut.mat"
    cut.write_bytes(p.read_bytes()[:700])
    with pytest.raises(ValueError, match="cut.mat.*v7.3.*corrupt"):
        read_dcmh_mat(cut)


# ------------------------------------------------------------------ UGACH text format


def test_real_samples_read(samples):
    r = read_ugach_format(samples, "train")
    assert r["layout"] == "flat" and r["names_img"] is None and r["names_txt"] is None
    assert r["img"].shape == (10, 4096) and r["txt"].shape == (10, 1386)
    assert r["labels"].shape == (10, 24) and r["labels"].dtype == np.uint8
    assert set(np.unique(r["txt"])) <= {0.0, 1.0} and (r["labels"].sum(1) >= 1).all()
    assert r["img"][0, 0] == 0.0368622 and (r["img"] >= 0).all()  # ReLU'd fc7


def _crlf_to_lf(folder: Path) -> None:
    for p in folder.rglob("*.txt"):
        p.write_bytes(p.read_bytes().replace(b"\r\n", b"\n"))


def _lf_to_crlf(folder: Path) -> None:
    for p in folder.rglob("*.txt"):
        p.write_bytes(p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def _same(a: dict, b: dict) -> None:
    assert a["names_img"] == b["names_img"] and a["names_txt"] == b["names_txt"]
    for k in ("img", "txt", "labels"):
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].dtype == b[k].dtype


def test_roundtrip_real_samples_flat(samples, tmp_path):
    r = read_ugach_format(samples, "train")
    out = tmp_path / "flat"
    write_ugach_format(out, "train", None, None, r["img"], r["txt"], r["labels"])
    # the writer reproduces the authors' files byte for byte
    for f in ("train_label.txt", "train_txt.txt", "train_img.txt"):
        assert (out / f).read_bytes() == (samples / f).read_bytes(), f
    _same(r, read_ugach_format(out, "train"))
    _crlf_to_lf(out)
    _same(r, read_ugach_format(out, "train"))
    _lf_to_crlf(out)
    _same(r, read_ugach_format(out, "train"))


def test_roundtrip_real_samples_list_feature(samples, tmp_path):
    r = read_ugach_format(samples, "train")
    names_i = [f"mirflickr/im{i}.jpg" for i in range(1, 11)]
    names_t = [f"tags{i}.txt" for i in range(1, 11)]
    write_ugach_format(tmp_path, "train", names_i, names_t, r["img"], r["txt"], r["labels"])
    for f in ("list/train_img.txt", "list/train_txt.txt", "list/train_label.txt",
              "feature/train_img.txt", "feature/train_txt.txt"):
        assert b"\r\n" in (tmp_path / f).read_bytes()  # the authors' code splits on CRLF
    assert not list(tmp_path.rglob(".*"))  # no staged/temp files left
    back = read_ugach_format(tmp_path, "train")
    assert back["layout"] == "list+feature"
    assert back["names_img"] == names_i and back["names_txt"] == names_t
    _same(back, read_ugach_format(tmp_path, "train", layout="list+feature"))
    np.testing.assert_array_equal(back["img"], r["img"])
    _crlf_to_lf(tmp_path)
    _same(back, read_ugach_format(tmp_path, "train"))
    _lf_to_crlf(tmp_path)
    _same(back, read_ugach_format(tmp_path, "train"))
    # float32 input (what a model produces) reads back exactly as float32
    f32 = r["img"].astype(np.float32) * np.float32(1.1)
    write_ugach_format(tmp_path, "test", names_i, names_t, f32, r["txt"], r["labels"])
    np.testing.assert_array_equal(read_ugach_format(tmp_path, "test")["img"].astype(np.float32),
                                  f32)


def test_comma_separated_values(tmp_path):
    (tmp_path / "x_img.txt").write_text("1.5,2,3\n4,5,6e-3\n")
    (tmp_path / "x_txt.txt").write_text("1, 0\n0, 1\n")
    (tmp_path / "x_label.txt").write_text("1 0\n0 1\n")
    r = read_ugach_format(tmp_path, "x")
    np.testing.assert_array_equal(r["img"], [[1.5, 2, 3], [4, 5, 0.006]])


@pytest.fixture
def flat_copy(samples, tmp_path) -> Path:
    d = tmp_path / "s"
    d.mkdir()
    for f in ("train_img.txt", "train_txt.txt", "train_label.txt"):
        shutil.copyfile(samples / f, d / f)
        os.chmod(d / f, 0o644)
    return d


def _edit_line(path: Path, line_no: int, fn) -> None:
    lines = path.read_bytes().split(b"\r\n")
    lines[line_no - 1] = fn(lines[line_no - 1])
    path.write_bytes(b"\r\n".join(lines))


def test_bad_ugach_inputs(flat_copy, tmp_path):
    d = flat_copy
    with pytest.raises(FileNotFoundError, match="no UGACH files for split 'test'"):
        read_ugach_format(d, "test")
    with pytest.raises(FileNotFoundError, match="list/train_img.txt"):
        read_ugach_format(tmp_path / "empty", "train")
    _edit_line(d / "train_img.txt", 4, lambda s: s.replace(b"0.0", b"0.x", 1))
    with pytest.raises(ValueError, match=r"train_img.txt:4: non-numeric value '0.x"):
        read_ugach_format(d, "train")
    _edit_line(d / "train_img.txt", 4, lambda s: s.replace(b"0.x", b"0.0", 1))
    read_ugach_format(d, "train")
    _edit_line(d / "train_txt.txt", 7, lambda s: s + b" 1")
    with pytest.raises(ValueError, match=r"train_txt.txt:7: 1387 values, but line 1 has 1386"):
        read_ugach_format(d, "train")
    _edit_line(d / "train_txt.txt", 7, lambda s: s[:-2])
    _edit_line(d / "train_label.txt", 2, lambda s: s.replace(b"1", b"2", 1))
    with pytest.raises(ValueError, match=r"train_label.txt:2: label value 2 .*0/1"):
        read_ugach_format(d, "train")
    _edit_line(d / "train_label.txt", 2, lambda s: s.replace(b"2", b"1", 1))
    lab = (d / "train_label.txt").read_bytes()
    (d / "train_label.txt").write_bytes(lab.split(b"\r\n", 1)[1])  # drop the first row
    with pytest.raises(ValueError, match=r"row counts do not line up.*train_label.txt: 9 rows"):
        read_ugach_format(d, "train")
    (d / "train_label.txt").write_bytes(lab.replace(b"\r\n", b"\r\n\r\n", 1))
    with pytest.raises(ValueError, match=r"train_label.txt:2: blank line"):
        read_ugach_format(d, "train")
    (d / "train_label.txt").write_bytes(lab + b"\r\n\r\n")  # trailing blank lines are fine
    assert read_ugach_format(d, "train")["labels"].shape == (10, 24)
    (d / "train_txt.txt").unlink()
    with pytest.raises(FileNotFoundError, match="missing UGACH file: .*train_txt.txt"):
        read_ugach_format(d, "train")
    with pytest.raises(ValueError, match="unknown layout"):
        read_ugach_format(d, "train", layout="csv")


def test_bad_write_inputs_touch_nothing(samples, tmp_path):
    r = read_ugach_format(samples, "train")
    names = [f"i{k}" for k in range(10)]
    write_ugach_format(tmp_path, "train", names, names, r["img"], r["txt"], r["labels"])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.txt")}
    bad_calls = [
        (ValueError, "row counts do not line up",
         (names[:9], names, r["img"], r["txt"], r["labels"])),
        (ValueError, "row counts", (names, names, r["img"][:9], r["txt"], r["labels"])),
        (ValueError, "both names_img and names_txt", (names, None, r["img"], r["txt"],
                                                      r["labels"])),
        (ValueError, "0/1", (names, names, r["img"], r["txt"], r["labels"] * 2)),
        (ValueError, "NaN", (names, names, np.full_like(r["img"], np.nan), r["txt"],
                             r["labels"])),
        (ValueError, "line breaks", (["a\nb"] + names[1:], names, r["img"], r["txt"],
                                     r["labels"])),
        (ValueError, "2-D", (names, names, r["img"][0], r["txt"], r["labels"])),
    ]
    for exc, msg, args in bad_calls:
        with pytest.raises(exc, match=msg):
            write_ugach_format(tmp_path, "train", *args)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.txt")} == before
    assert not list(tmp_path.rglob(".*"))


def test_write_failing_midway_keeps_old_files(samples, tmp_path, monkeypatch):
    r = read_ugach_format(samples, "train")
    names = [f"i{k}" for k in range(10)]
    write_ugach_format(tmp_path, "train", names, names, r["img"], r["txt"], r["labels"])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.txt")}
    assert len(before) == 5
    real = formats.atomic_write_text
    calls = []

    def flaky(path, text):
        calls.append(path)
        if len(calls) == 4:  # the 4th file: fail halfway through writing it
            def half(tmp):
                with open(tmp, "w") as fh:
                    fh.write(text[: len(text) // 2])
                raise OSError("disk full (simulated)")
            return atomic_write(path, half)
        return real(path, text)

    monkeypatch.setattr(formats, "atomic_write_text", flaky)
    new_img = r["img"] + 1.0
    with pytest.raises(OSError, match="disk full"):
        write_ugach_format(tmp_path, "train", [n + "x" for n in names], names, new_img,
                           r["txt"], r["labels"])
    assert len(calls) == 4
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.txt")} == before  # all 5 unchanged
    assert not list(tmp_path.rglob(".*"))  # staged and temporary files removed
    monkeypatch.setattr(formats, "atomic_write_text", real)
    write_ugach_format(tmp_path, "train", names, names, new_img, r["txt"], r["labels"])
    np.testing.assert_array_equal(read_ugach_format(tmp_path, "train")["img"], new_img)


# --------------------------------------------------------- MIRFlickr-25K from .mat files


@pytest.fixture(scope="module")
def mir_folder(mir, tmp_path_factory) -> Path:
    """Real YAll/LAll (symlinked) plus a FAKE XAll: random float32 20015x16, not fc7."""
    d = tmp_path_factory.mktemp("mirflickr_mat")
    for f in ("mirflickr25k-yall.mat", "mirflickr25k-lall.mat"):
        os.symlink(mir / f, d / f)
    fake_xall = np.random.default_rng(0).random((N, 16), dtype=np.float32)
    scipy.io.savemat(d / "mirflickr25k-iall-vgg.mat", {"XAll": fake_xall})
    return d


def test_load_mirflickr_mat_protocols(mir_folder, mir, lall):
    ds = load_mirflickr_mat(mir_folder)  # protocol "ugach", seed 0
    assert ds.n == N and ds.dims == (16, 1386) and ds.labels.shape == (N, 24)
    np.testing.assert_array_equal(ds.labels, lall)
    assert len(ds.query_idx) == 2000 and len(ds.db_idx) == 18015 and len(ds.train_idx) == 15000
    assert not np.intersect1d(ds.query_idx, ds.db_idx).size
    np.testing.assert_array_equal(np.union1d(ds.query_idx, ds.db_idx), np.arange(N))
    assert np.isin(ds.train_idx, ds.db_idx).all() and len(np.unique(ds.train_idx)) == 15000
    assert "UGACH" in ds.protocol and ds.label_names[0] == "animals"
    names = (mir / "label_names.txt").read_text().split()
    assert ds.label_names == names

    dc = load_mirflickr_mat(mir_folder, protocol="dcmh", seed=0)
    assert len(dc.query_idx) == 2000 and len(dc.db_idx) == 18015
    np.testing.assert_array_equal(dc.train_idx, dc.db_idx)
    np.testing.assert_array_equal(dc.query_idx, ds.query_idx)  # same seed, same queries

    again = load_mirflickr_mat(mir_folder, protocol="ugach", seed=0)
    other = load_mirflickr_mat(mir_folder, protocol="ugach", seed=1)
    for k in ("train_idx", "query_idx", "db_idx"):
        np.testing.assert_array_equal(getattr(again, k), getattr(ds, k))
    assert not np.array_equal(other.query_idx, ds.query_idx)
    assert not np.array_equal(other.train_idx, ds.train_idx)
    with pytest.raises(ValueError, match="unknown protocol"):
        load_mirflickr_mat(mir_folder, protocol="ucch")


def test_load_mirflickr_mat_missing_files(mir, tmp_path):
    for f in ("mirflickr25k-yall.mat", "mirflickr25k-lall.mat"):
        os.symlink(mir / f, tmp_path / f)
    with pytest.raises(FileNotFoundError,
                       match=r"image features are missing: put mirflickr25k-iall-vgg.mat "
                             r"\(variable XAll, 20015x4096"):
        load_mirflickr_mat(tmp_path)
    scipy.io.savemat(tmp_path / "mirflickr25k-iall-vgg.mat", {"XAll": np.ones((5, 4))})
    with pytest.raises(ValueError, match="disagree on the number of pairs"):
        load_mirflickr_mat(tmp_path)
    (tmp_path / "mirflickr25k-lall.mat").unlink()
    with pytest.raises(FileNotFoundError, match="mirflickr25k-lall.mat is missing"):
        load_mirflickr_mat(tmp_path)
