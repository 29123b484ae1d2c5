"""benchmarks/study.py (the study of what makes UGACH work), run in its quick mode."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import study  # noqa: E402

from ugach_core.book.provenance import PROVENANCE_KEYS  # noqa: E402
from ugach_core.config import fast  # noqa: E402


def test_quick_study_rows_carry_pretrained_and_selected_map(tmp_path, capsys):
    out = tmp_path / "study.json"
    assert study.main(["--quick", "--data", "synthetic", "--seeds", "0", "--bits", "16",
                       "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["provenance"]["complete"] is True
    assert all(k in rec["provenance"] for k in PROVENANCE_KEYS)
    rows = rec["rows"]
    assert [r["variant"] for r in rows] == ["pretrained D only", "graph + G negatives",
                                            "graph + random negatives"]
    for r in rows:
        assert r["smoke"] is True and r["dataset"] == "synthetic"
        assert 0 <= r["pretrained_map_i2t"] <= 1 and 0 <= r["pretrained_map_t2i"] <= 1
    # rounds=0: the selected D is the pretrained one
    assert rows[0]["map_i2t"] == pytest.approx(rows[0]["pretrained_map_i2t"], abs=1e-12)
    # the three variants share one pretraining: the same pretrained D
    assert len({(r["pretrained_map_i2t"], r["pretrained_map_t2i"]) for r in rows}) == 1
    assert "synthetic: chosen on validation:" in capsys.readouterr().out


def test_quick_rows_never_go_into_book_results():
    with pytest.raises(SystemExit):
        study.main(["--quick", "--data", "synthetic", "--out",
                    str(REPO / "book" / "results" / "study" / "x.json")])


def test_study_grid_names_and_reasons():
    v = study.study_variants(fast(32))
    assert len({x.name for x in v}) == len(v)
    remedies = [x for x in v if x.group == "remedy" and x.cfg.negatives != "random"]
    assert len(remedies) >= 2 and all(x.note for x in remedies)
    assert v[-1].cfg is None  # CCA-ITQ


def test_merge_keeps_other_data_sets_and_their_provenance():
    old = {"provenance": {"commit": "a", "data": ["cub10"],
                          "earlier": [{"commit": "0", "data": ["synthetic"]}]},
           "rows": [{"dataset": "cub10-split0", "variant": "x"},
                    {"dataset": "wikipedia", "variant": "x"},
                    {"dataset": "synthetic", "variant": "y"}]}
    kept, earlier = study.merge_earlier(old, ["wikipedia"])
    assert [r["dataset"] for r in kept] == ["cub10-split0", "synthetic"]
    assert [p["commit"] for p in earlier] == ["0", "a"]
    assert all("earlier" not in p for p in earlier)
    syn = {"provenance": {"commit": "b", "data": ["mirflickr-synthetic"]},
           "rows": [{"dataset": "mirflickr25k-synthetic", "variant": "x"},
                    {"dataset": "wikipedia", "variant": "x"}]}
    kept, earlier = study.merge_earlier(syn, ["mirflickr-synthetic"])
    assert [r["dataset"] for r in kept] == ["wikipedia"] and earlier == []
    kept, earlier = study.merge_earlier(syn, ["wikipedia"])
    assert [p["commit"] for p in earlier] == ["b"]
    kept, earlier = study.merge_earlier(old, ["cub10", "synthetic"])
    assert [r["dataset"] for r in kept] == ["wikipedia"] and earlier == []


def test_mir_train_subsets_the_training_pairs_only(monkeypatch):
    """--mir-train N: a seeded subset of N of the training pairs, the same for every seed;
    queries and database unchanged; the protocol line says so."""
    from ugach_core.data import make_mirflickr_synthetic

    monkeypatch.setattr(study, "make_mirflickr_synthetic",
                        lambda: make_mirflickr_synthetic(n=3000, d_img=64))
    full = study.load_set("mirflickr-synthetic", 0)
    a, b = (study.load_set("mirflickr-synthetic", s, mir_train=500) for s in (0, 3))
    assert len(full.train_idx) == 2700 and len(a.train_idx) == 500
    assert set(a.train_idx) <= set(full.train_idx)
    assert (a.train_idx == b.train_idx).all() and (a.train_idx == sorted(a.train_idx)).all()
    assert (a.query_idx == full.query_idx).all() and (a.db_idx == full.db_idx).all()
    assert "500 training pairs (a seeded subset of the protocol's 2700)" in a.protocol
    assert a.synthetic and a.name == full.name
    big = study.load_set("mirflickr-synthetic", 0, mir_train=5000)
    assert (big.train_idx == full.train_idx).all()


def test_mir_train_below_two_pairs_is_refused(capsys):
    with pytest.raises(SystemExit):
        study.main(["--data", "mirflickr-synthetic", "--mir-train", "0", "--out", "x.json"])
    assert "--mir-train must be at least 2" in capsys.readouterr().err
