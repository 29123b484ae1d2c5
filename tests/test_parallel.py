"""Data parallelism (ugach_core.parallel): two gloo processes under torchrun train the `fast`
preset to the codes and weights of one process at the same global batch, each computing
about half of every D step's triplets; the command line under torchrun.  Also the errors
of a wrong setup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ugach_core import fast, paper
from ugach_core.data import make_synthetic

HERE = Path(__file__).parent
SCRIPT = HERE / "fixtures" / "data_parallel.py"


def _run(args: list[str], out: Path) -> dict[str, np.ndarray]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, *args, str(SCRIPT), str(out)], capture_output=True,
                          text=True, env=env, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return dict(np.load(out))


def test_two_gloo_processes_train_the_codes_of_one(tmp_path: Path):
    one = _run([], tmp_path / "one.npz")
    two = _run(["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"],
               tmp_path / "two.npz")
    # the work was split: per D step, the two processes' rows add up to the one's batch
    (rows_one,), (rows_a, rows_b) = one["rows"], two["rows"]
    np.testing.assert_array_equal(rows_a + rows_b, rows_one)
    assert np.abs(rows_a - rows_b).max() <= 1 and (rows_a < rows_one).all()
    assert len(set(rows_one.tolist())) > 1  # uneven last batches: the weighting matters
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-5)
    assert int(two["best_round"]) == int(one["best_round"])
    for key in one:
        if key.startswith("w_"):
            a, b = one[key], two[key]
            assert np.linalg.norm(a - b) <= 1e-5 * max(np.linalg.norm(a), 1e-12), key
    for m in ("img", "txt"):
        np.testing.assert_array_equal(two[m], one[m])


def test_data_parallel_trainer_needs_a_process_group_and_the_autograd_path(tmp_path: Path):
    from ugach_core.parallel import DataParallelTrainer

    data = make_synthetic(n=60, d_img=8, d_txt=6)
    with pytest.raises(RuntimeError, match="init_process_group"):
        DataParallelTrainer(fast(16).replace(hidden=8), data, progress=False)
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'group'}", rank=0,
                            world_size=1)
    try:
        with pytest.raises(ValueError, match="first_layer='autograd'"):
            DataParallelTrainer(paper(16).replace(hidden=8), data, progress=False)
        with pytest.raises(ValueError, match="d_batches='random'"):
            DataParallelTrainer(fast(16).replace(hidden=8, d_batches="query"), data,
                                progress=False)
    finally:
        dist.destroy_process_group()


def test_cli_train_under_torchrun_writes_the_results_of_one_process(tmp_path: Path):
    """``torchrun ... -m ugach_core train``: the first process prints and writes; the rows
    (test MAP, selected round) equal those of one process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    args = ["train", "--data", "synthetic", "--preset", "smoke", "--bits", "16",
            "--no-progress"]
    runs = {}
    for name, launch in (("one", []), ("two", ["-m", "torch.distributed.run", "--standalone",
                                                "--nproc-per-node", "2"])):
        done = subprocess.run([sys.executable, *launch, "-m", "ugach_core", *args, "--out",
                               str(tmp_path / name)], capture_output=True, text=True,
                              env=env, timeout=600, check=False)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        runs[name] = (done.stdout, json.loads((tmp_path / name / "results.json").read_text()))
    (row_one,), (row_two,) = runs["one"][1], runs["two"][1]
    assert runs["two"][0].count("wrote ") == 1  # one process printed
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == \
        sorted(p.name for p in (tmp_path / "one").iterdir())
    assert row_two["best_round"] == row_one["best_round"]
    for key in ("map_i2t", "map_t2i", "pretrained_map_i2t", "pretrained_map_t2i"):
        assert row_two[key] == pytest.approx(row_one[key], abs=1e-9), key
