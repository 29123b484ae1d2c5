"""NUS-WIDE TC-10 (Chua et al., CIVR 2009) from the official files, or from DCMH-style ``.mat``.

Official files, under ``<root>/nuswide/`` (or ``<root>``), found in the usual sub-folders:

* ``Groundtruth/AllLabels/Labels_<concept>.txt`` (81 files; line ``k`` is ``1`` when image
  ``k`` shows the concept);
* ``NUS_WID_Tags/AllTags1k.txt`` (one line per image, 1,000 values 0/1: the official tag
  bag of words), optional ``TagList1k.txt`` (the tag names);
* ``ImageList/Imagelist.txt`` (one image path per line, Windows style, e.g.
  ``C:\\ImageData\\Flickr\\actor\\0001_2124494179.jpg``), the images under
  ``Flickr/<folder>/<file>``.

TC-10: the 10 most frequent concepts (by number of images; ties by name), and the pairs
with at least one of them and at least one tag,

.. math:: \\mathcal{K} = \\{k : \\textstyle\\sum_{c \\in \\mathrm{top10}} y_{kc} \\ge 1
          \\;\\wedge\\;
          \\sum_t x^T_{kt} \\ge 1\\},

186,577 pairs on the official release (the papers print 186,557).  Label columns are in
decreasing frequency.  Image features come from the same extractor as MIRFlickr
(:mod:`ugach_core.data.features`).  README: "Data sets from the official releases".
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .dataset import CrossModalDataset
from .features import Extractor, FileSource, extract_features, get_extractor, parts_folder
from .formats import PROTOCOLS, mirflickr_split, read_dcmh_mat
from .mirflickr import load_cache, save_cache

PathLike = str | os.PathLike
N_CONCEPTS = 10
MAT_FILES = {"img": "nus-wide-tc10-xall-vgg.mat", "txt": "nus-wide-tc10-yall.mat",
             "labels": "nus-wide-tc10-lall.mat"}
_LABEL_DIRS = ("Groundtruth/AllLabels", "AllLabels", "Groundtruth/allLabels")
_TAG_FILES = ("NUS_WID_Tags/AllTags1k.txt", "AllTags1k.txt", "Tags/AllTags1k.txt")
_LIST_FILES = ("ImageList/Imagelist.txt", "Imagelist.txt", "ImageList/ImageList.txt")


def nuswide_folder(root: PathLike) -> Path:
    root = Path(root)
    return root if root.name == "nuswide" else root / "nuswide"


def cache_path(root: PathLike, features: str = "vgg19_fc7") -> Path:
    return nuswide_folder(root) / f"nuswide_tc10_{features}.npz"


def _first(folder: Path, cands: tuple[str, ...], is_dir: bool = False) -> Path | None:
    for c in cands:
        p = folder / c
        if (p.is_dir() if is_dir else p.is_file()):
            return p
    return None


def find_official(root: PathLike) -> dict[str, Path]:
    """``{"labels": dir, "tags": file, "list": file, "images": dir}``; a missing piece raises
    ``FileNotFoundError`` naming what to put where."""
    root = Path(root)
    out: dict[str, Path] = {}
    missing = []
    for d in dict.fromkeys([nuswide_folder(root), root]):
        lab, tags, lst = _first(d, _LABEL_DIRS, True), _first(d, _TAG_FILES), _first(d, _LIST_FILES)
        if lab and tags and lst:
            out = {"labels": lab, "tags": tags, "list": lst, "images": d / "Flickr"}
            if not out["images"].is_dir():
                out["images"] = d
            return out
        if d == nuswide_folder(root):
            missing = [n for n, p in (("Groundtruth/AllLabels/", lab),
                                      ("NUS_WID_Tags/AllTags1k.txt", tags),
                                      ("ImageList/Imagelist.txt", lst)) if p is None]
    raise FileNotFoundError(
        f"NUS-WIDE official files not found: missing {', '.join(missing)} in "
        f"{nuswide_folder(root)}. Get Groundtruth (AllLabels), NUS_WID_Tags (AllTags1k.txt) and "
        "ImageList from https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/"
        "NUS-WIDE.html, the images (Flickr/) from the authors on request, and unpack them "
        f"there; or put the DCMH-style files {', '.join(MAT_FILES.values())} in that folder.")


def _read_01(path: Path, what: str, block: int = 1 << 25) -> np.ndarray:
    """A whitespace-separated 0/1 matrix, one row per non-empty line (``(rows, width)``
    uint8).  Parsed as bytes, block by block, so the 270-million-value tag file needs no
    Python object per value.  Ragged rows and values other than 0/1 raise ``ValueError``."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {path} ({type(e).__name__}: {e}); the file is damaged "
                         "or unreadable") from e
    raw = np.frombuffer(data, dtype=np.uint8)
    rows: list[np.ndarray] = []
    width, line0, start = None, 0, 0
    while start < raw.size:
        stop = min(raw.size, start + block)
        if stop < raw.size:  # end the block after a newline
            nl = np.flatnonzero(raw[stop:] == 10)
            stop = stop + int(nl[0]) + 1 if nl.size else raw.size
        b = raw[start:stop]
        digit = (b == 48) | (b == 49)
        space = (b == 32) | (b == 9) | (b == 13) | (b == 10)
        newline = np.cumsum(b == 10) - (b == 10)               # line number within the block
        if not (digit | space).all() or (digit[1:] & digit[:-1]).any():
            pos = int(np.flatnonzero(~(digit | space))[0]) if not (digit | space).all() else \
                int(np.flatnonzero(digit[1:] & digit[:-1])[0])
            raise ValueError(f"{path}:{line0 + int(newline[pos]) + 1}: a value other than 0 or 1 "
                             f"in the {what}")
        line = newline[digit]
        per_line = np.bincount(line, minlength=int(newline[-1]) + 1)
        nonempty = np.flatnonzero(per_line)
        if width is None and nonempty.size:
            width = int(per_line[nonempty[0]])
        bad = nonempty[per_line[nonempty] != width]
        if bad.size:
            raise ValueError(f"{path}:{line0 + int(bad[0]) + 1}: {int(per_line[bad[0]])} values, "
                             f"but the first row has {width} (ragged file)")
        rows.append((b[digit] - 48).reshape(-1, width) if width else np.zeros((0, 0), np.uint8))
        line0 += int((b == 10).sum())
        start = stop
    if width is None:
        raise ValueError(f"{path} is empty; it must hold one row of {what} per image")
    return np.concatenate([r for r in rows if r.size]).astype(np.uint8)


