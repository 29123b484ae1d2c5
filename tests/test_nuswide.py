"""NUS-WIDE TC-10 (ugach_core.data.nuswide) on a SYNTHETIC miniature of the official layout:
made-up concepts, tags and pixels in the official file formats (no real NUS-WIDE data is
used here), and DCMH-style .mat variants (MATLAB v5 and v7.3)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from ugach_core.data import load
from ugach_core.data import nuswide as nw

N, N_TAGS = 90, 30
# 13 made-up concepts; frequencies chosen so that 'zebra' and 'apple' tie at rank 10
FREQ = {"sky": 40, "clouds": 35, "person": 30, "water": 28, "animal": 25, "grass": 22,
        "buildings": 20, "window": 18, "plants": 16, "zebra": 12, "apple": 12, "rare": 5,
        "rarer": 3}


def pool() -> torch.nn.Module:
    """Stand-in extractor: 2x2 average pooling, (B, 3, 224, 224) -> (B, 12)."""
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())


def make_layout(root: Path, seed: int = 0) -> dict:
    """Write the SYNTHETIC official layout under root/nuswide; return what was written."""
    rng = np.random.default_rng(seed)
    d = root / "nuswide"
    (d / "Groundtruth" / "AllLabels").mkdir(parents=True)
    (d / "NUS_WID_Tags").mkdir()
    (d / "ImageList").mkdir()
    labels = {}
    for c, f in FREQ.items():
        col = np.zeros(N, dtype=np.uint8)
        col[rng.choice(N, f, replace=False)] = 1
        labels[c] = col
        (d / "Groundtruth" / "AllLabels" / f"Labels_{c}.txt").write_text(
            "".join(f"{v}\r\n" for v in col))
    tags = (rng.random((N, N_TAGS)) < 0.08).astype(np.uint8)
    tags[:5] = 0  # some images without any tag
    (d / "NUS_WID_Tags" / "AllTags1k.txt").write_text(
        "".join("\t".join(map(str, r)) + "\t\r\n" for r in tags))
    (d / "NUS_WID_Tags" / "TagList1k.txt").write_text("".join(f"t{j}\n" for j in range(N_TAGS)))
    names = []
    for k in range(N):
        folder = ("actor", "beach", "sunset")[k % 3]
        names.append(f"C:\\ImageData\\Flickr\\{folder}\\{k:04d}_{1000 + k}.jpg")
        p = d / "Flickr" / folder / f"{k:04d}_{1000 + k}.jpg"
        p.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (8, 11, 3), dtype=np.uint8)).save(buf, "JPEG")
        p.write_bytes(buf.getvalue())
    (d / "ImageList" / "Imagelist.txt").write_text("\r\n".join(names) + "\r\n")
    return {"labels": labels, "tags": tags, "names": names}


def test_synthetic_layout_tc10_rule(tmp_path):
    w = make_layout(tmp_path)
    t = nw.read_official_text(tmp_path)
    # the 10 most frequent concepts, decreasing frequency, ties broken by name
    top = ["sky", "clouds", "person", "water", "animal", "grass", "buildings", "window",
           "plants", "apple"]
    assert t["label_names"] == top
    y = np.stack([w["labels"][c] for c in top], axis=1)
    keep = np.flatnonzero((y.sum(1) > 0) & (w["tags"].sum(1) > 0))
    assert 0 < keep.size < N
    np.testing.assert_array_equal(t["rows"], keep)
    np.testing.assert_array_equal(t["labels"], y[keep])
    np.testing.assert_array_equal(t["txt"], w["tags"][keep])
    assert t["images"][0] == "/".join(w["names"][keep[0]].split("\\")[-2:])
    assert t["tag_names"][:2] == ["t0", "t1"] and t["n_images"] == N


def test_synthetic_layout_prepare_and_load(tmp_path):
    make_layout(tmp_path)
    path = nw.prepare_nuswide(tmp_path, extractor=pool(), batch_size=16, chunk=32,
                              progress=False)
    assert path == nw.cache_path(tmp_path, "sequential")
    ds = nw.load_nuswide(tmp_path, features="sequential")
    t = nw.read_official_text(tmp_path)
    assert ds.dims == (12, N_TAGS) and ds.n == len(t["rows"]) and ds.name == "nuswide-tc10"
    np.testing.assert_array_equal(ds.labels, t["labels"])
    assert len(ds.query_idx) == ds.n // 10 and np.isin(ds.train_idx, ds.db_idx).all()
    assert not list((tmp_path / "nuswide").rglob("part_*.npy"))  # partial results removed
    # the default loader looks for VGG19 features, which were not built here
    with pytest.raises(FileNotFoundError, match="nuswide_tc10_vgg19_fc7.npz.*data prepare "
                                                "nuswide"):
        load("nuswide", root=tmp_path)


def test_synthetic_layout_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing Groundtruth/AllLabels/, NUS_WID_Tags"):
        nw.read_official_text(tmp_path)
    make_layout(tmp_path)
    d = tmp_path / "nuswide"
    tags = d / "NUS_WID_Tags" / "AllTags1k.txt"
    good = tags.read_text()
    lines = good.splitlines()
    tags.write_text("\n".join(lines[:7] + ["0\t1"] + lines[8:]) + "\n")
    with pytest.raises(ValueError, match=r"AllTags1k.txt:8: 2 values, but the first row has 30"):
        nw.read_official_text(tmp_path)
    tags.write_text("\n".join(lines[:-1]) + "\n")  # one row short
    with pytest.raises(ValueError, match=r"rows do not line up.*'AllTags1k.txt': 89"):
        nw.read_official_text(tmp_path)
    tags.write_text(good.replace("1", "2", 1))
    with pytest.raises(ValueError, match=r"AllTags1k.txt:\d+: a value other than 0 or 1"):
        nw.read_official_text(tmp_path)
    tags.write_text(good)
    label = sorted((d / "Groundtruth" / "AllLabels").glob("Labels_*.txt"))[2]
    rows = label.read_text()
    label.write_text("".join(rows.splitlines(keepends=True)[:-1]))  # one row short
    with pytest.raises(ValueError, match=rf"files have 90 lines, but \{{'{label.name}': 89\}}"):
        nw.read_official_text(tmp_path)  # the short file is named, whatever its place
    label.write_text("".join(f"{v} 0\n" for v in rows.split()))  # two columns: not the file
    with pytest.raises(ValueError, match=rf"{label.name} has 2 values per line; .* has one"):
        nw.read_official_text(tmp_path)
    label.write_text(rows)
    t = nw.read_official_text(tmp_path)
    missing = d / "Flickr" / t["images"][3]
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=r"1 NUS-WIDE images are missing"):
        nw.prepare_nuswide(tmp_path, extractor=pool(), progress=False)


def test_cli_nuswide_cannot_download(tmp_path, capsys):
    from ugach_core.cli import main
    assert main(["data", "prepare", "nuswide", "--root", str(tmp_path), "--download"]) == 2
    assert "cannot be downloaded automatically" in capsys.readouterr().err
    assert main(["data", "prepare", "nuswide", "--root", str(tmp_path)]) == 2
    assert "AllTags1k.txt" in capsys.readouterr().err


def test_mat_variants(tmp_path):
    """SYNTHETIC DCMH-style files: XAll/YAll/LAll, v5 through scipy and v7.3 through h5py."""
    rng = np.random.default_rng(0)
    x = rng.random((60, 8), dtype=np.float32)
    y = (rng.random((60, 20)) < 0.2).astype(np.uint8)
    lab = np.eye(10, dtype=np.uint8)[rng.integers(0, 10, 60)]
    d = tmp_path / "nuswide"
    d.mkdir()
    scipy.io.savemat(d / nw.MAT_FILES["img"], {"XAll": x})
    scipy.io.savemat(d / nw.MAT_FILES["labels"], {"LAll": lab})
    with pytest.raises(FileNotFoundError, match="nus-wide-tc10-yall.mat"):
        nw.load_nuswide_mat(d)
    scipy.io.savemat(d / nw.MAT_FILES["txt"], {"YAll": y})
    ds = load("nuswide", root=tmp_path)
    np.testing.assert_array_equal(ds.txt, y)
    np.testing.assert_array_equal(ds.img, x)
    assert ds.n == 60 and ds.labels.shape == (60, 10)
    h5py = pytest.importorskip("h5py")
    p = d / nw.MAT_FILES["txt"]
    p.unlink()
    with h5py.File(p, "w", userblock_size=512) as f:
        f.create_dataset("YAll", data=y.T)  # MATLAB (column-major) order as HDF5 shows it
    with open(p, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file")
    np.testing.assert_array_equal(nw.load_nuswide_mat(d).txt, y)
    with h5py.File(p, "w", userblock_size=512) as f:
        f.create_dataset("YAll", data=y[:, 0])  # 1-D: once an IndexError traceback
    with open(p, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file")
    with pytest.raises(ValueError, match=r"'YAll' must be a 2-D numeric array.*shape \(60,\)"):
        nw.load_nuswide_mat(d)
    scipy.io.savemat(p, {"YAll": y})
    scipy.io.savemat(d / nw.MAT_FILES["labels"], {"LAll": lab[:50]})
    with pytest.raises(ValueError, match="rows do not line up"):
        nw.load_nuswide_mat(d)
