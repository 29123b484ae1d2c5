"""The Wikipedia cross-modal set (Rasiwasia et al., ACM MM 2010), official release files.

2,866 pairs, 10 categories; image = 128-d SIFT bag of visual words, text = 10-d LDA topics.
Standard hashing protocol: the 693 test pairs query the 2,173 training pairs, which are
also the training set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from .dataset import CrossModalDataset

FILES = ("raw_features.mat", "trainset_txt_img_cat.list", "testset_txt_img_cat.list")
def _again(folder: Path) -> str:
    root = folder.parent if folder.name == "wikipedia" else folder
    return ("delete the damaged file and fetch it again (`python -m ugach_core data prepare "
            f"wikipedia --download --root {root}`)")


def find_wikipedia(root: Path) -> Path | None:
    """The folder holding the release files: ``root/wikipedia`` or ``root`` itself."""
    for cand in (root / "wikipedia", root):
        if all((cand / f).is_file() for f in FILES):
            return cand
    return None


def read_list(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Text ids, image ids and categories of a release list file (tab-separated)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a UTF-8 text file (corrupt?); "
                         + _again(Path(path).parent)) from None
    txt_ids, img_ids, cats = [], [], []
    for ln, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) != 3:
            raise ValueError(f"{path}:{ln}: expected 'text_id<TAB>image_id<TAB>category', "
                             f"got {line.strip()!r}")
        try:
            c = int(parts[2])
        except ValueError:
            raise ValueError(f"{path}:{ln}: category {parts[2]!r} is not an integer") from None
        txt_ids.append(parts[0])
        img_ids.append(parts[1])
        cats.append(c)
    return txt_ids, img_ids, np.asarray(cats, dtype=np.int64)


def load_wikipedia(folder: str | Path) -> CrossModalDataset:
    """Load the official files from ``folder`` (see :data:`FILES`)."""
    folder = Path(folder)
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Wikipedia files missing in {folder}: {', '.join(missing)}. Put the official "
            f"release files ({', '.join(FILES)}) there, or pass root=/ --root to the folder "
            "that holds them (or set UGACH_DATA); or fetch them (about 1.3 MB) with "
            "`python -m ugach_core data prepare wikipedia --download`."
        )
    try:
        mat = scipy.io.loadmat(folder / "raw_features.mat")
    except Exception as e:  # scipy raises several types on corrupt files
        raise ValueError(f"cannot read {folder / 'raw_features.mat'} ({e}); the file is corrupt "
                         f"or not MATLAB v5 - {_again(folder)}") from e
    for key in ("I_tr", "I_te", "T_tr", "T_te"):
        if key not in mat:
            raise ValueError(f"{folder / 'raw_features.mat'} has no variable {key!r}")
    for key in ("I_tr", "I_te", "T_tr", "T_te"):
        if mat[key].ndim != 2:
            raise ValueError(f"{folder / 'raw_features.mat'}: {key} must be 2-D (items x "
                             f"dimensions), got shape {mat[key].shape}")
    for a, b in (("I_tr", "I_te"), ("T_tr", "T_te")):
        if mat[a].shape[1] != mat[b].shape[1]:
            raise ValueError(f"{folder / 'raw_features.mat'}: {a} is {mat[a].shape[1]}-d but "
                             f"{b} is {mat[b].shape[1]}-d; the file is not the official "
                             f"release - {_again(folder)}")
    _, _, c_tr = read_list(folder / "trainset_txt_img_cat.list")
    _, _, c_te = read_list(folder / "testset_txt_img_cat.list")
    n_tr, n_te = mat["I_tr"].shape[0], mat["I_te"].shape[0]
    for what, a, b in (("training", n_tr, len(c_tr)), ("test", n_te, len(c_te)),
                       ("training text", mat["T_tr"].shape[0], n_tr),
                       ("test text", mat["T_te"].shape[0], n_te)):
        if a != b:
            raise ValueError(f"Wikipedia {what} rows do not line up: {a} vs {b}; the files are "
                             "from different releases or truncated")
    img = np.concatenate([mat["I_tr"], mat["I_te"]]).astype(np.float32)
    txt = np.concatenate([mat["T_tr"], mat["T_te"]]).astype(np.float32)
    cats = np.concatenate([c_tr, c_te])
    n_cls = 10
    if cats.min() < 1 or cats.max() > n_cls:
        raise ValueError(f"Wikipedia categories must be 1..{n_cls}, got {cats.min()}..{cats.max()}")
    labels = np.eye(n_cls, dtype=np.uint8)[cats - 1]
    names_file = folder / "categories.list"
    names = [f"class{i}" for i in range(1, n_cls + 1)]
    if names_file.is_file():
        try:
            names = names_file.read_text(encoding="utf-8").split()
        except UnicodeDecodeError:
            names = []
        if len(names) != n_cls:
            raise ValueError(f"{names_file} must hold the {n_cls} category names, one per "
                             f"line; it holds {len(names)} readable names. Delete it (the "
                             "names are optional) or fetch it again")
    train = np.arange(n_tr)
    return CrossModalDataset(
        name="wikipedia", img=img, txt=txt, labels=labels, train_idx=train,
        query_idx=np.arange(n_tr, n_tr + n_te), db_idx=train.copy(), label_names=names,
        protocol="693 test queries vs 2,173 training pairs (database = training set)",
        source=str(folder),
    )
