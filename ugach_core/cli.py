"""Command line: ``python -m ugach_core {train,evaluate,graph,data} ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any, NoReturn, Sequence

import numpy as np
import torch

from .baselines import cca_itq_scores
from .book.provenance import provenance, results_text
from .callbacks import Checkpoint, LogTestMAP, PrintLogger
from .config import PRESETS, VALID_BITS_RANGE, UGACHConfig, get_preset
from .data import LOADERS, data_root, load
from .data.download import DownloadError
from .evaluation import mean_std, retrieval_scores
from .graph import graph_stats, manifold_neighbors
from .retrieval import encode
from .checkpoint import CheckpointError, load_discriminator
from .train import DivergenceError, Trainer
from .utils import atomic_write, atomic_write_text, get_device


class CLIError(Exception):
    """A mistake in the command line or its inputs.  :func:`main` prints it as one line,
    ``error: <what is wrong>; <what to do>``, then ``detail`` (if any) below it, and exits
    with code 2, as argparse does for the errors it catches itself."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table of MAP@all and MAP@50, one line per (method, bits, seed), with
    the test MAP@all of the pretrained discriminator (round 0) of UGACH rows."""
    head = f"{'dataset':<22} {'method':<10} {'bits':>4} {'seed':>4} " \
           f"{'MAP I->T':>9} {'MAP T->I':>9} {'@50 I->T':>9} {'@50 T->I':>9} " \
           f"{'pre I->T':>9} {'pre T->I':>9} {'train s':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        pre = [f"{r[k]:>9.4f}" if r.get(k) is not None else f"{'-':>9}"
               for k in ("pretrained_map_i2t", "pretrained_map_t2i")]
        lines.append(f"{r['dataset']:<22} {r['preset']:<10} {r['bits']:>4} {r['seed']:>4} "
                     f"{r['map_i2t']:>9.4f} {r['map_t2i']:>9.4f} {r['map50_i2t']:>9.4f} "
                     f"{r['map50_t2i']:>9.4f} {pre[0]} {pre[1]} {r['train_seconds']:>8.1f}")
    return "\n".join(lines)


def summarize(rows: list[dict[str, Any]]) -> str:
    """Mean and sample standard deviation of MAP@all over seeds, per method and code length
    (:func:`~ugach_core.evaluation.mean_std`; the std is ``-`` with one seed)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["preset"], r["bits"]), []).append(r)
    lines = [f"{'method':<10} {'bits':>4} {'seeds':>5} {'MAP I->T (mean+-std)':>22} "
             f"{'MAP T->I (mean+-std)':>22} {'rounds add (mean of both)':>26}"]

    def pm(values: list[float]) -> str:
        mean, sd = mean_std(values)
        return f"{mean:>14.4f} +- " + (f"{sd:.4f}" if not math.isnan(sd) else f"{'-':<6}")

    for (preset, bits), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        gain = [(r["map_i2t"] + r["map_t2i"] - r["pretrained_map_i2t"]
                 - r["pretrained_map_t2i"]) / 2 for r in rs
                if r.get("pretrained_map_i2t") is not None]  # selected D - pretrained D
        lines.append(f"{preset:<10} {bits:>4} {len(rs):>5} "
                     f"{pm([r['map_i2t'] for r in rs])} {pm([r['map_t2i'] for r in rs])}"
                     + (f" {pm(gain)}" if len(gain) == len(rs) else ""))
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1) every process trains with D's batches split
    over the processes (:class:`~ugach_core.parallel.DataParallelTrainer`, gloo on CPUs,
    NCCL on GPUs); the first one prints and writes checkpoints and results."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return _train(args, get_device(args.device), Trainer, lead=True)
    import torch.distributed as dist

    from .parallel import DataParallelTrainer

    device = get_device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        lead = dist.get_rank() == 0
        with open(os.devnull, "w") as null, \
                contextlib.redirect_stdout(sys.stdout if lead else null):
            return _train(args, device, DataParallelTrainer, lead)
    finally:
        dist.destroy_process_group()


