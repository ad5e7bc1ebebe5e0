"""The L∞ and L2 geometry of gradient attacks, and the adversarial examples a model is trained against.

Both services take these steps: the attacker's crafting plug-ins (PGD, MI-FGSM, ... in
bbrange.attacker.engine.transfer_attacks) and its adversarially trained substitutes, and the oracle's defended
recipes (services/oracle/models/adversarial_training.py), which never import the attacker. Training examples use
the plain cross-entropy of the labels given (the true ones for an oracle, the oracle's for a substitute), as the
defence papers do; the attacker's crafting has its own losses (engine/transfer_attacks/losses.py).
"""

from __future__ import annotations

import torch
from torch import nn

from bbrange.shared.perturbations import Norm, TrainingAttack


def _per_row(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A (N,) tensor shaped to broadcast over a batch like `like`."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def l2_norms(t: torch.Tensor) -> torch.Tensor:
    """Each row's L2 norm, shaped to broadcast over the batch."""
    return _per_row(t.flatten(1).norm(dim=1), t)


def ascent_direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The steepest ascent of unit size in `norm`: sgn(g) for L∞, g/‖g‖₂ per row for L2 (a zero row stays zero)."""
    if norm == "linf":
        return grad.sign()
    return grad / l2_norms(grad).clamp_min(1e-12)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm, clip_min: float = 0.0,
            clip_max: float = 1.0) -> torch.Tensor:
    """x_adv pulled back into the ε-ball around x in `norm`, then into [clip_min, clip_max].

    Clipping after the ball's projection can only shrink each feature's move, so the result is in both."""
    delta = x_adv - x
    shrink = (eps / l2_norms(delta).clamp_min(1e-12)).clamp(max=1.0) if norm == "l2" else None
    inside = delta.clamp(-eps, eps) if shrink is None else delta * shrink
    return (x + inside).clamp(clip_min, clip_max)


def random_start(x: torch.Tensor, eps: float, norm: Norm, generator: torch.Generator, clip_min: float = 0.0,
                 clip_max: float = 1.0) -> torch.Tensor:
    """A point drawn uniformly from the ε-ball around x, clipped: Madry et al.'s random start (L∞: each feature
    uniform in [−ε, ε]; L2: a uniform direction at radius ε·u^(1/d), uniform in the ball's volume). Drawn on the
    CPU from `generator`, so the same seed gives the same start on any device."""
    shape, d = x.shape, x[0].numel()
    if norm == "linf":
        delta = (torch.rand(shape, generator=generator) * 2 - 1) * eps
    else:
        direction = torch.randn(shape, generator=generator)
        radius = eps * torch.rand(len(x), generator=generator) ** (1.0 / d)
        delta = direction / l2_norms(direction).clamp_min(1e-12) * _per_row(radius, direction)
    return (x + delta.to(x.device, x.dtype)).clamp(clip_min, clip_max)


def _ce_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), x)
    return grad


def training_examples(attack: TrainingAttack, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      generator: torch.Generator) -> torch.Tensor:
    """`attack`'s adversarial examples of a batch against `model` (crafted in eval mode, its mode restored), in
    [0, 1]. `generator` draws PGD's random start."""
    was_training = model.training
    model.eval()
    if attack.method == "fgsm":
        x_adv = (x.detach() + attack.eps * _ce_gradient(model, x, y).sign()).clamp_(0.0, 1.0)
    else:
        x_adv = random_start(x.detach(), attack.eps, "linf", generator)
        for _ in range(attack.steps):
            x_adv = project(x_adv + attack.pgd_step * _ce_gradient(model, x_adv, y).sign(), x, attack.eps, "linf")
    model.train(was_training)
    return x_adv.detach()


def adversarial_loss(attack: TrainingAttack, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     x_adv: torch.Tensor) -> torch.Tensor:
    """clean_weight·J(x) + (1 − clean_weight)·J(x_adv); the clean term is skipped when its weight is 0."""
    if attack.clean_weight == 0:
        return nn.functional.cross_entropy(model(x_adv), y)
    clean = nn.functional.cross_entropy(model(x), y)  # first, as the recipes trained so far did (dropout's draws)
    return attack.clean_weight * clean + (1 - attack.clean_weight) * nn.functional.cross_entropy(model(x_adv), y)
