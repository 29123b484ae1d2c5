"""Hash networks (ugach_core.model): forward pass by hand, the authors' init, ownership."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ugach_core.model import FC7_NORMS, Discriminator, Generator, HashNet, input_norm

# Hand-chosen weights of HashNet(d_in=3, bits=2, hidden=4)
WC = np.array([[0.5, -1.0, 0.25],
               [1.0, 0.0, -0.5],
               [-0.3, 0.2, 0.1],
               [0.0, 0.7, -0.6]])
BC = np.array([0.1, -0.2, 0.0, 0.3])
WH = np.array([[1.0, -2.0, 0.5, 0.0],
               [-1.5, 0.5, 1.0, 2.0]])
BH = np.array([0.2, -0.1])
X = np.array([[1.0, 2.0, -1.0],
              [0.0, -1.0, 3.0],
              [0.5, 0.5, 0.5]])


def _hand_net() -> HashNet:
    net = HashNet(d_in=3, bits=2, hidden=4)
    with torch.no_grad():
        net.common.weight.copy_(torch.tensor(WC))
        net.common.bias.copy_(torch.tensor(BC))
        net.hash.weight.copy_(torch.tensor(WH))
        net.hash.bias.copy_(torch.tensor(BH))
    return net


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_hashnet_forward_matches_numpy():
    """phi = tanh(Wc x + bc), h = sigmoid(Wh phi + bh), codes = h > 0.5, computed with numpy."""
    net = _hand_net()
    x = torch.tensor(X, dtype=torch.float32)
    phi = np.tanh(X @ WC.T + BC)
    h = _sigmoid(phi @ WH.T + BH)
    # row 0 by hand: Wc x + bc = [0.5-2-0.25+0.1, 1+0+0.5-0.2, -0.3+0.4-0.1, 0+1.4+0.6+0.3]
    np.testing.assert_allclose(X[0] @ WC.T + BC, [-1.65, 1.3, 0.0, 2.3], atol=1e-12)
    np.testing.assert_allclose(net.phi(x).detach().numpy(), phi, atol=1e-6)
    np.testing.assert_allclose(net(x).detach().numpy(), h, atol=1e-6)
    codes = net.codes(x)
    assert codes.dtype == torch.bool and codes.shape == (3, 2)
    np.testing.assert_array_equal(codes.numpy(), h > 0.5)
    assert codes.any() and not codes.all()  # the example exercises both bit values


def test_hashnet_input_norm_matches_numpy():
    """set_input_norm: phi = tanh(Wc (x - shift)/scale + bc), scale clamped at 1e-6."""
    net = _hand_net()
    shift, scale = np.array([1.0, -1.0, 0.5]), np.array([2.0, 0.5, 0.0])
    net.set_input_norm(torch.tensor(shift), torch.tensor(scale))
    x = torch.tensor(X[:2], dtype=torch.float32)
    xn = (X[:2] - shift) / np.array([2.0, 0.5, 1e-6])
    phi = np.tanh(xn @ WC.T + BC)
    np.testing.assert_allclose(net.phi(x).detach().numpy(), phi, atol=1e-5)


def test_authors_init_truncated_normal(torch_seed):
    """Weights ~ N(0, 0.1) cut at +-0.2: all in [-0.2, 0.2], std = 0.1 * 0.8796 (truncation)."""
    net = HashNet(d_in=300, bits=64, hidden=1000)
    w = net.common.weight.detach().numpy().ravel()
    assert np.abs(w).max() <= 0.2 + 1e-7
    # std of a standard normal truncated to [-2, 2]: sqrt(1 - 2*2*pdf(2) / (cdf(2) - cdf(-2)))
    pdf2 = np.exp(-2.0) / np.sqrt(2 * np.pi)
    trunc_std = 0.1 * np.sqrt(1 - 4 * pdf2 / 0.9544997361036416)
    assert abs(trunc_std - 0.08796) < 1e-4
    assert abs(w.std() - trunc_std) < 0.002  # 300k draws: standard error ~1e-4
    assert abs(w.mean()) < 0.002
    # the density reaches the cut: P(1.9 < |z| <= 2 | |z| <= 2) = 2 (0.97725 - 0.97128) / 0.9545
    assert 0.009 < (np.abs(w) > 0.19).mean() < 0.016
    hw = net.hash.weight.detach().numpy()
    assert np.abs(hw).max() <= 0.2 + 1e-7 and hw.std() > 0.05
    assert torch.count_nonzero(net.common.bias) == 0
    assert torch.count_nonzero(net.hash.bias) == 0


@pytest.mark.parametrize("cls", [Generator, Discriminator])
def test_separate_networks_per_modality(cls, torch_seed):
    """img and txt nets are distinct modules with disjoint parameters and their own widths."""
    m = cls(d_img=5, d_txt=3, bits=4, hidden=8)
    assert m.img is not m.txt
    assert m.img.common.weight.shape == (8, 5) and m.txt.common.weight.shape == (8, 3)
    ids_img = {id(p) for p in m.img.parameters()}
    ids_txt = {id(p) for p in m.txt.parameters()}
    assert ids_img.isdisjoint(ids_txt)
    assert len(list(m.parameters())) == 8  # 2 nets x 2 layers x (weight, bias)
    # changing one net leaves the other's output unchanged
    x = torch.randn(2, 3)
    before = m.encode(x, "txt").clone()
    with torch.no_grad():
        m.img.hash.bias.add_(5.0)
    torch.testing.assert_close(m.encode(x, "txt"), before)
    assert m.net("img") is m.img and m.net("txt") is m.txt
    with pytest.raises(ValueError, match="modality must be one of"):
        m.net("audio")


def test_generator_and_discriminator_do_not_share_parameters():
    """G (theta) and D (phi) are separate parameter sets."""
    g = Generator(5, 3, 4, hidden=8)
    d = Discriminator(5, 3, 4, hidden=8)
    assert {id(p) for p in g.parameters()}.isdisjoint({id(p) for p in d.parameters()})
    ptrs_g = {p.data_ptr() for p in g.parameters()}
    assert ptrs_g.isdisjoint({p.data_ptr() for p in d.parameters()})


@pytest.mark.parametrize("shape", [(2, 5), (3,), (1, 2, 3)])
def test_wrong_input_width_raises(shape):
    """A (B, d) input with d != d_in (or not 2-D) raises a ValueError naming the expected shape."""
    net = HashNet(d_in=3, bits=2, hidden=4)
    with pytest.raises(ValueError, match=r"expected features of shape \(batch, 3\)"):
        net(torch.zeros(shape))


def test_fc7_input_norm_gives_the_authors_mean_norm():
    """feature_norm="fc7": one scale per modality, no shift; after it the training rows have
    the mean L2 norm of the authors' inputs (FC7_NORMS), whatever their own scale."""
    g = torch.Generator().manual_seed(0)
    for m, raw_scale in (("img", 0.01), ("txt", 30.0)):
        x = torch.rand(50, 7, generator=g) * raw_scale
        shift, scale = input_norm(x, m, "fc7")
        net = HashNet(d_in=7, bits=4, hidden=8)
        net.set_input_norm(shift, scale)
        assert torch.equal(net.in_shift, torch.zeros(7))
        assert torch.all(net.in_scale == net.in_scale[0])  # one scalar: directions kept
        mean_norm = net.normalise(x).norm(dim=1).mean().item()
        assert mean_norm == pytest.approx(FC7_NORMS[m], rel=1e-5)
    mean, std = input_norm(x, "txt", "zscore")
    torch.testing.assert_close(mean, x.mean(0))
    torch.testing.assert_close(std, x.std(0))
    with pytest.raises(ValueError, match="'zscore' or 'fc7'"):
        input_norm(x, "txt", "l2")


def test_fc7_norms_are_the_authors_inputs(mir_root):
    """FC7_NORMS recomputed from the files named in its comment."""
    import scipy.io

    img = np.loadtxt(mir_root / "ugach_samples" / "train_img.txt")
    tags = scipy.io.loadmat(mir_root / "mirflickr25k-yall.mat")["YAll"].astype(np.float64)
    assert np.linalg.norm(img, axis=1).mean() == pytest.approx(FC7_NORMS["img"], abs=0.005)
    assert np.linalg.norm(tags, axis=1).mean() == pytest.approx(FC7_NORMS["txt"], abs=0.0005)


def test_trainer_scales_both_nets_inputs_with_feature_norm_fc7():
    from ugach_core import smoke
    from ugach_core.data import make_synthetic
    from ugach_core.train import Trainer

    trainer = Trainer(smoke(16).replace(feature_norm="fc7"), make_synthetic(n=80, d_img=12,
                      d_txt=5), progress=False)
    for m, x in trainer.train_features.items():
        for net in (trainer.generator, trainer.discriminator):
            got = net.net(m).normalise(x).norm(dim=1).mean().item()
            assert got == pytest.approx(FC7_NORMS[m], rel=1e-5)
