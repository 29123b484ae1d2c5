"""Checkpoints: read and check them, load the selected discriminator, fingerprint the data.

A checkpoint is the dict of :meth:`ugach_core.train.Trainer.state_dict`, written atomically
(temp file + rename) by :meth:`~ugach_core.train.Trainer.save_checkpoint`.  Every way a
file can be wrong (missing, corrupt, not ours, incomplete, other dims, other code length)
is a :class:`CheckpointError` that says what to do.  Chapter 7.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import UGACHConfig
from .model import Discriminator
from .utils import get_device

# keys a checkpoint needs to encode with its D, and to resume training
MODEL_KEYS = ("config", "dataset", "D")
RESUME_KEYS = ("config", "dataset", "D", "G", "seed", "round", "history", "fit_idx",
               "val_idx", "opt_pre", "opt_d", "opt_g", "rng", "best_state", "best_score",
               "best_round")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the data / code length given. Chapter 7."""


def data_fingerprint(data: Any) -> str:
    """SHA-256 (first 16 hex digits) of a data set's name, features and labels; for a
    :class:`~ugach_core.data.CrossModalDataset` or anything with ``img``, ``txt``,
    ``labels`` arrays. Chapter 7."""
    h = hashlib.sha256(str(getattr(data, "name", "")).encode())
    for name in ("img", "txt", "labels"):
        a = np.ascontiguousarray(getattr(data, name))
        h.update(f"{name}{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def read_checkpoint(path: str | Path, data: Any = None, resume: bool = False) -> dict[str, Any]:
    """Read and check a checkpoint; a clear :class:`CheckpointError` when it is missing,
    corrupt, not a UGACH checkpoint, incomplete (it lacks what encoding needs, or with
    ``resume=True`` what resuming needs), or made for other feature dimensions, or (with
    ``resume=True``) for other data (its fingerprint). Chapter 7."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({type(e).__name__}: "
                              f"{str(e)[:200]}); retrain or use an earlier checkpoint") from e
    if not isinstance(sd, dict) or sd.get("format") != "ugach-checkpoint":
        raise CheckpointError(f"{path} is not a UGACH checkpoint (no 'format' tag)")
    missing = sorted(k for k in (RESUME_KEYS if resume else MODEL_KEYS) if k not in sd)
    if missing:
        need = "resuming" if resume else "loading its discriminator"
        raise CheckpointError(
            f"checkpoint {path} lacks {missing}, which {need} needs: it is incomplete (cut "
            "short, or not written by Trainer.save_checkpoint). Use a complete checkpoint "
            "(an earlier one, e.g. Checkpoint(keep_all=True) files) or retrain")
    try:  # its parts must fit together: a config of valid fields, two feature dims
        UGACHConfig.from_dict(sd["config"])
        if len(sd["dataset"]["dims"]) != 2:
            raise ValueError(f"dims {sd['dataset']['dims']}")
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint {path} is damaged ({type(e).__name__}: {e}); "
                              "retrain or use an earlier checkpoint") from None
    if data is None:
        return sd
    if list(data.dims) != list(sd["dataset"]["dims"]):
        raise CheckpointError(
            f"checkpoint {path} was trained on features of dims {sd['dataset']['dims']} "
            f"({sd['dataset']['name']}); the data given has {list(data.dims)} ({data.name})")
    fp = sd["dataset"].get("fingerprint")  # absent in checkpoints of older versions
    if resume and fp is not None and fp != data_fingerprint(data):
        raise CheckpointError(
            f"{path} was trained on different data ({sd['dataset'].get('name')}, "
            f"fingerprint {fp}) than the data given ({data.name}, fingerprint "
            f"{data_fingerprint(data)}): same shape, other features or labels. Resume "
            "with the data it was trained on, or start a new run")
    return sd


def load_discriminator(path: str | Path, data: Any = None, bits: int | None = None,
                       device: str | torch.device | None = None) -> Discriminator:
    """The validation-selected D of a checkpoint (the last D if none was selected yet).

    ``bits``: when given, must match the checkpoint's code length. Chapter 7."""
    sd = read_checkpoint(path, data)
    cfg = UGACHConfig.from_dict(sd["config"])
    if bits is not None and bits != cfg.bits:
        raise CheckpointError(f"checkpoint {path} has {cfg.bits}-bit codes, not {bits}; pass "
                              f"--bits {cfg.bits} or pick the checkpoint of {bits} bits")
    d_img, d_txt = sd["dataset"]["dims"]
    model = Discriminator(d_img, d_txt, cfg.bits, cfg.hidden)
    try:
        model.load_state_dict(sd["best_state"] if sd.get("best_state") is not None else sd["D"])
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(f"checkpoint {path} is damaged: its weights do not fit its own "
                              f"config ({' '.join(str(e).split())[:200]}); retrain or use an "
                              "earlier checkpoint") from None
    return model.to(get_device(device))


__all__ = ["CheckpointError", "MODEL_KEYS", "RESUME_KEYS", "data_fingerprint",
           "load_discriminator", "read_checkpoint"]
