"""MIRFlickr-25K from the official release to UGACH-ready features (one cached ``.npz``).

The release (Huiskes & Lew, MIR 2008) is two archives, used zipped or unpacked, in
``<root>/mirflickr25k/`` (or ``<root>``):

* ``mirflickr25k.zip`` -> ``mirflickr/im<k>.jpg`` (k = 1..25000),
  ``mirflickr/meta/tags/tags<k>.txt`` (one tag per line), ``mirflickr/doc/common_tags.txt``
  (``tag count`` per line: the 1,386 tags that occur in at least 20 images);
* ``mirflickr25k_annotations_v080.zip`` -> ``<concept>.txt`` files of 1-based image ids; the 24
  labels are the files without ``_r1`` (the ``_r1`` files are the "relevant" subsets), in
  alphabetical order.

The cross-modal literature keeps the pairs with at least one label and at least one frequent
tag, which leaves 20,015 pairs:

.. math:: \\mathcal{K} = \\{k : \\textstyle\\sum_c y_{kc} \\ge 1 \\;\\wedge\\;
          \\sum_t x^T_{kt} \\ge 1\\},

with ``x^T_k`` in {0,1}^1386 the binary bag of frequent tags (columns in the order of
``common_tags.txt``) and ``y_k`` in {0,1}^24 the labels.  Image features are VGG19 fc7
(4096-d) by default (:mod:`ugach_core.data.features`).  :func:`prepare_mirflickr` builds
``<root>/mirflickr25k/mirflickr25k_<extractor>.npz`` once (atomically, with a checksum; an
interrupted extraction resumes); :func:`load_mirflickr` loads it with a named protocol.
README: "Data sets from the official releases".
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..utils import atomic_write
from .dataset import CrossModalDataset
from .features import Extractor, FileSource, extract_features, get_extractor, parts_folder
from .formats import (MIRFLICKR_FILES, MIRFLICKR_LABELS, PROTOCOLS, load_mirflickr_mat,
                      mirflickr_split, protocol_description)

PathLike = str | os.PathLike

N_PAIRS = 20015
N_TAGS = 1386
N_LABELS = 24
IMAGES_ZIP = "mirflickr25k.zip"
ANNOTATIONS_ZIP = "mirflickr25k_annotations_v080.zip"
CACHE_VERSION = 1


def mirflickr_folder(root: PathLike) -> Path:
    """``<root>/mirflickr25k`` (where everything MIRFlickr lives under a data root)."""
    root = Path(root)
    return root if root.name == "mirflickr25k" else root / "mirflickr25k"


def cache_path(root: PathLike, features: str = "vgg19_fc7") -> Path:
    return mirflickr_folder(root) / f"mirflickr25k_{features}.npz"


# --------------------------------------------------------------------- the raw release


def _prefix_of(names: set[str], suffix: str) -> str | None:
    hits = sorted((n for n in names if n == suffix or n.endswith("/" + suffix)), key=len)
    return hits[0][: -len(suffix)].rstrip("/") if hits else None


def _source(d: Path, zip_name: str, folder: str, marker: str, what: str) -> FileSource | None:
    """``d/zip_name`` (found by the member ``marker`` inside it) or the unpacked ``d/folder``."""
    if (d / zip_name).is_file():
        pre = _prefix_of(FileSource(d / zip_name).names(), marker)
        if pre is None:
            raise ValueError(f"{d / zip_name} has no {marker}; it is not the MIRFlickr-25K "
                             f"{what} archive (or it is damaged)")
        return FileSource(d / zip_name, pre)
    if (d / folder / marker).is_file():
        return FileSource(d, folder)
    return None


def find_raw(root: PathLike) -> tuple[FileSource, FileSource]:
    """``(images, annotations)`` sources: zips or unpacked folders in ``<root>/mirflickr25k``
    or ``<root>``.  ``FileNotFoundError`` says which files to put where."""
    root = Path(root)
    cands = list(dict.fromkeys([mirflickr_folder(root), root]))
    images = annotations = None
    for d in cands:
        if images is None:
            images = _source(d, IMAGES_ZIP, "mirflickr", "doc/common_tags.txt", "image")
        if annotations is None:
            annotations = _source(d, ANNOTATIONS_ZIP, "mirflickr25k_annotations_v080",
                                  "animals.txt", "annotation")
    missing = []
    if images is None:
        missing.append(f"{IMAGES_ZIP} (or its unpacked folder mirflickr/)")
    if annotations is None:
        missing.append(f"{ANNOTATIONS_ZIP} (or its unpacked folder mirflickr25k_annotations_v080/)")
    if missing:
        raise FileNotFoundError(
            f"MIRFlickr-25K raw release not found: missing {' and '.join(missing)} in "
            f"{cands[0]}. Download them from https://press.liacs.nl/mirflickr/mirdownload.html "
            f"and put them in {cands[0]}, or run: python -m ugach_core data prepare mirflickr25k "
            f"--root {root} --download")
    return images, annotations


def missing_archives(root: PathLike) -> list[str]:
    """Names of the official archives that are neither in ``<root>/mirflickr25k`` nor
    unpacked there (what ``--download`` has to fetch)."""
    d = mirflickr_folder(root)
    have = {IMAGES_ZIP: (d / IMAGES_ZIP).is_file()
            or (d / "mirflickr" / "doc" / "common_tags.txt").is_file(),
            ANNOTATIONS_ZIP: (d / ANNOTATIONS_ZIP).is_file()
            or (d / "mirflickr25k_annotations_v080" / "animals.txt").is_file()}
    return [k for k, v in have.items() if not v]


def _text(src: FileSource, rel: str) -> str:
    data = src.read(rel)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_common_tags(text: str, where: str = "common_tags.txt") -> list[str]:
    """The frequent-tag vocabulary: the first field of each non-empty line (``tag count``),
    in file order.  Duplicates or an empty file raise ``ValueError``."""
    vocab = [ln.split()[0] for ln in text.splitlines() if ln.strip()]
    if not vocab:
        raise ValueError(f"{where} is empty; it must list the frequent tags, one per line")
    if len(set(vocab)) != len(vocab):
        dup = next(t for t in vocab if vocab.count(t) > 1)
        raise ValueError(f"{where} lists tag {dup!r} twice; the file is damaged")
    return vocab


def read_annotations(src: FileSource) -> dict[str, np.ndarray]:
    """``{concept: sorted 1-based image ids}`` for the label files (no ``_r1``, no README),
    in alphabetical order."""
    files = sorted(n for n in src.names() if n.endswith(".txt") and "/" not in n
                   and "_r1" not in n and not n.lower().startswith("readme"))
    if len(files) != N_LABELS:
        raise ValueError(f"{src.path}: found {len(files)} label files ({files[:5]}...), expected "
                         f"the {N_LABELS} MIRFlickr-25K concepts; is it "
                         f"{ANNOTATIONS_ZIP}?")
    out = {}
    for f in files:
        text = _text(src, f)
        try:
            ids = np.array([int(t) for t in text.split()], dtype=np.int64)
        except ValueError:
            bad = next(t for t in text.split() if not t.lstrip("-").isdigit())
            raise ValueError(f"{src.describe(f)}: {bad!r} is not an image id; annotation files "
                             "hold one integer per line") from None
        out[f[:-4]] = np.unique(ids)
    return out


def tag_matrix(tag_lists: Sequence[Sequence[str]], vocab: Sequence[str]) -> np.ndarray:
    """Binary bag of tags ``(n, |vocab|)`` uint8: ``x_{kt} = 1`` iff tag ``t`` is in list
    ``k``.  Tags outside the vocabulary are ignored."""
    index = {t: j for j, t in enumerate(vocab)}
    counts = np.fromiter((len(t) for t in tag_lists), dtype=np.int64, count=len(tag_lists))
    rows = np.repeat(np.arange(len(tag_lists)), counts)
    cols = np.fromiter((index.get(t, -1) for ts in tag_lists for t in ts), dtype=np.int64,
                       count=int(counts.sum()))
    x = np.zeros((len(tag_lists), len(vocab)), dtype=np.uint8)
    ok = cols >= 0
    x[rows[ok], cols[ok]] = 1
    return x


def label_matrix(concepts: dict[str, np.ndarray], ids: np.ndarray) -> np.ndarray:
    """``(len(ids), n_concepts)`` uint8; column order = ``concepts`` order; ``ids`` sorted
    1-based image ids.  An annotated id that is not an image raises ``ValueError``."""
    y = np.zeros((len(ids), len(concepts)), dtype=np.uint8)
    for c, (name, cid) in enumerate(concepts.items()):
        pos = np.searchsorted(ids, cid)
        bad = (pos >= len(ids)) | (ids[np.minimum(pos, len(ids) - 1)] != cid)
        if bad.any():
            raise ValueError(f"annotation {name!r} lists image {int(cid[bad][0])}, which is not "
                             f"among the {len(ids)} images found; the two archives do not belong "
                             "together (or the image archive is incomplete)")
        y[pos, c] = 1
    return y


def select_pairs(txt: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Row indices with at least one label and at least one frequent tag (the set K)."""
    return np.flatnonzero((labels.sum(1) > 0) & (txt.sum(1) > 0))