def _train(args: argparse.Namespace, device: torch.device, cls: type[Trainer], lead: bool
           ) -> int:
    data = load(args.data, root=args.root, synthetic_ok=args.synthetic_ok)
    print(data.summary())
    out = Path(args.out)  # created (or refused) by check_args
    prov = provenance(args.command, device)  # the one schema (ugach_core.book.provenance)
    prov["smoke"] = prov["smoke"] or args.preset == "smoke"  # either shrinks the run
    rows: list[dict[str, Any]] = []
    seeds = args.seeds if args.seeds else [args.seed]
    earlier = _earlier_rows(out / "results.json")
    if not args.resume:  # a new run never overwrites another run's checkpoint
        for bits in args.bits:
            for seed in seeds:
                ckpt = _ckpt_path(args, out, get_preset(args.preset, bits).preset, bits, seed)
                if ckpt.exists():
                    raise CLIError(f"{ckpt} holds an earlier run that this one would "
                                   "overwrite; pass --resume to continue (or just evaluate) "
                                   "it, or another --out / --ckpt-dir for a new run, or "
                                   "delete the file")
    per_seed_split = data.name == "cub10"
    for bits in args.bits:
        for seed in seeds:
            if per_seed_split:  # CUB-10 has no official split: seed s draws split s
                data = load("cub10", root=args.root, split_seed=seed)
                if seed != 0:
                    print(data.summary())
            if args.baseline:  # shrinkage chosen on validation pairs, then test scores
                sc = cca_itq_scores(data, bits, seed=seed)
                rows.append({"dataset": data.name, "synthetic": data.synthetic, "bits": bits,
                             "preset": "cca_itq", "seed": seed, **sc, **prov})
            cfg = get_preset(args.preset, bits)
            if args.rounds is not None:
                cfg = cfg.replace(rounds=args.rounds)
            cfg = cfg.replace(**args.overrides)  # --set FIELD=VALUE
            print(cfg, flush=True)
            ckpt = _ckpt_path(args, out, cfg.preset, bits, seed)
            # LogTestMAP at round 0: the pretrained D's test MAP, reported next to the
            # selected D's (never used for selection)
            cbs = [Checkpoint(ckpt, every=args.checkpoint_every)] if lead else []
            cbs.append(LogTestMAP(rounds=[0]))
            if args.verbose:
                cbs.append(PrintLogger())
            t0, before = time.perf_counter(), None
            if args.resume and ckpt.exists():
                trainer = cls.resume(ckpt, data, device=device, callbacks=cbs,
                                     progress=lead and not args.no_progress)
                _same_config(trainer.cfg, cfg, ckpt)
                print(f"resumed {ckpt} at round {trainer.round}")
                before = (trainer.round, _earlier_seconds(earlier, data.name, trainer.cfg.preset,
                                                          bits, seed))
            else:
                if args.resume:
                    print(f"no checkpoint {ckpt} to resume from; training from the start")
                trainer = cls(cfg, data, seed=seed, device=device, callbacks=cbs,
                              progress=lead and not args.no_progress)
            trainer.fit(time_limit=args.time_limit)
            secs = time.perf_counter() - t0
            if before is not None and before[1] is not None:  # the run's time, not this call's
                secs = before[1] + (secs if trainer.round > before[0] else 0.0)
            codes = trainer.codes("best")
            sc = retrieval_scores(codes["img"], codes["txt"], data)
            r0 = next((h for h in trainer.history if h.get("round") == 0), {})
            # trainer.cfg: a resumed run goes on with the checkpoint's configuration
            rows.append({"dataset": data.name, "synthetic": data.synthetic, "bits": bits,
                         "preset": trainer.cfg.preset, "seed": seed, **sc,
                         "train_seconds": secs, "rounds_done": trainer.round,
                         "best_round": trainer.best_round, "val_map": trainer.best_score,
                         "pretrained_map_i2t": r0.get("test_map_i2t"),
                         "pretrained_map_t2i": r0.get("test_map_t2i"),
                         "checkpoint": str(ckpt) if args.ckpt_dir else ckpt.name,
                         "config": trainer.cfg.to_dict(), **prov})
            print(format_table(rows[-2:] if args.baseline else rows[-1:]), flush=True)
            if lead:  # rewritten after each run; every row carries its provenance record
                atomic_write_text(out / "results.json", results_text(_merge(earlier, rows)))
    print()
    if data.synthetic:
        print("NOTE: all results below are on SYNTHETIC data.")
    print(format_table(rows))
    if len(seeds) > 1:
        print()
        print(summarize(rows))
    print(f"\nwrote {out / 'results.json'}")
    return 0


