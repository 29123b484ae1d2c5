"""CCA-ITQ baseline (ugach_core.baselines): ITQ's objective, code shapes, real-data sanity."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from ugach_core.baselines import fit_cca_itq, itq_rotation
from ugach_core.data import make_synthetic
from ugach_core.metrics import mean_average_precision


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """sklearn's CCA makes many tiny BLAS calls; on a busy 2-core box threads only add overhead."""
    with threadpool_limits(limits=1):
        yield


def _itq_loss(v: np.ndarray, r: np.ndarray) -> float:
    """||B - V R||_F^2 with B = sgn(V R), written out directly."""
    vr = v @ r
    return float(((np.where(vr >= 0, 1.0, -1.0) - vr) ** 2).sum())


@pytest.fixture
def centred(rng):
    v = rng.normal(size=(400, 6)) * np.array([3.0, 2.0, 1.0, 0.5, 0.3, 0.1])
    v = v @ np.linalg.qr(rng.normal(size=(6, 6)))[0]  # correlated dimensions
    return v - v.mean(0)


@pytest.mark.parametrize("n_iter", [0, 1, 50])
def test_itq_rotation_is_orthogonal(centred, n_iter):
    """R^T R = R R^T = I (the QR start and every Procrustes step)."""
    r = itq_rotation(centred, n_iter=n_iter, seed=1)
    assert r.shape == (6, 6)
    np.testing.assert_allclose(r.T @ r, np.eye(6), atol=1e-10)
    np.testing.assert_allclose(r @ r.T, np.eye(6), atol=1e-10)


def test_itq_does_not_increase_quantisation_loss(centred):
    """Same seed: loss(n_iter) is non-increasing in n_iter and 50 steps beat the random start."""
    losses = [_itq_loss(centred, itq_rotation(centred, n_iter=n, seed=2)) for n in range(0, 11)]
    assert all(b <= a + 1e-9 for a, b in zip(losses, losses[1:])), losses
    final = _itq_loss(centred, itq_rotation(centred, n_iter=50, seed=2))
    assert final <= losses[0] * 0.97  # a real improvement, not just "not worse"
    # and it is seeded: the same seed gives the same rotation
    np.testing.assert_array_equal(itq_rotation(centred, 5, seed=2), itq_rotation(centred, 5, 2))


def test_itq_zero_iterations_is_the_seeded_random_rotation(centred):
    """n_iter=0 returns the Q of a seeded Gaussian matrix (different seeds differ)."""
    q, _ = np.linalg.qr(np.random.default_rng(4).normal(size=(6, 6)))
    np.testing.assert_allclose(itq_rotation(centred, n_iter=0, seed=4), q)
    assert not np.allclose(itq_rotation(centred, 0, seed=4), itq_rotation(centred, 0, seed=5))


@pytest.fixture(scope="module")
def small_pairs():
    d = make_synthetic(n=200, d_img=12, d_txt=6, n_classes=4, seed=1)
    return d.img, d.txt


@pytest.mark.parametrize("bits", [4, 6, 16])
def test_fit_cca_itq_code_shapes(small_pairs, bits):
    """Both modalities -> (n, bits) bool codes, for l < c_max = 6, l = 6 and l > 6 (lifted)."""
    img, txt = small_pairs
    model = fit_cca_itq(img, txt, bits, seed=0, n_iter=20)
    bi, bt = model.encode(img[:15], "img"), model.encode(txt[:15], "txt")
    assert bi.shape == (15, bits) and bt.shape == (15, bits)
    assert bi.dtype == bool and bt.dtype == bool
    assert model.lift.shape == (min(bits, 6), bits)
    if bits <= 6:
        np.testing.assert_array_equal(model.lift, np.eye(bits))  # no lift within the CCA space
    np.testing.assert_allclose(model.rotation.T @ model.rotation, np.eye(bits), atol=1e-10)
    # the codes are informative: each bit takes both values over the training set
    all_i = model.encode(img, "img")
    assert all_i.any(0).all() and (~all_i).any(0).all()
    with pytest.raises(ValueError, match="modality"):
        model.encode(img, "audio")


def test_fit_cca_itq_paired_codes_agree(small_pairs):
    """The image and text codes of the same pair agree far more than random codes (50%)."""
    img, txt = small_pairs
    model = fit_cca_itq(img, txt, 6, seed=0, n_iter=20)
    agree = (model.encode(img, "img") == model.encode(txt, "txt")).mean()
    assert agree > 0.7


def test_cca_itq_on_wikipedia_beats_chance(wiki):
    """16-bit CCA-ITQ, image->text MAP@all (693 queries vs 2,173 database) > 0.15 (chance 0.11)."""
    tr, q, db = wiki.train_idx, wiki.query_idx, wiki.db_idx
    model = fit_cca_itq(wiki.img[tr], wiki.txt[tr], bits=16, seed=0)
    qc, dc = model.encode(wiki.img[q], "img"), model.encode(wiki.txt[db], "txt")
    rel = (wiki.labels[q].astype(int) @ wiki.labels[db].T) > 0
    assert 0.10 < rel.mean() < 0.12  # chance level: the MAP of a random ranking
    m = mean_average_precision(qc, dc, wiki.labels[q], wiki.labels[db])
    assert m > 0.15
