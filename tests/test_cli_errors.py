"""Every error path of ``python -m ugach_core``: one line on stderr that says what is wrong
and what to do, exit code 2 (as argparse's own errors), and no traceback.

Each test goes through :func:`ugach_core.cli.main`, as the command line does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ugach_core.cli as cli
from ugach_core.cli import main
from ugach_core.data import make_synthetic


def _npz(path, n=240, d_img=24, d_txt=12, seed=3):
    d = make_synthetic(n=n, d_img=d_img, d_txt=d_txt, n_classes=5, seed=seed)
    np.savez(path, img=d.img, txt=d.txt, labels=d.labels)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny .npz, one with other feature dimensions, and an 8-bit smoke checkpoint."""
    base = tmp_path_factory.mktemp("cli_errors")
    tiny = _npz(base / "tiny.npz")
    other = _npz(base / "other.npz", d_img=30)
    out = base / "run"
    assert main(["train", "--data", str(tiny), "--preset", "smoke", "--bits", "8",
                 "--out", str(out), "--no-progress", "--device", "cpu"]) == 0
    return {"tiny": tiny, "other": other, "ckpt": out / "ugach_smoke_8b_seed0.pt",
            "base": base}


def error_line(argv, capsys) -> str:
    """Run ``main(argv)``; assert exit code 2, exactly one line on stderr that starts with
    ``error:``, no traceback; return that line."""
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


def train_args(files, tmp_path, *extra):
    return ["train", "--data", str(files["tiny"]), "--preset", "smoke", "--bits", "8",
            "--out", str(tmp_path / "out"), "--no-progress", *extra]


