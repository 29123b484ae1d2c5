"""MIRFlickr-25K from the raw release (ugach_core.data.mirflickr, .features).

The miniature raw layouts below are rebuilt from the REAL tags and labels in
``$UGACH_DATA/mirflickr25k`` (the 20,015 kept pairs): kept images get their real frequent tags
and labels, plus a made-up rare tag; the other (really dropped) image ids get MADE-UP tags
and labels of the three kinds the filter must drop.  Pixels are made up (tiny JPEGs), and a
tiny seeded CNN stands in for VGG19 (torchvision cannot be installed next to this torch).
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ugach_core.data import load
from ugach_core.data import mirflickr as mf
from ugach_core.data.features import FileSource, extract_features, preprocess, vgg19_fc7
from ugach_core.data.formats import MIRFLICKR_LABELS, read_dcmh_mat

N_IMAGES = 240  # image ids 1..240 of the real release: about 190 kept, 50 dropped


class TinyCNN(torch.nn.Module):
    """Stand-in for VGG19 fc7: (B, 3, 224, 224) -> (B, 16), non-negative like fc7."""

    feature_name = "tinycnn"

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 8, stride=8)
        self.fc = torch.nn.Linear(4 * 4, 16)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.nn.functional.adaptive_avg_pool2d(torch.relu(self.conv(x)), 2)
        return torch.relu(self.fc(h.flatten(1)))


class Interrupt(Exception):
    pass


class Counting(TinyCNN):
    """TinyCNN that counts images and can fail after ``fail_after`` batches."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.seen, self.batches, self.fail_after = 0, 0, fail_after

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise Interrupt("interrupted (simulated)")
        self.batches += 1
        self.seen += x.shape[0]
        return super().forward(x)


# ------------------------------------------------------------------------ the real files


@pytest.fixture(scope="module")
def real(mir_root: Path) -> dict:
    return mf.read_text_side(mir_root)


def _jpeg(k: int) -> bytes:
    """A tiny made-up JPEG; portrait or landscape depending on k."""
    w, h = (10, 7) if k % 2 else (6, 9)
    rng = np.random.default_rng(k)
    im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _raw_files(real: dict, n_images: int) -> tuple[dict[str, bytes], dict[str, bytes], np.ndarray]:
    """(image-archive files, annotation files, kept ids) of the miniature release."""
    ids = real["ids"]
    kept = ids[ids <= n_images]
    row = {int(k): i for i, k in enumerate(ids)}
    vocab = real["tag_names"]
    counts = real["txt"].sum(0)
    imgs: dict[str, bytes] = {
        "doc/common_tags.txt": "".join(f"{t}\t{c}\n" for t, c in zip(vocab, counts)).encode()}
    concept_ids: dict[str, list[int]] = {c: [] for c in MIRFLICKR_LABELS}
    rng = np.random.default_rng(1)
    kind = 0
    for k in range(1, n_images + 1):
        imgs[f"im{k}.jpg"] = _jpeg(k)
        if k in row:  # real kept pair: its real tags and labels (+ a rare tag)
            i = row[k]
            tags = [vocab[j] for j in np.flatnonzero(real["txt"][i])] + [f"rare{k}"]
            labs = [MIRFLICKR_LABELS[c] for c in np.flatnonzero(real["labels"][i])]
        else:  # a really dropped image: made-up content of one of three kinds
            kind += 1
            if kind % 3 == 0:   # labels, but only rare tags
                tags, labs = [f"rare{k}", "zzunusual"], [MIRFLICKR_LABELS[rng.integers(24)]]
            elif kind % 3 == 1:  # frequent tags, no label
                tags, labs = [vocab[0], vocab[5]], []
            else:                # nothing at all (empty tag file)
                tags, labs = [], []
        imgs[f"meta/tags/tags{k}.txt"] = "".join(t + "\r\n" for t in tags).encode()
        for c in labs:
            concept_ids[c].append(k)
    ann = {f"{c}.txt": "".join(f"{k}\n" for k in v).encode() for c, v in concept_ids.items()}
    for c in ("animals", "sky", "water"):  # the "relevant" subsets: not labels
        ann[f"{c}_r1.txt"] = "".join(f"{k}\n" for k in range(1, n_images + 1, 3)).encode()
    ann["README.txt"] = b"annotations v080 (miniature)\n"
    return imgs, ann, kept


