"""CUB-10: 600 image-text pairs of the first 10 bird classes of CUB-200-2011.

One file, ``cub_googlenet_doc2vec_c10.mat`` (MATLAB v5), as circulated in multi-view learning
papers (CPM-Nets, NeurIPS 2019, and later): ``X{1}`` = 600 x 1024 GoogLeNet image features
(pooled post-ReLU output), ``X{2}`` = 600 x 300 doc2vec features of the bird descriptions,
``gt`` = 600 x 1 class 1..10 (60 pairs per class).  The features are kept as given (cast to
float32, no scaling).

There is no official split.  The protocol here: a seeded stratified 20 % of each class
(12 of 60, 120 in all) are the queries; the other 480 pairs are the database and the
training set.  The split depends only on ``split_seed`` (``numpy.random.default_rng``); it
is recorded in the data set's ``protocol`` string, and a split seed other than 0 also
changes the name (``cub10-split3``), so results, caches and checkpoints of different splits
never pass for one another (the data fingerprint covers name, features and labels, not the
split).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io

from .dataset import CrossModalDataset

FILE = "cub_googlenet_doc2vec_c10.mat"
#: pairs, image dimensions, text dimensions, classes
N, D_IMG, D_TXT, N_CLASSES = 600, 1024, 300, 10
QUERY_FRACTION = 0.2
#: CUB-200-2011's first ten classes (``classes.txt``), in the order of ``gt`` 1..10
LABEL_NAMES = ["Black_footed_Albatross", "Laysan_Albatross", "Sooty_Albatross",
               "Groove_billed_Ani", "Crested_Auklet", "Least_Auklet", "Parakeet_Auklet",
               "Rhinoceros_Auklet", "Brewer_Blackbird", "Red_winged_Blackbird"]
_FIX = ("put {file} in {folder}, or point root= / --root / UGACH_DATA at the folder that "
        "holds it (or its cub10/ subfolder); or fetch it (about 3.2 MB, md5-checked) with "
        "`python -m ugach_core data prepare cub10 --download --root {root}`")


def _root(root: str | os.PathLike | None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    from . import data_root  # the package imports this module: import when called
    return data_root()


def find_cub10(root: str | os.PathLike | None = None) -> Path | None:
    """The folder holding :data:`FILE`: ``root/cub10`` or ``root`` itself (``root``
    defaults to the data root, see :func:`ugach_core.data.data_root`); ``None`` if neither."""
    base = _root(root)
    for cand in (base / "cub10", base):
        if (cand / FILE).is_file():
            return cand
    return None


def stratified_split(classes: np.ndarray, split_seed: int = 0,
                     fraction: float = QUERY_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """``(query_idx, db_idx)``: a seeded ``fraction`` of each class (rounded) as queries, the
    rest as the database; both sorted.  Classes are visited in increasing order, each drawing
    a permutation of its members from one ``numpy.random.default_rng(split_seed)``."""
    classes = np.asarray(classes).ravel()
    rng = np.random.default_rng(split_seed)
    query = []
    for c in np.unique(classes):
        members = np.flatnonzero(classes == c)
        query.append(rng.permutation(members)[: int(round(fraction * len(members)))])
    q = np.sort(np.concatenate(query)).astype(np.int64)
    return q, np.setdiff1d(np.arange(len(classes)), q).astype(np.int64)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(img, txt, classes)`` from the .mat file, checked; ``ValueError`` says what is wrong."""
    root = path.parent.parent if path.parent.name == "cub10" else path.parent
    again = (f"delete {path} and fetch it again (`python -m ugach_core data prepare cub10 "
             f"--download --root {root}`)")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises several types on corrupt files
        raise ValueError(f"cannot read {path} ({e}); the file is corrupt or not MATLAB v5 - "
                         f"{again}") from e
    for key in ("X", "gt"):
        if key not in mat:
            raise ValueError(f"{path} has no variable {key!r} (it has "
                             f"{sorted(k for k in mat if not k.startswith('__'))}); it is not "
                             f"the CUB-10 file - {again}")
    cell = mat["X"]
    if cell.dtype != object or cell.size != 2:
        raise ValueError(f"{path}: X must be a 1x2 cell (image, text features), got a "
                         f"{cell.dtype} array of shape {cell.shape} - {again}")
    img, txt = (np.asarray(cell.flat[i]) for i in (0, 1))
    gt = np.asarray(mat["gt"])
    for what, a, shape in (("X{1} (image features)", img, (N, D_IMG)),
                           ("X{2} (text features)", txt, (N, D_TXT)), ("gt", gt, (N, 1))):
        if a.shape != shape and not (what == "gt" and a.shape == (1, N)):
            raise ValueError(f"{path}: {what} has shape {a.shape}, expected {shape}; the file "
                             f"is truncated or another data set - {again}")
        if not np.issubdtype(a.dtype, np.number):
            raise ValueError(f"{path}: {what} must be numeric, got dtype {a.dtype} - {again}")
        bad = ~np.isfinite(a)
        if bad.any():
            rows = np.unique(np.nonzero(bad)[0])
            raise ValueError(f"{path}: {what} has {int(bad.sum())} NaN/inf values in "
                             f"{len(rows)} rows (first: {rows[:5].tolist()}) - {again}")
    classes = gt.ravel()
    if (classes != np.round(classes)).any() or classes.min() < 1 or classes.max() > N_CLASSES:
        raise ValueError(f"{path}: gt must hold class numbers 1..{N_CLASSES}, got values "
                         f"{classes.min()}..{classes.max()} - {again}")
    return img.astype(np.float32), txt.astype(np.float32), classes.astype(np.int64)


def load_cub10(root: str | os.PathLike | None = None, split_seed: int = 0) -> CrossModalDataset:
    """Load CUB-10 from ``root/cub10`` or ``root`` (default: the data root).

    Labels are one-hot ``(600, 10)``; the split is :func:`stratified_split` with
    ``split_seed``: 120 queries (12 per class), 480 database = training pairs.  A missing
    file is a ``FileNotFoundError`` naming the folders searched and the two ways to fix it;
    a damaged or wrong-shaped file a ``ValueError``.
    """
    if isinstance(split_seed, bool) or not isinstance(split_seed, (int, np.integer)) \
            or split_seed < 0:
        raise ValueError(f"split_seed must be a non-negative integer, got {split_seed!r}")
    base = _root(root)
    folder = find_cub10(base)
    if folder is None:
        raise FileNotFoundError(
            f"CUB-10 data not found: no {FILE} in {base / 'cub10'} or {base}. To fix it, "
            + _FIX.format(file=FILE, folder=base / "cub10", root=base))
    path = folder / FILE
    img, txt, classes = _read(path)
    query, db = stratified_split(classes, int(split_seed))
    seed = int(split_seed)
    return CrossModalDataset(
        name="cub10" if seed == 0 else f"cub10-split{seed}", img=img, txt=txt,
        labels=np.eye(N_CLASSES, dtype=np.uint8)[classes - 1], train_idx=db.copy(),
        query_idx=query, db_idx=db, label_names=list(LABEL_NAMES),
        protocol=f"stratified 20% queries ({len(query)}, 20% of each class) vs {len(db)} "
                 f"database pairs (database = training set), split seed {seed}",
        source=str(path),
    )


__all__ = ["FILE", "LABEL_NAMES", "find_cub10", "load_cub10", "stratified_split"]
