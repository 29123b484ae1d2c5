"""Refactoring the trainer must not change what it computes: the smoke and the fast
configuration, trained on Wikipedia with seed 0, give bit for bit the codes stored in
``tests/fixtures`` (written by ``tests/fixtures/make_codes.py`` on an earlier commit, named
in each file)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ugach_core.config import UGACHConfig

from fixtures.make_codes import train_codes  # noqa: E402  (tests/ is on sys.path)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("name", ["smoke", "fast"])
def test_codes_bit_identical_to_fixture(name: str, wiki) -> None:
    stored = np.load(FIXTURES / f"codes_wikipedia_{name}_32b.npz")
    meta = json.loads(str(stored["meta"]))
    cfg = UGACHConfig.from_dict(meta["config"])
    got = train_codes(cfg, wiki)
    assert int(got["best_round"]) == int(stored["best_round"])
    for key in ("best_img", "best_txt", "current_img", "current_txt"):
        diff = np.unpackbits(got[key] ^ stored[key]).sum()
        assert diff == 0, (f"{name}: {diff} bits of {key} differ from the codes of commit "
                           f"{meta['commit']}")
