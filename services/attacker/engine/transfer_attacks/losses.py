"""What a gradient crafting attack ascends, as weights on the substitute's logits: ∇x L = J_Z(x)ᵀ·(∂L/∂Z), one
backward per batch with those weights as its `grad_outputs`.

    ce      cross-entropy of the label y: ∂L/∂Z = softmax(Z) − onehot(y)
    margin  Carlini & Wagner's margin (their f₆, untargeted, κ = ∞): max_{j≠y} Z_j − Z_y, whose ∂/∂Z is
            onehot(j*) − onehot(y). It never saturates, and with no confidence cap it keeps pushing past the
            boundary, which is what transfers (Carlini & Wagner, S&P 2017, Section VIII-D: higher κ transfers better)

Every caller normalises each image's gradient (its sign, its L1 or L2 norm), so each row of the weights may
carry any positive factor: the cross-entropy's is chosen so that it never underflows (`ce_logit_weights`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bbrange.attacker.engine.vocabulary import CraftingLoss

InputTransform = Callable[[torch.Tensor], torch.Tensor]


def ce_logit_weights(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∂CE/∂logits = softmax − onehot, each row rescaled by a positive factor, in float64.

    A confident model (a substitute trained to zero loss) saturates the float32 softmax to exactly one-hot,
    which makes that gradient exactly 0 and a gradient attack a no-op. Only its direction per row matters, so
    use the same vector rescaled per row, computed in log space: w_j = exp(log p_j − max_{k≠y} log p_k) for
    j ≠ y and w_y = −Σ_{j≠y} w_j, which never underflows.
    """
    logp = torch.log_softmax(logits.detach().double(), 1)
    others = logp.scatter(1, y[:, None], float("-inf"))
    w = torch.exp(others - others.max(1, keepdim=True).values)
    return w.scatter(1, y[:, None], -w.sum(1, keepdim=True))


def margin_logit_weights(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∂(max_{j≠y} Z_j − Z_y)/∂Z: +1 on the strongest other class, −1 on y."""
    strongest = logits.detach().scatter(1, y[:, None], float("-inf")).argmax(1)
    w = torch.zeros_like(logits).scatter(1, strongest[:, None], 1.0)
    return w.scatter(1, y[:, None], -1.0)


def loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, loss: CraftingLoss = "ce",
                  transform: InputTransform | None = None) -> torch.Tensor:
    """∇x of `loss` at the label y (default: the model's own labels of x), each row up to a positive factor.

    `transform` (differentiable, e.g. DI-FGSM's random resize and pad) is applied to x inside the graph, so the
    gradient is that of the loss of the transformed input with respect to x."""
    with torch.enable_grad():  # a caller's no_grad (an evaluation loop's) must not stop the attack
        x = x.detach().requires_grad_(True)
        logits = model(x if transform is None else transform(x))
        if y is None:
            y = logits.argmax(1).detach()
        weights = ce_logit_weights(logits, y) if loss == "ce" else margin_logit_weights(logits, y)
        (grad,) = torch.autograd.grad(logits, x, grad_outputs=weights.to(logits.dtype))
    return grad
