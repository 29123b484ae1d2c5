"""ugach_core.book.cache: load if present (same key and library source), else compute."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from ugach_core.book import cache
from ugach_core.book.cache import cached, data_fingerprint, source_fingerprint


class Counter:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return {"w": torch.arange(4.0) * self.calls, "history": [{"round": 1, "map": 0.5}]}


def test_second_call_loads_the_stored_value(tmp_path, capsys):
    f = Counter()
    cached("run", {"seed": 0}, f, folder=tmp_path)
    b = cached("run", {"seed": 0}, f, folder=tmp_path)
    assert f.calls == 1
    # the first computation's value (calls = 1), not a second one (it would be 2 * arange)
    assert torch.equal(b["w"], torch.tensor([0.0, 1.0, 2.0, 3.0]))
    assert b["history"] == [{"round": 1, "map": 0.5}]
    out = capsys.readouterr().out
    assert "computed run" in out and "loaded run from the cache" in out


def test_messages_fit_the_page_and_keep_the_path_whole(tmp_path, capsys, monkeypatch):
    """The chapters print these lines: at most 88 characters each, and the cache file's
    path (here ~/..., as under a home folder) never split."""
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = tmp_path / "cache-of-the-book"
    name = "ch07_a_long_run_name_with_its_settings_32b"
    cached(name, {"seed": 0}, Counter(), folder=folder)
    cached(name, {"seed": 0}, Counter(), folder=folder)
    lines = capsys.readouterr().out.splitlines()
    path = f"~/cache-of-the-book/{name}.pt"
    assert len(lines) >= 4 and max(len(ln) for ln in lines) <= 88
    assert sum(path in ln for ln in lines) == 2


def test_other_key_or_source_recomputes(tmp_path, monkeypatch):
    f = Counter()
    cached("run", {"seed": 0}, f, folder=tmp_path)
    cached("run", {"seed": 1}, f, folder=tmp_path)              # other key: recompute
    assert f.calls == 2
    cached("run", {"seed": 1}, f, folder=tmp_path)              # now stored under seed 1
    assert f.calls == 2
    monkeypatch.setattr(cache, "source_fingerprint", lambda: "changed-library")
    cached("run", {"seed": 1}, f, folder=tmp_path)              # library changed: recompute
    assert f.calls == 3


def test_corrupt_file_is_reported_and_recomputed(tmp_path, capsys):
    (tmp_path / "run.pt").write_bytes(b"not a torch file")
    f = Counter()
    value = cached("run", {"seed": 0}, f, folder=tmp_path)
    assert f.calls == 1 and torch.equal(value["w"], torch.arange(4.0))
    assert "unreadable" in capsys.readouterr().err
    cached("run", {"seed": 0}, f, folder=tmp_path)              # replaced by a good file
    assert f.calls == 1


def test_cache_off_always_computes(tmp_path, monkeypatch):
    monkeypatch.setenv("UGACH_CACHE", "off")
    assert cache.cache_dir() is None
    f = Counter()
    cached("run", {}, f)
    cached("run", {}, f)
    assert f.calls == 2
    monkeypatch.setenv("UGACH_CACHE", str(tmp_path))
    assert cache.cache_dir() == tmp_path
    cached("run", {}, f)
    assert (tmp_path / "run.pt").is_file()


def test_bad_names_are_rejected(tmp_path):
    for bad in ("", "../x", "a/b", "a b"):
        with pytest.raises(ValueError, match="cache name"):
            cached(bad, {}, lambda: 1, folder=tmp_path)


def test_source_fingerprint_is_sha256_of_paths_and_bytes(tmp_path, monkeypatch):
    """On a two-file package: SHA-256 over (relative path, bytes) of each .py file in sorted
    order, written out here with hashlib; an edited byte, a renamed file and a new .py file
    change it, a file of another kind does not."""
    pkg = tmp_path / "pkg"
    (pkg / "data").mkdir(parents=True)
    (pkg / "a.py").write_bytes(b"x = 1\n")
    (pkg / "data" / "b.py").write_bytes(b"y = 2\n")
    monkeypatch.setattr(cache, "_PACKAGE", pkg)
    b_path = str(Path("data") / "b.py").encode()
    expected = hashlib.sha256(b"a.py" + b"x = 1\n" + b_path + b"y = 2\n").hexdigest()[:16]
    assert source_fingerprint() == expected
    (pkg / "notes.txt").write_text("not source")
    assert source_fingerprint() == expected
    (pkg / "a.py").write_bytes(b"x = 2\n")
    edited = source_fingerprint()
    assert edited != expected
    (pkg / "a.py").rename(pkg / "c.py")
    assert source_fingerprint() not in (expected, edited)
    (pkg / "c.py").rename(pkg / "a.py")
    assert source_fingerprint() == edited
    (pkg / "new.py").write_text("")
    assert source_fingerprint() != edited


def test_source_fingerprint_of_the_library_covers_its_files():
    """The real package: the fingerprint is the hash of ugach_core's own .py files (path
    and bytes, sorted), recomputed here from a listing of the installed package."""
    import ugach_core

    root = Path(ugach_core.__file__).resolve().parent
    files = sorted(root.rglob("*.py"))
    assert Path(cache.__file__).resolve() in files and len(files) > 10
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root)).encode() + f.read_bytes())
    assert source_fingerprint() == h.hexdigest()[:16]


def test_data_fingerprint_by_hand():
    """SHA-256 of the name, then per array its name, shape, dtype and bytes (hashlib here);
    any change to a feature or the name changes it."""
    class D:
        name = "x"
        img = np.zeros((3, 2), np.float32)
        txt = np.ones((3, 4), np.float32)
        labels = np.eye(3, dtype=np.float32)

    h = hashlib.sha256(b"x")
    for key in ("img", "txt", "labels"):
        a = getattr(D, key)
        h.update(f"{key}{a.shape}{a.dtype}".encode() + a.tobytes())
    a = data_fingerprint(D)
    assert a == h.hexdigest()[:16]
    D.img = D.img.copy()
    D.img[0, 0] = 1e-7                                          # any change to the features
    assert data_fingerprint(D) != a
    D.img[0, 0] = 0.0
    assert data_fingerprint(D) == a
    D.name = "y"
    assert data_fingerprint(D) != a
