"""Scores, losses and the policy gradient (ugach_core.losses) against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

from ugach_core.losses import (discriminator_loss, discriminator_prob, generator_log_probs,
                               reinforce_loss, reward, sq_dist, triplet_score)

# ---------------------------------------------------------------- sq_dist


def test_sq_dist_pairwise_shape_and_values():
    """(B, l) x (B, l) -> (B,): ||[0,1]-[1,1]||^2 = 1, ||[1,1]-[0.5,0]||^2 = 1.25."""
    h_q = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    h_x = torch.tensor([[1.0, 1.0], [0.5, 0.0]])
    out = sq_dist(h_q, h_x)
    assert out.shape == (2,)
    torch.testing.assert_close(out, torch.tensor([1.0, 1.25]))


def test_sq_dist_pool_shape_and_values():
    """(B, l) x (B, N, l) -> (B, N), each query against its own pool."""
    h_q = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    h_x = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]],
                        [[1.0, 1.0], [0.0, 0.0], [1.0, 0.5]]])
    out = sq_dist(h_q, h_x)
    assert out.shape == (2, 3)
    torch.testing.assert_close(out, torch.tensor([[0.0, 2.0, 0.5], [0.0, 2.0, 0.25]]))


# ---------------------------------------------------------------- generator policy

E1, E2 = math.exp(-1.0), math.exp(-2.0)


def test_generator_log_probs_softmax_of_minus_d():
    """d = [0, 1, 2]: p = [1, e^-1, e^-2] / (1 + e^-1 + e^-2) = [0.66524, 0.24473, 0.09003]."""
    d = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64)
    p = generator_log_probs(d).exp()
    z = 1 + E1 + E2
    expected = torch.tensor([[1 / z, E1 / z, E2 / z]], dtype=torch.float64)
    torch.testing.assert_close(p, expected)
    torch.testing.assert_close(p, torch.tensor([[0.66524096, 0.24472847, 0.09003057]],
                                               dtype=torch.float64))


def test_generator_log_probs_rows_are_independent():
    """Normalisation is per query (last axis): row 2 = row 1 shifted by 5 gives the same p."""
    d = torch.tensor([[0.0, 1.0, 2.0], [5.0, 6.0, 7.0]], dtype=torch.float64)
    p = generator_log_probs(d).exp()
    torch.testing.assert_close(p.sum(-1), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(p[0], p[1])


def test_generator_log_probs_temperature():
    """T = 2: p = [1, e^-0.5, e^-1] / (1 + e^-0.5 + e^-1) = [0.50648, 0.30720, 0.18632]."""
    d = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64)
    p = generator_log_probs(d, temperature=2.0).exp()
    z = 1 + math.exp(-0.5) + E1
    torch.testing.assert_close(p, torch.tensor([[1 / z, math.exp(-0.5) / z, E1 / z]],
                                               dtype=torch.float64))


def test_generator_log_probs_mask_zeroes_item():
    """Masking item 1: p = [1, 0, e^-2] / (1 + e^-2) = [0.88080, 0, 0.11920]."""
    d = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64)
    mask = torch.tensor([[False, True, False]])
    logp = generator_log_probs(d, mask=mask)
    assert logp[0, 1] == -math.inf
    z = 1 + E2
    torch.testing.assert_close(logp.exp(), torch.tensor([[1 / z, 0.0, E2 / z]],
                                                        dtype=torch.float64))


# ---------------------------------------------------------------- discriminator

D_POS = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
D_NEG = torch.tensor([3.0, 1.0, 1.5], dtype=torch.float64)
# f = max(0, 1 + d_pos - d_neg) = [max(0, -1.5), 2, 0.5] = [0, 2, 0.5]
F_HAND = torch.tensor([0.0, 2.0, 0.5], dtype=torch.float64)
SIG_HAND = torch.tensor([0.5, 0.8807970779778823, 0.6224593312018546], dtype=torch.float64)
SOFTPLUS_HAND = torch.tensor([math.log(2.0), math.log(1 + math.e ** 2), math.log(1 + math.e ** 0.5)],
                             dtype=torch.float64)  # [0.693147, 2.126928, 0.974077]


def test_triplet_score_hand_values():
    """f = max(0, m + d_pos - d_neg) with m = 1: [0 (clipped), 2, 0.5]; m = 3 shifts by 2."""
    torch.testing.assert_close(triplet_score(D_POS, D_NEG, margin=1.0), F_HAND)
    torch.testing.assert_close(triplet_score(D_POS, D_NEG, margin=3.0),
                               torch.tensor([0.5, 4.0, 2.5], dtype=torch.float64))


def test_discriminator_prob_is_sigmoid_of_f():
    """D = sigmoid(f) = [0.5 (clipped triplet), 0.880797, 0.622459]."""
    torch.testing.assert_close(discriminator_prob(F_HAND), SIG_HAND)
    assert discriminator_prob(triplet_score(D_POS, D_NEG, 1.0))[0] == 0.5


def test_discriminator_loss_hinge_and_log():
    """hinge = mean f = 2.5/3; log = mean softplus(f) = (ln 2 + ln(1+e^2) + ln(1+e^0.5)) / 3."""
    torch.testing.assert_close(discriminator_loss(F_HAND, "hinge"),
                               torch.tensor(2.5 / 3, dtype=torch.float64))
    torch.testing.assert_close(discriminator_loss(F_HAND, "log"), SOFTPLUS_HAND.mean())
    # -log(1 - sigmoid(f)) == softplus(f), the paper's form
    torch.testing.assert_close(SOFTPLUS_HAND, -torch.log(1 - SIG_HAND))
    with pytest.raises(ValueError, match="hinge"):
        discriminator_loss(F_HAND, "squared")


def test_hinge_loss_gradient_ignores_clipped_triplet():
    """d(mean f)/d d_pos = [0, 1/3, 1/3]: the clipped triplet contributes no gradient."""
    d_pos = D_POS.clone().requires_grad_(True)
    discriminator_loss(triplet_score(d_pos, D_NEG, 1.0), "hinge").backward()
    torch.testing.assert_close(d_pos.grad, torch.tensor([0.0, 1 / 3, 1 / 3], dtype=torch.float64))


def test_reward_sigmoid_and_log():
    """r_sigmoid = sigmoid(f) in [0.5, 1); r_log = log(1 + e^f) = -log(1 - D)."""
    torch.testing.assert_close(reward(F_HAND, "sigmoid"), SIG_HAND)
    torch.testing.assert_close(reward(F_HAND, "log"), SOFTPLUS_HAND)
    with pytest.raises(ValueError, match="sigmoid"):
        reward(F_HAND, "linear")


# ---------------------------------------------------------------- REINFORCE


def test_reinforce_loss_value_by_hand():
    """-(mean (r - b) log p): log p = [[-1,-2],[-0.5,-3]], r = [[1,0],[2,1]] -> 1.25; b=0.5 -> 0.4375."""
    log_p = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]], dtype=torch.float64)
    r = torch.tensor([[1.0, 0.0], [2.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(reinforce_loss(log_p, r), torch.tensor(1.25, dtype=torch.float64))
    torch.testing.assert_close(reinforce_loss(log_p, r, 0.5),
                               torch.tensor(0.4375, dtype=torch.float64))
    torch.testing.assert_close(reinforce_loss(log_p, r, torch.tensor(0.5, dtype=torch.float64)),
                               torch.tensor(0.4375, dtype=torch.float64))


def test_reinforce_loss_does_not_backprop_into_reward_or_baseline():
    """The reward (from D) and the baseline are constants: no gradient reaches them."""
    log_p = torch.tensor([-1.0, -2.0], requires_grad=True)
    r = torch.tensor([0.7, 0.9], requires_grad=True)
    b = torch.tensor(0.3, requires_grad=True)
    reinforce_loss(log_p, r, b).backward()
    assert r.grad is None and b.grad is None
    torch.testing.assert_close(log_p.grad, -(torch.tensor([0.7, 0.9]) - 0.3) / 2)


# Tiny enumerable policy: p_theta(x) = softmax(-d(theta))_x over 3 items, d = ||h_q - h_x||^2.
REWARDS = torch.tensor([1.0, 0.2, 0.6], dtype=torch.float64)


def _policy():
    """Parameters (query and item logits) and log p (1, 3) of the tiny policy."""
    theta_q = torch.tensor([0.3, -0.2], dtype=torch.float64, requires_grad=True)
    theta_x = torch.tensor([[-2.0, 2.0], [1.5, -1.0], [0.0, 0.5]], dtype=torch.float64,
                           requires_grad=True)
    d = sq_dist(torch.sigmoid(theta_q)[None], torch.sigmoid(theta_x)[None])  # (1, 3)
    return (theta_q, theta_x), generator_log_probs(d)


def _flat(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def _exact_gradient() -> torch.Tensor:
    """grad of E[r] = sum_x p(x) r(x) by autograd (the ground truth)."""
    params, log_p = _policy()
    expected_r = (log_p.exp()[0] * REWARDS).sum()
    return _flat(torch.autograd.grad(expected_r, params))


def _per_item_reinforce_grads(baseline=None):
    """-grad reinforce_loss(log p(x), r(x)) for each item x, and p (3,)."""
    params, log_p = _policy()
    grads = []
    for x in range(3):
        loss = reinforce_loss(log_p[:, x], REWARDS[x:x + 1], baseline)
        grads.append(-_flat(torch.autograd.grad(loss, params, retain_graph=True)))
    return torch.stack(grads), log_p.exp()[0].detach()


def test_reinforce_exact_enumeration_equals_true_gradient():
    """sum_x p(x) r(x) grad log p(x) (via reinforce_loss) == grad sum_x p(x) r(x), to 1e-6."""
    exact = _exact_gradient()
    assert exact.abs().max() > 1e-2  # the example has a non-trivial gradient
    g, p = _per_item_reinforce_grads()
    enumerated = (p[:, None] * g).sum(0)
    torch.testing.assert_close(enumerated, exact, atol=1e-6, rtol=0)


def test_reinforce_monte_carlo_estimate_matches_within_standard_error():
    """Mean of reinforce_loss gradients over 20,000 seeded samples is within 5 s.e. of exact."""
    exact = _exact_gradient()
    g_item, p = _per_item_reinforce_grads()
    params, log_p = _policy()
    gen = torch.Generator().manual_seed(0)
    s = 20_000
    idx = torch.multinomial(log_p.exp().detach()[0], s, replacement=True, generator=gen)
    loss = reinforce_loss(log_p[0, idx], REWARDS[idx])
    estimate = -_flat(torch.autograd.grad(loss, params))
    # standard error of the mean of v(x) = r(x) grad log p(x), x ~ p
    var = (p[:, None] * g_item ** 2).sum(0) - exact ** 2
    se = (var.clamp_min(0) / s).sqrt()
    assert torch.all((estimate - exact).abs() <= 5 * se + 1e-9), (estimate, exact, se)
    # and the estimate is informative (not ~0): it points the same way as the true gradient
    assert torch.dot(estimate, exact) > 0.9 * exact.norm() * estimate.norm()


@pytest.mark.parametrize("b", [0.5, torch.tensor(0.5, dtype=torch.float64), -3.0])
def test_constant_baseline_leaves_expected_gradient_unchanged(b):
    """sum_x p(x) (r(x) - b) grad log p(x) == grad E[r], though each term changes by b."""
    exact = _exact_gradient()
    g_plain, _ = _per_item_reinforce_grads()
    g_base, p = _per_item_reinforce_grads(baseline=b)
    assert (g_base - g_plain).abs().max() > 1e-3  # the baseline does change per-sample terms
    torch.testing.assert_close((p[:, None] * g_base).sum(0), exact, atol=1e-6, rtol=0)
