"""Readers and writers for the file formats the cross-modal hashing literature ships.

* :func:`read_dcmh_mat` - one variable (``YAll``, ``LAll``, ``XAll``, ``IAll``) of a DCMH-style
  ``.mat`` file, MATLAB v5 (``scipy.io.loadmat``) or v7.3 (HDF5, through ``h5py`` when it is
  installed).  Rows are items in both cases.
* :func:`read_ugach_format` / :func:`write_ugach_format` - the text files of the UGACH
  authors' code (PKU-ICST-MIPL/UGACH_AAAI2018, ``utils.py``).
* :func:`load_mirflickr_mat` - MIRFlickr-25K (20,015 pairs) from the DCMH/UCCH ``.mat`` files,
  with the UGACH or the DCMH retrieval protocol.

The UGACH text format
---------------------
The authors' code reads two folders, a *list* folder and a *feature* folder:

* ``list/<split>_img.txt``, ``list/<split>_txt.txt``: one item name per line;
* ``list/<split>_label.txt``: one multi-hot label vector per line (``0``/``1`` values);
* ``feature/<split>_img.txt``, ``feature/<split>_txt.txt``: one feature vector per line,
  row ``i`` belonging to the item on line ``i`` of the matching list file.

Their code splits list files on ``"\\r\\n"`` (so list files must use CRLF line endings and end
with one) and feature files on ``"\\n"``, then each line on whitespace.  The real sample the
authors publish (``ugach_samples/``: ``train_img.txt`` 10x4096 fc7, ``train_txt.txt`` 10x1386
tags, ``train_label.txt`` 10x24) is **flat and has no item names**: the three files lie in one
folder, the ``_img``/``_txt`` files hold feature vectors, not names; values are separated by
single spaces, lines end with CRLF (the fc7 file's lines with a space before it).  Both layouts are understood:

* ``"list+feature"``: ``<root>/list/...`` and ``<root>/feature/...`` as above, with names;
* ``"flat"``: ``<root>/<split>_img.txt``, ``<root>/<split>_txt.txt`` (features) and
  ``<root>/<split>_label.txt``, no names (the layout of the real sample).

The reader accepts LF or CRLF endings and whitespace- or comma-separated values; the writer
mirrors the authors' files byte for byte (spaces, CRLF, which their code needs for list
files; integral values as integers).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import scipy.io

from ..utils import atomic_write_text
from .dataset import CrossModalDataset

PathLike = str | os.PathLike

# ---------------------------------------------------------------------------- DCMH .mat

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _is_hdf5(path: Path) -> bool:
    """True when ``path`` is an HDF5 file (MATLAB v7.3 puts a 512-byte header before it)."""
    with open(path, "rb") as fh:
        head = fh.read(2048 + 8)
    if head.startswith(b"MATLAB 7.3"):
        return True
    return any(head[o:o + 8] == _HDF5_SIGNATURE for o in (0, 512, 1024, 2048))


def _pick_key(path: Path, names: Sequence[str], key: str | None) -> str:
    names = sorted(names)
    if key is None:
        if len(names) == 1:
            return names[0]
        raise ValueError(f"{path} holds {len(names)} variables {names}; pass key= to choose one "
                         "(DCMH files use YAll tags, LAll labels, XAll features, IAll images)")
    if key not in names:
        raise ValueError(f"{path} has no variable {key!r}; it holds {names}")
    return key


def _read_hdf5_mat(path: Path, key: str | None) -> np.ndarray:
    try:
        import h5py
    except ImportError:
        raise ImportError(
            f"{path} is a MATLAB v7.3 (HDF5) file; reading it needs h5py: pip install h5py "
            "(or re-save it in MATLAB with save(..., '-v7') so scipy can read it)"
        ) from None
    try:
        with h5py.File(path, "r") as f:
            names = [k for k in f.keys() if not k.startswith("#")]
            k = _pick_key(path, names, key)
            obj = f[k]
            if not isinstance(obj, h5py.Dataset):
                raise ValueError(f"{path}: variable {k!r} is a MATLAB struct, cell or sparse "
                                 "matrix; only plain numeric arrays are supported")
            arr = np.asarray(obj[()])
    except (ValueError, ImportError):
        raise
    except Exception as e:  # h5py raises OSError and friends on damaged files
        raise ValueError(f"cannot read {path} as a MATLAB v7.3 (HDF5) file ({e}); the file is "
                         "corrupt or truncated: download it again") from e
    # MATLAB stores column-major; HDF5 shows the reversed shape. Reverse the axes back.
    return np.ascontiguousarray(arr.T) if arr.ndim >= 2 else arr


def read_dcmh_mat(path: PathLike, key: str | None = None, ndim: int | None = None
                  ) -> np.ndarray:
    """One variable of a DCMH-style ``.mat`` file as an array whose rows are items.

    ``key`` names the variable (``"YAll"``, ``"LAll"``, ``"XAll"``, ``"IAll"``); ``None``
    takes the file's only variable.  MATLAB v5/v7 files are read with ``scipy.io.loadmat``,
    v7.3 (HDF5) files with ``h5py`` (transposed back, so rows stay items).  ``ndim``: the
    variable must be a numeric array of that many dimensions (2 for features and labels).

    Raises ``FileNotFoundError`` for a missing file, ``ImportError`` (``pip install h5py``)
    for a v7.3 file without h5py, ``ValueError`` for an ambiguous/missing ``key`` or a file
    that cannot be read (corrupt, truncated, not a .mat file).
    """
    arr = _read_mat(Path(path), key)
    if ndim is not None and (arr.ndim != ndim or not (np.issubdtype(arr.dtype, np.number)
                                                      or arr.dtype == bool)):
        raise ValueError(f"{path}: variable {key!r} must be a {ndim}-D numeric array (items "
                         f"x dimensions), got shape {arr.shape} and dtype {arr.dtype}; the "
                         "file is not the release it should be - fetch it again")
    return arr


def _read_mat(path: Path, key: str | None) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if _is_hdf5(path):
        return _read_hdf5_mat(path, key)
    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError:  # scipy's answer to a v7.3 header
        return _read_hdf5_mat(path, key)
    except MemoryError:
        raise
    except Exception as e:
        raise ValueError(f"cannot read {path} as a MATLAB .mat file ({type(e).__name__}: {e}); "
                         "the file is corrupt, truncated or not a .mat file: download it "
                         "again") from e
    names = [k for k in mat if not (k.startswith("__") and k.endswith("__"))]
    k = _pick_key(path, names, key)
    arr = mat[k]
    if hasattr(arr, "toarray"):  # scipy.sparse
        arr = arr.toarray()
    arr = np.asarray(arr)
    if arr.dtype == object or arr.dtype.names is not None:
        raise ValueError(f"{path}: variable {k!r} is a MATLAB struct or cell array; only plain "
                         "numeric arrays are supported")
    return arr


# ---------------------------------------------------------------------- UGACH text files

LAYOUTS = ("list+feature", "flat")


def _paths(root: Path, split: str, layout: str) -> dict[str, Path]:
    if layout == "flat":
        return {"img": root / f"{split}_img.txt", "txt": root / f"{split}_txt.txt",
                "labels": root / f"{split}_label.txt"}
    return {"names_img": root / "list" / f"{split}_img.txt",
            "names_txt": root / "list" / f"{split}_txt.txt",
            "labels": root / "list" / f"{split}_label.txt",
            "img": root / "feature" / f"{split}_img.txt",
            "txt": root / "feature" / f"{split}_txt.txt"}


def _detect_layout(root: Path, split: str) -> str:
    if (root / "list").is_dir() or (root / "feature").is_dir():
        return "list+feature"
    if (root / f"{split}_img.txt").is_file() or (root / f"{split}_label.txt").is_file():
        return "flat"
    raise FileNotFoundError(
        f"no UGACH files for split {split!r} under {root}: expected either list/{split}_img.txt, "
        f"list/{split}_txt.txt, list/{split}_label.txt, feature/{split}_img.txt and "
        f"feature/{split}_txt.txt, or (flat, like the authors' sample) {split}_img.txt, "
        f"{split}_txt.txt and {split}_label.txt holding feature vectors"
    )


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty lines with their 1-based numbers; blank lines only allowed at the end."""
    if not path.is_file():
        raise FileNotFoundError(f"missing UGACH file: {path}")
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not a UTF-8 text file ({e})") from e
    raw = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    while raw and not raw[-1].strip():
        raw.pop()
    out = []
    for i, line in enumerate(raw, 1):
        if not line.strip():
            raise ValueError(f"{path}:{i}: blank line inside the file; every line must be one item")
        out.append((i, line))
    return out


