"""Refactoring the trainer must not change what it computes: the smoke and the fast
configuration, trained on Wikipedia with seed 0, give bit for bit the codes whose SHA-256
``tests/fixtures/codes_wikipedia.json`` stores (written by ``tests/fixtures/make_codes.py``
on an earlier commit, named in the file).

The codes are computed in a fresh interpreter with PyTorch's AVX2 kernels
(``make_codes.PINNED_ENV``): AVX-512 kernels round some sums differently, which is a
property of the machine, not of the trainer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
FIXTURES = json.loads((HERE / "fixtures" / "codes_wikipedia.json").read_text())


@pytest.mark.parametrize("name", ["smoke", "fast"])
def test_codes_bit_identical_to_fixture(name: str, wiki, data_root_path: Path) -> None:
    stored = FIXTURES[name]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    out = subprocess.run([sys.executable, str(HERE / "fixtures" / "make_codes.py"),
                          "--digests", name, str(data_root_path)],
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["best_round"] == stored["best_round"]
    for key, sha in stored["sha256"].items():
        assert got["sha256"][key] == sha, (f"{name}: the {key} codes differ from those of "
                                           f"commit {stored['commit']}")