def write_raw(root: Path, real: dict, zipped: bool = False, n_images: int = N_IMAGES) -> np.ndarray:
    """Write the miniature release under ``root/mirflickr25k``; returns the kept ids."""
    imgs, ann, kept = _raw_files(real, n_images)
    d = root / "mirflickr25k"
    d.mkdir(parents=True, exist_ok=True)
    if zipped:
        with zipfile.ZipFile(d / mf.IMAGES_ZIP, "w") as z:
            for rel, data in imgs.items():
                z.writestr(f"mirflickr/{rel}", data)
        with zipfile.ZipFile(d / mf.ANNOTATIONS_ZIP, "w") as z:
            for rel, data in ann.items():
                z.writestr(rel, data)
    else:
        for rel, data in imgs.items():
            p = d / "mirflickr" / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        a = d / "mirflickr25k_annotations_v080"
        a.mkdir()
        for rel, data in ann.items():
            (a / rel).write_bytes(data)
    return kept


def snapshot(root: Path) -> dict[Path, bytes]:
    out = {}
    for p in root.rglob("*"):
        if p.is_file():
            with open(p, "rb") as fh:
                out[p] = fh.read()
    return out


@pytest.fixture(scope="module")
def built(real, tmp_path_factory) -> tuple[Path, np.ndarray, dict]:
    """The whole pipeline once, on the unpacked miniature layout."""
    root = tmp_path_factory.mktemp("mir_raw")
    kept = write_raw(root, real)
    path = mf.prepare_mirflickr(root, extractor=TinyCNN(), batch_size=32, chunk=64,
                                progress=False)
    return root, kept, mf.load_cache(path)


# ------------------------------------------------------------------ the whole pipeline


def test_pipeline_on_miniature_release(built, real):
    root, kept, d = built
    assert 150 < len(kept) < N_IMAGES
    np.testing.assert_array_equal(d["ids"], kept)  # exactly the real kept ids
    rows = np.searchsorted(real["ids"], kept)
    np.testing.assert_array_equal(d["txt"], real["txt"][rows])   # real tag vectors
    np.testing.assert_array_equal(d["labels"], real["labels"][rows])
    assert d["tag_names"] == real["tag_names"] and d["label_names"] == MIRFLICKR_LABELS
    assert d["img"].shape == (len(kept), 16) and d["img"].dtype == np.float32
    assert d["extractor"] == "tinycnn"
    # image rows are the extractor's output on each preprocessed image, in order
    net = TinyCNN().eval()
    src = FileSource(root / "mirflickr25k", "mirflickr")
    for i in (0, 7, len(kept) - 1):
        x = torch.from_numpy(preprocess(src.read(f"im{kept[i]}.jpg")))[None]
        with torch.no_grad():
            np.testing.assert_allclose(d["img"][i], net(x)[0].numpy(), rtol=1e-5, atol=1e-6)
    folder = root / "mirflickr25k"
    assert not (folder / ".parts").exists()  # partial results removed
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_load_uses_the_cache(built, monkeypatch):
    root, kept, d = built
    ds = mf.load_mirflickr(root, features="tinycnn")
    assert ds.n == len(kept) and not ds.synthetic and ds.name == "mirflickr25k"
    assert len(ds.query_idx) == len(kept) // 10 and "tinycnn" in ds.source
    assert np.isin(ds.train_idx, ds.db_idx).all()
    # prepare again: the valid cache is verified and reused, not rebuilt
    path = mf.cache_path(root, "tinycnn")
    before = path.stat().st_mtime_ns
    assert mf.prepare_mirflickr(root, extractor=Counting(fail_after=0), progress=False) == path
    assert path.stat().st_mtime_ns == before


def test_zipped_release_gives_the_same_cache(built, real, tmp_path):
    _, kept, d = built
    n = len(write_raw(tmp_path, real, zipped=True, n_images=100))  # a prefix of `built`
    z = mf.load_cache(mf.prepare_mirflickr(tmp_path, extractor=TinyCNN(), batch_size=50,
                                           progress=False))
    for k in ("ids", "txt", "labels"):
        np.testing.assert_array_equal(z[k], d[k][:n])
    np.testing.assert_allclose(z["img"], d["img"][:n], rtol=1e-5, atol=1e-6)


