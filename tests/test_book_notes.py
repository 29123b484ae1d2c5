"""The chapters' data note and data-dependent phrases (ugach_core.book.notes)."""

from __future__ import annotations

import numpy as np

from ugach_core.book.notes import Markdown, data_note, data_title, data_words, phrase
from ugach_core.data import CrossModalDataset


def _set(synthetic: bool, name: str) -> CrossModalDataset:
    idx = np.arange(4)
    return CrossModalDataset(name=name, img=np.zeros((4, 2), np.float32),
                             txt=np.zeros((4, 3), np.float32),
                             labels=np.eye(4, 5, dtype=np.uint8), train_idx=idx,
                             query_idx=idx[:1], db_idx=idx, synthetic=synthetic,
                             protocol="1 query vs 4 pairs", source="made here")


def test_synthetic_note_says_so_and_how_to_get_the_real_set(tiny) -> None:
    note = data_note(_set(True, "synthetic"))._repr_markdown_()
    assert note.startswith("> **SYNTHETIC DATA.**")
    assert "4 made-up pairs, 5 labels" in note
    assert "python -m ugach_core data prepare wikipedia --download" in note
    assert "UGACH_DATA" in note
    assert data_words(tiny) == Markdown("the SYNTHETIC data")
    assert data_title(tiny) == "SYNTHETIC data"


def test_real_note_claims_nothing_synthetic() -> None:
    data = _set(False, "wikipedia")
    note = str(data_note(data))
    assert "synthetic" not in note.lower()
    assert "4 image-text pairs, 5 labels" in note and "1 query vs 4 pairs" in note
    assert str(data_words(data)) == "Wikipedia" and data_title(data) == "Wikipedia"


def test_phrase_follows_the_condition() -> None:
    assert str(phrase(0.2 < 0.3, "falls", "does not fall")) == "falls"
    assert str(phrase(np.float64(0.4) < 0.3, "falls", "does not fall")) == "does not fall"
    assert repr(phrase(True, "a *b*", "c")) == "a *b*"   # glue:text pastes the repr
