"""The one provenance schema (``ugach_core.book.provenance``): its keys and values, the git
state it reads (checked against git itself, and on a throw-away repository made dirty on
purpose), the two file formats of ``write_results``, and that the command line's rows and a
benchmark's results file carry the same record."""

from __future__ import annotations

import datetime as _dt
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ugach_core
from ugach_core.book.ablations import Variant
from ugach_core.book.provenance import (PROVENANCE_KEYS, REPO, git_state, hardware, provenance,
                                        provenance_markdown, write_results)
from ugach_core.cli import main
from ugach_core.data import make_synthetic

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="git is not installed")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


# ------------------------------------------------------------------------ the schema
def test_schema_keys_and_values(monkeypatch):
    monkeypatch.delenv("UGACH_SMOKE", raising=False)
    p = provenance("python -m ugach_core train --bits 8", "cpu")
    assert tuple(p) == PROVENANCE_KEYS  # exactly the schema, in its order
    assert p["command"] == "python -m ugach_core train --bits 8"
    assert p["device"] == "cpu" and p["torch"] == torch.__version__
    assert p["version"] == ugach_core.__version__
    assert p["torch_threads"] == torch.get_num_threads()
    assert p["python"].count(".") == 2 and p["smoke"] is False
    assert p["clean"] in (True, False, None)
    date = _dt.datetime.fromisoformat(p["date"])
    assert date.tzinfo is not None and date.utcoffset() == _dt.timedelta(0)
    assert abs((_dt.datetime.now(_dt.timezone.utc) - date).total_seconds()) < 60
    assert p["hardware"] == hardware("cpu") and p["hardware"].endswith("logical cores")
    json.dumps(p)  # plain JSON values only


def test_command_list_smoke_and_extra_keys(monkeypatch):
    monkeypatch.setenv("UGACH_SMOKE", "1")
    p = provenance(["python", "bench.py", "--out", "a b"], "cpu", bits=32, note="n")
    assert p["command"] == "python bench.py --out 'a b'"  # shlex-joined
    assert p["smoke"] is True
    assert list(p)[-2:] == ["bits", "note"] and p["bits"] == 32
    assert provenance("python x", "cpu", smoke=False)["smoke"] is False  # extra overrides
    monkeypatch.setattr(sys, "argv", ["bench.py", "--fast"])
    assert provenance(device="cpu")["command"] == "python bench.py --fast"


@needs_git
def test_commit_is_the_short_head_of_this_checkout():
    if subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True).returncode:
        pytest.skip("the library is not in a git checkout")
    commit, clean = git_state()
    assert commit == git(REPO, "rev-parse", "--short", "HEAD")
    assert git(REPO, "rev-parse", "HEAD").startswith(commit) and len(commit) >= 7
    dirty = git(REPO, "status", "--porcelain", "--untracked-files=no") != ""
    assert clean is (not dirty)
    assert provenance("python x", "cpu")["commit"] == commit