def test_resume_after_interrupted_extraction(built, real, tmp_path):
    _, _, d = built
    n = len(write_raw(tmp_path, real, n_images=100))  # a prefix of `built`
    assert n > 64
    first = Counting(fail_after=3)  # 3 batches of 16 = 48 images, then "interrupted"
    with pytest.raises(Interrupt, match=r"interrupted \(simulated\)"):
        mf.prepare_mirflickr(tmp_path, extractor=first, batch_size=16, chunk=32,
                             progress=False)
    parts = list((tmp_path / "mirflickr25k" / ".parts").rglob("part_*.npy"))
    assert len(parts) == 1  # the first chunk of 32 was saved; the second was not finished
    assert not mf.cache_path(tmp_path, "tinycnn").exists()
    second = Counting()
    out = mf.prepare_mirflickr(tmp_path, extractor=second, batch_size=16, chunk=32,
                               progress=False)
    assert second.seen == n - 32  # resumed after the saved chunk
    r = mf.load_cache(out)
    np.testing.assert_allclose(r["img"], d["img"][:n], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(r["txt"], d["txt"][:n])
    assert not (tmp_path / "mirflickr25k" / ".parts").exists()


def test_resume_never_mixes_in_parts_of_other_weights(built, real, tmp_path):
    """An interrupted extraction resumed with another model of the same name (other
    weights) starts over: mixed features once went into the cache without a word."""
    _, _, d = built
    n = len(write_raw(tmp_path, real, n_images=100))
    first = Counting(fail_after=3)
    with torch.no_grad():
        first.fc.weight.mul_(1000.0)
    with pytest.raises(Interrupt):
        mf.prepare_mirflickr(tmp_path, extractor=first, batch_size=16, chunk=32,
                             progress=False)
    second = Counting()
    out = mf.prepare_mirflickr(tmp_path, extractor=second, batch_size=16, chunk=32,
                               progress=False)
    assert second.seen == n  # nothing of the other weights was reused
    np.testing.assert_allclose(mf.load_cache(out)["img"], d["img"][:n], rtol=1e-5, atol=1e-6)


def test_force_extracts_again(real, tmp_path):
    """``force`` rebuilds from the images, not from part files of an interrupted run."""
    n = len(write_raw(tmp_path, real, n_images=60))
    with pytest.raises(Interrupt):
        mf.prepare_mirflickr(tmp_path, extractor=Counting(fail_after=2), batch_size=16,
                             chunk=32, progress=False)
    again = Counting()
    mf.prepare_mirflickr(tmp_path, extractor=again, batch_size=16, chunk=32, progress=False,
                         force=True)
    assert again.seen == n


# ------------------------------------------------------------- the filter on real data


def _full_release_text(real: dict) -> tuple[list[list[str]], dict[str, np.ndarray]]:
    """Tags and labels for all 25,000 image ids: the REAL ones of the 20,015 kept pairs and
    MADE-UP ones (of the three kinds the rule drops) for the 4,985 ids the rule dropped."""
    row = {int(k): i for i, k in enumerate(real["ids"])}
    vocab = real["tag_names"]
    tags: list[list[str]] = []
    concepts: dict[str, list[int]] = {c: [] for c in MIRFLICKR_LABELS}
    for k in range(1, 25001):
        if k in row:
            i = row[k]
            tags.append([vocab[j] for j in np.flatnonzero(real["txt"][i])] + ["rare"])
            for c in np.flatnonzero(real["labels"][i]):
                concepts[MIRFLICKR_LABELS[c]].append(k)
        elif k % 3 == 0:
            tags.append(["rare", "other"])
            concepts[MIRFLICKR_LABELS[k % 24]].append(k)
        elif k % 3 == 1:
            tags.append([vocab[k % len(vocab)]])
        else:
            tags.append([])
    return tags, {c: np.array(v, dtype=np.int64) for c, v in concepts.items()}


def test_filter_rule_keeps_exactly_the_20015_real_pairs(real, mir_root):
    assert mf.N_PAIRS == 20015 and len(real["ids"]) == 20015
    assert real["ids"].max() <= 25000 and (np.diff(real["ids"]) > 0).all()
    tags, concepts = _full_release_text(real)
    ids = np.arange(1, 25001)
    x = mf.tag_matrix(tags, real["tag_names"])
    y = mf.label_matrix(concepts, ids)
    keep = mf.select_pairs(x, y)
    assert keep.size == 20015
    np.testing.assert_array_equal(ids[keep], real["ids"])
    np.testing.assert_array_equal(x[keep], real["txt"])
    np.testing.assert_array_equal(y[keep], real["labels"])


def test_tag_vectors_equal_yall_up_to_a_column_permutation(real, mir_root):
    yall = read_dcmh_mat(mir_root / "mirflickr25k-yall.mat", "YAll")
    x = real["txt"]
    assert x.shape == yall.shape == (20015, 1386)
    assert sorted(c.tobytes() for c in x.T) == sorted(c.tobytes() for c in yall.T)
    vocab_file = mir_root / "yall_vocab.txt"
    if vocab_file.is_file():  # the explicit permutation (save7/save8 share one column)
        index = {t: j for j, t in enumerate(real["tag_names"])}
        perm = [index[w] for w in vocab_file.read_text().split()]
        np.testing.assert_array_equal(x[:, perm], yall)
    lall = read_dcmh_mat(mir_root / "mirflickr25k-lall.mat", "LAll")
    np.testing.assert_array_equal(real["labels"], lall)


def test_stored_frequency_table_equals_the_real_counts(real):
    from ugach_core.data import _mirflickr_stats as s
    assert s.N_PAIRS == 20015
    np.testing.assert_array_equal(s.LABEL_COUNTS, real["labels"].sum(0))
    np.testing.assert_array_equal(s.TAG_COUNTS, real["txt"].sum(0))


# ------------------------------------------------------------------------ bad inputs


def test_missing_archives(tmp_path, real):
    with pytest.raises(FileNotFoundError, match=r"missing mirflickr25k.zip .* and "
                       r"mirflickr25k_annotations_v080.zip .*--download"):
        mf.prepare_mirflickr(tmp_path, extractor=TinyCNN(), progress=False)
    write_raw(tmp_path, real, zipped=True, n_images=20)
    (tmp_path / "mirflickr25k" / mf.ANNOTATIONS_ZIP).unlink()
    with pytest.raises(FileNotFoundError, match=r"missing mirflickr25k_annotations_v080.zip"):
        mf.prepare_mirflickr(tmp_path, extractor=TinyCNN(), progress=False)
    (tmp_path / "mirflickr25k" / mf.ANNOTATIONS_ZIP).write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="cannot open .*annotations_v080.zip as a zip archive"):
        mf.prepare_mirflickr(tmp_path, extractor=TinyCNN(), progress=False)


