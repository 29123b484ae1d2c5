"""CCA-ITQ: the classical unsupervised cross-modal hashing baseline, in the same harness.

1. **Regularised CCA** on the training pairs, each feature standardised on them:
   :math:`X (n, d_I)`, :math:`Y (n, d_T)`, :math:`C_{xy} = X^\\top Y / (n-1)` (likewise
   :math:`C_{xx}, C_{yy}`).  Each covariance is shrunk towards the identity,
   :math:`C^\\gamma = (1 - \\gamma) C + \\gamma I` (a ridge), and

   .. math:: (C^\\gamma_{xx})^{-1/2}\\, C_{xy}\\, (C^\\gamma_{yy})^{-1/2}
             = A\\, \\operatorname{diag}(\\rho)\\, B^\\top,
             \\quad W_I = (C^\\gamma_{xx})^{-1/2} A_{:, :c},
             \\quad W_T = (C^\\gamma_{yy})^{-1/2} B_{:, :c},

   :math:`c = \\min(l, \\operatorname{rank})`: :math:`\\gamma = 0` is classical CCA (it
   overfits when :math:`n` is not much larger than :math:`d`), :math:`\\gamma = 1` PLS.
   The inverse square roots live in the row space of the training data (thin SVD;
   directions with :math:`s^2 \\le 10^{-10} s_{\\max}^2` are dropped).  Each canonical
   variate is scaled to standard deviation :math:`\\rho_j` (the eigenvalue weighting of
   Gong et al., IJCV 2014), so weakly correlated directions weigh little.
2. When the code is longer than the CCA space (:math:`l > c`, e.g. Wikipedia's 10-d text),
   the embeddings are lifted to :math:`l` dimensions by one fixed random Gaussian matrix
   (an LSH-style expansion; our choice).
3. ITQ (Gong & Lazebnik, 2011): the rotation :math:`R` minimising
   :math:`\\lVert B - V R \\rVert_F^2` over the stacked, centred embeddings :math:`V`,
   alternating :math:`B = \\operatorname{sgn}(V R)` and :math:`R = U W^\\top` from
   :math:`\\operatorname{svd}(V^\\top B) = U \\Sigma W^\\top`.  Codes
   :math:`b = \\mathbb{1}[V R > 0]`, each modality encoded separately.

:func:`select_cca_itq` chooses :math:`\\gamma` from :data:`REG_GRID` on validation pairs
carved from the training pairs (never the test queries); :func:`cca_itq_scores` is the
whole baseline run.  Chapters 1 and 10.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .data import CrossModalDataset
from .evaluation import retrieval_scores, two_way_map
from .utils import check_features

#: Shrinkage values :func:`select_cca_itq` tries (0 = unregularised CCA, 1 would be PLS).
REG_GRID: tuple[float, ...] = (0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99)


def itq_rotation(v: np.ndarray, n_iter: int = 50, seed: int = 0) -> np.ndarray:
    """ITQ rotation ``R (c, c)`` for centred data ``v (n, c)``. Chapter 10."""
    rng = np.random.default_rng(seed)
    r, _ = np.linalg.qr(rng.normal(size=(v.shape[1], v.shape[1])))
    for _ in range(n_iter):
        b = np.where(v @ r >= 0, 1.0, -1.0)  # B = sgn(V R)
        u, _, wt = np.linalg.svd(v.T @ b)  # Procrustes: R = U W^T
        r = u @ wt
    return r


def _whitener(x: np.ndarray, reg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardise ``x (n, d)`` and return ``(mu, sigma, M, xw)``: ``M (d, k)`` maps the
    standardised view into its row space whitened by ``((1-reg) C + reg I)^{-1/2}``;
    ``xw = xs M``."""
    mu = x.mean(0)
    sigma = x.std(0, ddof=1)
    sigma = np.where(sigma > 1e-12 * max(float(sigma.max()), 1e-300), sigma, 1.0)
    xs = (x - mu) / sigma
    _, s, vt = np.linalg.svd(xs, full_matrices=False)
    lam = s ** 2 / (x.shape[0] - 1)  # eigenvalues of C in the row space
    keep = s > 1e-5 * s[0] if s.size and s[0] > 0 else np.zeros(s.shape, bool)  # s^2 > 1e-10 s_max^2
    m = vt[keep].T / np.sqrt((1.0 - reg) * lam[keep] + reg)
    return mu, sigma, m, xs @ m


