"""CCA-ITQ: the classical unsupervised cross-modal hashing baseline, in the same harness.

1. CCA (scikit-learn) on the training pairs gives projections :math:`W_I, W_T` into a
   shared :math:`c`-dimensional space, :math:`c = \\min(l, d_I, d_T)`.
2. When the code is longer than the CCA space (:math:`l > c`, e.g. Wikipedia's 10-d text),
   both embeddings are lifted to :math:`l` dimensions by one fixed random Gaussian matrix
   (an LSH-style expansion); this choice is ours and documented here.
3. ITQ (Gong & Lazebnik, 2011) learns an orthogonal rotation :math:`R` minimising
   :math:`\\lVert B - V R \\rVert_F^2` over the stacked image and text embeddings :math:`V`
   (centred), alternating :math:`B = \\operatorname{sgn}(V R)` and the Procrustes solution
   :math:`R = U W^\\top` from :math:`\\operatorname{svd}(V^\\top B) = U \\Sigma W^\\top`.
4. Codes :math:`b = \\mathbb{1}[V R > 0]`; each modality is encoded separately.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cross_decomposition import CCA


def itq_rotation(v: np.ndarray, n_iter: int = 50, seed: int = 0) -> np.ndarray:
    """ITQ rotation ``R (c, c)`` for centred data ``v (n, c)``."""
    rng = np.random.default_rng(seed)
    r, _ = np.linalg.qr(rng.normal(size=(v.shape[1], v.shape[1])))
    for _ in range(n_iter):
        b = np.where(v @ r >= 0, 1.0, -1.0)  # B = sgn(V R)
        u, _, wt = np.linalg.svd(v.T @ b)  # Procrustes: R = U W^T
        r = u @ wt
    return r


@dataclass
class CCAITQ:
    """Fitted CCA-ITQ hasher: ``encode(x, "img"|"txt") -> (n, l)`` bool codes."""

    bits: int
    cca: CCA
    lift: np.ndarray  # (c, l)
    mean: np.ndarray  # (l,) centre of the lifted embeddings
    rotation: np.ndarray  # (l, l)

    def _embed(self, x: np.ndarray, modality: str) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if modality == "img":
            z = self.cca.transform(x)
        elif modality == "txt":
            # scikit-learn transforms Y only together with an X block; X is ignored here
            dummy = np.zeros((x.shape[0], self.cca.x_weights_.shape[0]))
            z = self.cca.transform(dummy, x)[1]
        else:
            raise ValueError(f"modality must be 'img' or 'txt', got {modality!r}")
        return z @ self.lift - self.mean

    def encode(self, x: np.ndarray, modality: str) -> np.ndarray:
        return (self._embed(x, modality) @ self.rotation) > 0


def fit_cca_itq(img: np.ndarray, txt: np.ndarray, bits: int, seed: int = 0,
                n_iter: int = 50) -> CCAITQ:
    """Fit CCA-ITQ on paired training features ``img (n, d_I)``, ``txt (n, d_T)``."""
    c = min(bits, img.shape[1], txt.shape[1], img.shape[0] - 1)
    cca = CCA(n_components=c, max_iter=1000)
    cca.fit(np.asarray(img, np.float64), np.asarray(txt, np.float64))
    rng = np.random.default_rng(seed)
    lift = np.eye(c, bits) if bits == c else rng.normal(size=(c, bits)) / np.sqrt(c)
    model = CCAITQ(bits, cca, lift, np.zeros(bits), np.eye(bits))
    v = np.concatenate([model._embed(img, "img"), model._embed(txt, "txt")])
    model.mean = v.mean(0)
    model.rotation = itq_rotation(v - model.mean, n_iter, seed)
    return model
