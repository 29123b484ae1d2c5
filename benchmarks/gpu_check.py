"""GPU check: resume and same-seed determinism on CUDA, CUDA vs CPU codes, and the `fast`
preset's wall time on Wikipedia.  Usage: PYTHONPATH=. python benchmarks/gpu_check.py DATA_ROOT"""
import time, numpy as np, torch, ugach_core as u
from ugach_core.callbacks import Checkpoint
from ugach_core.data import make_synthetic
assert torch.cuda.is_available()
d = make_synthetic(n=600, seed=1)
cfg = u.smoke(16).replace(rounds=3)
a = u.Trainer(cfg, d, seed=4, device="cuda", progress=False, callbacks=[Checkpoint("/tmp/g/run.pt", keep_all=True)])
a.fit()
b = u.Trainer.resume("/tmp/g/run.round1.pt", d, device="cuda", progress=False); b.fit()
c = u.Trainer(cfg, d, seed=4, device="cuda", progress=False); c.fit()
for m in ("img", "txt"):
    print(m, "resume==uninterrupted:", np.array_equal(a.codes()[m], b.codes()[m]),
          " same seed twice:", np.array_equal(a.codes()[m], c.codes()[m]))
cpu = u.Trainer(cfg, d, seed=4, device="cpu", progress=False); cpu.fit()
print("cuda vs cpu code agreement:", float((cpu.codes()["img"] == a.codes()["img"]).mean()))
import sys
w = u.load("wikipedia", root=sys.argv[1] if len(sys.argv) > 1 else None)
for bits in (16, 128):
    t = time.perf_counter(); tr = u.Trainer(u.fast(bits), w, seed=0, device="cuda", progress=False); tr.fit()
    print(f"fast {bits} bits on GPU: {time.perf_counter()-t:.1f} s, test", {k: round(v, 4) for k, v in tr.evaluate().items()}, "best round", tr.best_round)
