"""CCA-ITQ baseline (ugach_core.baselines): ITQ's objective, the regularised CCA equations,
validation-only selection of the shrinkage, code shapes, bad input, real-data sanity."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import ugach_core.baselines as bl
from ugach_core.baselines import (REG_GRID, cca_itq_scores, fit_cca_itq, itq_rotation,
                                  select_cca_itq)
from ugach_core.data import CrossModalDataset, make_synthetic
from ugach_core.evaluation import retrieval_scores
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


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / x.std(0, ddof=1)


def test_unregularised_fit_is_classical_cca(small_pairs):
    """reg=0: corr = sqrt of the eigenvalues of C_xx^-1 C_xy C_yy^-1 C_yx (scipy, independently)."""
    import scipy.linalg

    img, txt = (x.astype(np.float64) for x in small_pairs)
    x, y = _standardise(img), _standardise(txt)
    n = len(x)
    cxx, cyy, cxy = x.T @ x / (n - 1), y.T @ y / (n - 1), x.T @ y / (n - 1)
    ev = scipy.linalg.eigh(cxy @ np.linalg.solve(cyy, cxy.T), cxx, eigvals_only=True)
    rho = np.sqrt(np.clip(np.sort(ev)[::-1][:6], 0, None))
    model = fit_cca_itq(img, txt, 6, reg=0.0, n_iter=0)
    np.testing.assert_allclose(model.corr, rho, rtol=1e-6)
    assert rho[0] > 0.5 and rho[-1] < rho[0]  # a real spectrum, not all-equal values


def test_full_shrinkage_is_pls(small_pairs):
    """reg=1: whitening is the identity, so corr are the singular values of C_xy itself."""
    img, txt = (x.astype(np.float64) for x in small_pairs)
    x, y = _standardise(img), _standardise(txt)
    sv = np.linalg.svd(x.T @ y / (len(x) - 1), compute_uv=False)
    model = fit_cca_itq(img, txt, 4, reg=1.0, n_iter=0)
    np.testing.assert_allclose(model.corr, sv[:4], rtol=1e-6)
    assert sv[0] > 1.0  # differs from any correlation: it is a covariance, as PLS maximises


@pytest.mark.parametrize("reg", [0.0, 0.3, 0.9])
def test_training_embedding_has_std_rho_and_canonical_pairs(small_pairs, reg):
    """Each embedding column has training std rho_j in both views (one scale for both)."""
    img, txt = small_pairs
    model = fit_cca_itq(img, txt, 5, reg=reg, n_iter=0)  # c = 5 = bits: no lift
    zi, zt = model._embed(img, "img"), model._embed(txt, "txt")
    np.testing.assert_allclose(zi.std(0, ddof=1), model.corr, rtol=1e-6)
    np.testing.assert_allclose(zt.std(0, ddof=1), model.corr, rtol=1e-6)
    # paired columns are positively correlated, image columns mutually uncorrelated at reg=0
    r = [np.corrcoef(zi[:, j], zt[:, j])[0, 1] for j in range(5)]
    assert min(r) > 0.3
    if reg == 0.0:
        np.testing.assert_allclose(r, model.corr, rtol=1e-6)
        np.testing.assert_allclose(np.corrcoef(zi.T), np.eye(5), atol=1e-6)


@pytest.fixture(scope="module")
def overfit_data():
    """200 training pairs, 150 + 80 noisy dimensions: unregularised CCA overfits."""
    return make_synthetic(n=240, d_img=150, d_txt=80, n_classes=5, noise=2.0, seed=3)


def _test_maps(model, d) -> tuple[float, float]:
    s = retrieval_scores(model.encode(d.img, "img"), model.encode(d.txt, "txt"), d)
    return s["map_i2t"], s["map_t2i"]


def test_regularisation_beats_overfitting_cca(overfit_data):
    """Selected shrinkage > 0, and its test MAP beats reg=0 by > 0.1 in both directions."""
    d = overfit_data
    tr = d.train_idx
    plain = fit_cca_itq(d.img[tr], d.txt[tr], 16, reg=0.0, n_iter=20)
    model, info = select_cca_itq(d, 16, n_iter=20)
    assert info["chosen"] > 0 and model.reg == info["chosen"]
    assert set(info["val_map"]) == set(REG_GRID)
    assert info["val_map"][info["chosen"]] > info["val_map"][0.0] + 0.1  # seen on validation
    (pi, pt), (ri, rt) = _test_maps(plain, d), _test_maps(model, d)
    assert ri > pi + 0.1 and rt > pt + 0.1, (pi, pt, ri, rt)
    # the unregularised CCA really overfits: its training correlations are all near 1
    assert plain.corr.min() > 0.95 and model.corr.min() < plain.corr.min()


def test_selection_never_sees_test_pairs(overfit_data):
    """Replacing the test queries' features and labels by garbage changes nothing selected."""
    d = overfit_data
    q = d.query_idx
    assert not np.isin(q, d.train_idx).any()
    rng = np.random.default_rng(0)
    img, txt, lab = d.img.copy(), d.txt.copy(), d.labels.copy()
    img[q] = rng.normal(size=img[q].shape) * 50
    txt[q] = rng.normal(size=txt[q].shape) * 50
    lab[q] = lab[q][rng.permutation(len(q))][:, ::-1]
    bad = CrossModalDataset("garbled", img, txt, lab, d.train_idx, q, d.db_idx)
    grid = (0.0, 0.1, 0.5, 0.9)
    m1, i1 = select_cca_itq(d, 8, grid=grid, n_iter=10)
    m2, i2 = select_cca_itq(bad, 8, grid=grid, n_iter=10)
    assert i1 == i2
    np.testing.assert_array_equal(m1.rotation, m2.rotation)
    np.testing.assert_array_equal(m1.w_img, m2.w_img)


