"""Load a finished computation if it is cached, else compute it and cache it.

The book's training cells follow one rule: *load the run if it is present, else train*.
:func:`cached` implements it for any result that ``torch.save`` can store (state dicts,
histories, tensors, dataclasses).  A cached value is reused only when its **key** matches
exactly; the key always holds

* a fingerprint of the library's own source (:func:`source_fingerprint`), so a change to
  any file of ``ugach_core`` retrains instead of showing results of older code;
* the caller's key (config, seed, data fingerprint from :func:`data_fingerprint`, a tag
  naming the computation).

Files live in ``$UGACH_CACHE`` (default ``~/.cache/ugach``), are written atomically, and
are only ever replaced by a fresh computation of the same name; a file that cannot be read
is reported and recomputed, never trusted.  Set ``UGACH_CACHE=off`` to always compute.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import torch

from ..checkpoint import data_fingerprint
from ..utils import atomic_write

T = TypeVar("T")
_PACKAGE = Path(__file__).resolve().parent.parent  # the whole ugach_core package


def cache_dir() -> Path | None:
    """``$UGACH_CACHE``, else ``~/.cache/ugach``; ``None`` when ``UGACH_CACHE=off``."""
    env = os.environ.get("UGACH_CACHE", "").strip()
    if env.lower() in ("off", "0", "false", "no"):
        return None
    return Path(env).expanduser() if env else Path.home() / ".cache" / "ugach"


def source_fingerprint() -> str:
    """SHA-256 (first 16 hex digits) over the path and bytes of every ``.py`` file of the
    ``ugach_core`` package, in sorted order."""
    h = hashlib.sha256()
    for f in sorted(_PACKAGE.rglob("*.py")):
        h.update(str(f.relative_to(_PACKAGE)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _shown(path: Path) -> str:
    """``path`` with the home folder written as ``~`` (for messages)."""
    try:
        return "~/" + str(path.resolve().relative_to(Path.home().resolve()))
    except ValueError:
        return str(path)


def cached(name: str, key: Mapping[str, Any], compute: Callable[[], T],
           folder: str | Path | None = None, verbose: bool = True) -> T:
    """``compute()``, or its stored value when ``<folder>/<name>.pt`` holds one made with
    the same ``key`` and the same library source.

    ``name`` must be a plain file name (letters, digits, ``._-``).  ``key`` must be
    made of JSON-like values (str, int, float, bool, None, lists, dicts).  With
    ``verbose``, one line says whether the value was loaded (and when it was made) or
    computed (and how long it took)."""
    if not name or any(not (c.isalnum() or c in "._-") for c in name):
        raise ValueError(f"cache name must be letters, digits, '.', '_' or '-', got {name!r}")
    full_key = {"source": source_fingerprint(), **dict(key)}
    root = Path(folder) if folder is not None else cache_dir()
    path = root / f"{name}.pt" if root is not None else None
    if path is not None and path.is_file():
        try:
            stored = torch.load(path, map_location="cpu", weights_only=False)
            if not isinstance(stored, dict) or "key" not in stored or "value" not in stored:
                raise ValueError("not a cache file of ugach_core.book.cache")
        except Exception as e:  # unreadable: say so, recompute, replace it below
            print(f"[ugach] cache file {path} is unreadable ({type(e).__name__}: "
                  f"{str(e)[:120]}); computing again", file=sys.stderr)
        else:
            if stored["key"] == full_key:
                if verbose:
                    _say(f"loaded {name} from the cache ({_shown(path)}, made "
                         f"{stored.get('created')})")
                return stored["value"]
    t0 = time.perf_counter()
    value = compute()
    seconds = time.perf_counter() - t0
    if path is not None:
        record = {"key": full_key, "value": value, "seconds": seconds,
                  "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: torch.save(record, tmp))
    if verbose:
        where = f"; cached in {_shown(path)}" if path is not None else " (cache off)"
        _say(f"computed {name} in {seconds:.1f} s{where}")
    return value


def _say(text: str) -> None:
    """Print a line about the cache in lines of at most 88 characters (the chapters' page);
    paths and dates are never split."""
    print(textwrap.fill(text, 88, subsequent_indent="  ", break_long_words=False,
                        break_on_hyphens=False))


__all__ = ["cache_dir", "cached", "data_fingerprint", "source_fingerprint"]
