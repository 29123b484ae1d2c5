"""Shared helpers of the benchmark scripts: machine description, timing, RESULTS.md.

Every script writes its own section to ``benchmarks/results/<name>.md`` (atomically) and
then rebuilds ``benchmarks/RESULTS.md`` from all sections, so re-running one benchmark
replaces only its own figures.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from ugach_core.book.provenance import provenance, provenance_markdown  # noqa: E402
from ugach_core.utils import atomic_write_text  # noqa: E402

SECTIONS = ("train", "d_batches", "paper", "paper_tags", "graph", "retrieval", "wiki_map",
            "scaling")
HEADER = """# Performance benchmarks

Every figure below was printed by the script named in its section, in the run described
there (machine, library versions, date, commit).  Timings on a CPU were taken on a **shared
2-core virtual machine** (other jobs ran at the same time; the load average is recorded),
so absolute seconds are noisy: the claims rest on **ratios measured within one run**.
Training benchmarks use **synthetic** MIRFlickr-shaped data (random features of the real
shapes), never the real images.

Regenerate a section with its script (``PYTHONPATH=. python benchmarks/<script>.py``);
``benchmarks/gpu.sh`` runs the full-size versions on a CUDA machine.
"""


def faiss_version() -> str | None:
    try:
        import faiss  # noqa: F401
        return faiss.__version__
    except ImportError:
        return None


def machine(device: str = "cpu") -> str:
    """Where and when this ran: the one provenance record of the library
    (:func:`ugach_core.book.provenance.provenance`: command, commit, clean, date, hardware,
    device, versions, smoke) plus the NumPy and faiss versions and the load average, as
    Markdown bullet lines."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return provenance_markdown(provenance(
        None, device, numpy=np.__version__, faiss=faiss_version() or "not installed",
        load_average=f"{load} (1, 5, 15 min, when the section was written)"))


def timeit(fn, repeat: int = 3, warmup: int = 1, sync=None) -> float:
    """Median wall seconds of ``fn()`` over ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        if sync:
            sync()
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def write_section(name: str, title: str, body: str, device: str = "cpu") -> Path:
    """Write ``results/<name>.md`` and rebuild ``RESULTS.md`` from every section."""
    if name not in SECTIONS:
        raise ValueError(f"unknown section {name!r}")
    if device.startswith("cuda"):  # GPU figures go next to, not over, the CPU ones
        name, title = f"{name}_gpu", f"{title} on a GPU"
    text = f"## {title}\n\n{machine(device)}\n{body.rstrip()}\n"
    atomic_write_text(HERE / "results" / f"{name}.md", text)
    parts = [HEADER]
    for s in SECTIONS:
        f = HERE / "results" / f"{s}.md"
        if f.is_file():
            parts.append(f.read_text())
    gpu = [HERE / "results" / f"{s}_gpu.md" for s in SECTIONS]
    if any(f.is_file() for f in gpu):
        parts += [f.read_text() for f in gpu if f.is_file()]
    else:
        parts.append("## GPU\n\n`benchmarks/gpu.sh` has **not yet run on a GPU**: no CUDA "
                     "machine was available when these figures were taken.\n")
    out = atomic_write_text(HERE / "RESULTS.md", "\n".join(parts))
    print(f"wrote {HERE / 'results' / (name + '.md')} and {out}")
    return out
