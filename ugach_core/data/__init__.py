"""Data sets: one object (:class:`CrossModalDataset`) and one entry point (:func:`load`).

``load(name_or_path, root=None)`` understands:

* ``"wikipedia"``: the official release files in ``<root>/wikipedia`` (or ``<root>``);
* ``"mirflickr25k"``: the features built from the official release by
  ``python -m ugach_core data prepare mirflickr25k`` (or the DCMH/UCCH ``.mat`` files) in
  ``<root>/mirflickr25k``; when they are absent, a ``FileNotFoundError`` says what to get,
  or, only with ``synthetic_ok=True``, a SYNTHETIC stand-in of the same shapes;
* ``"nuswide"``: NUS-WIDE TC-10 features in ``<root>/nuswide``, built the same way (no
  synthetic stand-in: ``synthetic_ok`` does not apply);
* ``"cub10"``: CUB-10 (600 pairs, GoogLeNet image / doc2vec text features) from
  ``<root>/cub10`` (or ``<root>``); no official split: a seeded stratified 20% of each class
  are the queries, ``load("cub10", split_seed=3)`` picks another split (see
  :func:`load_cub10`);
* a path to an ``.npz`` file (see :func:`load_npz`);
* ``"synthetic"``: the deterministic synthetic set (always named synthetic);
* ``"auto"``: Wikipedia when its files are found, else the synthetic set (with a notice).

New sets register a loader in :data:`LOADERS` (``name -> callable(root, **options) ->
dataset``); keyword options given to :func:`load` go to the loader.
The data root is ``root`` if given, else ``$UGACH_DATA``, else a per-user cache folder.
"""

from __future__ import annotations

import inspect
import os
import sys
from pathlib import Path
from typing import Any, Callable

from .cub10 import find_cub10, load_cub10
from .dataset import CrossModalDataset, default_split
from .download import REMOTES, DownloadError, download_all
from .features import extract_features, preprocess, vgg19_fc7
from .formats import (load_mirflickr_mat, mirflickr_split, read_dcmh_mat, read_ugach_format,
                      write_ugach_format)
from .mirflickr import load_mirflickr, prepare_mirflickr, read_text_side
from .npz import load_npz
from .nuswide import load_nuswide, load_nuswide_mat, prepare_nuswide
from .synthetic import make_mirflickr_synthetic, make_synthetic
from .wikipedia import FILES as WIKIPEDIA_FILES, find_wikipedia, load_wikipedia


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
    partial = [c for c in (root / "wikipedia", root)
               if any((c / f).is_file() for f in WIKIPEDIA_FILES)]
    if folder is None and partial:
        return load_wikipedia(partial[0])  # names the files that are missing there
    if folder is None:
        raise FileNotFoundError(
            f"Wikipedia data not found under {root} (looked in {root / 'wikipedia'} and {root}). "
            "Put raw_features.mat, trainset_txt_img_cat.list and testset_txt_img_cat.list from "
            "the official release in one of them, or point --root / UGACH_DATA at their folder "
            "(or fetch them: `python -m ugach_core data prepare wikipedia --download`)."
        )
    return load_wikipedia(folder)


def _cub10(root: Path, split_seed: int = 0) -> CrossModalDataset:
    return load_cub10(root, split_seed=split_seed)


LOADERS: dict[str, Callable[..., CrossModalDataset]] = {
    "wikipedia": _wikipedia,
    "synthetic": lambda root: make_synthetic(),
    "mirflickr25k": lambda root: load_mirflickr(root),
    "nuswide": lambda root: load_nuswide(root),
    "cub10": _cub10,
}

#: Synthetic stand-ins that :func:`load` may return, only with ``synthetic_ok=True``, when
#: the real files are absent.  Real label/tag frequencies are used when the text side is there.
STANDINS: dict[str, Callable[[Path], CrossModalDataset]] = {
    "mirflickr25k": lambda root: make_mirflickr_synthetic(root=_text_side_folder(root)),
}


def _text_side_folder(root: Path) -> Path | None:
    for d in (root / "mirflickr25k", root):
        if (d / "all_tags.txt").is_file() and (d / "all_labels.txt").is_file():
            return d
    return None


def _check_options(key: str, loader: Callable[..., Any], options: dict[str, Any]) -> None:
    """``ValueError`` when ``loader`` does not take every keyword in ``options``."""
    if not options:
        return
    params = inspect.signature(loader).parameters
    known = [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY
             or (p.kind is p.POSITIONAL_OR_KEYWORD and n != "root")]
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    extra = sorted(set(options) - set(known))
    if extra:
        takes = f"takes only {', '.join(known)}" if known else "takes no options"
        raise ValueError(f"data set {key!r} {takes}; got {', '.join(extra)}")


def load(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None,
         synthetic_ok: bool = False, **options: Any) -> CrossModalDataset:
    """Load a data set by registered name, ``"auto"``, or ``.npz`` path (see module doc).

    ``synthetic_ok=True`` allows a SYNTHETIC stand-in (see :data:`STANDINS`) when the real
    files of a registered set are missing; a notice on stderr and the data set's name say so.
    Keyword ``options`` go to a registered set's loader (``load("cub10", split_seed=3)``);
    one it does not take, or any option with ``"auto"`` or a path, is a ``ValueError``.
    """
    key = str(name_or_path)
    base = data_root(root)
    if options and key.lower() not in LOADERS:
        raise ValueError(f"options {', '.join(sorted(options))} apply only to a registered "
                         f"data set ({', '.join(sorted(LOADERS))}), not to {key!r}")
    if key == "auto":
        if find_wikipedia(base) is not None:
            return _wikipedia(base)
        shown = str(base).replace(str(Path.home()), "~")
        print(f"[ugach] no real data found under {shown}; using the SYNTHETIC data set. "
              "Every result below is on synthetic data.", file=sys.stderr)
        return make_synthetic()
    if key.lower() in LOADERS:
        loader = LOADERS[key.lower()]
        _check_options(key.lower(), loader, options)
        try:
            return loader(base, **options)
        except FileNotFoundError as e:
            if not (synthetic_ok and key.lower() in STANDINS):
                raise
            print(f"[ugach] {e}\n[ugach] synthetic_ok=True: using a SYNTHETIC stand-in for "
                  f"{key}. Every result below is on synthetic data.", file=sys.stderr)
            return STANDINS[key.lower()](base)
    p = Path(key).expanduser()
    if p.suffix == ".npz" or p.is_file():
        return load_npz(p)
    raise ValueError(f"unknown data set {key!r}: use one of {sorted(LOADERS)}, 'auto', or a path "
                     "to an .npz file with img, txt and labels arrays")


__all__ = ["CrossModalDataset", "DownloadError", "LOADERS", "REMOTES", "STANDINS", "data_root",
           "default_split", "download_all", "extract_features", "find_cub10", "load",
           "load_cub10", "load_npz",
           "load_mirflickr", "load_mirflickr_mat", "load_nuswide", "load_nuswide_mat",
           "load_wikipedia", "make_mirflickr_synthetic", "make_synthetic", "mirflickr_split",
           "prepare_mirflickr", "prepare_nuswide", "preprocess", "read_dcmh_mat",
           "read_text_side", "read_ugach_format", "vgg19_fc7", "write_ugach_format"]