@pytest.fixture
def good(real, tmp_path) -> tuple[Path, dict[Path, bytes]]:
    """A small unpacked release with a valid cache, and a snapshot of every file."""
    write_raw(tmp_path, real, n_images=40)
    mf.prepare_mirflickr(tmp_path, extractor=TinyCNN(), batch_size=16, progress=False)
    return tmp_path, snapshot(tmp_path)


def _fails_and_keeps(root: Path, before: dict, exc, match: str, changed: Path | None) -> None:
    with pytest.raises(exc, match=match):
        mf.prepare_mirflickr(root, extractor=TinyCNN(), batch_size=16, progress=False,
                             force=True)
    after = snapshot(root)
    for p, data in before.items():  # every file but those the test broke is unchanged
        if not (changed is not None and (p == changed or changed in p.parents)):
            assert after.get(p) == data, p
    assert mf.load_cache(mf.cache_path(root, "tinycnn"))["img"].shape[1] == 16


def test_truncated_image(good):
    root, before = good
    img = root / "mirflickr25k" / "mirflickr" / "im2.jpg"
    img.write_bytes(img.read_bytes()[:200])
    _fails_and_keeps(root, before, ValueError, r"cannot decode image .*im2.jpg.*truncated",
                     img)


def test_unreadable_tag_file(good, monkeypatch):
    root, before = good
    p = root / "mirflickr25k" / "mirflickr" / "meta" / "tags" / "tags5.txt"
    real_read = Path.read_bytes

    def read_bytes(self):  # tests run as root, where chmod 000 does not stop reading
        if self == p:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    _fails_and_keeps(root, before, ValueError, r"cannot read .*tags5.txt \(PermissionError", p)


def test_rows_that_do_not_line_up(good):
    root, before = good
    p = root / "mirflickr25k" / "mirflickr" / "meta" / "tags" / "tags9.txt"
    p.unlink()
    _fails_and_keeps(root, before, ValueError, r"1 images have no tag file .*tags9.txt.*do not "
                     "line up", p)
    p.write_bytes(before[p])
    ann = root / "mirflickr25k" / "mirflickr25k_annotations_v080" / "dog.txt"
    ann.write_bytes(ann.read_bytes() + b"41\n")  # image 41 is not in this release
    _fails_and_keeps(root, before, ValueError, r"'dog' lists image 41, which is not among",
                     ann)
    ann.write_bytes(ann.read_bytes() + b"x7\n")
    _fails_and_keeps(root, before, ValueError, r"dog.txt: 'x7' is not an image id", ann)


