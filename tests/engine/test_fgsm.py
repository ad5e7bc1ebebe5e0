from __future__ import annotations

import torch
from torch import nn

from bbrange.attacker.engine import fgsm


def smooth_model() -> nn.Module:
    # tanh and dense layers: every input feature has a non-zero gradient almost surely.
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 5)).double()


def test_every_feature_moves_by_exactly_eps_before_clipping() -> None:
    model = smooth_model()
    x = 0.25 + 0.5 * torch.rand(16, 1, 8, 8, dtype=torch.float64)
    eps = 0.1
    x_adv = fgsm(model, x, eps, batch_size=5)  # x ± ε stays inside [0, 1]: no clipping here
    assert torch.allclose((x_adv - x).abs(), torch.full_like(x, eps), atol=1e-12)


def test_clipping_keeps_inputs_valid_and_increases_the_loss() -> None:
    model = smooth_model()
    x = torch.rand(32, 1, 8, 8, dtype=torch.float64)
    y = model(x).argmax(1)
    x_adv = fgsm(model, x, 0.3, y)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert ((x_adv - x).abs() <= 0.3 + 1e-12).all()
    loss = nn.functional.cross_entropy
    assert loss(model(x_adv), y) > loss(model(x), y)


def test_a_saturated_softmax_still_gives_a_direction() -> None:
    # Logits 1e3 apart: float32 softmax is exactly one-hot, the plain cross-entropy gradient exactly 0.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        model[1].weight.mul_(1e4)
    x = 0.25 + 0.5 * torch.rand(4, 1, 4, 4)
    xg = x.clone().requires_grad_(True)
    out = model(xg)
    (plain,) = torch.autograd.grad(nn.functional.cross_entropy(out, out.argmax(1), reduction="sum"), xg)
    assert (plain == 0).all()
    assert torch.allclose((fgsm(model, x, 0.1) - x).abs(), torch.full_like(x, 0.1), atol=1e-6)
