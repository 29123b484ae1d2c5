"""Refactoring the trainer must not change what it computes: the smoke and the fast
configuration, trained on Wikipedia with seed 0, give bit for bit the codes whose SHA-256
``tests/fixtures/codes_wikipedia.json`` stores (written by ``tests/fixtures/make_codes.py``
on an earlier commit, named in the file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ugach_core.config import UGACHConfig

from fixtures.make_codes import digest, train_codes  # noqa: E402  (tests/ is on sys.path)

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "codes_wikipedia.json").read_text())


@pytest.mark.parametrize("name", ["smoke", "fast"])
def test_codes_bit_identical_to_fixture(name: str, wiki) -> None:
    stored = FIXTURES[name]
    got = train_codes(UGACHConfig.from_dict(stored["config"]), wiki)
    assert int(got.pop("best_round")) == stored["best_round"]
    for key, sha in stored["sha256"].items():
        assert digest(got[key]) == sha, (f"{name}: the {key} codes differ from those of "
                                         f"commit {stored['commit']}")
