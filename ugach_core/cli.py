"""Command line: ``python -m ugach_core {train,evaluate,graph,data} ...`` (see ``--help``)."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from . import __version__
from .baselines import fit_cca_itq
from .callbacks import Checkpoint, PrintLogger
from .config import PRESETS, get_preset, smoke_mode
from .data import data_root, load
from .evaluation import retrieval_scores
from .graph import graph_stats, manifold_neighbors
from .retrieval import encode
from .train import CheckpointError, Trainer, load_discriminator
from .utils import atomic_write_text, get_device


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(device: torch.device) -> dict[str, Any]:
    """Where a result came from: library version, commit, date, hardware."""
    hw = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() \
        or platform.machine()
    return {"version": __version__, "commit": _git_commit(),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "device": str(device), "hardware": hw, "torch": torch.__version__,
            "smoke": smoke_mode()}


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table of MAP@all and MAP@50, one line per (method, bits, seed)."""
    head = f"{'dataset':<22} {'method':<10} {'bits':>4} {'seed':>4} " \
           f"{'MAP I->T':>9} {'MAP T->I':>9} {'@50 I->T':>9} {'@50 T->I':>9} {'train s':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['dataset']:<22} {r['preset']:<10} {r['bits']:>4} {r['seed']:>4} "
                     f"{r['map_i2t']:>9.4f} {r['map_t2i']:>9.4f} {r['map50_i2t']:>9.4f} "
                     f"{r['map50_t2i']:>9.4f} {r['train_seconds']:>8.1f}")
    return "\n".join(lines)


