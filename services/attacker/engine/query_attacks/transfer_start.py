"""The hybrid's starting points, crafted on the substitute: the inputs its search asks the oracle about first.

FGSM (a sign step of L∞ size ε) suits an L∞ search. For an L2 search a sign step spreads its size over every pixel;
the L2 walk instead follows the substitute's normalised margin gradient in small L2 steps until the substitute's
label changes (DeepFool's idea, Moosavi-Dezfooli et al., CVPR 2016, with a fixed step instead of its linearised
one), then stretches the perturbation by `overshoot` so that it crosses the oracle's boundary too. The search
binary-searches back to the oracle's boundary along that line, so a generous overshoot costs nothing but the
clipping it causes: what the substitute contributes is the direction.
"""

from __future__ import annotations

import torch
from torch import nn


def l2_walk(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, step: float = 0.1, max_steps: int = 100,
            overshoot: float = 2.0, clip_min: float = 0.0, clip_max: float = 1.0) -> torch.Tensor:
    """x moved along the substitute's margin gradient (away from y) until the substitute's label changes, the
    perturbation then scaled by `overshoot`; an image the walk does not flip within `max_steps` keeps its last step."""
    model.eval()
    walked = x.detach().clone()
    active = torch.arange(len(x), device=x.device)
    for _ in range(max_steps):
        if not len(active):
            break
        xa = walked[active].requires_grad_(True)
        logits = model(xa)
        ya = y[active]
        others = logits.scatter(1, ya[:, None], float("-inf")).max(1).values
        # the margin, not the cross-entropy: a substitute trained to zero loss saturates its softmax
        margin = others - logits.gather(1, ya[:, None]).squeeze(1)
        (grad,) = torch.autograd.grad(margin.sum(), xa)
        norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
        moved = (xa + step * grad / norm).clamp(clip_min, clip_max).detach()
        walked[active] = moved
        with torch.no_grad():
            active = active[model(moved).argmax(1) == ya]
    return (x + overshoot * (walked - x)).clamp(clip_min, clip_max).detach()
