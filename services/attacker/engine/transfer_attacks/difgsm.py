"""DI-FGSM (Xie et al., CVPR 2019, "Improving transferability of adversarial examples with input diversity"):
each step's gradient is taken through a random transformation of the input, so that the perturbation does not
fit the substitute's exact view of the image. With probability p (the paper: 0.5) the whole batch is resized to
rnd×rnd and zero-padded back at a random offset, else left as it is; the gradient flows through the transform.

The paper enlarges a 299-pixel image to rnd ∈ [299, 330) and pads to 330, which its Inception network accepts;
our substitutes take exactly their input size, so the image is shrunk instead, to rnd ∈ [⌊0.9·H⌋, H), and padded
back to H (the fixed-size reading of torchattacks' DIFGSM, resize_rate 0.9), both with nearest-neighbour
resizing as the authors' code. Momentum μ = 1.0 makes it M-DI²-FGSM, the paper's strongest; μ = 0, DI²-FGSM.
The steps follow Kurakin et al.'s count as the paper does (min(ε·255 + 4, 1.25·ε·255) steps of 1/255). L∞ only,
as the paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from bbrange.attacker.engine.transfer_attacks.iterative import GradientAttack, Steps
from bbrange.attacker.engine.transfer_attacks.pgd import kurakin_steps
from bbrange.attacker.engine.vocabulary import Norm


def input_diversity(x: torch.Tensor, generator: torch.Generator, probability: float,
                    resize_rate: float) -> torch.Tensor:
    """With `probability`, the batch resized to rnd×rnd (rnd uniform in [⌊resize_rate·H⌋, H)) and zero-padded back
    to H×W at a random offset, one draw for the batch; else x itself. Differentiable in x."""
    if float(torch.rand(1, generator=generator)) >= probability:
        return x
    h, w = x.shape[-2:]
    rnd = int(torch.randint(min(int(h * resize_rate), h - 1), h, (1,), generator=generator))
    rnd_w = max(1, round(rnd * w / h))
    top = int(torch.randint(0, h - rnd + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - rnd_w + 1, (1,), generator=generator))
    rescaled = nn.functional.interpolate(x, size=(rnd, rnd_w), mode="nearest")
    return nn.functional.pad(rescaled, (left, w - rnd_w - left, top, h - rnd - top), value=0.0)


@dataclass(frozen=True)
class DIFGSM(GradientAttack):
    name: ClassVar[str] = "difgsm"
    norms: ClassVar[tuple[Norm, ...]] = ("linf",)
    probability: float = 0.5
    resize_rate: float = 0.9
    momentum: float = 1.0
    steps: int | None = None  # None: Kurakin et al.'s count for ε
    step_size: float | None = None  # None: 1/255

    def schedule(self) -> Steps:
        probability, rate = self.probability, self.resize_rate

        def diversity(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            return input_diversity(x, generator, probability, rate)

        return Steps(self.steps or kurakin_steps(self.eps), self.step_size or 1 / 255, momentum=self.momentum,
                     diversity=diversity)
