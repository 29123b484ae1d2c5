"""GPU check: resume and same-seed determinism on CUDA, CUDA vs CPU codes, and the `fast`
preset's wall time on Wikipedia (output stored in book/results/gpu_check.txt).

Usage: PYTHONPATH=. python benchmarks/gpu_check.py [DATA_ROOT]   (needs a CUDA GPU)"""
import argparse
import sys
import tempfile
import time

import numpy as np
import torch

import ugach_core as u
from ugach_core.callbacks import Checkpoint
from ugach_core.data import make_synthetic

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("data_root", nargs="?", default=None,
                help="folder holding wikipedia/ (default: UGACH_DATA or the default root)")
args = ap.parse_args()
if not torch.cuda.is_available():
    sys.exit("gpu_check.py needs a CUDA GPU and torch sees none here; run it on a machine "
             "with one (the CPU's results are checked by the tests)")
d = make_synthetic(n=600, seed=1)
cfg = u.smoke(16).replace(rounds=3)
ckpts = tempfile.mkdtemp(prefix="gpu_check_")
a = u.Trainer(cfg, d, seed=4, device="cuda", progress=False,
              callbacks=[Checkpoint(f"{ckpts}/run.pt", keep_all=True)])
a.fit()
b = u.Trainer.resume(f"{ckpts}/run.round1.pt", d, device="cuda", progress=False)
b.fit()
c = u.Trainer(cfg, d, seed=4, device="cuda", progress=False)
c.fit()
for m in ("img", "txt"):
    print(m, "resume==uninterrupted:", np.array_equal(a.codes()[m], b.codes()[m]),
          " same seed twice:", np.array_equal(a.codes()[m], c.codes()[m]))
cpu = u.Trainer(cfg, d, seed=4, device="cpu", progress=False)
cpu.fit()
print("cuda vs cpu code agreement:", float((cpu.codes()["img"] == a.codes()["img"]).mean()))
w = u.load("wikipedia", root=args.data_root)
for bits in (16, 128):
    t = time.perf_counter()
    tr = u.Trainer(u.fast(bits), w, seed=0, device="cuda", progress=False)
    tr.fit()
    print(f"fast {bits} bits on GPU: {time.perf_counter()-t:.1f} s, test",
          {k: round(v, 4) for k, v in tr.evaluate().items()}, "best round", tr.best_round)
