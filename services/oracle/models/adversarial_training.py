"""Defended oracles: adversarial training recipes, so a range can compare a defence against the same attack.

- FGSM adversarial training (Goodfellow et al., 2015): every batch is trained half on clean images and half
  on FGSM examples of the model being trained (ε, true labels).
- PGD adversarial training (Madry et al., ICLR 2018): the examples are PGD's from a random start, and the loss
  may be on them alone (`TrainingAttack.clean_weight` = 0), as Madry et al. train.
- Ensemble adversarial training (Tramèr et al., ICLR 2018): the adversarial half comes, batch by batch, from
  the model itself or from one of several static models trained beforehand, whose examples the model
  being trained cannot mask its own gradient against. It was designed against transferred attacks,
  which is what the black-box attack is.

The examples and the mixed loss are bbrange.shared.adversarial's, which the attacker's adversarially trained
substitutes use too: the oracle never imports the attacker, and training uses the true labels and the plain
cross-entropy gradient, as the defence papers do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from bbrange.shared.adversarial import adversarial_loss as mixed_loss
from bbrange.shared.adversarial import training_examples
from bbrange.shared.architectures import build_model
from bbrange.shared.perturbations import TrainingAttack


@dataclass(frozen=True)
class AdversarialTraining:
    attack: TrainingAttack = field(default_factory=TrainingAttack)
    # Architectures of the static models (ensemble adversarial training); empty: the model's own examples only.
    static_architectures: tuple[str, ...] = ()
    static_epochs: int = 2

    def describe(self) -> str:
        """The card's words, e.g. "FGSM ε=0.3 from itself, mlp, papernot-mnist"."""
        return f"{self.attack.describe()} from " + ", ".join(["itself", *self.static_architectures])


def train_static_models(spec: AdversarialTraining, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                        batch_size: int, generator: torch.Generator, device: torch.device) -> list[nn.Module]:
    """The ensemble's pre-trained models: trained once on clean data, then frozen."""
    models = []
    for arch in spec.static_architectures:
        model = build_model(arch, (x.shape[1], x.shape[2], x.shape[3]), num_classes).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        model.train()
        for _ in range(spec.static_epochs):
            order = torch.randperm(len(x), generator=generator)
            for i in range(0, len(x), batch_size):
                idx = order[i : i + batch_size]
                loss = nn.functional.cross_entropy(model(x[idx].to(device)), y[idx].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
                optimizer.step()
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        models.append(model)
    return models


def adversarial_loss(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, spec: AdversarialTraining,
                     static: list[nn.Module], step: int, generator: torch.Generator) -> torch.Tensor:
    """Clean and adversarial: the examples from the model itself, or in turn from each static model."""
    sources = [model, *static]
    x_adv = training_examples(spec.attack, sources[step % len(sources)], xb, yb, generator)
    return mixed_loss(spec.attack, model, xb, yb, x_adv)