def _ckpt_path(args: argparse.Namespace, out: Path, preset: str, bits: int, seed: int) -> Path:
    return Path(args.ckpt_dir or out) / f"ugach_{preset}_{bits}b_seed{seed}.pt"


def _key(row: dict[str, Any]) -> tuple:
    return row.get("dataset"), row.get("preset"), row.get("bits"), row.get("seed")


def _earlier_seconds(earlier: list[dict[str, Any]], *key: Any) -> float | None:
    """``train_seconds`` of the earlier row of this run, if results.json has one: a resumed
    run reports the time it trained in all, and a re-evaluated finished one keeps it."""
    row = next((r for r in earlier if _key(r) == key), None)
    return float(row["train_seconds"]) if row and row.get("train_seconds") is not None else None


def _earlier_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of an earlier results.json in ``--out``, kept next to this run's."""
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        rows = None
    if not (isinstance(rows, list) and all(isinstance(r, dict) for r in rows)):
        raise CLIError(f"{path} is not a results file of this command (a JSON list of rows); "
                       "move it away or pass another --out")
    return rows


def _merge(earlier: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``earlier`` rows, less those this run redid (same data set, method, bits and seed),
    then this run's rows."""
    redone = {_key(r) for r in rows}
    return [r for r in earlier if _key(r) not in redone] + rows


def cmd_evaluate(args: argparse.Namespace) -> int:
    data = load(args.data, root=args.root, synthetic_ok=args.synthetic_ok)
    print(data.summary())
    model = load_discriminator(args.checkpoint, data, bits=args.bits, device=args.device)
    codes = {m: encode(model, data.img if m == "img" else data.txt, m) for m in ("img", "txt")}
    sc = retrieval_scores(codes["img"], codes["txt"], data, topk=args.topk)
    tag = " (SYNTHETIC data)" if data.synthetic else ""
    for k, v in sc.items():
        print(f"{k:<12} {v:.4f}{tag}")
    if args.json:
        print(json.dumps({"dataset": data.name, "bits": model.bits, **sc}))
    return 0


def cmd_graph(args: argparse.Namespace) -> int:
    data = load(args.data, root=args.root, synthetic_ok=args.synthetic_ok)
    print(data.summary())
    tr = data.train_idx
    for flag, k in (("--k-img", args.k_img), ("--k-txt", args.k_txt)):
        if k > len(tr):  # the one check that needs the data
            raise CLIError(f"{flag} {k}: {data.name} has only {len(tr)} training pairs to take "
                           f"neighbours from; pass {flag} {len(tr)} or less")
    t0 = time.perf_counter()
    nb = manifold_neighbors(data.img[tr], data.txt[tr], args.k_img, args.k_txt, args.metric,
                            device=get_device(args.device))
    secs = time.perf_counter() - t0
    st = graph_stats(nb, data.labels[tr])
    print(f"graph: {args.k_img} image + {args.k_txt} text neighbours ({args.metric}) on "
          f"{len(tr)} training pairs, built in {secs:.2f} s")
    for k, v in st.as_dict().items():
        print(f"  {k:<26} {v:.4f}" if isinstance(v, float) else f"  {k:<26} {v}")
    if args.save:
        path = Path(args.save)
        path = path if path.suffix == ".npy" else path.with_name(path.name + ".npy")

        def write(tmp: str) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.save adds no suffix
                np.save(fh, nb)

        atomic_write(path, write)
        print(f"saved neighbour list {nb.shape} to {path}")
    return 0


def _prepare_wikipedia(root: Path, download: bool, progress: bool) -> int:
    """Wikipedia needs no feature extraction: fetch (or find) the release files, load, report."""
    from .data.download import REMOTES, download_all, offline_message
    from .data.wikipedia import find_wikipedia, load_wikipedia

    folder = root / "wikipedia"
    if find_wikipedia(root) is None:
        if not download:
            raise CLIError(f"Wikipedia files not found under {root}; run again with --download, "
                           f"or put the files listed below in {folder}",
                           detail=offline_message(REMOTES["wikipedia"], folder))
        download_all("wikipedia", folder, progress=progress)
    print(load_wikipedia(find_wikipedia(root) or folder).summary())
    return 0


def _prepare_cub10(root: Path, download: bool, progress: bool) -> int:
    """CUB-10 needs no feature extraction: fetch (or find) its one file, load, report."""
    from .data.cub10 import FILE, find_cub10, load_cub10
    from .data.download import REMOTES, download_all, offline_message

    folder = root / "cub10"
    if find_cub10(root) is None:
        if not download:
            raise CLIError(f"CUB-10 file {FILE} not found under {root}; run again with "
                           f"--download, or put the file listed below in {folder}",
                           detail=offline_message(REMOTES["cub10"], folder))
        download_all("cub10", folder, progress=progress)
    print(load_cub10(find_cub10(root) or folder).summary())
    return 0


def cmd_data_prepare(args: argparse.Namespace) -> int:
    """Build a data set's feature cache from its official release (optionally downloading it)."""
    from .data import mirflickr, nuswide
    from .data.download import REMOTES, download_all, offline_message
    from .data.mirflickr import (find_raw, load_mirflickr, mirflickr_folder, missing_archives,
                                 prepare_mirflickr)
    from .data.nuswide import find_official, load_nuswide, nuswide_folder, prepare_nuswide

    root = data_root(args.root)
    if args.name == "wikipedia":
        return _prepare_wikipedia(root, args.download, not args.no_progress)
    if args.name == "cub10":
        return _prepare_cub10(root, args.download, not args.no_progress)
    module = mirflickr if args.name == "mirflickr25k" else nuswide
    # a cache that is already there needs neither the release files nor a download
    cached = module.cache_path(root, args.extractor).is_file() and not args.force
    if cached:
        prepare, loader = ((prepare_mirflickr, load_mirflickr) if module is mirflickr
                           else (prepare_nuswide, load_nuswide))
    elif args.name == "mirflickr25k":
        folder = mirflickr_folder(root)
        try:
            find_raw(root)
        except FileNotFoundError as e:
            if not args.download:
                raise CLIError(str(e), detail=offline_message(REMOTES["mirflickr25k"], folder))
            need = missing_archives(root)
            print(f"downloading {', '.join(need)} into {folder}", flush=True)
            download_all("mirflickr25k", folder, progress=not args.no_progress, only=need)
        prepare, loader = prepare_mirflickr, load_mirflickr
    else:
        if args.download:
            raise CLIError("NUS-WIDE cannot be downloaded automatically (the images are given "
                           "out by its authors on request); put the official files in "
                           f"{nuswide_folder(root)} and run again without --download")
        find_official(root)
        prepare, loader = prepare_nuswide, load_nuswide
    # missing or damaged release files, a damaged cache, an unknown extractor: main() reports
    path = prepare(root, extractor=args.extractor, batch_size=args.batch_size,
                   device=args.device, num_workers=args.workers,
                   progress=not args.no_progress, force=args.force)
    print(loader(root, features=args.extractor).summary())
    print(f"wrote {path}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with the command line's one-line errors (its own print usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m ugach_core",
        description="UGACH (Unsupervised Generative Adversarial Cross-modal Hashing): train, "
                    "evaluate and inspect correlation graphs.",
        epilog="Data: --data wikipedia | cub10 | mirflickr25k | nuswide | synthetic | auto | "
               "PATH.npz; "
               "the data root is --root, else $UGACH_DATA, else ~/.cache/ugach. UGACH_SMOKE=1 "
               "shrinks every preset. Errors: one line on stderr, exit code 2.")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data", default="auto", help="data set name or .npz path (default: "
                        "auto = wikipedia if found, else synthetic)")
        sp.add_argument("--root", default=None, help=f"data root (default: {data_root()})")
        sp.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if "
                        "available)")
        sp.add_argument("--synthetic-ok", action="store_true",
                        help="where a registered data set (mirflickr25k) is missing, use its "
                             "SYNTHETIC stand-in with the same shapes instead of stopping")

    t = sub.add_parser("train", help="train and evaluate UGACH for each code length",
                       description="Train UGACH at each code length (and seed), print MAP@all "
                                   "and MAP@50 in both directions, write OUT/results.json.")
    common(t)
    t.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64, 128],
                   help="code lengths l to train (default: 16 32 64 128)")
    t.add_argument("--preset", choices=PRESETS, default="tuned",
                   help="paper = the authors' code, paper_text = the paper's formulas, fast = "
                        "batched training, tuned = fast with the rounds chapter 10's study "
                        "chose on validation, smoke = seconds on a CPU (default: tuned)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    t.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="several seeds (overrides --seed); prints mean +- std. CUB-10 has no "
                        "official split: seed s also draws the split (split_seed=s)")
    t.add_argument("--rounds", type=int, default=None, help="override the preset's rounds")
    t.add_argument("--set", dest="set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change one field of the preset's configuration, e.g. --set "
                        "negatives=random --set d_lr=1e-3 (repeatable)")
    t.add_argument("--out", default="runs/ugach", help="output folder (default: runs/ugach)")
    t.add_argument("--baseline", action="store_true", help="also fit CCA-ITQ in the same harness")
    t.add_argument("--resume", action="store_true", help="continue from checkpoints in --out")
    t.add_argument("--checkpoint-every", type=int, default=1)
    t.add_argument("--ckpt-dir", default=None, help="where checkpoints go (default: --out)")
    t.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="stop each training after the round that ends past this budget "
                        "(results record rounds_done)")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("-v", "--verbose", action="store_true", help="print a line per round")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="evaluate a checkpoint's discriminator codes")
    common(e)
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--bits", type=int, default=None, help="expected code length (checked)")
    e.add_argument("--topk", type=int, default=50)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)

    g = sub.add_parser("graph", help="build the kNN correlation graph and print its statistics")
    common(g)
    g.add_argument("--k-img", type=int, default=5)
    g.add_argument("--k-txt", type=int, default=5)
    g.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean")
    g.add_argument("--save", default=None, help="save the neighbour list as .npy")
    g.set_defaults(func=cmd_graph)

    d = sub.add_parser("data", help="prepare data sets from their official releases")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    dp = dsub.add_parser(
        "prepare", help="fetch Wikipedia or CUB-10, or build the feature cache of mirflickr25k "
                        "or nuswide",
        description="wikipedia, cub10: their releases ship features; fetch them (--download) "
                    "or find them under <root>/<name>/, then load and summarise. "
                    "mirflickr25k, nuswide: build <root>/<name>/<name>_<extractor>.npz from the "
                    "official release: labels, tag vectors and VGG19 fc7 image features (needs "
                    "torchvision; a GPU when there is one); an interrupted build resumes where "
                    "it stopped. The options from --batch-size on apply to this build only.")
    dp.add_argument("name", choices=("wikipedia", "cub10", "mirflickr25k", "nuswide"))
    dp.add_argument("--root", default=None, help=f"data root (default: {data_root()})")
    dp.add_argument("--download", action="store_true",
                    help="download the release files first (Wikipedia, CUB-10 and MIRFlickr; "
                         "resumable, md5-checked; NUS-WIDE's images are given out on request)")
    dp.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    dp.add_argument("--device", default=None, help="cpu, cuda (default: cuda if available)")
    dp.add_argument("--workers", type=int, default=2,
                    help="image-decoding worker processes (default: 2)")
    dp.add_argument("--extractor", default="vgg19_fc7", help="feature extractor (default: "
                    "vgg19_fc7)")
    dp.add_argument("--force", action="store_true",
                    help="re-extract the features even if the cache is valid")
    dp.add_argument("--no-progress", action="store_true")
    dp.set_defaults(func=cmd_data_prepare)
    return p


