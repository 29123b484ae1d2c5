"""Shared helpers of the benchmark scripts: machine description, timing, RESULTS.md.

Every script writes its own section to ``benchmarks/results/<name>.md`` (atomically) and
then rebuilds ``benchmarks/RESULTS.md`` from all sections, so re-running one benchmark
replaces only its own figures.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ugach_core.utils import atomic_write_text  # noqa: E402

SECTIONS = ("train", "graph", "retrieval", "wiki_map")
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


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        # only changes to the code that produces the figures count (not README, results files)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "ugach_core", "benchmarks/*.py", "benchmarks/*.sh"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
        return head + (" (plus uncommitted changes to ugach_core/ or benchmarks/)" if dirty
                       else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def faiss_version() -> str | None:
    try:
        import faiss  # noqa: F401
        return faiss.__version__
    except ImportError:
        return None


def machine(device: str = "cpu") -> str:
    """One paragraph describing where and when this ran."""
    dev = device
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = f"{torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"- machine: {cpu_model()}, {os.cpu_count()} logical cores, torch threads "
            f"{torch.get_num_threads()}, device {dev}\n"
            f"- software: Python {platform.python_version()}, torch {torch.__version__}, numpy "
            f"{np.__version__}, faiss {faiss_version() or 'not installed'}\n"
            f"- date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
            f"commit {git_commit()}\n"
            f"- load average (1, 5, 15 min) when the section was written: {load}\n")


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