def test_selection_scores_validation_against_fitted_pairs(overfit_data, monkeypatch):
    """Each grid value is fitted on the fitted pairs only, scored with the validation pairs
    as queries and the fitted pairs as database; the winner is refitted on all training."""
    d = overfit_data
    fit, val = d.split_validation(0.1, 0)
    assert len(val) == 20 and len(fit) == 180
    fitted_rows, scored = [], []
    real_fit, real_map = bl.fit_cca_itq, bl.two_way_map

    def spy_fit(img, txt, bits, **kw):
        fitted_rows.append(len(img))
        return real_fit(img, txt, bits, **kw)

    def spy_map(codes, labels, q_idx, db_idx, topk=None):
        scored.append((sorted(q_idx), sorted(db_idx)))
        return real_map(codes, labels, q_idx, db_idx, topk)

    monkeypatch.setattr(bl, "fit_cca_itq", spy_fit)
    monkeypatch.setattr(bl, "two_way_map", spy_map)
    grid = (0.0, 0.5, 0.9)
    select_cca_itq(d, 8, grid=grid, n_iter=5)
    assert fitted_rows == [180, 180, 180, len(d.train_idx)]
    assert scored == [(sorted(val), sorted(fit))] * len(grid)


def test_selection_picks_the_best_validation_score(overfit_data, monkeypatch):
    """The chosen value is the argmax of val_map (a rigged score moves the choice)."""
    d = overfit_data
    rigged = {0.0: 0.2, 0.1: 0.9, 0.5: 0.4}
    calls = iter(rigged.values())  # one validation score per grid value, in grid order
    monkeypatch.setattr(bl, "two_way_map", lambda *a, **k: {"mean": next(calls)})
    model, info = select_cca_itq(d, 8, grid=tuple(rigged), n_iter=2)
    assert info == {"chosen": 0.1, "val_map": rigged} and model.reg == 0.1


def test_cca_itq_scores_row(overfit_data):
    """The baseline row: test-protocol scores of the selected model plus the selection."""
    d = overfit_data
    row = cca_itq_scores(d, 8)
    model, info = select_cca_itq(d, 8)
    assert row["cca_reg"] == info["chosen"] and row["val_map"] == info["val_map"][info["chosen"]]
    assert row["train_seconds"] > 0
    expected = retrieval_scores(model.encode(d.img, "img"), model.encode(d.txt, "txt"), d)
    for k, v in expected.items():
        assert row[k] == v
    assert set(row) == set(expected) | {"train_seconds", "cca_reg", "val_map"}


def test_lift_beyond_the_cca_space_with_regularisation():
    """bits > c (6-d text): lifted codes are (n, 32) bool, informative and paired."""
    d = make_synthetic(n=300, d_img=40, d_txt=6, n_classes=4, seed=2)
    tr = d.train_idx
    model = fit_cca_itq(d.img[tr], d.txt[tr], 32, reg=0.3, n_iter=20)
    assert model.lift.shape == (6, 32) and model.w_txt.shape == (6, 6)
    bi, bt = model.encode(d.img, "img"), model.encode(d.txt, "txt")
    assert bi.shape == bt.shape == (d.n, 32) and bi.dtype == bt.dtype == np.dtype(bool)
    assert (bi == bt).mean() > 0.7
    i2t, t2i = _test_maps(model, d)
    rel = (d.labels[d.query_idx].astype(int) @ d.labels[d.db_idx].T) > 0
    assert i2t > rel.mean() + 0.1 and t2i > rel.mean() + 0.1


def test_bad_input_is_a_clear_error(small_pairs, overfit_data):
    img, txt = small_pairs
    nan_img = img.copy()
    nan_img[3, 2] = np.nan
    with pytest.raises(ValueError, match="image features contain 1 NaN"):
        fit_cca_itq(nan_img, txt, 4)
    with pytest.raises(ValueError, match="paired rows: 200 image rows vs 199 text rows"):
        fit_cca_itq(img, txt[:-1], 4)
    with pytest.raises(ValueError, match="must be a 2-D array"):
        fit_cca_itq(img[:, 0], txt, 4)
    with pytest.raises(ValueError, match="bits must be a positive integer"):
        fit_cca_itq(img, txt, 0)
    for reg in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"shrinkage\) must lie in \[0, 1\]"):
            fit_cca_itq(img, txt, 4, reg=reg)
    model = fit_cca_itq(img, txt, 4, n_iter=2)
    with pytest.raises(ValueError, match="txt input has 12 features, the model was fitted on 6"):
        model.encode(img, "txt")
    with pytest.raises(ValueError, match="img input contain 1 NaN"):
        model.encode(nan_img, "img")
    with pytest.raises(ValueError, match="grid of shrinkage values is empty"):
        select_cca_itq(overfit_data, 4, grid=())
    with pytest.raises(ValueError, match="validation split is empty"):
        select_cca_itq(overfit_data, 4, val_fraction=0.0)


def test_selected_cca_itq_on_wikipedia(wiki):
    """16 bits on the official split: both directions above the unregularised default's
    sanity bar, the shrinkage chosen from the grid on validation pairs."""
    row = cca_itq_scores(wiki, 16)
    assert row["cca_reg"] in REG_GRID
    assert row["map_i2t"] > 0.17 and row["map_t2i"] > 0.17
