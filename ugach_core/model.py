"""Hash networks: one per modality, owned separately by the generator and the discriminator.

.. math::

    \\phi_c(x) = \\tanh(W_c x + b_c), \\qquad
    h(x) = \\sigma(W_h \\phi_c(x) + b_h), \\qquad
    b_k(x) = \\mathbb{1}[h_k(x) > 0.5],\\ k = 1..l

The paper writes :math:`b_k = \\operatorname{sgn}(h_k - 0.5)` in :math:`\\{-1, 1\\}`; the
authors' code stores :math:`\\{0, 1\\}` codes; the Hamming distance is the same.
Derived in chapter 2 ("Hash networks").
"""

from __future__ import annotations

import torch
from torch import nn

MODALITIES = ("img", "txt")
# Mean L2 norm of the authors' inputs (computed from ../shared/data/mirflickr25k): image =
# their 10 published VGG19 fc7 rows (ugach_samples/train_img.txt), text = MIRFlickr's
# 20,015 binary tag vectors (mirflickr25k-yall.mat); tests/test_model.py recomputes both.
FC7_NORMS = {"img": 48.19, "txt": 2.006}


def input_norm(x: torch.Tensor, modality: str, how: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(shift, scale)`` for :meth:`HashNet.set_input_norm` from training features ``x``:
    ``"zscore"``: each column's mean and std; ``"fc7"``: no shift and one scale per
    modality, :math:`s = \\overline{\\lVert x \\rVert} / n_m` (:data:`FC7_NORMS`), so the
    inputs have the mean norm of the authors' (fc7 images, binary tags) and the first
    layer starts in the regime of their code. Chapter 7."""
    if how == "zscore":
        return x.mean(0), x.std(0)
    if how != "fc7":
        raise ValueError(f"input norm must be 'zscore' or 'fc7', got {how!r}")
    scale = x.norm(dim=1).mean() / FC7_NORMS[modality]
    return torch.zeros(x.shape[1]), scale.expand(x.shape[1])


def authors_init_(module: nn.Linear, std: float = 0.1) -> None:
    """The authors' init: weights ~ truncated normal (std, cut at 2 std), bias 0. Chapter 2."""
    nn.init.trunc_normal_(module.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
    nn.init.zeros_(module.bias)


class HashNet(nn.Module):
    """``x (B, d_in) -> h (B, l)`` in (0, 1): the relaxed code of one modality. Chapter 2."""

    def __init__(self, d_in: int, bits: int, hidden: int = 8192, init_std: float = 0.1):
        super().__init__()
        self.d_in, self.bits = d_in, bits
        self.common = nn.Linear(d_in, hidden)  # W_c, b_c
        self.hash = nn.Linear(hidden, bits)  # W_h, b_h
        authors_init_(self.common, init_std)
        authors_init_(self.hash, init_std)
        # optional input standardisation x' = (x - shift) / scale; identity by default
        # (the authors feed raw features); stored with the weights so checkpoints encode alike
        self.register_buffer("in_shift", torch.zeros(d_in))
        self.register_buffer("in_scale", torch.ones(d_in))

    def set_input_norm(self, shift: torch.Tensor, scale: torch.Tensor) -> None:
        """Standardise inputs with fixed statistics (e.g. training mean and std)."""
        self.in_shift.copy_(torch.as_tensor(shift, dtype=torch.float32))
        self.in_scale.copy_(torch.as_tensor(scale, dtype=torch.float32).clamp_min(1e-6))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """The input the first layer sees, ``(x - shift) / scale``."""
        return (x - self.in_shift) / self.in_scale

    def phi(self, x: torch.Tensor) -> torch.Tensor:
        """Common representation :math:`\\phi_c(x) = \\tanh(W_c x + b_c)`, shape (B, hidden)."""
        return torch.tanh(self.common(self.normalise(x)))

    def head(self, a: torch.Tensor) -> torch.Tensor:
        """Relaxed code from the first layer's output without bias, :math:`a = W_c x`."""
        return torch.sigmoid(self.hash(torch.tanh(a + self.common.bias)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Relaxed code :math:`h(x) = \\sigma(W_h \\phi_c(x) + b_h)`, shape (B, l)."""
        if x.ndim != 2 or x.shape[1] != self.d_in:
            raise ValueError(
                f"expected features of shape (batch, {self.d_in}), got {tuple(x.shape)}; "
                "check that the network was built for this modality and data set"
            )
        return torch.sigmoid(self.hash(self.phi(x)))

    @torch.no_grad()
    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """Binary code :math:`b = \\mathbb{1}[h > 0.5]`, bool tensor (B, l)."""
        return self.forward(x) > 0.5


class CrossModalHashNet(nn.Module):
    """One :class:`HashNet` per modality, separate weights (``.img``, ``.txt``). Chapter 2."""

    def __init__(self, d_img: int, d_txt: int, bits: int, hidden: int = 8192,
                 init_std: float = 0.1):
        super().__init__()
        self.bits = bits
        self.img = HashNet(d_img, bits, hidden, init_std)
        self.txt = HashNet(d_txt, bits, hidden, init_std)

    def net(self, modality: str) -> HashNet:
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        return self.img if modality == "img" else self.txt

    def encode(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """Relaxed codes ``h`` (B, l) of ``x`` in the given modality."""
        return self.net(modality)(x)


class Generator(CrossModalHashNet):
    """G, parameters :math:`\\theta`: a policy :math:`p_\\theta(x|q)` over the other modality's
    items, :math:`p_\\theta(x|q) \\propto \\exp(-\\lVert h(q) - h(x) \\rVert^2)`
    (see :func:`ugach_core.losses.generator_log_probs`).  Chapter 4."""


class Discriminator(CrossModalHashNet):
    """D, parameters :math:`\\phi`: scores triplets with
    :math:`f_\\phi` (see :func:`ugach_core.losses.triplet_score`); its binary codes are the
    ones used for retrieval.  Chapter 5."""