def read_raw_text(images: FileSource, annotations: FileSource) -> dict[str, Any]:
    """Everything but the pixels: ``ids`` (1-based image ids of the kept pairs), ``txt``
    ``(n, 1386)`` uint8, ``labels`` ``(n, 24)`` uint8, ``tag_names``, ``label_names``,
    ``n_images`` (images in the archive)."""
    names = images.names()
    pat = re.compile(r"im(\d+)\.jpg")
    ids = np.array(sorted(int(m.group(1)) for n in names if (m := pat.fullmatch(n))),
                   dtype=np.int64)
    if ids.size == 0:
        raise ValueError(f"no images im<k>.jpg in {images.describe('')}; is it {IMAGES_ZIP}?")
    vocab = read_common_tags(_text(images, "doc/common_tags.txt"),
                             images.describe("doc/common_tags.txt"))
    missing = [int(k) for k in ids if f"meta/tags/tags{k}.txt" not in names]
    if missing:
        raise ValueError(f"{len(missing)} images have no tag file (first: "
                         f"{images.describe(f'meta/tags/tags{missing[0]}.txt')}); images and tags "
                         "do not line up - the archive is incomplete, unpack or download it again")
    tags = [_text(images, f"meta/tags/tags{k}.txt").split() for k in ids]
    concepts = read_annotations(annotations)
    x = tag_matrix(tags, vocab)
    y = label_matrix(concepts, ids)
    keep = select_pairs(x, y)
    if keep.size == 0:
        raise ValueError("no image has both a label and a frequent tag: every tag file is empty "
                         "or no tag is in common_tags.txt; the tag files are damaged")
    if ids.size == 25000 and keep.size != N_PAIRS:
        warnings.warn(f"the filter kept {keep.size} pairs of the 25,000 images; the set used in "
                      f"the literature has {N_PAIRS:,}. The archives may be a different release "
                      "or damaged; results will not be comparable with published ones.",
                      stacklevel=2)
    return {"ids": ids[keep], "txt": x[keep], "labels": y[keep], "tag_names": vocab,
            "label_names": list(concepts), "n_images": int(ids.size)}