def _label_column(path: Path) -> np.ndarray:
    """The one 0/1 value per line of a ``Labels_<concept>.txt`` file."""
    y = _read_01(path, "labels")
    if y.shape[1] != 1:
        raise ValueError(f"{path} has {y.shape[1]} values per line; a Labels_<concept>.txt file "
                         "has one (1: the image shows the concept), so it is not the official "
                         "file: replace it with the one from Groundtruth/AllLabels")
    return y[:, 0]


def read_official_text(root: PathLike, n_concepts: int = N_CONCEPTS) -> dict[str, Any]:
    """Labels and tags of the kept pairs: ``rows`` (0-based line numbers in the official
    files), ``images`` (paths relative to the image folder), ``txt (n, 1000)`` uint8,
    ``labels (n, n_concepts)`` uint8, ``label_names``, ``tag_names``, ``n_images``."""
    f = find_official(root)
    label_files = sorted(f["labels"].glob("Labels_*.txt"))
    if len(label_files) < n_concepts:
        raise ValueError(f"{f['labels']} holds {len(label_files)} Labels_<concept>.txt files; "
                         f"at least {n_concepts} are needed")
    names = [p.stem[len("Labels_"):] for p in label_files]
    cols = [_label_column(p) for p in label_files]
    sizes = {p.name: c.size for p, c in zip(label_files, cols)}
    tags = _read_01(f["tags"], "tags")
    lst = [ln.strip() for ln in f["list"].read_text(encoding="utf-8", errors="replace")
           .splitlines() if ln.strip()]
    sizes.update({f["tags"].name: tags.shape[0], f["list"].name: len(lst)})
    if len(set(sizes.values())) != 1:
        common = max(set(sizes.values()), key=list(sizes.values()).count)
        odd = {k: v for k, v in sizes.items() if v != common}
        raise ValueError(f"NUS-WIDE rows do not line up: {len(sizes) - len(odd)} files have "
                         f"{common} lines, but {odd}; every file must have one line per image, "
                         "in the order of the image list")
    y_all = np.stack(cols, axis=1)                        # (N, 81)
    counts = y_all.sum(0)
    top = sorted(range(len(names)), key=lambda c: (-int(counts[c]), names[c]))[:n_concepts]
    y = y_all[:, top]
    keep = np.flatnonzero((y.sum(1) > 0) & (tags.sum(1) > 0))
    if keep.size == 0:
        raise ValueError("no NUS-WIDE image has both a top concept and a tag; the files are "
                         "damaged")
    tag_list = _first(f["tags"].parent, ("TagList1k.txt",))
    tag_names = (tag_list.read_text(encoding="utf-8", errors="replace").split()
                 if tag_list else [f"tag{j}" for j in range(tags.shape[1])])
    images = ["/".join(lst[k].replace("\\", "/").split("/")[-2:]) for k in keep]
    return {"rows": keep, "images": images, "txt": tags[keep], "labels": y[keep],
            "label_names": [names[c] for c in top], "tag_names": tag_names,
            "n_images": int(tags.shape[0]), "image_root": f["images"]}