def test_empty_tag_rows(good):
    root, before = good
    tags = root / "mirflickr25k" / "mirflickr" / "meta" / "tags"
    for p in tags.iterdir():
        p.write_bytes(b"")
    _fails_and_keeps(root, before, ValueError, "no image has both a label and a frequent tag",
                     tags)


def test_text_side_bad_rows(mir_root, tmp_path):
    for f in ("all_imgs.txt", "all_tags.txt", "all_labels.txt", "TagList.txt"):
        (tmp_path / f).write_bytes((mir_root / f).read_bytes()[:400_000] if f != "TagList.txt"
                                   else (mir_root / f).read_bytes())
    lines = {f: (mir_root / f).read_text().splitlines()[:50]
             for f in ("all_imgs.txt", "all_tags.txt", "all_labels.txt")}
    for f, ls in lines.items():
        (tmp_path / f).write_text("\n".join(ls) + "\n")
    assert mf.read_text_side(tmp_path)["txt"].shape == (50, 1386)
    (tmp_path / "all_labels.txt").write_text("\n".join(lines["all_labels.txt"][:49]) + "\n")
    with pytest.raises(ValueError, match=r"rows do not line up .*'all_labels.txt': 49"):
        mf.read_text_side(tmp_path)
    (tmp_path / "all_labels.txt").write_text("\n".join(lines["all_labels.txt"]) + "\n")
    t = list(lines["all_tags.txt"])
    t[6] = " "
    (tmp_path / "all_tags.txt").write_text("\n".join(t) + "\n")
    with pytest.raises(ValueError, match=r"all_tags.txt:7: empty tag row"):
        mf.read_text_side(tmp_path)
    t[6] = "sky,notatag"
    (tmp_path / "all_tags.txt").write_text("\n".join(t) + "\n")
    with pytest.raises(ValueError, match=r"all_tags.txt:7: tag 'notatag' is not in TagList"):
        mf.read_text_side(tmp_path)
    (tmp_path / "all_tags.txt").write_text("\n".join(lines["all_tags.txt"]) + "\n")
    labels = tmp_path / "all_labels.txt"
    for text, match in (
            (bytes(range(128, 256)), r"all_labels\.txt is not a UTF-8 text file"),
            ("\n".join(lines["all_labels.txt"][:20] + [lines["all_labels.txt"][20][:23]]),
             r"all_labels\.txt is not a table of 0/1 rows \(the number of columns changed"),
            ("\n".join(r[:39] for r in lines["all_labels.txt"]),
             r"must hold 0/1 rows of 24 labels, got 20 columns"),
            ("\n".join(lines["all_labels.txt"]).replace("1", "2", 1),
             r"must hold 0/1 rows of 24 labels, got 24 columns with values \[0, 1, 2\]")):
        if isinstance(text, bytes):
            labels.write_bytes(text)
        else:
            labels.write_text(text + "\n")
        with pytest.raises(ValueError, match=match):
            mf.read_text_side(tmp_path)


def test_damaged_cache_is_reported_and_kept(good):
    root, _ = good
    path = mf.cache_path(root, "tinycnn")
    d = dict(np.load(path))
    d["img"][3, 2] += 1.0  # one value changed, checksum kept
    with open(path, "wb") as fh:
        np.savez(fh, **d)
    data = path.read_bytes()
    with pytest.raises(ValueError, match="checksum mismatch, the cache is damaged"):
        mf.load_cache(path)
    with pytest.raises(ValueError, match="checksum mismatch"):
        mf.load_mirflickr(root, features="tinycnn")
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot read .* the cache is damaged"):
        mf.load_cache(path)
    assert path.read_bytes() == data[: len(data) // 2]  # left in place, not deleted


def test_preprocess_and_vgg_without_torchvision(monkeypatch):
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (255, 0, 51)).save(buf, format="PNG")
    x = preprocess(buf.getvalue())
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    want = (np.array([1.0, 0.0, 0.2]) - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    np.testing.assert_allclose(x.mean((1, 2)), want, atol=1e-5)
    with pytest.raises(ValueError, match="cannot decode image x.jpg"):
        preprocess(b"\xff\xd8\xff garbage", "x.jpg")
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ImportError, match="pip install torchvision.*extractor="):
        vgg19_fc7()