def read_text_side(folder: PathLike) -> dict[str, Any]:
    """The already-filtered text side as some repositories ship it: ``all_imgs.txt``
    (``mirflickr/im<k>.jpg``), ``all_tags.txt`` (comma-separated tags), ``all_labels.txt``
    (0/1 rows) and ``TagList.txt`` (the vocabulary).  Same keys as :func:`read_raw_text`.
    Rows that do not line up, empty tag rows and unknown tags raise ``ValueError``."""
    folder = Path(folder)
    files = ("all_imgs.txt", "all_tags.txt", "all_labels.txt", "TagList.txt")
    for f in files:
        if not (folder / f).is_file():
            raise FileNotFoundError(f"missing {folder / f}; the text side needs {', '.join(files)}")
    text = {}
    for f in files:
        try:
            text[f] = (folder / f).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{folder / f} is not a UTF-8 text file (corrupt?); replace it "
                             "with the file of the release") from None
    imgs = [s.strip() for s in text["all_imgs.txt"].splitlines() if s.strip()]
    tag_rows = text["all_tags.txt"].splitlines()
    while tag_rows and not tag_rows[-1].strip():
        tag_rows.pop()
    try:
        labels = np.loadtxt(io.StringIO(text["all_labels.txt"]), dtype=np.int64, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{folder / 'all_labels.txt'} is not a table of 0/1 rows "
                         f"({' '.join(str(e).split('; ')[0].split())}); the file is damaged - "
                         "replace it with the file of the release") from None
    if labels.shape[1] != len(MIRFLICKR_LABELS) or not np.isin(labels, (0, 1)).all():
        raise ValueError(f"{folder / 'all_labels.txt'} must hold 0/1 rows of "
                         f"{len(MIRFLICKR_LABELS)} labels, got {labels.shape[1]} columns with "
                         f"values {np.unique(labels)[:5].tolist()}; replace it with the file "
                         "of the release")
    vocab = read_common_tags(text["TagList.txt"], str(folder / "TagList.txt"))
    sizes = {"all_imgs.txt": len(imgs), "all_tags.txt": len(tag_rows),
             "all_labels.txt": labels.shape[0]}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"rows do not line up in {folder}: {sizes}; line i of each file must "
                         "be pair i")
    tags = [[t.strip() for t in r.split(",") if t.strip()] for r in tag_rows]
    empty = [i for i, t in enumerate(tags) if not t]
    if empty:
        raise ValueError(f"{folder / 'all_tags.txt'}:{empty[0] + 1}: empty tag row ({len(empty)} "
                         "in all); every pair of this set has at least one frequent tag")
    known = set(vocab)
    unknown = next(((i, t) for i, ts in enumerate(tags) for t in ts if t not in known), None)
    if unknown:
        raise ValueError(f"{folder / 'all_tags.txt'}:{unknown[0] + 1}: tag {unknown[1]!r} is not "
                         "in TagList.txt")
    m = [re.search(r"im(\d+)\.jpg$", s) for s in imgs]
    if not all(m):
        raise ValueError(f"{folder / 'all_imgs.txt'}: expected names like mirflickr/im1.jpg")
    return {"ids": np.array([int(g.group(1)) for g in m], dtype=np.int64),
            "txt": tag_matrix(tags, vocab), "labels": labels.astype(np.uint8),
            "tag_names": vocab, "label_names": list(MIRFLICKR_LABELS), "n_images": None}


