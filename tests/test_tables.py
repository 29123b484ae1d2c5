"""The chapters' result tables (``ugach_core.book.tables``) from small hand-made rows: every
cell is checked against numbers worked out by hand (mean and *sample* standard deviation,
n - 1 in the denominator) and against the exact Markdown it must produce."""

from __future__ import annotations

import json
import math

import pytest

from ugach_core.book.ablations import compare_to_reference, summarize
from ugach_core.book.notes import Markdown
from ugach_core.book.tables import (ablation_caption, ablation_numbers, ablation_table, cell,
                                    markdown_table, mean_of, method_rows, n_seeds,
                                    name_lines, pm, preset_run_words, provenance_summary,
                                    provenance_text, published_table, read_results,
                                    results_table, stored_preset_rows, verdict)
from ugach_core.config import paper

NB = "\u00a0"


def run(preset, bits, seed, i2t, t2i, **kw):
    return {"preset": preset, "bits": bits, "seed": seed, "map_i2t": i2t, "map_t2i": t2i,
            "map50_i2t": i2t + 0.1, "map50_t2i": t2i + 0.1, "dataset": "wikipedia",
            "synthetic": False, **kw}


# three seeds of 0.20, 0.23, 0.26: mean 0.23, sample std sqrt((0.03^2 + 0 + 0.03^2) / 2)
# = 0.03 (the population std would be 0.0245)
ROWS = [run("fast", 16, s, i2t, 0.5) for s, i2t in enumerate((0.20, 0.23, 0.26))] + \
    [run("paper", 16, 0, 0.1234, 0.4321, rounds_done=6, config={"rounds": 30})]


# --------------------------------------------------------------------- cells, tables
def test_cell_mean_and_sample_std():
    assert cell([]) == "–"
    assert cell([0.1234]) == "0.123"
    assert cell([0.20, 0.23, 0.26]) == "0.230 ± 0.030"  # not 0.024 (population std)
    assert cell([0.20, 0.23, 0.26], digits=4) == "0.2300 ± 0.0300"
    assert cell([0.5, 0.5]) == "0.500 ± 0.000"


def test_method_rows_by_hand():
    got = method_rows(ROWS, "fast", "`fast`", bits=(16, 32))
    assert got == [["`fast`", "MAP@all I→T", "0.230 ± 0.030", "–"],
                   ["`fast`", "MAP@all T→I", "0.500 ± 0.000", "–"],
                   ["`fast`", "MAP@50 I→T", "0.330 ± 0.030", "–"],
                   ["`fast`", "MAP@50 T→I", "0.600 ± 0.000", "–"]]
    paper = method_rows(ROWS, "paper", "p", metrics=("map",), rounds=True, bits=(16, 32))
    assert paper == [["p", "MAP@all I→T", "0.123", "–"], ["p", "MAP@all T→I", "0.432", "–"],
                     ["p", "rounds done", "6 of 30", "–"]]


def test_markdown_table_names_a_method_once():
    md = markdown_table(["method", "measure", "16 bits"],
                        [["a", "x", "1"], ["a", "y", "2"], ["b", "x", "3"], ["a", "z", "4"]],
                        caption="**Cap**")
    assert md == ("**Cap**\n\n| method | measure | 16 bits |\n|---|---|---|\n"
                  "| a | x | 1 |\n|  | y | 2 |\n| b | x | 3 |\n| a | z | 4 |")
    assert markdown_table(["h"], [["v"]]) == "| h |\n|---|\n| v |"


def test_results_table_default_labels_map_only_and_rounds():
    md = results_table(ROWS, bits=(16,), map_only=("fast",), rounds=("paper",))
    lines = md.splitlines()
    assert lines[0] == "| method | measure | 16 bits |"
    assert lines[2:] == ["| `fast`, 3 seed(s) | MAP@all I→T | 0.230 ± 0.030 |",
                         "|  | MAP@all T→I | 0.500 ± 0.000 |",
                         "| `paper`, 1 seed(s) | MAP@all I→T | 0.123 |",
                         "|  | MAP@all T→I | 0.432 |", "|  | MAP@50 I→T | 0.223 |",
                         "|  | MAP@50 T→I | 0.532 |", "|  | rounds done | 6 of 30 |"]
    named = results_table(ROWS, {"paper": "P"}, caption="c", bits=(16,), metrics=("map",))
    assert named.splitlines()[0] == "c" and named.count("| P |") == 1
    assert n_seeds(ROWS, "fast") == 3 and n_seeds(ROWS, "cca_itq") == 0