# ---------------------------------------------------------------------------- --device
@pytest.mark.parametrize("cmd", ["train", "evaluate", "graph"])
def test_cuda_on_a_machine_without_cuda(cmd, files, tmp_path, capsys, monkeypatch):
    """Before the fix: AssertionError 'Torch not compiled with CUDA enabled', exit code 1."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = {"train": train_args(files, tmp_path),
            "evaluate": ["evaluate", "--data", str(files["tiny"]), "--checkpoint",
                         str(files["ckpt"])],
            "graph": ["graph", "--data", str(files["tiny"])]}[cmd]
    line = error_line(argv + ["--device", "cuda"], capsys)
    assert "--device cuda" in line and "no CUDA device" in line and "--device cpu" in line
    assert not (tmp_path / "out" / "results.json").exists()


def test_unknown_device_name(files, tmp_path, capsys):
    """Before the fix: RuntimeError from torch.device, exit code 1."""
    line = error_line(train_args(files, tmp_path, "--device", "bogus"), capsys)
    assert "'bogus' is not a device" in line and "cpu, cuda or cuda:N" in line


def test_cuda_index_past_the_last_gpu(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    line = error_line(["graph", "--data", str(files["tiny"]), "--device", "cuda:3"], capsys)
    assert "cuda:3" in line and "1 CUDA device" in line and "cuda:0" in line


# ------------------------------------------------------------------ numeric arguments
@pytest.mark.parametrize("bits", ["0", "-8", "99999"])
def test_bits_out_of_range_stops_before_any_training(bits, files, tmp_path, capsys):
    """``--bits 8 <bad>``: refused up front, so the good code length is not trained first
    (before the fix it was, and then the bad one raised)."""
    argv = train_args(files, tmp_path)
    argv[argv.index("--bits") + 1:argv.index("--bits") + 2] = ["8", bits]
    line = error_line(argv, capsys)
    assert f"--bits {bits}" in line and "[1, 4096]" in line and "--bits 16 32 64 128" in line
    assert not (tmp_path / "out").exists()


def test_evaluate_bits_out_of_range(files, capsys):
    line = error_line(["evaluate", "--data", str(files["tiny"]), "--checkpoint",
                       str(files["ckpt"]), "--bits", "0"], capsys)
    assert "--bits 0" in line and "[1, 4096]" in line


@pytest.mark.parametrize("flag, value, expect", [
    ("--rounds", "-1", ">= 0 (0 = the pretrained discriminator only)"),
    ("--time-limit", "0", "must be positive"),
    ("--time-limit", "-5", "must be positive"),
    ("--checkpoint-every", "0", "must be >= 1"),
])
def test_train_numbers_out_of_range(flag, value, expect, files, tmp_path, capsys):
    """Before the fix: --rounds -1 and --time-limit 0 trained silently, --checkpoint-every 0
    crashed with ZeroDivisionError after training."""
    line = error_line(train_args(files, tmp_path, flag, value), capsys)
    assert f"{flag} {value}" in line and expect in line
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize("topk", ["0", "-3"])
def test_evaluate_topk_below_one(topk, files, capsys):
    line = error_line(["evaluate", "--data", str(files["tiny"]), "--checkpoint",
                       str(files["ckpt"]), "--topk", topk], capsys)
    assert f"--topk {topk}" in line and "must be >= 1" in line


@pytest.mark.parametrize("k_img, k_txt, expect", [
    ("-1", "5", "--k-img -1: image-space neighbours per item, must be >= 0"),
    ("5", "-2", "--k-txt -2: text-space neighbours per item, must be >= 0"),
    ("0", "0", "at least one neighbour"),
])
def test_graph_neighbour_counts(k_img, k_txt, expect, files, capsys):
    line = error_line(["graph", "--data", str(files["tiny"]), "--k-img", k_img,
                       "--k-txt", k_txt], capsys)
    assert expect in line and "pass" in line


def test_graph_more_neighbours_than_training_pairs(files, capsys):
    """Before the fix: 'k must be in [1, n=216], got 500' (no flag named, nothing to do)."""
    line = error_line(["graph", "--data", str(files["tiny"]), "--k-txt", "500"], capsys)
    assert "--k-txt 500" in line and "only 216 training pairs" in line
    assert "pass --k-txt 216 or less" in line


# ------------------------------------------------------------------------------ paths
def test_out_is_a_file(files, tmp_path, capsys):
    """Before the fix: FileExistsError traceback, exit code 1."""
    f = tmp_path / "out"
    f.write_text("a file")
    line = error_line(train_args(files, tmp_path), capsys)
    assert f"--out {f}" in line and "pass --out a folder you can write to" in line


def test_out_cannot_be_created(files, tmp_path, capsys):
    (tmp_path / "plain").write_text("a file")
    argv = train_args(files, tmp_path)
    argv[argv.index("--out") + 1] = str(tmp_path / "plain" / "sub")
    line = error_line(argv, capsys)
    assert "cannot create" in line and "pass --out a folder you can write to" in line


def test_ckpt_dir_is_a_file(files, tmp_path, capsys):
    f = tmp_path / "ck"
    f.write_text("a file")
    line = error_line(train_args(files, tmp_path, "--ckpt-dir", str(f)), capsys)
    assert f"--ckpt-dir {f}" in line and "pass --ckpt-dir a folder you can write to" in line


def test_graph_save_into_a_missing_folder(files, tmp_path, capsys):
    """Before the fix the graph was built first and np.save failed after it."""
    target = tmp_path / "nope" / "g.npy"
    line = error_line(["graph", "--data", str(files["tiny"]), "--save", str(target)], capsys)
    assert f"--save {target}" in line and "does not exist" in line and "create it" in line


def test_graph_save_is_a_folder(files, tmp_path, capsys):
    line = error_line(["graph", "--data", str(files["tiny"]), "--save", str(tmp_path)],
                      capsys)
    assert "is a folder" in line and "graph.npy" in line


def test_root_is_a_file(files, capsys):
    line = error_line(["graph", "--data", "wikipedia", "--root", str(files["tiny"])], capsys)
    assert f"--root {files['tiny']} is a file" in line and "point --root at the folder" in line


def test_missing_registered_data_set(tmp_path, capsys):
    line = error_line(["train", "--data", "wikipedia", "--root", str(tmp_path), "--bits",
                       "8", "--out", str(tmp_path / "o")], capsys)
    assert "Wikipedia data not found" in line and "point --root / UGACH_DATA" in line


def test_missing_npz_file(tmp_path, capsys):
    p = tmp_path / "absent.npz"
    line = error_line(["graph", "--data", str(p)], capsys)
    assert f"--data {p}: no such file" in line and "img, txt and labels" in line


def test_corrupt_npz_file(tmp_path, capsys):
    p = tmp_path / "broken.npz"
    p.write_bytes(b"PK\x03\x04 not really a zip")
    line = error_line(["graph", "--data", str(p)], capsys)
    assert "corrupt or not an npz archive" in line


def test_unknown_data_set_name(capsys):
    line = error_line(["graph", "--data", "wikipeda"], capsys)
    assert "unknown data set 'wikipeda'" in line and "wikipedia" in line


# ------------------------------------------------------------------------ checkpoints
def test_checkpoint_missing(files, tmp_path, capsys):
    p = tmp_path / "absent.pt"
    line = error_line(["evaluate", "--data", str(files["tiny"]), "--checkpoint", str(p)],
                      capsys)
    assert f"--checkpoint {p} does not exist" in line and "ugach_core train" in line


def test_checkpoint_is_a_folder(files, capsys):
    """Before the fix: 'checkpoint <folder> does not exist', which is not what is wrong."""
    folder = files["ckpt"].parent
    line = error_line(["evaluate", "--data", str(files["tiny"]), "--checkpoint", str(folder)],
                      capsys)
    assert "is a folder" in line and ".pt" in line


def test_checkpoint_corrupt(files, tmp_path, capsys):
    p = tmp_path / "garbage.pt"
    p.write_bytes(b"this is not a checkpoint")
    line = error_line(["evaluate", "--data", str(files["tiny"]), "--checkpoint", str(p)],
                      capsys)
    assert "corrupt or unreadable" in line and "pass --checkpoint a .pt file" in line


def test_checkpoint_of_another_kind(files, tmp_path, capsys):
    p = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, p)
    line = error_line(["evaluate", "--data", str(files["tiny"]), "--checkpoint", str(p)],
                      capsys)
    assert "not a UGACH checkpoint" in line and "pass --checkpoint a .pt file" in line


@pytest.mark.parametrize("damage", ["weights", "dims", "config"])
def test_checkpoint_damaged_inside(files, tmp_path, capsys, damage):
    """A readable checkpoint whose parts do not fit together: a one-line CheckpointError,
    for evaluate and for train --resume, never a traceback from torch."""
    sd = torch.load(files["ckpt"], map_location="cpu", weights_only=True)
    if damage == "weights":
        for key in ("best_state", "D"):
            if sd.get(key) is not None:
                sd[key]["txt.hash.bias"] = torch.zeros(3)
    elif damage == "dims":
        del sd["dataset"]["dims"]
    else:
        sd["config"]["hidden"] = -3
    out = tmp_path / "out"
    out.mkdir()
    torch.save(sd, out / files["ckpt"].name)
    line = error_line(["evaluate", "--data", str(files["tiny"]), "--checkpoint",
                       str(out / files["ckpt"].name)], capsys)
    assert "damaged" in line and "retrain" in line, line
    line = error_line(train_args(files, tmp_path, "--resume"), capsys)
    assert "damaged" in line, line


def test_checkpoint_of_other_data(files, capsys):
    line = error_line(["evaluate", "--data", str(files["other"]), "--checkpoint",
                       str(files["ckpt"])], capsys)
    assert "dims [24, 12]" in line and "[30, 12]" in line and "for this data set" in line


def test_checkpoint_of_other_code_length(files, capsys):
    line = error_line(["evaluate", "--data", str(files["tiny"]), "--checkpoint",
                       str(files["ckpt"]), "--bits", "16"], capsys)
    assert "8-bit codes, not 16" in line and "--bits 8" in line


def test_resume_from_a_checkpoint_of_other_data(files, tmp_path, capsys):
    """``--resume`` finds a checkpoint that does not fit the data given."""
    out = tmp_path / "out"
    out.mkdir()
    (out / files["ckpt"].name).write_bytes(files["ckpt"].read_bytes())
    argv = train_args(files, tmp_path, "--resume")
    argv[argv.index("--data") + 1] = str(files["other"])
    line = error_line(argv, capsys)
    assert "dims [24, 12]" in line and "drop --resume" in line


# ----------------------------------------------------------------------- data prepare
def test_prepare_help_says_what_it_does_for_each_set(capsys):
    """The help once described only the feature build, which Wikipedia and CUB-10 skip."""
    with pytest.raises(SystemExit):
        main(["data", "prepare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "wikipedia, cub10: their releases ship features" in text
    assert "mirflickr25k, nuswide: build" in text and "apply to this build only" in text
    assert "NUS-WIDE's images are given out on request" in text


def test_prepare_nuswide_cannot_download(tmp_path, capsys):
    line = error_line(["data", "prepare", "nuswide", "--root", str(tmp_path), "--download"],
                      capsys)
    assert "cannot be downloaded automatically" in line and "without --download" in line


def test_prepare_nuswide_without_files(tmp_path, capsys):
    line = error_line(["data", "prepare", "nuswide", "--root", str(tmp_path)], capsys)
    assert "NUS-WIDE official files not found" in line


@pytest.mark.parametrize("name, what", [("wikipedia", "Wikipedia files not found"),
                                        ("mirflickr25k", "MIRFlickr")])
def test_prepare_without_files_and_without_download(name, what, tmp_path, capsys):
    """The first line is the whole error (what is missing, what to do); the files to fetch
    are listed below it."""
    capsys.readouterr()
    assert main(["data", "prepare", name, "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith("error: ") and what in first and "--download" in first
    assert "Traceback" not in err
    assert "md5" in err  # the list of release files with their checksums follows


# ------------------------------------------------------------------ argparse and bugs
@pytest.mark.parametrize("argv, what", [
    (["train", "--preset", "nope"], "invalid choice: 'nope'"),
    (["train", "--bits", "abc"], "invalid int value: 'abc'"),
    (["train", "--seeds"], "expected at least one argument"),
    (["evaluate"], "the following arguments are required: --checkpoint"),
    (["trian"], "invalid choice: 'trian'")])
def test_argparse_errors_are_one_line_with_exit_code_2(argv, what, capsys):
    """argparse's own mistakes once printed a usage block before the error."""
    line = error_line(argv, capsys)
    assert what in line and "--help" in line