def summarize(rows: list[dict[str, Any]]) -> str:
    """Mean and std of MAP@all over seeds, per method and code length."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["preset"], r["bits"]), []).append(r)
    lines = [f"{'method':<10} {'bits':>4} {'seeds':>5} {'MAP I->T (mean+-std)':>22} "
             f"{'MAP T->I (mean+-std)':>22}"]
    for (preset, bits), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        a = np.array([[r["map_i2t"], r["map_t2i"]] for r in rs])
        lines.append(f"{preset:<10} {bits:>4} {len(rs):>5} "
                     f"{a[:, 0].mean():>14.4f} +- {a[:, 0].std():.4f} "
                     f"{a[:, 1].mean():>14.4f} +- {a[:, 1].std():.4f}")
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    data = load(args.data, root=args.root, synthetic_ok=args.synthetic_ok)
    print(data.summary())
    device = get_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance(device)
    rows: list[dict[str, Any]] = []
    seeds = args.seeds if args.seeds else [args.seed]
    for bits in args.bits:
        for seed in seeds:
            if args.baseline:
                t0 = time.perf_counter()
                m = fit_cca_itq(data.img[data.train_idx], data.txt[data.train_idx], bits, seed=seed)
                secs = time.perf_counter() - t0
                sc = retrieval_scores(m.encode(data.img, "img"), m.encode(data.txt, "txt"), data)
                rows.append({"dataset": data.name, "synthetic": data.synthetic, "bits": bits,
                             "preset": "cca_itq", "seed": seed, **sc, "train_seconds": secs,
                             **prov})
            cfg = get_preset(args.preset, bits)
            if args.rounds is not None:
                cfg = cfg.replace(rounds=args.rounds)
            print(cfg, flush=True)
            ckpt = Path(args.ckpt_dir or out) / f"ugach_{cfg.preset}_{bits}b_seed{seed}.pt"
            cbs = [Checkpoint(ckpt, every=args.checkpoint_every)]
            if args.verbose:
                cbs.append(PrintLogger())
            t0 = time.perf_counter()
            if args.resume and ckpt.exists():
                trainer = Trainer.resume(ckpt, data, device=device, callbacks=cbs,
                                         progress=not args.no_progress)
                print(f"resumed {ckpt} at round {trainer.round}")
            else:
                trainer = Trainer(cfg, data, seed=seed, device=device, callbacks=cbs,
                                  progress=not args.no_progress)
            trainer.fit(time_limit=args.time_limit)
            secs = time.perf_counter() - t0
            codes = trainer.codes("best")
            sc = retrieval_scores(codes["img"], codes["txt"], data)
            rows.append({"dataset": data.name, "synthetic": data.synthetic, "bits": bits,
                         "preset": cfg.preset, "seed": seed, **sc, "train_seconds": secs,
                         "rounds_done": trainer.round, "best_round": trainer.best_round, "val_map": trainer.best_score,
                         "checkpoint": str(ckpt) if args.ckpt_dir else ckpt.name, "config": cfg.to_dict(), **prov})
            print(format_table(rows[-2:] if args.baseline else rows[-1:]), flush=True)
            atomic_write_text(out / "results.json", json.dumps(rows, indent=1, default=float))
    print()
    if data.synthetic:
        print("NOTE: all results below are on SYNTHETIC data.")
    print(format_table(rows))
    if len(seeds) > 1:
        print()
        print(summarize(rows))
    print(f"\nwrote {out / 'results.json'}")
    return 0


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
        np.save(args.save, nb)
        print(f"saved neighbour list {nb.shape} to {args.save}")
    return 0


def _prepare_wikipedia(root: Path, download: bool, progress: bool) -> int:
    """Wikipedia needs no feature extraction: fetch (or find) the release files, load, report."""
    from .data.download import REMOTES, DownloadError, download_all, offline_message
    from .data.wikipedia import find_wikipedia, load_wikipedia

    folder = root / "wikipedia"
    if find_wikipedia(root) is None:
        if not download:
            print(f"error: Wikipedia files not found under {root}.\n"
                  f"{offline_message(REMOTES['wikipedia'], folder)}\n"
                  "or run again with --download.", file=sys.stderr)
            return 2
        try:
            download_all("wikipedia", folder, progress=progress)
        except DownloadError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    print(load_wikipedia(find_wikipedia(root) or folder).summary())
    return 0


def cmd_data_prepare(args: argparse.Namespace) -> int:
    """Build a data set's feature cache from its official release (optionally downloading it)."""
    from .data.download import REMOTES, DownloadError, download_all, offline_message
    from .data import mirflickr, nuswide
    from .data.mirflickr import (find_raw, load_mirflickr, mirflickr_folder, missing_archives,
                                 prepare_mirflickr)
    from .data.nuswide import find_official, load_nuswide, nuswide_folder, prepare_nuswide

    root = data_root(args.root)
    if args.name == "wikipedia":
        return _prepare_wikipedia(root, args.download, not args.no_progress)
    module = mirflickr if args.name == "mirflickr25k" else nuswide
    # a cache that is already there needs neither the release files nor a download
    cached = module.cache_path(root, args.extractor).is_file() and not args.force
    try:
        if cached:
            prepare, loader = ((prepare_mirflickr, load_mirflickr) if module is mirflickr
                               else (prepare_nuswide, load_nuswide))
        elif args.name == "mirflickr25k":
            folder = mirflickr_folder(root)
            try:
                find_raw(root)
            except FileNotFoundError as e:
                if not args.download:
                    print(f"error: {e}\n{offline_message(REMOTES['mirflickr25k'], folder)}",
                          file=sys.stderr)
                    return 2
                need = missing_archives(root)
                print(f"downloading {', '.join(need)} into {folder}", flush=True)
                download_all("mirflickr25k", folder, progress=not args.no_progress, only=need)
            prepare, loader = prepare_mirflickr, load_mirflickr
        else:
            if args.download:
                print("error: NUS-WIDE cannot be downloaded automatically (the images are given "
                      "out by its authors on request). Put the official files in "
                      f"{nuswide_folder(root)} and run again without --download.",
                      file=sys.stderr)
                return 2
            find_official(root)
            prepare, loader = prepare_nuswide, load_nuswide
        path = prepare(root, extractor=args.extractor, batch_size=args.batch_size,
                       device=args.device, num_workers=args.workers,
                       progress=not args.no_progress, force=args.force)
    except (DownloadError, ImportError, FileNotFoundError, ValueError) as e:
        # missing or damaged release files, a damaged cache, an unknown extractor
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(loader(root, features=args.extractor).summary())
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ugach_core",
        description="UGACH (Unsupervised Generative Adversarial Cross-modal Hashing): train, "
                    "evaluate and inspect correlation graphs.",
        epilog="Data: --data wikipedia | mirflickr25k | nuswide | synthetic | auto | PATH.npz; the data root is --root, "
               "else $UGACH_DATA, else ~/.cache/ugach. UGACH_SMOKE=1 shrinks every preset.")
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
    t.add_argument("--preset", choices=PRESETS, default="fast",
                   help="paper = the authors' code, paper_text = the paper's formulas, fast = "
                        "batched training, smoke = seconds on a CPU (default: fast)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    t.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="several seeds (overrides --seed); prints mean +- std")
    t.add_argument("--rounds", type=int, default=None, help="override the preset's rounds")
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
        "prepare", help="fetch Wikipedia, or build the feature cache of mirflickr25k or nuswide",
        description="Build <root>/<name>/<name>_<extractor>.npz from the official release: "
                    "labels, tag vectors and VGG19 fc7 image features (needs torchvision; a GPU "
                    "when there is one). An interrupted run resumes where it stopped.")
    dp.add_argument("name", choices=("wikipedia", "mirflickr25k", "nuswide"))
    dp.add_argument("--root", default=None, help=f"data root (default: {data_root()})")
    dp.add_argument("--download", action="store_true",
                    help="download the release files first (Wikipedia and MIRFlickr; resumable, "
                         "md5-checked)")
    dp.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    dp.add_argument("--device", default=None, help="cpu, cuda (default: cuda if available)")
    dp.add_argument("--workers", type=int, default=2,
                    help="image-decoding worker processes (default: 2)")
    dp.add_argument("--extractor", default="vgg19_fc7", help="feature extractor (default: "
                    "vgg19_fc7)")
    dp.add_argument("--force", action="store_true", help="rebuild even if the cache is valid")
    dp.add_argument("--no-progress", action="store_true")
    dp.set_defaults(func=cmd_data_prepare)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
