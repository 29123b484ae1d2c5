"""The command-line paths that produced stored results, each checked by its effect:
``train --seeds / --rounds / --time-limit / --resume / --ckpt-dir``, ``graph --save /
--metric`` and ``evaluate --topk``, on a tiny SYNTHETIC .npz with the smoke preset."""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ugach_core.cli import main
from ugach_core import Trainer, UGACHConfig
from ugach_core.data import load, load_npz, make_synthetic
from ugach_core.retrieval import encode
from ugach_core.checkpoint import load_discriminator
from reference import brute_map


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    d = make_synthetic(n=240, d_img=24, d_txt=12, n_classes=5, seed=3)
    path = tmp_path_factory.mktemp("cli_train") / "tiny.npz"
    np.savez(path, img=d.img, txt=d.txt, labels=d.labels)
    return path


def train(tiny_npz, out, *extra) -> list[dict]:
    """``train --preset smoke --bits 8`` into ``out``; the rows of its results.json."""
    assert main(["train", "--data", str(tiny_npz), "--preset", "smoke", "--bits", "8",
                 "--out", str(out), "--no-progress", "--device", "cpu", *extra]) == 0
    return json.loads((out / "results.json").read_text())


CKPT = "ugach_smoke_8b_seed0.pt"


def ckpt_state(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def codes_of(path, data) -> dict[str, np.ndarray]:
    model = load_discriminator(path, data)
    return {m: encode(model, data.img if m == "img" else data.txt, m) for m in ("img", "txt")}


# ------------------------------------------------------------------------------ --seeds
def test_seeds_rows_and_summary_is_mean_and_sample_std(tiny_npz, tmp_path, capsys):
    """One row per seed; the printed summary is the mean and the *sample* standard
    deviation (n - 1 in the denominator) of the rows' MAP@all, computed here by hand."""
    rows = train(tiny_npz, tmp_path / "out", "--seeds", "0", "1", "2")
    assert [(r["seed"], r["bits"], r["preset"]) for r in rows] == \
        [(0, 8, "smoke"), (1, 8, "smoke"), (2, 8, "smoke")]
    text = capsys.readouterr().out
    line = next(ln for ln in text.splitlines() if re.match(r"smoke\s+8\s+3\s", ln))
    printed = [float(x) for x in re.findall(r"\d+\.\d{4}", line)]
    for col, key in ((0, "map_i2t"), (2, "map_t2i")):
        x = [r[key] for r in rows]
        mean = (x[0] + x[1] + x[2]) / 3
        sample_sd = math.sqrt(((x[0] - mean) ** 2 + (x[1] - mean) ** 2 + (x[2] - mean) ** 2)
                              / (3 - 1))
        population_sd = sample_sd * math.sqrt(2 / 3)
        assert round(sample_sd, 4) != round(population_sd, 4)  # the test can tell them apart
        assert printed[col] == pytest.approx(mean, abs=5e-5)
        assert printed[col + 1] == pytest.approx(sample_sd, abs=5e-5)


def test_rows_carry_the_pretrained_map_and_the_summary_its_gain(tiny_npz, tmp_path, capsys):
    """Each UGACH row holds the test MAP of the pretrained D (round 0), which equals
    retraining to round 0 by hand; the summary prints the mean gain of the rounds."""
    rows = train(tiny_npz, tmp_path / "out", "--seeds", "0", "1")
    data = load(str(tiny_npz))
    for r in rows:
        t = Trainer(UGACHConfig.from_dict(r["config"]), data, seed=r["seed"], progress=False)
        t.pretrain()
        direct = t.evaluate("current")
        assert r["pretrained_map_i2t"] == pytest.approx(direct["map_i2t"], abs=1e-12)
        assert r["pretrained_map_t2i"] == pytest.approx(direct["map_t2i"], abs=1e-12)
    gains = [(r["map_i2t"] + r["map_t2i"] - r["pretrained_map_i2t"] - r["pretrained_map_t2i"])
             / 2 for r in rows]
    line = next(ln for ln in capsys.readouterr().out.splitlines()
                if re.match(r"smoke\s+8\s+2\s", ln))
    printed = [float(x) for x in re.findall(r"-?\d+\.\d{4}", line)]
    assert printed[4] == pytest.approx(sum(gains) / 2, abs=5e-5)


def test_rows_record_command_and_smoke(tiny_npz, tmp_path, monkeypatch):
    """Each row carries the command line and says whether it is a smoke run: ``--preset
    smoke`` and ``UGACH_SMOKE=1`` both are (before the fix a ``--preset smoke`` row said
    ``smoke: false``, and no row had a command)."""
    monkeypatch.delenv("UGACH_SMOKE", raising=False)  # CI sets it: the preset alone must say so
    rows = train(tiny_npz, tmp_path / "a", "--rounds", "1")
    assert rows[0]["smoke"] is True
    assert rows[0]["command"].startswith("python -m ugach_core train --data ")
    assert "--preset smoke" in rows[0]["command"] and "--rounds 1" in rows[0]["command"]
    monkeypatch.setenv("UGACH_SMOKE", "1")
    out = tmp_path / "b"
    assert main(["train", "--data", str(tiny_npz), "--preset", "fast", "--bits", "8",
                 "--rounds", "1", "--out", str(out), "--no-progress", "--baseline"]) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [(r["preset"], r["smoke"]) for r in rows] == [("cca_itq", True), ("fast", True)]


def test_baseline_row_is_cca_itq_scores(tiny_npz, tmp_path):
    """``--baseline`` runs :func:`~ugach_core.baselines.cca_itq_scores` (shrinkage chosen
    on validation pairs, then the test scores): its row holds exactly that function's
    scores, the chosen shrinkage and its validation MAP, and the provenance record."""
    from ugach_core.baselines import REG_GRID, cca_itq_scores
    from ugach_core.book.provenance import PROVENANCE_KEYS

    rows = train(tiny_npz, tmp_path, "--rounds", "0", "--seed", "1", "--baseline")
    cca = rows[0]
    assert (cca["preset"], cca["seed"], cca["bits"]) == ("cca_itq", 1, 8)
    want = cca_itq_scores(load_npz(tiny_npz), 8, seed=1)
    for key in ("map_i2t", "map_t2i", "map50_i2t", "map50_t2i", "cca_reg", "val_map"):
        assert cca[key] == pytest.approx(want[key], abs=1e-12), key
    assert cca["cca_reg"] in REG_GRID and cca["train_seconds"] > 0
    assert set(PROVENANCE_KEYS) <= set(cca) and cca["command"] == rows[1]["command"]


# --------------------------------------------------------- --rounds, --time-limit, --resume
@pytest.fixture(scope="module")
def runs(tiny_npz, tmp_path_factory):
    """An uninterrupted 3-round run (A); the same run stopped by --time-limit after its
    first round (B1), then resumed to the end with --resume (B2)."""
    base = tmp_path_factory.mktemp("resume")
    a = train(tiny_npz, base / "A", "--rounds", "3")
    b1 = train(tiny_npz, base / "B", "--rounds", "3", "--time-limit", "1e-6")
    shutil.copyfile(base / "B" / CKPT, base / "B_interrupted.pt")
    b2 = train(tiny_npz, base / "B", "--rounds", "3", "--resume")
    return {"A": a[0], "B1": b1[0], "B2": b2[0], "base": base,
            "data": load_npz(tiny_npz)}


def test_rounds_overrides_the_preset(runs):
    """smoke has 2 rounds; --rounds 3 runs 3, records them, and the checkpoint holds the
    three adversarial rounds after the pretrained round 0."""
    a = runs["A"]
    assert a["rounds_done"] == 3 and a["config"]["rounds"] == 3
    sd = ckpt_state(runs["base"] / "A" / CKPT)
    assert sd["round"] == 3
    assert [h["round"] for h in sd["history"] if h.get("stage") == "adversarial"] == [1, 2, 3]


def test_time_limit_stops_after_the_round_that_ends_past_it(runs):
    b1 = runs["B1"]
    assert b1["rounds_done"] == 1 and b1["config"]["rounds"] == 3
    assert ckpt_state(runs["base"] / "B_interrupted.pt")["round"] == 1


def test_resume_continues_to_the_uninterrupted_codes(runs, capsys):
    """B2 continued B1's checkpoint (its history starts with B1's, wall times included, which
    a fresh run would not reproduce) and ends with A's weights, codes and MAP."""
    base, data = runs["base"], runs["data"]
    b1, b2 = ckpt_state(base / "B_interrupted.pt"), ckpt_state(base / "B" / CKPT)
    assert b2["history"][:len(b1["history"])] == b1["history"]
    assert runs["B2"]["rounds_done"] == 3
    a = ckpt_state(base / "A" / CKPT)
    for k in a["D"]:
        assert torch.equal(a["D"][k], b2["D"][k]), k
    assert not all(torch.equal(a["D"][k], b1["D"][k]) for k in a["D"])  # B1 was unfinished
    ca, cb = codes_of(base / "A" / CKPT, data), codes_of(base / "B" / CKPT, data)
    for m in ("img", "txt"):
        np.testing.assert_array_equal(ca[m], cb[m])
    for key in ("map_i2t", "map_t2i", "map50_i2t", "map50_t2i", "best_round"):
        assert runs["A"][key] == runs["B2"][key], key


def test_readme_paper_recipe_resumes_to_the_uninterrupted_codes(tiny_npz, tmp_path, monkeypatch):
    """The README's Colab line for the `paper` preset, run as a reader whose first session
    ends early runs it (the first call stopped by a tiny --time-limit, the same line again
    later), ends with the weights and codes of one uninterrupted run.  On the tiny SYNTHETIC
    .npz, with the preset shrunk by UGACH_SMOKE (still batch-1 shapes' code path: deferred
    first layers, the authors' sampling rules)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### MIRFlickr on Colab", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines()
             if ln.startswith("!python -m ugach_core train") and "--preset paper" in ln]
    assert len(lines) == 1, "the README's Colab section has no (or two) `paper` train lines"
    args = shlex.split(lines[0])[3:]
    assert args[0] == "train" and "--resume" in args and "--time-limit" in args

    def run(out: Path, time_limit: str | None) -> dict:
        a = list(args)
        for flag, value in (("--data", str(tiny_npz)), ("--out", str(out)),
                            ("--time-limit", time_limit), ("--root", str(tmp_path / "root"))):
            i = a.index(flag)
            a[i:i + 2] = [] if value is None else [flag, value]
        assert main([*a, "--no-progress", "--device", "cpu"]) == 0
        return json.loads((out / "results.json").read_text())[-1]

    monkeypatch.setenv("UGACH_SMOKE", "1")
    whole = run(tmp_path / "whole", None)
    first = run(tmp_path / "sessions", "1e-6")
    assert whole["preset"] == "paper" and whole["config"]["first_layer"] == "deferred"
    assert first["rounds_done"] == 1 < whole["rounds_done"] == whole["config"]["rounds"]
    second = run(tmp_path / "sessions", "1e-6")  # each session: at least one more round
    last = second
    for _ in range(whole["rounds_done"] - 2):  # bounded: a resume that stops advancing fails
        if last["rounds_done"] < whole["rounds_done"]:
            last = run(tmp_path / "sessions", "1e-6")
    assert second["rounds_done"] == 2 and last["rounds_done"] == whole["rounds_done"]
    ckpt = f"ugach_paper_{whole['bits']}b_seed0.pt"
    a, b = ckpt_state(tmp_path / "whole" / ckpt), ckpt_state(tmp_path / "sessions" / ckpt)
    for k in a["D"]:
        assert torch.equal(a["D"][k], b["D"][k]), k
    data = load_npz(tiny_npz)
    ca, cb = codes_of(tmp_path / "whole" / ckpt, data), codes_of(tmp_path / "sessions" / ckpt,
                                                                 data)
    for m in ("img", "txt"):
        np.testing.assert_array_equal(ca[m], cb[m])
    assert (whole["map_i2t"], whole["map_t2i"]) == (last["map_i2t"], last["map_t2i"])


def test_resume_prints_where_it_continues(tiny_npz, tmp_path, capsys):
    train(tiny_npz, tmp_path, "--rounds", "2", "--time-limit", "1e-6")
    capsys.readouterr()
    train(tiny_npz, tmp_path, "--rounds", "2", "--resume")
    assert f"resumed {tmp_path / CKPT} at round 1" in capsys.readouterr().out


class _SlowClock:
    """``time`` for the command line whose clock jumps 1,000 s at each reading after the
    first: a call it times lasts about 1,000 s, far longer than an untouched one."""

    def __init__(self):
        self.calls = 0

    def perf_counter(self) -> float:
        self.calls += 1
        return time.perf_counter() + 1000.0 * (self.calls > 1)


def test_resumed_rows_report_the_run_s_training_time(tiny_npz, tmp_path, monkeypatch):
    """Re-evaluating a finished run with --resume once replaced its train_seconds with the
    seconds of the evaluation; a run resumed after a time limit adds both calls' seconds."""
    done = train(tiny_npz, tmp_path, "--rounds", "2")[0]["train_seconds"]
    assert train(tiny_npz, tmp_path, "--rounds", "2", "--resume")[0]["train_seconds"] == done
    other = tmp_path / "limited"
    with monkeypatch.context() as m:  # the first call "takes" 1,000 s, the second a few
        m.setattr("ugach_core.cli.time", _SlowClock())
        first = train(tiny_npz, other, "--rounds", "2", "--time-limit", "1e-6")[0]
    assert first["rounds_done"] == 1 and 1000 < first["train_seconds"] < 1100
    t0 = time.perf_counter()
    second = train(tiny_npz, other, "--rounds", "2", "--resume")[0]
    call = time.perf_counter() - t0
    assert second["rounds_done"] == 2
    assert first["train_seconds"] < second["train_seconds"] < first["train_seconds"] + call


def test_resume_with_another_config_names_the_set_flags(tiny_npz, tmp_path, capsys,
                                                         monkeypatch):
    """A checkpoint of another configuration (e.g. a `paper` run from before the deferred
    first layer) is refused with the --set flags that finish it; with them it resumes."""
    monkeypatch.setenv("UGACH_SMOKE", "1")
    args = ["train", "--data", str(tiny_npz), "--preset", "paper", "--bits", "8",
            "--out", str(tmp_path), "--no-progress", "--rounds", "2"]
    assert main([*args, "--set", "first_layer=autograd", "--time-limit", "1e-6"]) == 0
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "first_layer='autograd' (asked: 'deferred')" in err
    assert "pass --set first_layer=autograd;" in err
    assert main([*args, "--resume", "--set", "first_layer=autograd"]) == 0
    assert "resumed" in capsys.readouterr().out


# ----------------------------------------------------------------------------- --ckpt-dir
def test_ckpt_dir_takes_the_checkpoints(tiny_npz, tmp_path):
    out, ck = tmp_path / "out", tmp_path / "ckpts"
    rows = train(tiny_npz, out, "--rounds", "1", "--ckpt-dir", str(ck))
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
    assert sorted(p.name for p in ck.iterdir()) == [CKPT]
    assert rows[0]["checkpoint"] == str(ck / CKPT)
    sd = ckpt_state(ck / CKPT)
    assert sd["round"] == 1 and sd["config"]["bits"] == 8 and sd["seed"] == 0


# ---------------------------------------------------------------------- graph --save/--metric
def brute_knn(x: np.ndarray, k: int, metric: str) -> np.ndarray:
    """k nearest rows of each row by a double loop from the definition: the item first, then
    increasing distance (Euclidean, or 1 - cosine similarity), ties by the smaller index."""
    x = x.astype(np.float64)
    n = len(x)
    out = np.empty((n, k), dtype=np.int64)
    for i in range(n):
        d = []
        for j in range(n):
            if metric == "euclidean":
                d.append(math.sqrt(sum((a - b) ** 2 for a, b in zip(x[i], x[j]))))
            else:
                dot = sum(a * b for a, b in zip(x[i], x[j]))
                na = math.sqrt(sum(a * a for a in x[i]))
                nb = math.sqrt(sum(b * b for b in x[j]))
                d.append(1 - dot / (na * nb))
        out[i] = sorted(range(n), key=lambda j: (j != i, d[j], j))[:k]
    return out


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_graph_save_is_the_knn_graph(metric, tiny_npz, tmp_path, capsys):
    """The saved list is [3 image-space | 2 text-space] neighbours of each training pair,
    as a brute-force search over the training rows finds them."""
    path = tmp_path / "g.npy"
    assert main(["graph", "--data", str(tiny_npz), "--k-img", "3", "--k-txt", "2",
                 "--metric", metric, "--save", str(path), "--device", "cpu"]) == 0
    assert f"({metric})" in capsys.readouterr().out
    nb = np.load(path)
    data = load_npz(tiny_npz)
    tr = data.train_idx
    assert nb.shape == (216, 5) and nb.dtype == np.int64
    np.testing.assert_array_equal(nb[:, :3], brute_knn(data.img[tr], 3, metric))
    np.testing.assert_array_equal(nb[:, 3:], brute_knn(data.txt[tr], 2, metric))


def test_graph_metric_changes_the_graph(tiny_npz, tmp_path):
    saved = {}
    for metric in ("euclidean", "cosine"):
        saved[metric] = tmp_path / f"{metric}.npy"
        assert main(["graph", "--data", str(tiny_npz), "--metric", metric, "--save",
                     str(saved[metric]), "--device", "cpu"]) == 0
    assert not np.array_equal(np.load(saved["euclidean"]), np.load(saved["cosine"]))


# --------------------------------------------------------------------------- evaluate --topk


def test_evaluate_topk_reports_map_at_that_k(runs, tiny_npz, capsys):
    ck = runs["base"] / "A" / CKPT
    capsys.readouterr()
    assert main(["evaluate", "--data", str(tiny_npz), "--checkpoint", str(ck), "--topk", "7",
                 "--json", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    ev = json.loads(out.strip().splitlines()[-1])
    assert sorted(k for k in ev if k.startswith("map")) == \
        ["map7_i2t", "map7_t2i", "map_i2t", "map_t2i"]
    assert re.search(r"^map7_i2t\s+\d\.\d{4}$", out, re.M)
    data = runs["data"]
    c = codes_of(ck, data)
    q, db, lab = data.query_idx, data.db_idx, data.labels
    assert ev["map7_i2t"] == pytest.approx(
        brute_map(c["img"][q], c["txt"][db], lab[q], lab[db], 7), abs=1e-12)
    assert ev["map7_t2i"] == pytest.approx(
        brute_map(c["txt"][q], c["img"][db], lab[q], lab[db], 7), abs=1e-12)
    assert ev["map_i2t"] == pytest.approx(runs["A"]["map_i2t"], abs=1e-12)  # same codes


# ------------------------------------------------------------ earlier runs in --out survive
def test_a_new_run_never_overwrites_an_earlier_checkpoint(tiny_npz, tmp_path, capsys):
    """Without --resume, a run whose checkpoint is already in --out stops before training
    (the finished file stays byte for byte); with --resume it continues (here: evaluates)."""
    train(tiny_npz, tmp_path, "--rounds", "1")
    ckpt = tmp_path / CKPT
    before = ckpt.read_bytes()
    capsys.readouterr()
    assert main(["train", "--data", str(tiny_npz), "--preset", "smoke", "--bits", "8",
                 "--out", str(tmp_path), "--no-progress", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert str(ckpt) in err and "--resume" in err and "overwrite" in err
    assert ckpt.read_bytes() == before
    rows = train(tiny_npz, tmp_path, "--rounds", "1", "--resume")
    assert rows[0]["rounds_done"] == 1


def test_results_json_keeps_the_rows_of_earlier_runs(tiny_npz, tmp_path):
    """A second command into the same --out adds its rows; a redone (bits, seed) replaces
    its row; a run that fails leaves the file as it was."""
    first = train(tiny_npz, tmp_path, "--rounds", "0", "--seeds", "0", "1")
    assert [r["seed"] for r in first] == [0, 1]
    both = train(tiny_npz, tmp_path, "--rounds", "0", "--seeds", "2")
    assert [r["seed"] for r in both] == [0, 1, 2] and both[:2] == first
    saved = (tmp_path / "results.json").read_text()
    assert main(["train", "--data", str(tiny_npz), "--preset", "smoke", "--bits", "8",
                 "--out", str(tmp_path), "--seeds", "3", "-1", "--device", "cpu"]) == 2
    assert (tmp_path / "results.json").read_text() == saved


def test_a_negative_seed_is_refused_before_any_work(tiny_npz, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_npz), "--out", str(tmp_path / "o"),
                 "--seeds", "0", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--seeds -1" in err and not (tmp_path / "o" / "results.json").exists()


@pytest.mark.parametrize("content", ["not json", '{"rows": []}'])
def test_an_unreadable_results_json_is_refused(tiny_npz, tmp_path, capsys, content):
    (tmp_path / "results.json").write_text(content)
    assert main(["train", "--data", str(tiny_npz), "--preset", "smoke", "--bits", "8",
                 "--out", str(tmp_path), "--device", "cpu"]) == 2
    assert "not a results file" in capsys.readouterr().err
    assert (tmp_path / "results.json").read_text() == content


def test_ctrl_c_says_how_to_resume(tiny_npz, tmp_path, capsys, monkeypatch):
    import ugach_core.cli as cli

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.Trainer, "fit", interrupted)
    assert main(["train", "--data", str(tiny_npz), "--preset", "smoke", "--bits", "8",
                 "--out", str(tmp_path), "--device", "cpu"]) == 130
    assert "--resume" in capsys.readouterr().err


def test_graph_save_adds_npy_once_and_says_where(tiny_npz, tmp_path, capsys):
    assert main(["graph", "--data", str(tiny_npz), "--save", str(tmp_path / "nb.txt"),
                 "--device", "cpu"]) == 0
    assert f"to {tmp_path / 'nb.txt.npy'}" in capsys.readouterr().out
    assert np.load(tmp_path / "nb.txt.npy").shape[0] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nb.txt.npy"]
