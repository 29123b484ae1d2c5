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