@dataclass
class CCAITQ:
    """Fitted CCA-ITQ hasher: ``encode(x, "img"|"txt") -> (n, l)`` bool codes;
    ``w_*`` map standardised features to the embedding, ``corr`` are the canonical
    correlations :math:`\\rho`, ``reg`` the shrinkage :math:`\\gamma`. Chapter 10."""

    bits: int
    reg: float
    mean_img: np.ndarray  # (d_I,)
    scale_img: np.ndarray  # (d_I,)
    w_img: np.ndarray  # (d_I, c)
    mean_txt: np.ndarray  # (d_T,)
    scale_txt: np.ndarray  # (d_T,)
    w_txt: np.ndarray  # (d_T, c)
    corr: np.ndarray  # (c,)
    lift: np.ndarray  # (c, l)
    mean: np.ndarray  # (l,) centre of the lifted embeddings
    rotation: np.ndarray  # (l, l)

    def _embed(self, x: np.ndarray, modality: str) -> np.ndarray:
        if modality == "img":
            mu, sd, w = self.mean_img, self.scale_img, self.w_img
        elif modality == "txt":
            mu, sd, w = self.mean_txt, self.scale_txt, self.w_txt
        else:
            raise ValueError(f"modality must be 'img' or 'txt', got {modality!r}")
        x = check_features(x, f"CCA-ITQ {modality} input").astype(np.float64)
        if x.shape[1] != w.shape[0]:
            raise ValueError(f"CCA-ITQ {modality} input has {x.shape[1]} features, the model "
                             f"was fitted on {w.shape[0]}")
        return ((x - mu) / sd) @ w @ self.lift - self.mean

    def encode(self, x: np.ndarray, modality: str) -> np.ndarray:
        """``(n, bits)`` bool codes of ``x (n, d_modality)``, ``modality`` "img" or "txt"."""
        return (self._embed(x, modality) @ self.rotation) > 0


def fit_cca_itq(img: np.ndarray, txt: np.ndarray, bits: int, seed: int = 0,
                n_iter: int = 50, reg: float = 0.0) -> CCAITQ:
    """Fit CCA-ITQ on paired training features ``img (n, d_I)``, ``txt (n, d_T)`` with
    shrinkage ``reg`` :math:`= \\gamma \\in [0, 1]`; ``seed`` drives the lift and the ITQ
    start.  ``ValueError`` on NaN/inf, unpaired rows, ``bits < 1``, bad ``reg``. Chapters 1, 10."""
    img = check_features(img, "CCA-ITQ image features").astype(np.float64)
    txt = check_features(txt, "CCA-ITQ text features").astype(np.float64)
    if img.shape[0] != txt.shape[0]:
        raise ValueError(f"CCA-ITQ needs paired rows: {img.shape[0]} image rows vs "
                         f"{txt.shape[0]} text rows")
    if img.shape[0] < 2:
        raise ValueError(f"CCA-ITQ needs at least 2 training pairs, got {img.shape[0]}")
    if int(bits) != bits or bits < 1:
        raise ValueError(f"bits must be a positive integer, got {bits!r}")
    bits = int(bits)
    if not 0.0 <= reg <= 1.0:  # also rejects NaN
        raise ValueError(f"reg (covariance shrinkage) must lie in [0, 1], got {reg!r}")
    mu_i, sd_i, m_i, xw = _whitener(img, float(reg))
    mu_t, sd_t, m_t, yw = _whitener(txt, float(reg))
    if m_i.shape[1] == 0 or m_t.shape[1] == 0:
        raise ValueError("CCA-ITQ: a view of the training features is constant")
    a, rho, bt = np.linalg.svd(xw.T @ yw / (img.shape[0] - 1), full_matrices=False)  # T = A P B^T
    c = min(bits, rho.size)
    w_img, w_txt = m_i @ a[:, :c], m_t @ bt[:c].T
    for w, xs in ((w_img, xw @ a[:, :c]), (w_txt, yw @ bt[:c].T)):  # xs = X W: std -> rho
        sd = xs.std(0, ddof=1)
        w *= rho[:c] / np.where(sd > 0, sd, 1.0)
    rng = np.random.default_rng(seed)
    lift = np.eye(c, bits) if bits == c else rng.normal(size=(c, bits)) / np.sqrt(c)
    model = CCAITQ(bits, float(reg), mu_i, sd_i, w_img, mu_t, sd_t, w_txt, rho[:c].copy(),
                   lift, np.zeros(bits), np.eye(bits))
    v = np.concatenate([model._embed(img, "img"), model._embed(txt, "txt")])
    model.mean = v.mean(0)
    model.rotation = itq_rotation(v - model.mean, n_iter, seed)
    return model