# ----------------------------------------------------------------------------- the cache


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in ("img", "txt", "labels", "ids"):
        a = np.ascontiguousarray(arrays[k])
        h.update(f"{k}{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


def save_cache(path: PathLike, img: np.ndarray, txt: np.ndarray, labels: np.ndarray,
               ids: np.ndarray, tag_names: Sequence[str], label_names: Sequence[str],
               extractor: str, source: str = "") -> Path:
    """Write the cache ``.npz`` atomically, with a sha256 ``checksum`` of the arrays."""
    arrays = {"img": np.asarray(img, np.float32), "txt": np.asarray(txt, np.uint8),
              "labels": np.asarray(labels, np.uint8), "ids": np.asarray(ids, np.int64)}
    _check_consistent(arrays, str(path))
    meta = {"tag_names": np.array(list(tag_names)), "label_names": np.array(list(label_names)),
            "extractor": np.array(extractor), "source": np.array(source),
            "version": np.array(CACHE_VERSION), "checksum": np.array(_checksum(arrays))}

    def _w(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays, **meta)
    return atomic_write(path, _w)


def _check_consistent(a: dict[str, np.ndarray], where: str) -> None:
    n = a["img"].shape[0]
    sizes = {k: a[k].shape[0] for k in ("img", "txt", "labels", "ids")}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{where}: rows do not line up ({sizes})")
    if a["img"].ndim != 2 or a["txt"].ndim != 2 or a["labels"].ndim != 2 or n == 0:
        raise ValueError(f"{where}: img, txt and labels must be non-empty 2-D arrays")
    if (a["txt"].sum(1) == 0).any() or (a["labels"].sum(1) == 0).any():
        raise ValueError(f"{where}: some pairs have no tag or no label (empty rows); the filter "
                         "keeps only pairs with both")


def load_cache(path: PathLike, name: str = "mirflickr25k") -> dict[str, Any]:
    """Read and verify a cache written by :func:`save_cache` (keys, shapes, row counts,
    checksum).  A damaged file raises ``ValueError`` and is left in place."""
    path = Path(path)
    redo = (f"delete {path} and run `python -m ugach_core data prepare {name}` again (it "
            "needs the raw release files)")
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except Exception as e:
        raise ValueError(f"cannot read {path} ({type(e).__name__}: {e}); the cache is damaged: "
                         f"{redo}") from e
    need = ("img", "txt", "labels", "ids", "tag_names", "label_names", "checksum")
    if any(k not in d for k in need):
        raise ValueError(f"{path} lacks {[k for k in need if k not in d]}; not a feature cache written by "
                         "ugach_core")
    _check_consistent(d, str(path))
    if str(d["checksum"]) != _checksum(d):
        raise ValueError(f"{path}: checksum mismatch, the cache is damaged: {redo}")
    d["tag_names"] = [str(s) for s in d["tag_names"]]
    d["label_names"] = [str(s) for s in d["label_names"]]
    d["extractor"] = str(d.get("extractor", ""))
    return d


def prepare_mirflickr(root: PathLike, extractor: str | Extractor | None = None,
                      batch_size: int = 64, device: str | torch.device | None = None,
                      num_workers: int = 0, chunk: int = 2048, progress: bool = True,
                      force: bool = False) -> Path:
    """Build ``<root>/mirflickr25k/mirflickr25k_<extractor>.npz`` from the raw release.

    Reads tags, labels and the frequent-tag list, keeps the pairs in K (see the module doc;
    20,015 on the real release), extracts image features with ``extractor`` (default VGG19
    fc7, needs torchvision) in batches, chunk by chunk (resumable; partial results in
    ``<root>/mirflickr25k/.parts/``), and writes the cache atomically.  An existing, valid
    cache is returned as is unless ``force``.  Returns the cache path.
    """
    name, fn = (extractor, None) if isinstance(extractor, str) or extractor is None else \
        get_extractor(extractor)
    name = name or "vgg19_fc7"
    out = cache_path(root, name)
    if out.is_file() and not force:  # the raw release is not needed any more
        load_cache(out)  # verified, or ValueError
        return out
    images, annotations = find_raw(root)
    text = read_raw_text(images, annotations)
    if fn is None:
        name, fn = get_extractor(name)
    members = [f"im{k}.jpg" for k in text["ids"]]
    parts = mirflickr_folder(root) / ".parts"
    part_dir = parts_folder(parts, name, members, chunk, fn)  # hashes the weights once
    if force:  # rebuild: no part of an earlier extraction is reused
        shutil.rmtree(part_dir, ignore_errors=True)
    img = extract_features(images, members, fn, parts, name=name, batch_size=batch_size,
                           device=device, chunk=chunk, num_workers=num_workers,
                           progress=progress)
    save_cache(out, img, text["txt"], text["labels"], text["ids"], text["tag_names"],
               text["label_names"], name, source=f"{images.path} + {annotations.path}")
    shutil.rmtree(part_dir, ignore_errors=True)
    if parts.is_dir() and not any(parts.iterdir()):
        parts.rmdir()
    return out


# ------------------------------------------------------------------------------ loading


def missing_message(root: PathLike, features: str = "vgg19_fc7") -> str:
    folder = mirflickr_folder(root)
    return (
        f"MIRFlickr-25K image features not found: no {cache_path(root, features).name} (built "
        f"from the official release) and no {MIRFLICKR_FILES['img']} (DCMH/UCCH .mat files) in "
        f"{folder}. Either put {IMAGES_ZIP} and {ANNOTATIONS_ZIP} (from "
        "https://press.liacs.nl/mirflickr/mirdownload.html) in that folder and run "
        f"`python -m ugach_core data prepare mirflickr25k --root {Path(root)}` (add --download "
        "to fetch them, about 2.9 GB), or put "
        f"{', '.join(MIRFLICKR_FILES.values())} there. For a SYNTHETIC stand-in with the same "
        "shapes, call load('mirflickr25k', synthetic_ok=True) (command line: --synthetic-ok).")


def load_mirflickr(root: PathLike, protocol: str = "ugach", seed: int = 0,
                   features: str = "vgg19_fc7") -> CrossModalDataset:
    """MIRFlickr-25K: the cache built by :func:`prepare_mirflickr`, else the DCMH/UCCH
    ``.mat`` files (:func:`load_mirflickr_mat`), else ``FileNotFoundError`` saying what to
    download and where.  ``protocol``: ``"ugach"`` (2,000 queries, the rest the database,
    15,000 training pairs from it) or ``"dcmh"`` (training set = database)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {PROTOCOLS}")
    folder = mirflickr_folder(root)
    cache = cache_path(root, features)
    if not cache.is_file():
        if (folder / MIRFLICKR_FILES["img"]).is_file():
            return load_mirflickr_mat(folder, protocol, seed)
        raise FileNotFoundError(missing_message(root, features))
    d = load_cache(cache)
    n = d["img"].shape[0]
    n_query = 2000 if n > 4000 else max(1, n // 10)
    n_train = min(15000, n - n_query) if protocol == "ugach" else 0
    train, query, db = mirflickr_split(n, protocol, seed, n_query=n_query, n_train=n_train)
    desc = protocol_description(protocol, seed, train, query, db)
    return CrossModalDataset(
        name="mirflickr25k", img=d["img"], txt=d["txt"], labels=d["labels"], train_idx=train,
        query_idx=query, db_idx=db, label_names=d["label_names"], protocol=desc,
        source=f"{cache} ({d['extractor']} features)")


__all__ = ["ANNOTATIONS_ZIP", "IMAGES_ZIP", "N_PAIRS", "cache_path", "find_raw", "label_matrix",
           "load_cache", "load_mirflickr", "missing_archives", "missing_message",
           "prepare_mirflickr", "read_annotations", "read_common_tags", "read_raw_text", "read_text_side",
           "save_cache", "select_pairs", "tag_matrix"]
