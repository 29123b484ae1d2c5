"""Data sets: one object (:class:`CrossModalDataset`) and one entry point (:func:`load`).

``load(name_or_path, root=None)`` understands:

* ``"wikipedia"``: the official release files in ``<root>/wikipedia`` (or ``<root>``);
* a path to an ``.npz`` file (see :func:`load_npz`);
* ``"synthetic"``: the deterministic synthetic set (always named synthetic);
* ``"auto"``: Wikipedia when its files are found, else the synthetic set (with a notice).

New sets register a loader in :data:`LOADERS` (``name -> callable(root) -> dataset``).
The data root is ``root`` if given, else ``$UGACH_DATA``, else a per-user cache folder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

from .dataset import CrossModalDataset, default_split
from .formats import (load_mirflickr_mat, mirflickr_split, read_dcmh_mat, read_ugach_format,
                      write_ugach_format)
from .npz import load_npz
from .synthetic import make_synthetic
from .wikipedia import find_wikipedia, load_wikipedia


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$UGACH_DATA``, else ``$XDG_CACHE_HOME/ugach`` (``~/.cache/ugach``)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("UGACH_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "ugach"


def _wikipedia(root: Path) -> CrossModalDataset:
    folder = find_wikipedia(root)
    if folder is None:
        raise FileNotFoundError(
            f"Wikipedia data not found under {root} (looked in {root / 'wikipedia'} and {root}). "
            "Put raw_features.mat, trainset_txt_img_cat.list and testset_txt_img_cat.list from "
            "the official release in one of them, or point --root / UGACH_DATA at their folder."
        )
    return load_wikipedia(folder)


LOADERS: dict[str, Callable[[Path], CrossModalDataset]] = {
    "wikipedia": _wikipedia,
    "synthetic": lambda root: make_synthetic(),
}


def load(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None
         ) -> CrossModalDataset:
    """Load a data set by registered name, ``"auto"``, or ``.npz`` path (see module doc)."""
    key = str(name_or_path)
    base = data_root(root)
    if key == "auto":
        if find_wikipedia(base) is not None:
            return _wikipedia(base)
        shown = str(base).replace(str(Path.home()), "~")
        print(f"[ugach] no real data found under {shown}; using the SYNTHETIC data set. "
              "Every result below is on synthetic data.", file=sys.stderr)
        return make_synthetic()
    if key.lower() in LOADERS:
        return LOADERS[key.lower()](base)
    p = Path(key).expanduser()
    if p.suffix == ".npz" or p.is_file():
        return load_npz(p)
    raise ValueError(f"unknown data set {key!r}: use one of {sorted(LOADERS)}, 'auto', or a path "
                     "to an .npz file with img, txt and labels arrays")


__all__ = ["CrossModalDataset", "LOADERS", "data_root", "default_split", "load", "load_npz",
           "load_mirflickr_mat", "load_wikipedia", "make_synthetic", "mirflickr_split",
           "read_dcmh_mat", "read_ugach_format", "write_ugach_format"]