def test_extractor_with_wrong_output_shape(built, tmp_path):
    root = built[0]
    src = FileSource(root / "mirflickr25k", "mirflickr")
    with pytest.raises(ValueError, match="must return \\(batch, dimensions\\)"):
        extract_features(src, ["im1.jpg", "im2.jpg"], lambda x: x.sum(), tmp_path,
                         progress=False)


# ------------------------------------------------------------- offline default, load()


def test_load_without_features_says_what_to_do(tmp_path, mir_root):
    with pytest.raises(FileNotFoundError, match=r"data prepare mirflickr25k --root .*"
                       r"mirflickr25k-iall-vgg.mat.*synthetic_ok=True"):
        load("mirflickr25k", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="image features not found"):
        load("mirflickr25k", root=mir_root.parent)  # real text side, but no image features


def test_synthetic_stand_in_only_when_allowed(mir_root, real, capsys):
    ds = load("mirflickr25k", root=mir_root.parent, synthetic_ok=True)
    assert "synthetic" in ds.name and ds.synthetic and "SYNTHETIC" in ds.summary()
    assert "SYNTHETIC" in capsys.readouterr().err
    assert ds.img.shape == (20015, 4096) and ds.txt.shape == (20015, 1386)
    assert ds.labels.shape == (20015, 24) and (ds.img >= 0).all()
    assert ((ds.txt == 0) | (ds.txt == 1)).all()
    assert (ds.labels.sum(1) >= 1).all() and (ds.txt.sum(1) >= 1).all()
    assert len(ds.query_idx) == 2000 and len(ds.train_idx) == 15000
    # label and tag frequencies like the real set
    np.testing.assert_allclose(ds.labels.mean(0), real["labels"].mean(0), atol=0.015)
    np.testing.assert_allclose(ds.txt.mean(0), real["txt"].mean(0), atol=0.01)
    assert abs(ds.txt.sum(1).mean() - real["txt"].sum(1).mean()) < 0.2
    assert "all_labels.txt" not in ds.source and str(mir_root) in ds.source


def test_synthetic_stand_in_without_real_files_uses_the_stored_table():
    from ugach_core.data.synthetic import make_mirflickr_synthetic
    a = make_mirflickr_synthetic(n=600, d_img=32, seed=3)
    b = make_mirflickr_synthetic(n=600, d_img=32, seed=3)
    np.testing.assert_array_equal(a.img, b.img)
    assert a.dims == (32, 1386) and "synthetic" in a.name and "_mirflickr_stats" in a.source


