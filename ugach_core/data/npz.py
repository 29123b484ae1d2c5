"""Any ``.npz`` file with ``img``, ``txt``, ``labels`` and optional split indices."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .dataset import CrossModalDataset, default_split

REQUIRED = ("img", "txt", "labels")
OPTIONAL = ("train_idx", "query_idx", "db_idx", "val_idx")


def load_npz(path: str | Path, seed: int = 0) -> CrossModalDataset:
    """Load ``path``: arrays ``img (n, d1)``, ``txt (n, d2)``, ``labels (n, c)`` multi-hot, and
    optionally ``train_idx``, ``query_idx``, ``db_idx``, ``val_idx``.  Without split arrays,
    a seeded default split (10% queries, at most 2,000; the rest = database = training set)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    single = False
    try:
        with open(path, "rb") as fh:
            z = np.load(fh, allow_pickle=False)
            if isinstance(z, np.lib.npyio.NpzFile):
                with z:
                    arrays = {k: z[k] for k in z.files}
            else:
                single = True
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ValueError(f"cannot read {path} as .npz ({e}); the file is corrupt or not an "
                         "npz archive") from e
    if single:
        raise ValueError(f"{path} holds a single array, not an npz archive; save with "
                         "np.savez(path, img=..., txt=..., labels=...)")
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise ValueError(f"{path} lacks arrays {missing}; it needs img (n, d1), txt (n, d2) and "
                         f"labels (n, c); it has {sorted(arrays)}")
    for k in REQUIRED:  # before the split, which counts the rows
        if arrays[k].ndim == 0:
            raise ValueError(f"{path}: {k} is a single number (shape ()); it must be a 2-D "
                             "array with one row per pair")
    given = [k for k in ("train_idx", "query_idx", "db_idx") if k in arrays]
    if given and len(given) != 3:
        raise ValueError(f"{path}: give all of train_idx, query_idx, db_idx or none (has {given})")
    if given:
        train, query, db = (arrays[k] for k in ("train_idx", "query_idx", "db_idx"))
        protocol = "split from the file"
    else:
        train, query, db = default_split(len(arrays["img"]), seed=seed)
        protocol = f"default split (seed {seed}): {len(query)} queries, database = training set"
    names = arrays.get("label_names")
    return CrossModalDataset(
        name=path.stem, img=arrays["img"], txt=arrays["txt"], labels=arrays["labels"],
        train_idx=train, query_idx=query, db_idx=db,
        val_idx=arrays.get("val_idx", np.zeros(0, dtype=np.int64)),
        label_names=[str(s) for s in names] if names is not None else None,
        protocol=protocol, source=str(path),
    )