def _read_names(path: Path) -> list[str]:
    return [line.strip() for _, line in _lines(path)]


def _read_matrix(path: Path, what: str) -> np.ndarray:
    rows: list[np.ndarray] = []
    width = None
    for ln, line in _lines(path):
        tokens = line.replace(",", " ").split()
        try:
            row = np.array([float(t) for t in tokens], dtype=np.float64)
        except ValueError:
            bad = next(t for t in tokens if not _is_float(t))
            raise ValueError(f"{path}:{ln}: non-numeric value {bad!r} in the {what}") from None
        if width is None:
            width = row.size
        elif row.size != width:
            raise ValueError(f"{path}:{ln}: {row.size} values, but line 1 has {width}; every "
                             f"{what} line must have the same length (ragged file)")
        if not np.isfinite(row).all():
            raise ValueError(f"{path}:{ln}: NaN or inf in the {what}")
        rows.append(row)
    if not rows:
        raise ValueError(f"{path} is empty; it must hold one {what} vector per line")
    return np.stack(rows)


def _is_float(t: str) -> bool:
    try:
        float(t)
    except ValueError:
        return False
    return True


def read_ugach_format(root: PathLike, split: str, layout: str | None = None) -> dict[str, Any]:
    """Read split ``split`` (``"train"``, ``"test"``, ``"validation"``, ``"database"``) of the
    UGACH authors' text files under ``root`` (see the module doc for both layouts).

    ``layout`` is ``"list+feature"``, ``"flat"`` or ``None`` (detect from what exists).
    Returns ``{"names_img", "names_txt", "img", "txt", "labels", "layout", "files"}``:
    names are lists of strings (``None`` for the flat layout, which has none), ``img``/``txt``
    float64 arrays ``(n, d)`` (exactly the printed values), ``labels`` uint8 ``(n, c)``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` (naming file and line)
    for non-numeric values, ragged vectors, non-0/1 labels and row counts that disagree.
    """
    root = Path(root)
    if layout is None:
        layout = _detect_layout(root, split)
    elif layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of {LAYOUTS}")
    files = _paths(root, split, layout)
    out: dict[str, Any] = {"layout": layout, "files": {k: str(v) for k, v in files.items()},
                           "names_img": None, "names_txt": None}
    for k in ("names_img", "names_txt"):
        if k in files:
            out[k] = _read_names(files[k])
    out["img"] = _read_matrix(files["img"], "image feature")
    out["txt"] = _read_matrix(files["txt"], "text feature")
    lab = _read_matrix(files["labels"], "label")
    bad = np.argwhere((lab != 0) & (lab != 1))
    if bad.size:
        r, c = bad[0]
        raise ValueError(f"{files['labels']}:{r + 1}: label value {lab[r, c]:g} in column "
                         f"{c + 1}; labels must be 0/1 multi-hot")
    out["labels"] = lab.astype(np.uint8)
    counts = {str(files[k]): (len(out[k]) if k.startswith("names") else out[k].shape[0])
              for k in files if out.get(k) is not None}
    if len(set(counts.values())) != 1:
        detail = ", ".join(f"{p}: {n} rows" for p, n in counts.items())
        raise ValueError(f"UGACH split {split!r} under {root}: row counts do not line up "
                         f"({detail}); line i of every file must be item i")
    return out


