"""TanhNormal: bounds, change-of-variables log-prob, stability at saturation, point estimate."""

from __future__ import annotations

import math

import torch

from rldata.modules import TanhNormal, tanh_normal_rsample


def test_samples_stay_inside_bounds():
    d = TanhNormal(
        torch.zeros(1000, 2),
        3 * torch.ones(1000, 2),
        low=torch.tensor([-1.0, 0.0]),
        high=torch.tensor([1.0, 5.0]),
    )
    a = d.rsample()
    assert (a[:, 0] >= -1).all() and (a[:, 0] <= 1).all()
    assert (a[:, 1] >= 0).all() and (a[:, 1] <= 5).all()


def test_log_prob_is_the_change_of_variables_density():
    loc, scale = torch.tensor([[0.3, -0.2]]), torch.tensor([[0.5, 1.5]])
    d = TanhNormal(loc, scale, low=-2.0, high=2.0)
    a = torch.tensor([[0.7, -1.9]])
    u = torch.atanh(a / 2)
    expected = (
        torch.distributions.Normal(loc, scale).log_prob(u) - torch.log(2 * (1 - torch.tanh(u) ** 2))
    ).sum(-1)
    torch.testing.assert_close(d.log_prob(a), expected)


def test_density_integrates_to_one():
    d = TanhNormal(torch.tensor([[0.4]]), torch.tensor([[0.8]]), low=-3.0, high=1.0)
    grid = torch.linspace(-3 + 1e-4, 1 - 1e-4, 20001).reshape(-1, 1, 1)
    dens = d.log_prob(grid).exp().reshape(-1)
    assert abs(torch.trapezoid(dens, grid.reshape(-1)).item() - 1.0) < 1e-3


def test_log_prob_is_finite_where_tanh_saturates():
    loc = torch.tensor([[20.0]])
    action, logp = tanh_normal_rsample(loc, torch.tensor([[0.1]]))
    assert torch.isfinite(logp).all() and action.item() <= 1.0
    d = TanhNormal(loc, torch.tensor([[0.1]]))
    assert torch.isfinite(d.log_prob(d.rsample())).all()


def test_rsample_and_log_prob_agree_with_the_distribution():
    loc, scale = torch.randn(5, 2), torch.rand(5, 2) + 0.2
    torch.manual_seed(3)
    a, logp = tanh_normal_rsample(loc, scale, -2.0, 2.0)
    torch.testing.assert_close(
        TanhNormal(loc, scale, -2.0, 2.0).log_prob(a), logp, atol=1e-4, rtol=1e-4
    )
    assert logp.shape == (5,)


def test_deterministic_sample_is_the_squashed_location():
    d = TanhNormal(torch.tensor([[0.5]]), torch.tensor([[2.0]]), low=0.0, high=4.0)
    torch.testing.assert_close(
        d.deterministic_sample, 2.0 + 2.0 * torch.tanh(torch.tensor([[0.5]]))
    )
    torch.testing.assert_close(d.mode, d.deterministic_sample)


def test_rsample_is_differentiable():
    loc = torch.zeros(3, 1, requires_grad=True)
    a, logp = tanh_normal_rsample(loc, torch.ones(3, 1))
    (a.sum() + logp.sum()).backward()
    assert loc.grad is not None and not math.isnan(loc.grad.sum().item())