def select_cca_itq(data: CrossModalDataset, bits: int, seed: int = 0, grid: tuple[float, ...] = REG_GRID,
                   val_fraction: float = 0.1, n_iter: int = 50) -> tuple[CCAITQ, dict]:
    """Choose the shrinkage on validation pairs, then refit on all training pairs.

    Each ``reg`` of ``grid`` is fitted on the pairs of ``data.split_validation`` and scored
    by validation MAP@all (mean of both directions; queries: the validation pairs,
    database: the fitted ones); the best (ties: the first) is refitted on all of
    ``data.train_idx``.  Test data is never touched.  Returns ``(model, {"chosen": reg,
    "val_map": {reg: score}})``. Chapter 10."""
    grid = tuple(float(g) for g in grid)
    if not grid:
        raise ValueError("grid of shrinkage values is empty")
    fit, val = data.split_validation(val_fraction, seed)
    if len(val) == 0:
        raise ValueError(f"validation split is empty (val_fraction={val_fraction}); "
                         "select_cca_itq needs held-out training pairs")
    img, txt, lab = data.img, data.txt, data.labels
    scores: dict[float, float] = {}
    for reg in grid:
        m = fit_cca_itq(img[fit], txt[fit], bits, seed=seed, n_iter=n_iter, reg=reg)
        codes = {"img": m.encode(img, "img"), "txt": m.encode(txt, "txt")}
        scores[reg] = two_way_map(codes, lab, val, fit)["mean"]
    chosen = max(grid, key=lambda g: scores[g])  # max keeps the first of equal scores
    tr = data.train_idx
    model = fit_cca_itq(img[tr], txt[tr], bits, seed=seed, n_iter=n_iter, reg=chosen)
    return model, {"chosen": chosen, "val_map": scores}


def cca_itq_scores(data: CrossModalDataset, bits: int, seed: int = 0) -> dict:
    """The CCA-ITQ baseline row: :func:`select_cca_itq`, then
    :func:`~ugach_core.evaluation.retrieval_scores` on the test protocol, plus
    ``train_seconds`` (selection and refit), ``cca_reg`` and its ``val_map``. Chapter 10."""
    t0 = time.perf_counter()
    model, info = select_cca_itq(data, bits, seed=seed)
    secs = time.perf_counter() - t0
    scores = retrieval_scores(model.encode(data.img, "img"), model.encode(data.txt, "txt"), data)
    return {**scores, "train_seconds": secs, "cca_reg": info["chosen"],
            "val_map": info["val_map"][info["chosen"]]}