def test_mean_of():
    assert mean_of(ROWS, "fast", 16, "map_i2t") == pytest.approx(0.23)
    assert math.isnan(mean_of(ROWS, "fast", 32, "map_i2t"))


def test_published_table():
    entry = {"label": "UGACH paper, published", "method": "UGACH", "dataset": "MIR",
             "features": "fc7", "protocol": "MAP@all, 2,000 queries", "metric": "map",
             "direction": "t2i", "map": {"16": 0.6854, "32": 0.7}}
    pub = {"entries": [entry, {"metric": "cost", "note": "slow"}]}
    md = published_table(pub, bits=(16, 32))
    assert md == ("**Published** (MAP@all, 2,000 queries; not produced by this project)\n\n"
                  "| method | data | task | 16 bits | 32 bits |\n|---|---|---|---|---|\n"
                  "| UGACH paper | MIR | T→I | 0.685 | 0.700 |\n\nFeatures: MIR: fc7.")


# ------------------------------------------------------------ reading, provenance
def test_read_results_both_formats_and_smoke_rows(tmp_path):
    listed, block = tmp_path / "a.json", tmp_path / "b.json"
    listed.write_text(json.dumps(ROWS))
    block.write_text(json.dumps({"provenance": {"commit": "abc1234"}, "rows": ROWS[:1]}))
    assert read_results(listed) == ROWS and read_results(block) == ROWS[:1]
    smoke = tmp_path / "s.json"
    smoke.write_text(json.dumps([{**ROWS[0], "smoke": True}, ROWS[1]]))
    with pytest.raises(ValueError, match="1 smoke-mode rows"):
        read_results(smoke)
    assert len(read_results(smoke, smoke_ok=True)) == 2


def test_provenance_summary_and_text():
    rows = [{**r, "commit": "abc1234", "hardware": hw, "note": "n"}
            for r, hw in zip(ROWS, ("cpu A", "cpu A", "cpu A", "gpu B"))]
    text = provenance_summary("f.json", rows)
    assert text.splitlines() == [
        "f.json: 4 runs", "    presets   fast, paper; data wikipedia (real); seeds [0, 1, 2]",
        "    commit    abc1234", "    hardware  ['cpu A', 'gpu B']", "    note      n"]
    assert "clean" not in text and "date" not in text  # keys no row has are left out
    out = provenance_text({"bits": 32, "commit": "x" * 100}, ("bits", "absent", "commit"))
    lines = out.splitlines()
    assert lines[0] == "  bits: 32" and lines[1].startswith("  commit: xxx")
    assert lines[2].startswith("    x") and all(len(ln) <= 78 for ln in lines)


# ------------------------------------------------------------------- chapter 10
def grid_rows():
    """Variant ``ref`` (3 seeds), ``wide`` (3 seeds, clearly better), ``one`` (1 seed)."""
    rows = []
    for name, base, spread in (("ref", 0.30, 0.01), ("wide", 0.40, 0.01)):
        for seed, dv in enumerate((-spread, 0.0, spread)):
            rows.append({"variant": name, "group": "g", "note": f"{name} note", "seed": seed,
                         "map_i2t": base + dv, "map_t2i": base + dv, "map50_i2t": 0.5,
                         "map50_t2i": 0.6, "train_seconds": 10.0 + seed,
                         "last_map_i2t": base, "last_map_t2i": base, "best_round": seed,
                         "config": {"rounds": 2}})
    rows.append({"variant": "one", "group": "g", "seed": 0, "map_i2t": 0.2, "map_t2i": 0.2,
                 "map50_i2t": 0.5, "map50_t2i": 0.6, "train_seconds": 1.0})
    return rows


def test_ablation_table_by_hand():
    rows = grid_rows()
    summary = summarize(rows)
    cmp_all = {c["variant"]: c for c in compare_to_reference(summary, "ref")}
    cmp_last = {c["variant"]: c for c in compare_to_reference(
        [s for s in summary if "last_map_avg" in s], "ref", "last_map_avg")}
    md = ablation_table(summary, rows, cmp_all, cmp_last, not_run=["paper"], caption="C")
    lines = md.splitlines()
    assert lines[0] == "C" and lines[2].startswith("| variant | what it is | seeds |")
    # ref: mean 0.30, sample std 0.01; wide: 0.40 +- 0.01, > 2 SE away: starred
    assert lines[4] == (f"| ref | ref note | 3 | 0.300 | 0.300 | 0.300{NB}±{NB}0.010 | "
                        f"0.300{NB}±{NB}0.000 | 0.500 | 0.600 | 0, 1, 2 | 11.0 |")
    assert lines[5] == (f"| wide | wide note | 3 | 0.400 | 0.400 | 0.400{NB}±{NB}0.010"
                        f"{NB}**\\*** | 0.400{NB}±{NB}0.000{NB}**\\*** | 0.500 | 0.600 | "
                        "0, 1, 2 | 11.0 |")
    # one seed: no std, no verdict, no last D, no selected round
    assert lines[6] == "| one | – | 1 | 0.200 | 0.200 | 0.200 | – | 0.500 | 0.600 | – | 1.0 |"
    assert lines[7] == ("| paper | authors' code, batch-1 schedule | 0 | not run here "
                        "|  |  |  |  |  |  |  |")
    assert pm({"x": 0.5}, "x") == "0.500"