def prepare_nuswide(root: PathLike, extractor: str | Extractor | None = None,
                    batch_size: int = 64, device: str | torch.device | None = None,
                    num_workers: int = 0, chunk: int = 2048, progress: bool = True,
                    force: bool = False) -> Path:
    """Build ``<root>/nuswide/nuswide_tc10_<extractor>.npz`` from the official files (see the
    module doc), with resumable feature extraction, written atomically with a checksum."""
    name, fn = (extractor, None) if isinstance(extractor, str) or extractor is None else \
        get_extractor(extractor)
    name = name or "vgg19_fc7"
    out = cache_path(root, name)
    if out.is_file() and not force:
        load_cache(out, "nuswide")
        return out
    text = read_official_text(root)
    src = FileSource(text["image_root"])
    absent = [m for m in text["images"] if not src.exists(m)]
    if absent:
        raise FileNotFoundError(f"{len(absent)} NUS-WIDE images are missing (first: "
                                f"{src.describe(absent[0])}); put the Flickr/ image folders in "
                                f"{text['image_root']}")
    if fn is None:
        name, fn = get_extractor(name)
    parts = nuswide_folder(root) / ".parts"
    part_dir = parts_folder(parts, name, text["images"], chunk, fn)  # hashes the weights once
    if force:  # rebuild: no part of an earlier extraction is reused
        shutil.rmtree(part_dir, ignore_errors=True)
    img = extract_features(src, text["images"], fn, parts, name=name, batch_size=batch_size,
                           device=device, chunk=chunk, num_workers=num_workers,
                           progress=progress)
    save_cache(out, img, text["txt"], text["labels"], text["rows"], text["tag_names"],
               text["label_names"], name, source=str(nuswide_folder(root)))
    shutil.rmtree(part_dir, ignore_errors=True)
    if parts.is_dir() and not any(parts.iterdir()):
        parts.rmdir()
    return out


def nuswide_split(n: int, protocol: str = "ugach", seed: int = 0, n_query: int = 2000,
                  n_train: int = 5000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded ``n_query`` queries (about 1% of TC-10), the rest the database; ``"ugach"``
    trains on ``n_train`` database pairs (5,000 by default: the UGACH paper's NUS-WIDE
    training size is not restated in this project's sources, so choose it explicitly when
    it matters), ``"dcmh"`` on the whole database."""
    n_query = min(n_query, max(1, n // 10))
    return mirflickr_split(n, protocol, seed, n_query=n_query,
                           n_train=min(n_train, n - n_query))


def _dataset(img, txt, labels, names, protocol: str, seed: int, source: str,
             name: str = "nuswide-tc10") -> CrossModalDataset:
    train, query, db = nuswide_split(img.shape[0], protocol, seed)
    return CrossModalDataset(
        name=name, img=img, txt=txt, labels=labels, train_idx=train, query_idx=query,
        db_idx=db, label_names=names, source=source,
        protocol=f"{protocol} (seed {seed}): {len(query)} queries, {len(db)} database pairs, "
                 f"{len(train)} training pairs")


def load_nuswide_mat(folder: PathLike, protocol: str = "ugach", seed: int = 0
                     ) -> CrossModalDataset:
    """NUS-WIDE TC-10 from DCMH-style ``.mat`` files (:data:`MAT_FILES`: ``XAll``, ``YAll``,
    ``LAll``; MATLAB v5 or v7.3) in ``folder``."""
    folder = Path(folder)
    miss = [f for f in MAT_FILES.values() if not (folder / f).is_file()]
    if miss:
        raise FileNotFoundError(f"NUS-WIDE .mat files missing in {folder}: {', '.join(miss)}")
    img = read_dcmh_mat(folder / MAT_FILES["img"], "XAll", ndim=2)
    txt = read_dcmh_mat(folder / MAT_FILES["txt"], "YAll", ndim=2)
    lab = read_dcmh_mat(folder / MAT_FILES["labels"], "LAll", ndim=2)
    sizes = {"XAll": img.shape[0], "YAll": txt.shape[0], "LAll": lab.shape[0]}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"NUS-WIDE files in {folder}: rows do not line up ({sizes})")
    return _dataset(img, txt, lab, None, protocol, seed, str(folder))


def load_nuswide(root: PathLike, protocol: str = "ugach", seed: int = 0,
                 features: str = "vgg19_fc7") -> CrossModalDataset:
    """The cache from :func:`prepare_nuswide`, else the ``.mat`` files, else
    ``FileNotFoundError`` saying what to put where."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {PROTOCOLS}")
    folder = nuswide_folder(root)
    cache = cache_path(root, features)
    if cache.is_file():
        d = load_cache(cache, "nuswide")
        return _dataset(d["img"], d["txt"], d["labels"], d["label_names"], protocol, seed,
                        f"{cache} ({d['extractor']} features)")
    if all((folder / f).is_file() for f in MAT_FILES.values()):
        return load_nuswide_mat(folder, protocol, seed)
    raise FileNotFoundError(
        f"NUS-WIDE TC-10 features not found in {folder}: no {cache.name} and no "
        f"{', '.join(MAT_FILES.values())}. Put the official files there and run "
        f"`python -m ugach_core data prepare nuswide --root {Path(root)}`, or put the .mat files "
        "there.")


__all__ = ["MAT_FILES", "cache_path", "find_official", "load_nuswide", "load_nuswide_mat",
           "nuswide_split", "prepare_nuswide", "read_official_text"]
