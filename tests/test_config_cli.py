"""Presets, the smoke switch, and the command line end to end on a tiny .npz."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ugach_core import UGACHConfig, fast, get_preset, paper, paper_text, smoke
from ugach_core.cli import main
from ugach_core.data import make_synthetic


def test_presets_match_the_spec():
    """paper = the authors' code, paper_text = the paper's formulas."""
    p = paper(64)
    assert (p.hidden, p.margin, p.optimizer, p.d_lr, p.g_lr, p.d_batch, p.weight_decay) == \
        (8192, 8.0, "sgd", 1e-3, 1e-2, 1, 0.01)
    assert (p.rounds, p.d_epochs, p.g_epochs, p.n_samples, p.reward, p.g_softmax) == \
        (30, 1, 2, 2, "sigmoid", "sampled")
    assert p.pool_fraction == pytest.approx(1 / 50)
    t = paper_text(64)
    assert (t.margin, t.reward, t.d_loss, t.g_softmax) == (1.0, "log", "log", "pool")
    assert fast(32).margin == 4.0 and fast(32).preset == "fast"


def test_smoke_switch(monkeypatch):
    """UGACH_SMOKE=1 shrinks every preset but keeps its objective."""
    monkeypatch.setenv("UGACH_SMOKE", "1")
    s = get_preset("paper_text", 32)
    assert s.hidden == smoke().hidden and s.rounds == smoke().rounds
    assert (s.margin, s.reward, s.g_softmax) == (1.0, "log", "pool")
    monkeypatch.setenv("UGACH_SMOKE", "0")
    assert get_preset("paper", 32) == paper(32)
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("turbo")


def test_config_validation_and_roundtrip():
    """Bad fields are refused with a message; to_dict/from_dict round-trips."""
    with pytest.raises(ValueError, match="reward"):
        UGACHConfig(reward="exp")
    with pytest.raises(ValueError, match="unknown config fields"):
        UGACHConfig.from_dict({"bits": 8, "colour": "red"})
    c = fast(16)
    assert UGACHConfig.from_dict(c.to_dict()) == c


@pytest.fixture
def tiny_npz(tmp_path):
    d = make_synthetic(n=200, d_img=20, d_txt=10, n_classes=4, seed=5)
    path = tmp_path / "tiny.npz"
    np.savez(path, img=d.img, txt=d.txt, labels=d.labels)
    return path


def test_cli_train_evaluate_graph(tiny_npz, tmp_path, capsys, monkeypatch):
    """train writes results.json with the documented fields; evaluate reproduces its MAP."""
    monkeypatch.setenv("UGACH_SMOKE", "1")
    out = tmp_path / "out"
    rc = main(["train", "--data", str(tiny_npz), "--bits", "8", "16", "--preset", "fast",
               "--seed", "3", "--out", str(out), "--baseline", "--no-progress"])
    assert rc == 0
    rows = json.loads((out / "results.json").read_text())
    assert [(r["preset"], r["bits"]) for r in rows] == [("cca_itq", 8), ("fast", 8),
                                                         ("cca_itq", 16), ("fast", 16)]
    for r in rows:
        for k in ("dataset", "bits", "preset", "seed", "map_i2t", "map_t2i", "map50_i2t",
                  "map50_t2i", "train_seconds"):
            assert k in r
        assert 0 <= r["map_i2t"] <= 1 and r["seed"] == 3
    text = capsys.readouterr().out
    assert "MAP I->T" in text and "cca_itq" in text
    ck = out / rows[1]["checkpoint"]
    assert main(["evaluate", "--data", str(tiny_npz), "--checkpoint", str(ck), "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    ev = json.loads(last)
    assert ev["map_i2t"] == pytest.approx(rows[1]["map_i2t"])
    assert main(["graph", "--data", str(tiny_npz), "--k-img", "2", "--k-txt", "3"]) == 0
    assert "label_precision" in capsys.readouterr().out


def test_cli_errors_are_clear(tmp_path, capsys):
    """Missing data and wrong code lengths end with exit code 2 and a message, no traceback."""
    assert main(["train", "--data", "wikipedia", "--root", str(tmp_path), "--bits", "8"]) == 2
    assert "Wikipedia data not found" in capsys.readouterr().err
    assert main(["evaluate", "--data", "synthetic", "--checkpoint", str(tmp_path / "x.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="^2$"):  # argparse's own errors: exit code 2
        main(["train", "--preset", "nope"])


def test_cli_synthetic_ok_flag(tmp_path, capsys, monkeypatch):
    """A missing MIRFlickr stops with a clear message; --synthetic-ok switches to the stand-in
    (replaced here by a tiny synthetic set to keep the test fast) and says SYNTHETIC."""
    import ugach_core.data as data_mod

    monkeypatch.setitem(data_mod.STANDINS, "mirflickr25k",
                        lambda root: make_synthetic(n=120, d_img=16, d_txt=8, seed=0))
    assert main(["graph", "--data", "mirflickr25k", "--root", str(tmp_path)]) == 2
    assert "synthetic_ok" in capsys.readouterr().err
    assert main(["graph", "--data", "mirflickr25k", "--root", str(tmp_path), "--synthetic-ok",
                 "--k-img", "2", "--k-txt", "2"]) == 0
    captured = capsys.readouterr()
    assert "SYNTHETIC" in captured.err + captured.out


def test_cli_set_changes_config_fields(tiny_npz, tmp_path, capsys, monkeypatch):
    """train --set FIELD=VALUE: typed like the field, recorded in the row's config; a wrong
    field, value or combination ends with exit code 2 and says what to pass."""
    monkeypatch.setenv("UGACH_SMOKE", "1")
    out = tmp_path / "out"
    assert main(["train", "--data", str(tiny_npz), "--bits", "8", "--preset", "paper",
                 "--set", "negatives=random", "--set", "d_lr=2e-3", "--set",
                 "g_pool_mask=true", "--set", "fn_guard=3", "--out", str(out),
                 "--no-progress"]) == 0
    cfg = json.loads((out / "results.json").read_text())[0]["config"]
    assert (cfg["negatives"], cfg["d_lr"], cfg["g_pool_mask"], cfg["fn_guard"]) == \
        ("random", 2e-3, True, 3)
    assert cfg["first_layer"] == "deferred"  # the paper preset's default stays
    capsys.readouterr()
    for item, says in (("foo=1", "FIELD one of"), ("g_pool_mask=maybe", "true or false"),
                       ("negatives=bad", "negatives must be one of"),
                       ("hidden=wide", "invalid literal"), ("bits=8", "own flags")):
        assert main(["train", "--data", str(tiny_npz), "--set", item,
                     "--out", str(tmp_path / "x")]) == 2, item
        assert says in capsys.readouterr().err, item
    assert main(["train", "--data", str(tiny_npz), "--preset", "fast", "--set",
                 "first_layer=deferred", "--out", str(tmp_path / "y"), "--no-progress"]) == 2
    assert "needs optimizer='sgd'" in capsys.readouterr().err


def test_paper_pool_on_mirflickr_shape_is_what_the_docs_say():
    """README/paper docstring: with 10 % of MIRFlickr's 15,000 training pairs held out, D and
    G fit 13,500 and the pool holds 270; val_fraction=0 gives the authors' 15,000 and 300."""
    import numpy as np

    from ugach_core import Trainer
    from ugach_core.data import CrossModalDataset

    rng = np.random.default_rng(0)
    data = CrossModalDataset("mir-shaped", rng.normal(size=(15100, 2)),
                             rng.normal(size=(15100, 2)), np.eye(3)[rng.integers(0, 3, 15100)],
                             train_idx=np.arange(15000), query_idx=np.arange(15000, 15100),
                             db_idx=np.arange(15000))
    for frac, n_fit, pool in ((0.1, 13500, 270), (0.0, 15000, 300)):
        cfg = paper(16).replace(val_fraction=frac, hidden=4)
        t = Trainer(cfg, data, progress=False, neighbors=np.zeros((n_fit, 1), np.int64))
        assert (len(t.fit_idx), t.pool_size) == (n_fit, pool)
    doc = " ".join(paper.__doc__.split())
    assert "13,500 of MIRFlickr's 15,000 pairs and the pool (1/50) holds 270 items" in doc