def _fmt_float(v: float) -> str:
    s = repr(v)  # shortest text that reads back to the same float64
    return s[:-2] if s.endswith(".0") else s


def _format_matrix(a: np.ndarray) -> str:
    """Authors' style: values separated by single spaces, CRLF after each line.  Integral
    values print as integers (``0``, ``1``), others in the shortest form that reads back
    exactly.  As in the authors' sample, lines of a real-valued matrix (the fc7 file) end
    with a space before the CRLF; lines of an integral matrix (tags, labels) do not."""
    if np.all(a == np.round(a)) and np.all(np.abs(a) < 2 ** 53):
        rows = (" ".join(map(str, r)) for r in a.astype(np.int64).tolist())
        end = "\r\n"
    else:
        rows = (" ".join(map(_fmt_float, r)) for r in a.astype(np.float64).tolist())
        end = " \r\n"
    return "".join(r + end for r in rows)


def _check_matrix(a: Any, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{what} must be a non-empty 2-D array (n, d), got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{what} must be numeric, got dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError(f"{what} contains NaN or inf")
    return a


def _check_names(names: Sequence[str], what: str) -> list[str]:
    names = [str(s) for s in names]
    for i, s in enumerate(names):
        if not s or s != s.strip() or "\n" in s or "\r" in s:
            raise ValueError(f"{what}[{i}] = {s!r}: names must be non-empty, without line breaks "
                             "or surrounding spaces")
    return names


def write_ugach_format(root: PathLike, split: str, names_img: Sequence[str] | None,
                       names_txt: Sequence[str] | None, img: Any, txt: Any, labels: Any
                       ) -> dict[str, Path]:
    """Write one split in the UGACH authors' text format under ``root``.

    With names, the ``"list+feature"`` layout (``list/`` + ``feature/``); with both
    ``names_img`` and ``names_txt`` ``None``, the ``"flat"`` layout of the authors' sample.
    All inputs are checked and all texts built before anything is touched; every file is
    first written to a temporary file (:func:`ugach_core.utils.atomic_write_text`) and only
    when all of them are written are they moved into place, so a failure leaves the
    existing files intact.  Returns ``{role: path}`` of the files written.
    """
    root = Path(root)
    if (names_img is None) != (names_txt is None):
        raise ValueError("give both names_img and names_txt (list+feature layout) or neither "
                         "(flat layout)")
    layout = "flat" if names_img is None else "list+feature"
    img = _check_matrix(img, "img")
    txt = _check_matrix(txt, "txt")
    labels = _check_matrix(labels, "labels")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0/1 multi-hot")
    n = img.shape[0]
    sizes = {"img": n, "txt": txt.shape[0], "labels": labels.shape[0]}
    texts: dict[str, str] = {}
    if layout == "list+feature":
        ni = _check_names(names_img, "names_img")
        nt = _check_names(names_txt, "names_txt")
        sizes.update(names_img=len(ni), names_txt=len(nt))
        texts["names_img"] = "".join(s + "\r\n" for s in ni)
        texts["names_txt"] = "".join(s + "\r\n" for s in nt)
    if len(set(sizes.values())) != 1:
        raise ValueError(f"row counts do not line up: {sizes}; row i of each must be item i")
    texts["img"] = _format_matrix(img)
    texts["txt"] = _format_matrix(txt)
    texts["labels"] = _format_matrix(labels)
    files = _paths(root, split, layout)
    staged: list[tuple[Path, Path]] = []
    try:
        for role, path in files.items():
            tmp = path.with_name(f".{path.name}.staged")
            atomic_write_text(tmp, texts[role])
            staged.append((tmp, path))
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            if tmp.exists():
                tmp.unlink()
        raise
    return files


# ------------------------------------------------------------------- MIRFlickr-25K .mat

MIRFLICKR_FILES = {"txt": "mirflickr25k-yall.mat", "labels": "mirflickr25k-lall.mat",
                   "img": "mirflickr25k-iall-vgg.mat"}
MIRFLICKR_LABELS = ["animals", "baby", "bird", "car", "clouds", "dog", "female", "flower",
                    "food", "indoor", "lake", "male", "night", "people", "plant_life",
                    "portrait", "river", "sea", "sky", "structures", "sunset", "transport",
                    "tree", "water"]
PROTOCOLS = ("ugach", "dcmh")


def mirflickr_split(n: int, protocol: str = "ugach", seed: int = 0, n_query: int = 2000,
                    n_train: int = 15000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train_idx, query_idx, db_idx)``: seeded ``n_query`` queries, the rest the database;
    ``"ugach"`` trains on ``n_train`` pairs drawn from the database, ``"dcmh"`` on the whole
    database."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {PROTOCOLS}")
    if n <= n_query:
        raise ValueError(f"{n} pairs cannot hold {n_query} queries and a database")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    query, db = np.sort(perm[:n_query]), np.sort(perm[n_query:])
    if protocol == "dcmh":
        return db.copy(), query, db
    if n_train > db.size:
        raise ValueError(f"protocol 'ugach' needs {n_train} training pairs, the database has "
                         f"{db.size}")
    train = np.sort(rng.choice(db, size=n_train, replace=False))
    return train, query, db