@needs_git
def test_clean_flag_follows_the_tracked_files(tmp_path):
    """A fresh commit is clean; an untracked file leaves it clean; a changed tracked file
    makes it dirty, and committing the change makes it clean again, with a new hash."""
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    git(tmp_path, "commit", "-q", "-m", "one")
    first = git(tmp_path, "rev-parse", "--short", "HEAD")
    assert git_state(tmp_path) == (first, True)
    (tmp_path / "new.txt").write_text("untracked\n")
    assert git_state(tmp_path) == (first, True)
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_state(tmp_path) == (first, False)
    p = provenance("python x", "cpu", repo=tmp_path)
    assert (p["commit"], p["clean"]) == (first, False)
    git(tmp_path, "commit", "-q", "-am", "two")
    second = git(tmp_path, "rev-parse", "--short", "HEAD")
    assert second != first and git_state(tmp_path) == (second, True)
    # a results file written by an earlier benchmark of the session is not a code change
    res = tmp_path / "benchmarks" / "results"
    res.mkdir(parents=True)
    (res / "paper.json").write_text("[]\n")
    (tmp_path / "book" / "results").mkdir(parents=True)
    (tmp_path / "book" / "results" / "r.json").write_text("[]\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "three")
    third = git(tmp_path, "rev-parse", "--short", "HEAD")
    (res / "paper.json").write_text("[1]\n")
    (tmp_path / "book" / "results" / "r.json").write_text("[1]\n")
    assert git_state(tmp_path) == (third, True)
    (tmp_path / "a.py").write_text("x = 3\n")
    assert git_state(tmp_path) == (third, False)


def test_not_a_git_checkout(tmp_path):
    """No folder, or a folder outside any repository: the commit is unknown."""
    assert git_state(tmp_path / "nowhere") == ("unknown", None)
    p = provenance("python x", "cpu", repo=tmp_path / "nowhere")
    assert (p["commit"], p["clean"]) == ("unknown", None)


# ---------------------------------------------------------------------- writing
def test_write_results_both_formats(tmp_path):
    rows = [{"map_i2t": np.float32(0.25), "seed": 0}]
    prov = provenance("python x", "cpu")
    listed = json.loads(write_results(tmp_path / "a" / "r.json", rows).read_text())
    assert listed == [{"map_i2t": 0.25, "seed": 0}]
    block = json.loads(write_results(tmp_path / "b.json", rows, prov).read_text())
    assert block == {"provenance": prov, "rows": [{"map_i2t": 0.25, "seed": 0}]}
    assert not list(tmp_path.glob("**/.*.tmp"))  # atomic: no temporary file left
    with pytest.raises(ValueError, match="provenance lacks commit, clean"):
        write_results(tmp_path / "c.json", rows, {"command": "python x"})
    assert not (tmp_path / "c.json").exists()


def test_markdown_lists_the_schema_first():
    md = provenance_markdown(provenance("python x", "cpu", numpy="2.0"))
    keys = [ln.split(":", 1)[0][2:] for ln in md.splitlines()]
    assert keys == [*PROVENANCE_KEYS, "numpy"]
    assert "- command: python x\n" in md


# --------------------------------------------- the same record in every results file
@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    d = make_synthetic(n=240, d_img=24, d_txt=12, n_classes=5, seed=3)
    path = tmp_path_factory.mktemp("prov") / "tiny.npz"
    np.savez(path, img=d.img, txt=d.txt, labels=d.labels)
    return path


def _benchmark(name: str):
    path = REPO / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def test_cli_rows_and_benchmark_files_carry_the_same_record(tiny_npz, tmp_path, monkeypatch):
    """``train --baseline`` rows (UGACH and CCA-ITQ) and ``benchmarks/ablations.py``'s file
    hold every key of the schema, with the same command-independent values; the Markdown
    sections of the other benchmarks list the same keys."""
    out = tmp_path / "cli"
    assert main(["train", "--data", str(tiny_npz), "--preset", "smoke", "--bits", "8",
                 "--rounds", "1", "--out", str(out), "--no-progress", "--device", "cpu",
                 "--baseline"]) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [r["preset"] for r in rows] == ["cca_itq", "smoke"]
    for r in rows:
        assert set(PROVENANCE_KEYS) <= set(r)
        assert r["command"].startswith("python -m ugach_core train --data ")

    monkeypatch.setenv("UGACH_SMOKE", "1")  # the benchmark's variants shrink
    abl = _benchmark("ablations")
    data = make_synthetic(n=240, d_img=24, d_txt=12, n_classes=5, seed=3)
    monkeypatch.setattr(abl, "load", lambda name: data)
    monkeypatch.setattr(abl, "default_variants", lambda base: [
        Variant("ref", "preset", base.replace(rounds=1)), Variant("CCA-ITQ", "baseline", None)])
    monkeypatch.setattr(abl, "get_device", lambda: torch.device("cpu"))
    bench = tmp_path / "abl.json"
    threads = torch.get_num_threads()
    try:
        assert abl.main(["--bits", "8", "--seeds", "0", "--out", str(bench)]) == 0
    finally:
        torch.set_num_threads(threads)  # the script sets one thread (--threads 1)
    stored = json.loads(bench.read_text())
    prov = stored["provenance"]
    assert set(PROVENANCE_KEYS) <= set(prov)
    assert prov["command"] == shlex.join(["python", "benchmarks/ablations.py", "--bits", "8",
                                          "--seeds", "0", "--out", str(bench)])
    assert prov["smoke"] is True and prov["complete"] is True and prov["torch_threads"] == 1
    same = ("commit", "clean", "hardware", "device", "torch", "python", "version")
    assert {k: prov[k] for k in same} == {k: rows[0][k] for k in same}
    assert [r["variant"] for r in stored["rows"]] == ["ref", "CCA-ITQ"]

    common = _benchmark("_common")
    md = common.machine("cpu")
    assert [ln.split(":", 1)[0][2:] for ln in md.splitlines()][:len(PROVENANCE_KEYS)] == \
        list(PROVENANCE_KEYS)
    assert f"- commit: {rows[0]['commit']}\n" in md


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "benchmarks").glob("*.py")
                                          if not p.name.startswith("_")))
def test_every_benchmark_script_answers_help_without_running(script):
    """``scaling.py --help`` once ran the whole benchmark and rewrote its tracked results;
    ``compare_presets.py --help`` was a traceback.  ``--help`` prints usage, writes nothing."""
    results = {p: p.stat().st_mtime_ns for p in (REPO / "benchmarks").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--help"],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0 and r.stdout.startswith("usage:"), r.stderr[-500:]
    assert {p: p.stat().st_mtime_ns for p in results} == results


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message is for machines without CUDA")
def test_gpu_check_without_a_gpu_says_so():
    """It used to end in a bare AssertionError on a machine without CUDA."""
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py")],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 1 and "needs a CUDA GPU" in r.stderr and "Traceback" not in r.stderr