# ----------------------------------------------------------------------------- errors
def _same_config(resumed: Any, asked: Any, ckpt: Path) -> None:
    """A resumed run must go on with the configuration this command asks for."""
    a, b = resumed.to_dict(), asked.to_dict()
    diff = [f"{k}={a[k]!r} (asked: {b[k]!r})" for k in a if k != "extra" and a[k] != b.get(k)]
    if diff:
        sets = " ".join(f"--set {k}={a[k]}" for k in a
                        if k not in ("extra", "preset", "bits") and a[k] != b.get(k))
        raise CLIError(f"{ckpt} holds a run with {', '.join(diff)}; to finish that run, "
                       f"drop the options (or the UGACH_SMOKE setting) that differ, or pass "
                       f"{sets or 'the same options'}; or drop --resume (or pass another "
                       "--out / --ckpt-dir) to start a new one")


def _device(name: str | None) -> torch.device | None:
    """``--device`` checked against this machine (``None``: the library picks)."""
    if name is None:
        return None
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise CLIError(f"--device {name!r} is not a device name; use cpu, cuda or cuda:N "
                       "(N = the GPU's index)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "torch was built without CUDA" if torch.version.cuda is None else \
                "torch sees no GPU"
            raise CLIError(f"--device {name}: this machine has no CUDA device ({why}); use "
                           "--device cpu, or leave --device out to use a GPU only when there "
                           "is one")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise CLIError(f"--device {name}: this machine has {n} CUDA device"
                           f"{'s' if n != 1 else ''} (cuda:0 to cuda:{n - 1}); pass one of "
                           "those")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise CLIError(f"--device {name}: MPS is not available on this machine; use "
                           "--device cpu")
    elif dev.type != "cpu":
        raise CLIError(f"--device {name}: only cpu, cuda and mps are supported; use one of "
                       "those")
    return dev


def _writable_folder(path: str, flag: str) -> None:
    """Create ``path`` (an output folder) or say why it cannot be one."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CLIError(f"{flag} {p} is a file, not a folder; pass {flag} a folder you can "
                       "write to")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CLIError(f"{flag} {p}: cannot create this folder ({e.strerror}); pass {flag} a "
                       "folder you can write to") from None


def _overrides(items: list[str]) -> dict[str, Any]:
    """``--set FIELD=VALUE`` items as config fields, each value of its field's type."""
    default, out = UGACHConfig(), {}
    fields = [k for k in default.to_dict() if k not in ("preset", "bits", "extra")]
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or key not in fields:
            raise CLIError(f"--set {item}: expected FIELD=VALUE with FIELD one of "
                           f"{', '.join(fields)} (--bits and --preset have their own flags)")
        kind = type(getattr(default, key))
        booleans = {"true": True, "1": True, "false": False, "0": False}
        if kind is bool and raw.lower() not in booleans:
            raise CLIError(f"--set {item}: use true or false")
        try:
            value = booleans[raw.lower()] if kind is bool else kind(raw)
            default.replace(**{key: value})  # the config's own checks
        except ValueError as e:
            raise CLIError(f"--set {item}: {e}") from None
        out[key] = value
    return out


def check_args(args: argparse.Namespace) -> None:
    """Every check of the arguments that argparse cannot make, in one place, before any work.

    Raises :class:`CLIError` (what is wrong, what to do); turns ``args.device`` into a
    checked :class:`torch.device`."""
    lo, hi = VALID_BITS_RANGE
    bits = getattr(args, "bits", None)
    for b in (bits if isinstance(bits, list) else [bits] if bits is not None else []):
        if not lo <= b <= hi:
            raise CLIError(f"--bits {b} is out of range: a code length is an integer in "
                           f"[{lo}, {hi}]; pass e.g. --bits 16 32 64 128")
    positive = {"rounds": (0, "the number of adversarial rounds, >= 0 (0 = the pretrained "
                              "discriminator only)"),
                "checkpoint_every": (1, "the rounds between checkpoints, must be >= 1"),
                "topk": (1, "the ranks MAP@k looks at, must be >= 1"),
                "k_img": (0, "image-space neighbours per item, must be >= 0"),
                "k_txt": (0, "text-space neighbours per item, must be >= 0")}
    for name, (least, what) in positive.items():
        v = getattr(args, name, None)
        if v is not None and v < least:
            flag = "--" + name.replace("_", "-")
            raise CLIError(f"{flag} {v}: {what}; pass {flag} {least} or more")
    for seed in (getattr(args, "seeds", None) or [getattr(args, "seed", 0)]):
        if not 0 <= seed < 2**63:
            flag = "--seeds" if getattr(args, "seeds", None) else "--seed"
            raise CLIError(f"{flag} {seed}: a seed is an integer in [0, 2^63); pass e.g. "
                           f"{flag} 0")
    if getattr(args, "k_img", None) == 0 and getattr(args, "k_txt", None) == 0:
        raise CLIError("--k-img 0 --k-txt 0: the graph needs at least one neighbour per item; "
                       "pass --k-img or --k-txt of 1 or more")
    args.overrides = _overrides(getattr(args, "set", None) or [])
    t = getattr(args, "time_limit", None)
    if t is not None and not t > 0:
        raise CLIError(f"--time-limit {t:g} must be positive (seconds of training per run); "
                       "leave it out to run every round")
    root = getattr(args, "root", None)
    if root is not None and Path(root).expanduser().is_file():
        raise CLIError(f"--root {root} is a file, not a folder; point --root at the folder "
                       "that holds the data sets (wikipedia/, mirflickr25k/, ...)")
    data = getattr(args, "data", None)
    if data is not None and data.lower() not in (*LOADERS, "auto"):
        p = Path(data).expanduser()
        if (p.suffix == ".npz" or len(p.parts) > 1) and not p.is_file():
            raise CLIError(f"--data {data}: no such file; pass an .npz file with img, txt and "
                           f"labels arrays, or a data set name ({', '.join(sorted(LOADERS))} "
                           "or auto)")
    ckpt = getattr(args, "checkpoint", None)
    if ckpt is not None:
        if Path(ckpt).is_dir():
            raise CLIError(f"--checkpoint {ckpt} is a folder; pass the .pt file in it that "
                           "`python -m ugach_core train` wrote (ugach_<preset>_<bits>b_seed"
                           "<seed>.pt)")
        if not Path(ckpt).exists():
            raise CLIError(f"--checkpoint {ckpt} does not exist; pass a .pt file that "
                           "`python -m ugach_core train` wrote (into its --out or --ckpt-dir)")
    save = getattr(args, "save", None)
    if save is not None:
        p = Path(save)
        if p.is_dir():
            raise CLIError(f"--save {save} is a folder; pass a file name, e.g. "
                           f"{p / 'graph.npy'}")
        if not p.parent.is_dir():
            raise CLIError(f"--save {save}: its folder {p.parent} does not exist; create it "
                           "or pass another path")
    if hasattr(args, "device"):
        args.device = _device(args.device)
    if args.cmd == "train":
        _writable_folder(args.out, "--out")
        if args.ckpt_dir is not None:
            _writable_folder(args.ckpt_dir, "--ckpt-dir")


#: what to do about a checkpoint that cannot be used, by command
_CHECKPOINT_HINT = {
    "evaluate": "pass --checkpoint a .pt file that `python -m ugach_core train` wrote for "
                "this data set",
    "train": "this is the checkpoint --resume found: pass the --out / --ckpt-dir of the run "
             "you meant, or drop --resume to start afresh",
}


def _message(e: BaseException, cmd: str) -> str:
    """One line for a user error: the library's message (with a hint where it has none)."""
    if isinstance(e, OSError) and e.strerror and e.filename:  # a raw error from the system
        return f"{e.strerror}: {e.filename}; check the path, its permissions and the free " \
               "disk space"
    msg = " ".join(str(e).split())  # one line
    if isinstance(e, CheckpointError) and cmd in _CHECKPOINT_HINT:
        msg = f"{msg.rstrip('.')}; {_CHECKPOINT_HINT[cmd]}"
    return msg


#: the errors that mean a wrong input (or a run the inputs make diverge), not a bug:
#: reported in one line, exit code 2
USER_ERRORS = (CLIError, CheckpointError, DivergenceError, DownloadError, ValueError, OSError,
               ImportError)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, check it, run the command.  Exit code 0, or 2 with one line
    ``error: ...`` on stderr for a wrong argument or input (argparse's own errors exit with
    2 too); an unexpected exception (a bug) keeps its traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.command = shlex.join(["python", "-m", "ugach_core", *argv])
    try:
        check_args(args)
        return args.func(args)
    except USER_ERRORS as e:
        print(f"error: {_message(e, args.cmd)}", file=sys.stderr)
        if isinstance(e, CLIError) and e.detail:
            print(e.detail, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = "; every checkpoint on disk is whole (written atomically): run the same " \
            "command with --resume to continue" if args.cmd == "train" else ""
        print(f"\ninterrupted{hint}", file=sys.stderr)
        return 130