def protocol_description(protocol: str, seed: int, train: np.ndarray, query: np.ndarray,
                         db: np.ndarray) -> str:
    """One line that names a MIRFlickr split protocol and its sizes (``CrossModalDataset.protocol``)."""
    if protocol == "ugach":
        return (f"UGACH (seed {seed}): {len(query)} queries, database = the other {len(db)} "
                f"pairs, {len(train)} training pairs from the database")
    return (f"DCMH (seed {seed}): {len(query)} queries, {len(db)} database pairs, "
            "training set = database")


def load_mirflickr_mat(folder: PathLike, protocol: str = "ugach", seed: int = 0
                       ) -> CrossModalDataset:
    """MIRFlickr-25K (20,015 pairs) from the DCMH/UCCH ``.mat`` files in ``folder``:
    ``mirflickr25k-yall.mat`` (``YAll`` 1386-d tags), ``mirflickr25k-lall.mat`` (``LAll`` 24
    labels) and ``mirflickr25k-iall-vgg.mat`` (``XAll`` 4096-d VGG19 fc7 image features).

    ``protocol="ugach"``: 2,000 seeded queries, the other 18,015 pairs the database, 15,000
    training pairs drawn from the database; ``"dcmh"``: 2,000 queries, 18,015 database pairs,
    training set = database.  The same ``seed`` gives the same split.
    """
    folder = Path(folder)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {PROTOCOLS}")
    img_path = folder / MIRFLICKR_FILES["img"]
    for role in ("txt", "labels"):
        p = folder / MIRFLICKR_FILES[role]
        if not p.is_file():
            raise FileNotFoundError(f"MIRFlickr-25K: {p} is missing; put the DCMH release file "
                                    f"{MIRFLICKR_FILES[role]} in {folder}")
    if not img_path.is_file():
        raise FileNotFoundError(
            f"MIRFlickr-25K image features are missing: put {MIRFLICKR_FILES['img']} (variable "
            f"XAll, 20015x4096 VGG19 fc7 features, as released with UCCH) at {img_path}. The "
            "tag and label files alone do not make a cross-modal data set."
        )
    txt = read_dcmh_mat(folder / MIRFLICKR_FILES["txt"], "YAll", ndim=2)
    labels = read_dcmh_mat(folder / MIRFLICKR_FILES["labels"], "LAll", ndim=2)
    img = read_dcmh_mat(img_path, "XAll", ndim=2)
    sizes = {"XAll": img.shape[0], "YAll": txt.shape[0], "LAll": labels.shape[0]}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"MIRFlickr-25K files in {folder} disagree on the number of pairs "
                         f"({sizes}); all three must hold the same 20,015 pairs in one order")
    train, query, db = mirflickr_split(img.shape[0], protocol, seed)
    names = MIRFLICKR_LABELS if labels.shape[1] == len(MIRFLICKR_LABELS) else None
    desc = protocol_description(protocol, seed, train, query, db)
    return CrossModalDataset(
        name="mirflickr25k", img=img, txt=txt, labels=labels, train_idx=train,
        query_idx=query, db_idx=db, label_names=names, protocol=desc, source=str(folder),
    )


__all__ = ["LAYOUTS", "MIRFLICKR_FILES", "MIRFLICKR_LABELS", "PROTOCOLS", "load_mirflickr_mat",
           "mirflickr_split", "read_dcmh_mat", "read_ugach_format", "write_ugach_format"]
