"""ugach_core.cache: load if present (same key and library source), else compute."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ugach_core import cache
from ugach_core.cache import cached, data_fingerprint, source_fingerprint


class Counter:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return {"w": torch.arange(4.0) * self.calls, "history": [{"round": 1, "map": 0.5}]}


def test_second_call_loads_the_stored_value(tmp_path, capsys):
    f = Counter()
    a = cached("run", {"seed": 0}, f, folder=tmp_path)
    b = cached("run", {"seed": 0}, f, folder=tmp_path)
    assert f.calls == 1
    assert torch.equal(a["w"], b["w"]) and b["history"] == a["history"]
    out = capsys.readouterr().out
    assert "computed run" in out and "loaded run from the cache" in out


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


def test_fingerprints():
    assert source_fingerprint() == source_fingerprint() and len(source_fingerprint()) == 16

    class D:
        name = "x"
        img = np.zeros((3, 2), np.float32)
        txt = np.ones((3, 4), np.float32)
        labels = np.eye(3, dtype=np.float32)

    a = data_fingerprint(D)
    D.img = D.img.copy()
    D.img[0, 0] = 1e-7                                          # any change to the features
    assert data_fingerprint(D) != a