def test_unexpected_bugs_still_raise(files, monkeypatch):
    """Only user errors become one-line messages: a bug in the library keeps its traceback."""
    def broken(*a, **k):
        raise RuntimeError("a bug in the library")

    monkeypatch.setattr(cli, "graph_stats", broken)
    with pytest.raises(RuntimeError, match="a bug in the library"):
        main(["graph", "--data", str(files["tiny"]), "--device", "cpu"])


def test_a_good_run_after_the_checks(files, tmp_path, capsys):
    """The checks refuse nothing that is valid: --device cpu, --topk at the database size,
    --save into an existing folder (train --rounds 0: test_cli_train)."""
    assert main(["graph", "--data", str(files["tiny"]), "--device", "cpu", "--save",
                 str(tmp_path / "g.npy")]) == 0
    assert (tmp_path / "g.npy").is_file()
    assert main(["evaluate", "--data", str(files["tiny"]), "--checkpoint", str(files["ckpt"]),
                 "--device", "cpu", "--topk", "216", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "map216_i2t" in ev


def test_resume_with_other_options(files, tmp_path, capsys):
    """``--resume --rounds 5`` on a 2-round run: refused (before the fix the run silently went
    on with the checkpoint's 2 rounds, and results.json recorded rounds=5 in its config)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / files["ckpt"].name).write_bytes(files["ckpt"].read_bytes())
    line = error_line(train_args(files, tmp_path, "--resume", "--rounds", "5"), capsys)
    assert "rounds=2 (asked: 5)" in line and "drop --resume" in line


def test_diverged_training_is_reported_in_one_line(files, tmp_path, capsys, monkeypatch):
    """A run that diverges (NaN losses) stops with the trainer's message, not a traceback."""
    from ugach_core.train import DivergenceError, Trainer

    def diverge(self, time_limit=None):
        raise DivergenceError("training diverged in round 1, stage 'D step': d_loss is nan. "
                              "Lower d_lr")

    monkeypatch.setattr(Trainer, "fit", diverge)
    line = error_line(train_args(files, tmp_path), capsys)
    assert "training diverged in round 1" in line and "Lower d_lr" in line


def test_system_errors_name_the_path(files, tmp_path, capsys, monkeypatch):
    """An OSError from the system (here: writing results.json fails) names the path and
    what to check."""
    def refuse(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cli, "atomic_write_text", refuse)
    line = error_line(train_args(files, tmp_path, "--rounds", "0"), capsys)
    assert "Permission denied" in line and "results.json" in line and "permissions" in line