def test_ablation_numbers_and_verdicts():
    rows = grid_rows()
    summary = summarize(rows)
    by = {s["variant"]: s for s in summary}
    cmp_all = {c["variant"]: c for c in compare_to_reference(summary, "ref")}
    cmp_last = {c["variant"]: c for c in compare_to_reference(
        [s for s in summary if "last_map_avg" in s], "ref", "last_map_avg")}
    got = ablation_numbers(by, cmp_all, cmp_last, "ref", {"w": "wide", "o": "one"})
    assert got["ref_avg"] == pytest.approx(0.30) and got["ref_avg_std"] == pytest.approx(0.01)
    assert got["ref_wall"] == pytest.approx(11.0) and got["ref_last"] == pytest.approx(0.30)
    assert got["w_d"] == pytest.approx(0.10)
    assert got["w_se"] == pytest.approx(math.sqrt(2 * 0.01 ** 2 / 3))
    assert repr(got["w_v"]) == "more than twice its standard error"
    assert repr(got["o_v"]) == "of unknown spread (one seed)"
    assert "o_last" not in got and got["w_last_d"] == pytest.approx(0.10)
    assert all(isinstance(v, (float, Markdown)) for v in got.values())
    assert repr(verdict({"clear": False})) == "within twice its standard error"


def test_stored_preset_rows_and_words(tmp_path, monkeypatch):
    monkeypatch.setenv("UGACH_SMOKE", "1")  # the notes compare with the preset, never shrunk
    path = tmp_path / "r.json"
    common = {"map_i2t": 0.2, "map_t2i": 0.4, "train_seconds": 463.6, "hardware": "H200"}
    earlier = {k: v for k, v in paper(16).to_dict().items()  # saved before these existed
               if k not in ("positives", "g_pool_mask", "first_layer")}
    path.write_text(json.dumps([
        {**common, "bits": 32, "rounds_done": 6, "config": paper(32).to_dict()},
        {**common, "bits": 16, "rounds_done": 30, "config": earlier}]))
    (r,) = stored_preset_rows(path, "paper", 32)
    assert r["variant"] == "paper (GPU, 6 of 30 rounds)" and r["group"] == "preset"
    assert r["note"] == "H200; stopped by a time limit after 6 of 30 rounds"
    (full,) = stored_preset_rows(path, "paper", 16)
    assert (full["variant"], full["note"]) == (
        "paper (GPU)", "H200; ran before the preset changed: positives='columns', "
        "g_pool_mask=True")
    assert stored_preset_rows(tmp_path / "absent.json", "paper", 32) == []
    assert repr(preset_run_words([r], "paper")) == (
        "paper reaches a mean MAP of 0.3000 after 464 s on the GPU, stopped after 6 of its "
        "30 rounds")
    assert repr(preset_run_words([r], "paper_text")) == \
        "paper_text was not run here (no stored GPU result)"


def test_name_lines_break_between_names():
    names = [f"variant number {i}" for i in range(8)]
    out = name_lines(names, width=40)
    lines = out.splitlines()
    assert all(len(ln) <= 40 for ln in lines) and len(lines) > 1
    assert [n.strip() for ln in lines for n in ln.split(";")] == names
    assert name_lines([]) == " "


def test_ablation_caption():
    cap = ablation_caption("Wikipedia", 32, "fast", {"hardware": "cpu X", "torch_threads": 1})
    assert cap.startswith("Wikipedia, 32 bits; means over seeds")
    assert "differs from `fast`" in cap and "CPU rows: cpu X, 1 torch thread;" in cap
    tiny = ablation_caption("W", 32, "fast", {"hardware": "here"}, tiny=True)
    assert tiny.startswith("**TINY in-notebook grid") and "torch thread" not in tiny
