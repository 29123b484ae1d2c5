"""A deterministic synthetic cross-modal set: paired features sharing a latent multi-label
structure.  Everything computed on it is named "synthetic"."""

from __future__ import annotations

import numpy as np

from .dataset import CrossModalDataset, default_split


def make_synthetic(n: int = 3000, d_img: int = 128, d_txt: int = 32, n_classes: int = 10,
                   noise: float = 1.0, seed: int = 0) -> CrossModalDataset:
    """Pairs ``(x^I_i, x^T_i)`` generated from one latent code per pair.

    Each pair draws 1-3 labels; its latent vector is the mean of its label prototypes plus
    Gaussian noise; each modality is a fixed random non-linear map of that latent plus
    modality-specific noise (``noise`` scales it).  Text features are non-negative (like
    topic or tag weights).  Same arguments -> identical data.
    """
    rng = np.random.default_rng(seed)
    d_lat = 16
    protos = rng.normal(size=(n_classes, d_lat))
    n_lab = rng.choice([1, 2, 3], size=n, p=[0.5, 0.35, 0.15])
    labels = np.zeros((n, n_classes), dtype=np.uint8)
    pop = rng.dirichlet(np.ones(n_classes) * 2.0)  # unequal class frequencies
    for i in range(n):
        labels[i, rng.choice(n_classes, size=n_lab[i], replace=False, p=pop)] = 1
    z = labels @ protos / labels.sum(1, keepdims=True) + 0.5 * rng.normal(size=(n, d_lat))
    a_img = rng.normal(size=(d_lat, d_img)) / np.sqrt(d_lat)
    a_txt = rng.normal(size=(d_lat, d_txt)) / np.sqrt(d_lat)
    img = np.tanh(z @ a_img) + 0.3 * noise * rng.normal(size=(n, d_img))
    txt = np.log1p(np.exp(2 * (z @ a_txt))) + 0.3 * noise * np.abs(rng.normal(size=(n, d_txt)))
    train, query, db = default_split(n, seed=seed, n_query=max(1, n // 6))
    return CrossModalDataset(
        name="synthetic", img=img.astype(np.float32), txt=txt.astype(np.float32),
        labels=labels, train_idx=train, query_idx=query, db_idx=db,
        label_names=[f"concept{c}" for c in range(n_classes)], synthetic=True,
        protocol=f"synthetic: {len(query)} queries vs {len(db)} database pairs (seed {seed})",
        source=f"make_synthetic(n={n}, seed={seed})",
    )


def mirflickr_frequencies(root=None) -> tuple[np.ndarray, np.ndarray, int, str]:
    """``(label_counts (24,), tag_counts (1386,), n_pairs, source)`` of MIRFlickr-25K: from
    the real ``all_labels.txt`` / ``all_tags.txt`` / ``TagList.txt`` in ``root`` when they
    are there, else from the table stored in the package (computed from those files)."""
    from pathlib import Path

    if root is not None:
        folder = Path(root)
        if all((folder / f).is_file() for f in ("all_labels.txt", "all_tags.txt", "TagList.txt",
                                                 "all_imgs.txt")):
            from .mirflickr import read_text_side
            d = read_text_side(folder)
            return (d["labels"].sum(0).astype(np.int64), d["txt"].sum(0).astype(np.int64),
                    int(d["labels"].shape[0]), str(folder))
    from . import _mirflickr_stats as s
    return (np.array(s.LABEL_COUNTS, dtype=np.int64), np.array(s.TAG_COUNTS, dtype=np.int64),
            s.N_PAIRS, "ugach_core.data._mirflickr_stats")


def make_mirflickr_synthetic(n: int = 20015, d_img: int = 4096, seed: int = 0,
                             protocol: str = "ugach", root=None) -> CrossModalDataset:
    """A SYNTHETIC stand-in for MIRFlickr-25K: same shapes (``img (n, 4096)`` non-negative
    like ReLU'd fc7, ``txt (n, 1386)`` binary tags, ``labels (n, 24)`` multi-hot) and label
    and tag frequencies like the real set (:func:`mirflickr_frequencies`).

    Labels: independent Bernoulli draws with the real label frequencies ``p_c``; a pair with
    none gets one label drawn with probability proportional to ``p_c``.  Tags: each tag
    ``t`` has a home label ``c(t)`` (drawn proportional to ``p_c``); with real tag frequency
    ``f_t``, ``P(x_t = 1 | y) = q_in`` if ``y_{c(t)} = 1`` else ``q_out``, where
    ``q_in = min(0.9, 0.6 f_t / p_{c(t)})`` and ``q_out`` makes the marginal equal ``f_t``;
    a pair with no tag gets one drawn proportional to ``f_t``.  Images: unit ``j`` responds
    to one label ``c(j)`` (like a concept detector in fc7),
    ``x^I_{kj} = relu(a_j y_{k c(j)} + e_{kj})`` with fixed ``a_j ~ U(1, 2)`` and noise
    ``e ~ U(-1, 1)``.
    Its name contains "synthetic"; nothing about it is real except the frequencies.
    """
    from .formats import MIRFLICKR_LABELS, mirflickr_split

    lab_c, tag_c, n_real, src = mirflickr_frequencies(root)
    p = lab_c / n_real                                   # p_c
    f = tag_c / n_real                                   # f_t
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, p.size)) < p).astype(np.uint8)
    none = np.flatnonzero(labels.sum(1) == 0)
    labels[none, rng.choice(p.size, size=none.size, p=p / p.sum())] = 1
    home = rng.choice(p.size, size=f.size, p=p / p.sum())         # c(t)
    q_in = np.minimum(0.9, 0.6 * f / p[home])
    q_out = np.clip((f - p[home] * q_in) / (1 - p[home]), 0.0, 1.0)
    q_in, q_out = q_in.astype(np.float32), q_out.astype(np.float32)
    txt = np.empty((n, f.size), dtype=np.uint8)
    for s in range(0, n, 4096):                          # blocks keep the uniforms small
        y = labels[s:s + 4096, home].view(bool)           # (b, 1386): y_{k, c(t)}
        u = rng.random(y.shape, dtype=np.float32)
        txt[s:s + 4096] = u < np.where(y, q_in, q_out)
    none = np.flatnonzero(txt.sum(1) == 0)
    txt[none, rng.choice(f.size, size=none.size, p=f / f.sum())] = 1
    unit = rng.integers(0, p.size, size=d_img)                   # c(j)
    amp = (1.0 + rng.random(d_img)).astype(np.float32)           # a_j
    img = rng.random((n, d_img), dtype=np.float32)       # e ~ U(-1, 1), built in place
    img *= 2.0
    img -= 1.0
    np.add(img, amp, out=img, where=labels[:, unit].view(bool))   # + a_j y_{k c(j)}
    np.maximum(img, 0.0, out=img)
    n_query = 2000 if n > 4000 else max(1, n // 10)
    n_train = min(15000, n - n_query)
    train, query, db = mirflickr_split(n, protocol, seed, n_query=n_query, n_train=n_train)
    return CrossModalDataset(
        name="mirflickr25k-synthetic", img=img, txt=txt.astype(np.float32), labels=labels,
        train_idx=train, query_idx=query, db_idx=db, label_names=list(MIRFLICKR_LABELS),
        synthetic=True,
        protocol=f"SYNTHETIC stand-in, {protocol} split (seed {seed}): {len(query)} queries, "
                 f"{len(db)} database pairs, {len(train)} training pairs",
        source=f"make_mirflickr_synthetic(n={n}, seed={seed}); frequencies from {src}")