def test_cli_prepare_without_files_names_them(tmp_path, capsys):
    from ugach_core.cli import main
    assert main(["data", "prepare", "mirflickr25k", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    folder = str(tmp_path / "mirflickr25k")
    assert f"Put these files in {folder}" in err
    assert "mirflickr25k.zip (3,069,184,257 bytes, md5 a23d0a8564ee84cda5622a6c2f947785)" in err
    assert "mirflickr25k_annotations_v080.zip" in err and "--download" in err
    assert not (tmp_path / "mirflickr25k").exists()  # nothing created without --download


def test_cli_prepare_download_offline(tmp_path, capsys, monkeypatch):
    from ugach_core.cli import main
    from ugach_core.data import download as dl
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: like having no network
    remotes = [dl.Remote(r.name, f"http://127.0.0.1:{port}/{r.name}", r.size, r.md5)
               for r in dl.REMOTES["mirflickr25k"]]
    monkeypatch.setitem(dl.REMOTES, "mirflickr25k", remotes)
    monkeypatch.setattr(dl.shutil, "disk_usage", lambda p: type("U", (), {"free": 1 << 40}))
    assert main(["data", "prepare", "mirflickr25k", "--root", str(tmp_path), "--download",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "could not download" in err and "mirflickr25k.zip" in err
    assert f"Put these files in {tmp_path / 'mirflickr25k'}" in err


def test_cli_prepare_builds_the_cache(real, tmp_path, capsys, monkeypatch):
    from ugach_core.cli import main
    from ugach_core.data import features
    write_raw(tmp_path, real, n_images=30)
    monkeypatch.setitem(features.EXTRACTORS, "tinycnn", TinyCNN)
    assert main(["data", "prepare", "mirflickr25k", "--root", str(tmp_path), "--extractor",
                 "tinycnn", "--batch-size", "8", "--workers", "0", "--device", "cpu",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "mirflickr25k:" in out and "wrote" in out
    assert mf.cache_path(tmp_path, "tinycnn").is_file()


def test_cli_download_then_prepare_from_a_loopback_server(real, tmp_path, capsys, monkeypatch):
    """The Colab recipe end to end, with the official archives replaced by the miniature ones
    served from 127.0.0.1 (their true size and md5 in the registry); only what is missing is
    fetched."""
    import functools
    import hashlib
    import http.server
    import threading
    from ugach_core.cli import main
    from ugach_core.data import download as dl
    from ugach_core.data import features

    served = tmp_path / "served"
    write_raw(served, real, zipped=True, n_images=30)
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served / "mirflickr25k")))
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        remotes = []
        for name in (mf.IMAGES_ZIP, mf.ANNOTATIONS_ZIP):
            data = (served / "mirflickr25k" / name).read_bytes()
            remotes.append(dl.Remote(name, f"{url}/{name}", len(data),
                                     hashlib.md5(data).hexdigest()))
        monkeypatch.setitem(dl.REMOTES, "mirflickr25k", remotes)
        monkeypatch.setitem(features.EXTRACTORS, "tinycnn", TinyCNN)
        root = tmp_path / "data"
        # the image archive is already there, unpacked: only the annotations are fetched
        write_raw(root, real, n_images=30)
        import shutil
        shutil.rmtree(root / "mirflickr25k" / "mirflickr25k_annotations_v080")
        args = ["data", "prepare", "mirflickr25k", "--root", str(root), "--download",
                "--extractor", "tinycnn", "--workers", "0", "--no-progress"]
        assert main(args) == 0
        assert requests == [f"/{mf.ANNOTATIONS_ZIP}"]
        assert (root / "mirflickr25k" / mf.ANNOTATIONS_ZIP).is_file()
        built_here = mf.load_cache(mf.cache_path(root, "tinycnn"))
        # from nothing: both archives are fetched and the same cache comes out
        root2 = tmp_path / "data2"
        assert main([*args[:4], str(root2), *args[5:]]) == 0
        assert sorted(requests[1:]) == sorted(f"/{n}" for n in (mf.IMAGES_ZIP,
                                                                mf.ANNOTATIONS_ZIP))
        again = mf.load_cache(mf.cache_path(root2, "tinycnn"))
        np.testing.assert_array_equal(again["ids"], built_here["ids"])
        np.testing.assert_allclose(again["img"], built_here["img"], rtol=1e-5, atol=1e-6)
        assert "wrote" in capsys.readouterr().out
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_prepare_reuses_a_valid_cache_without_the_raw_release(tmp_path, capsys):
    """Once the cache exists, the archives may be deleted: prepare (library and CLI) returns the
    verified cache instead of asking for the 3 GB release again; a damaged cache is reported
    as an error with exit code 2, and is left in place."""
    from ugach_core.cli import main
    from ugach_core.data.mirflickr import cache_path, prepare_mirflickr, save_cache

    rng = np.random.default_rng(0)
    n = 12
    labels = np.zeros((n, 24), np.uint8)
    labels[np.arange(n), np.arange(n) % 24] = 1
    txt = np.zeros((n, 5), np.uint8)
    txt[np.arange(n), np.arange(n) % 5] = 1
    out = cache_path(tmp_path, "tinycnn")
    save_cache(out, rng.random((n, 8)), txt, labels, np.arange(1, n + 1),
               [f"tag{i}" for i in range(5)], [f"label{i}" for i in range(24)], "tinycnn")
    assert prepare_mirflickr(tmp_path, extractor="tinycnn") == out
    assert main(["data", "prepare", "mirflickr25k", "--root", str(tmp_path),
                 "--extractor", "tinycnn", "--no-progress"]) == 0
    assert str(out) in capsys.readouterr().out
    out.write_bytes(out.read_bytes()[:200])  # damaged
    assert main(["data", "prepare", "mirflickr25k", "--root", str(tmp_path),
                 "--extractor", "tinycnn", "--no-progress"]) == 2
    assert "error:" in capsys.readouterr().err and out.stat().st_size == 200
