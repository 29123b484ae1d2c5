"""Where a result came from: the one provenance record every results file carries.

:func:`provenance` returns a flat dict with the keys :data:`PROVENANCE_KEYS`:

* ``command``: the command line that produced the result (``python ...``);
* ``commit``: the short hash of the git ``HEAD`` of the checkout (``"unknown"`` outside a
  git checkout);
* ``clean``: ``True`` when no tracked file differs from ``HEAD``, ``False`` when some does
  (the result may come from uncommitted code), ``None`` when unknown;
* ``date``: when the record was made, ISO 8601 in UTC, to the second;
* ``hardware``: the GPU's name on CUDA, else the CPU model and its logical cores;
* ``device``: the torch device the run used (``cpu``, ``cuda``, ``cuda:1``);
* ``torch``, ``torch_threads`` (CPU wall times depend on it), ``python``, ``version``
  (``ugach_core.__version__``);
* ``smoke``: whether ``UGACH_SMOKE=1`` shrank the run;

plus any keys the caller adds (data set, seeds, a note, ...).  The command line
(``python -m ugach_core train``) stores the record in every row of its ``results.json``;
the benchmark scripts that write JSON (``ablations``, ``study``, ``graph_precision``,
``bench_paper``, ``bench_tags``, ``scaling``) store it once per file, as
``{"provenance": {...}, "rows": [...]}`` (:func:`results_text` and :func:`write_results`
make both); Markdown sections print it at their top (:func:`provenance_markdown`).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from .. import __version__
from ..config import smoke_mode
from ..utils import atomic_write_text, get_device

#: the keys of every provenance record (callers may add more)
PROVENANCE_KEYS = ("command", "commit", "clean", "date", "hardware", "device", "torch",
                   "torch_threads", "python", "version", "smoke")
#: the checkout this library was imported from (where ``commit`` and ``clean`` are read)
REPO = Path(__file__).resolve().parents[2]
#: where results are written: a changed file there does not make the code unclean (a second
#: benchmark of one session would otherwise see the first one's output as a change)
RESULT_PATHS = ("benchmarks/results", "benchmarks/RESULTS.md", "book/results")


def _git(args: Sequence[str], repo: Path) -> str | None:
    """stdout of ``git ARGS`` in ``repo``, or ``None`` when git fails or is missing."""
    try:
        out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(repo: str | Path | None = None) -> tuple[str, bool | None]:
    """``(commit, clean)`` of the git checkout ``repo`` (default :data:`REPO`): the short
    hash of ``HEAD`` and whether no tracked file differs from it, results files
    (:data:`RESULT_PATHS`) aside; ``("unknown", None)`` when ``repo`` is not a git
    checkout."""
    repo = Path(repo) if repo is not None else REPO
    head = _git(["rev-parse", "--short", "HEAD"], repo)
    if not head:
        return "unknown", None
    status = _git(["status", "--porcelain", "--untracked-files=no", "--", ".",
                   *(f":(top,exclude){p}" for p in RESULT_PATHS)], repo)
    return head, (None if status is None else status == "")


def hardware(device: str | torch.device | None = None) -> str:
    """The GPU's name for a CUDA ``device``, else the CPU model and its logical cores."""
    device = get_device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores"


def provenance(command: str | Sequence[str] | None = None,
               device: str | torch.device | None = None, *,
               repo: str | Path | None = None, **extra: Any) -> dict[str, Any]:
    """The provenance record of a result (keys :data:`PROVENANCE_KEYS`, then ``extra``).

    ``command``: the command line, as a string or an argument list (joined with
    :func:`shlex.join`); default ``python`` followed by ``sys.argv``.  ``device``: the
    device the run used (default: what :func:`~ugach_core.utils.get_device` picks).
    ``repo``: the git checkout to read ``commit`` and ``clean`` from (default: the one
    holding this library).  ``extra`` keys are added last and may override a default
    (e.g. ``smoke=True`` for a run that the smoke preset shrank)."""
    if command is None:
        command = ["python", *sys.argv]
    if not isinstance(command, str):
        command = shlex.join(str(c) for c in command)
    device = get_device(device)
    commit, clean = git_state(repo)
    record = {"command": command, "commit": commit, "clean": clean,
              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "hardware": hardware(device), "device": str(device),
              "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "python": platform.python_version(), "version": __version__,
              "smoke": smoke_mode()}
    record.update(extra)
    return record


def results_text(rows: Sequence[Mapping[str, Any]],
                 provenance: Mapping[str, Any] | None = None) -> str:
    """The text of a results file (JSON, indent 1; NumPy numbers as floats).

    Without ``provenance``: a list of rows, each carrying its own record (the command
    line's format).  With it: ``{"provenance": {...}, "rows": [...]}`` (one record for the
    whole file, ``benchmarks/ablations.py``); a record that lacks a key of
    :data:`PROVENANCE_KEYS` is refused (``ValueError``)."""
    if provenance is not None:
        missing = [k for k in PROVENANCE_KEYS if k not in provenance]
        if missing:
            raise ValueError(f"provenance lacks {', '.join(missing)}; build it with "
                             "ugach_core.book.provenance.provenance()")
    data: Any = list(rows) if provenance is None else {"provenance": dict(provenance),
                                                       "rows": list(rows)}
    return json.dumps(data, indent=1, default=float) + "\n"


def write_results(path: str | Path, rows: Sequence[Mapping[str, Any]],
                  provenance: Mapping[str, Any] | None = None) -> Path:
    """Write :func:`results_text` to ``path`` atomically (a temporary file, then a rename:
    a reader sees the old file or the new one, never half of one)."""
    return atomic_write_text(path, results_text(rows, provenance))


def provenance_markdown(record: Mapping[str, Any]) -> str:
    """The record as Markdown bullet lines ``- key: value`` (the schema's keys first), for
    the head of a Markdown results section."""
    keys = [k for k in PROVENANCE_KEYS if k in record]
    keys += [k for k in record if k not in keys]
    return "".join(f"- {k}: {record[k]}\n" for k in keys)


__all__ = ["PROVENANCE_KEYS", "git_state", "hardware", "provenance", "provenance_markdown",
           "results_text", "write_results"]
