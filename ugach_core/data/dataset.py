"""The dataset object every loader returns."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import numpy as np

from ..utils import check_features


@dataclass
class CrossModalDataset:
    """Paired image/text features with multi-hot labels and a retrieval protocol.

    Row ``i`` of ``img`` and row ``i`` of ``txt`` are one pair.  Labels are used only for
    evaluation and model selection, never for training.

    Attributes: ``img (n, d_img)``, ``txt (n, d_txt)`` float32; ``labels (n, c)`` uint8
    multi-hot; ``train_idx`` (pairs used to train), ``query_idx`` and ``db_idx`` (the
    retrieval protocol); ``val_idx`` optional held-out training pairs for model selection
    (when empty, :meth:`split_validation` carves them from ``train_idx``).
    """

    name: str
    img: np.ndarray
    txt: np.ndarray
    labels: np.ndarray
    train_idx: np.ndarray
    query_idx: np.ndarray
    db_idx: np.ndarray
    val_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    label_names: list[str] | None = None
    synthetic: bool = False
    protocol: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        self.img = check_features(self.img, f"{self.name}: image features")
        self.txt = check_features(self.txt, f"{self.name}: text features")
        lab = np.asarray(self.labels)
        if lab.ndim != 2:
            raise ValueError(f"{self.name}: labels must be multi-hot (n, classes); got shape "
                             f"{lab.shape}" + (" - convert class ids with "
                                               "np.eye(n_classes)[ids]" if lab.ndim == 1 else ""))
        n = self.img.shape[0]
        if self.txt.shape[0] != n or lab.shape[0] != n:
            raise ValueError(
                f"{self.name}: row counts do not line up: {n} image rows, {self.txt.shape[0]} "
                f"text rows, {lab.shape[0]} label rows; every row must be one pair"
            )
        if not np.isin(lab, (0, 1)).all():
            raise ValueError(f"{self.name}: labels must be 0/1 multi-hot")
        self.labels = lab.astype(np.uint8)
        for nm in ("train_idx", "query_idx", "db_idx", "val_idx"):
            raw = np.asarray(getattr(self, nm))
            if raw.ndim != 1 or (raw.size and not np.issubdtype(raw.dtype, np.integer)):
                hint = " (a mask? pass np.flatnonzero(mask))" if raw.dtype == bool else ""
                raise ValueError(f"{self.name}: {nm} must be a 1-D array of integer row "
                                 f"indices, got shape {raw.shape} and dtype {raw.dtype}{hint}")
            idx = raw.astype(np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"{self.name}: {nm} has indices outside [0, {n})")
            if nm != "val_idx" and idx.size == 0:
                raise ValueError(f"{self.name}: {nm} is empty")
            repeats = idx.size - np.unique(idx).size
            if repeats:
                raise ValueError(f"{self.name}: {nm} lists {repeats} "
                                 "rows more than once; each row may appear once (np.unique)")
            setattr(self, nm, idx)
        self._check_protocol()
        if self.label_names is not None and len(self.label_names) != lab.shape[1]:
            raise ValueError(f"{self.name}: {len(self.label_names)} label names for "
                             f"{lab.shape[1]} label columns; pass one name per column")
        if self.synthetic and "synthetic" not in self.name:
            self.name = f"{self.name} (synthetic)"

    def _check_protocol(self) -> None:
        """Validation pairs are training pairs, never test queries; every query and database
        item has a label (MAP counts an unlabelled query as 0, such an item as never
        relevant)."""
        v = self.val_idx
        if v.size and not np.isin(v, self.train_idx).all():
            raise ValueError(f"{self.name}: val_idx must be a subset of train_idx (held-out "
                             "training pairs)")
        shared = int(np.isin(v, self.query_idx).sum())
        if shared:
            raise ValueError(f"{self.name}: val_idx shares {shared} rows with query_idx; "
                             "model selection must not see the test queries")
        if v.size and np.setdiff1d(self.train_idx, v).size < 2:
            raise ValueError(f"{self.name}: val_idx leaves fewer than 2 of the "
                             f"{self.train_idx.size} training pairs to train on")
        bare = {nm: int((~self.labels[getattr(self, nm)].any(1)).sum())
                for nm in ("query_idx", "db_idx")}
        if any(bare.values()):
            raise ValueError(
                f"{self.name}: {bare['query_idx']} query and {bare['db_idx']} database items "
                "have no label, so MAP would count them as never relevant; drop them from "
                "the query and database indices (idx = idx[labels[idx].any(1)]) or their rows "
                "from the data, as the MIRFlickr and NUS-WIDE protocols do")

    @property
    def n(self) -> int:
        return self.img.shape[0]

    @property
    def dims(self) -> tuple[int, int]:
        return self.img.shape[1], self.txt.shape[1]

    def split_validation(self, fraction: float = 0.1, seed: int = 0
                         ) -> tuple[np.ndarray, np.ndarray]:
        """``(fit_idx, val_idx)``: training pairs to fit on and held-out ones to select on.

        Uses ``val_idx`` when the protocol defines one; otherwise a seeded random
        ``fraction`` of ``train_idx`` (at least 1 item when ``fraction > 0``).  Test queries
        are never used for model selection.
        """
        if self.val_idx.size:
            fit = np.setdiff1d(self.train_idx, self.val_idx, assume_unique=False)
            return fit, self.val_idx
        if fraction <= 0:
            return self.train_idx, np.zeros(0, dtype=np.int64)
        rng = np.random.default_rng(seed)
        perm = rng.permutation(self.train_idx)
        nv = max(1, int(round(fraction * len(perm))))
        if nv >= len(perm):
            raise ValueError(f"validation fraction {fraction} leaves no training pairs")
        return np.sort(perm[nv:]), np.sort(perm[:nv])

    def summary(self, width: int = 88) -> str:
        """Name, sizes, split and protocol, in lines of at most ``width`` characters (the
        chapters' page; ``width=0``: one line)."""
        tag = " [SYNTHETIC DATA]" if self.synthetic else ""
        text = (f"{self.name}{tag}: {self.n} pairs, image {self.dims[0]}-d, text "
                f"{self.dims[1]}-d, {self.labels.shape[1]} labels; train {len(self.train_idx)}, "
                f"query {len(self.query_idx)}, database {len(self.db_idx)}"
                + (f"; protocol: {self.protocol}" if self.protocol else ""))
        return textwrap.fill(text, width, subsequent_indent="  ", break_long_words=False,
                             break_on_hyphens=False) if width else text

    def __repr__(self) -> str:
        return f"CrossModalDataset({self.summary(0)})"


def default_split(n: int, seed: int = 0, n_query: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded split: ``n_query`` queries (default 10% of n, at most 2,000), the rest is the
    database and the training set.  Returns ``(train_idx, query_idx, db_idx)``."""
    if n < 3:
        raise ValueError(f"need at least 3 pairs for a split, got {n}")
    nq = n_query if n_query is not None else min(2000, max(1, n // 10))
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    query, db = np.sort(perm[:nq]), np.sort(perm[nq:])
    return db.copy(), query, db
