"""Small shared helpers: seeding, device choice, input checks, atomic writes, heap reuse."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import random
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); return a fresh CPU ``torch.Generator``
    seeded with ``seed`` for code that wants its own stream."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def get_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_features(x: Any, what: str) -> np.ndarray:
    """A finite 2-D float32 array, or a ``ValueError`` that says what is wrong."""
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (items x dimensions), got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{what} is empty (shape {a.shape})")
    if not np.issubdtype(a.dtype, np.number) and a.dtype != bool:
        raise ValueError(f"{what} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float32, copy=False)
    bad = ~np.isfinite(a)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        raise ValueError(
            f"{what} contain {int(bad.sum())} NaN/inf values in {rows.size} rows "
            f"(first rows: {rows[:5].tolist()}); clean or drop those rows before training"
        )
    return a


def atomic_write(path: str | os.PathLike, writer: Callable[[str], None]) -> Path:
    """Write ``path`` atomically: ``writer(tmp)`` fills a temporary file in the same folder,
    which then replaces ``path`` in one step.  A crash leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # as open() would make it, not mkstemp's 0600
        writer(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    def _w(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    return atomic_write(path, _w)


_heap_depth = 0  # reuse_freed_memory contexts entered and on
REUSE_FREED_MEMORY = os.environ.get("UGACH_REUSE_MEMORY", "1").strip().lower() not in (
    "0", "false", "no")


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """Inside: freed memory stays in the process heap for the next allocation (glibc: no
    ``mmap`` for large blocks, no trimming); on leaving, glibc's defaults come back and the
    heap is trimmed.  Yields whether it is on: only on glibc, and not with
    ``UGACH_REUSE_MEMORY=0`` (or :data:`REUSE_FREED_MEMORY` set to False).

    A training step allocates the same large tensors every time (a 8192 x 4096 weight
    gradient is 128 MB).  glibc serves each with a fresh ``mmap``, whose pages the kernel
    zeroes on first touch, and unmaps it when it is freed: most of a batch-1 step's time.
    The computed values do not change; ``benchmarks/bench_train.py`` measures the time."""
    global _heap_depth
    libc = ctypes.CDLL(None) if REUSE_FREED_MEMORY and not _heap_depth and \
        platform.libc_ver()[0] == "glibc" else None
    # mallopt: M_MMAP_MAX (-4) 0, no mmap for large blocks; M_TRIM_THRESHOLD (-1) 2 GB
    if libc is not None and not (libc.mallopt(-4, 0) and libc.mallopt(-1, 2**31 - 1)):
        libc = None
    on = libc is not None or _heap_depth > 0
    _heap_depth += on
    try:
        yield on
    finally:
        _heap_depth -= on
        if libc is not None:  # glibc's defaults, and the freed memory back to the system
            libc.mallopt(-4, 65536), libc.mallopt(-1, 128 * 1024), libc.malloc_trim(0)
