"""Defended oracles: adversarial training recipes, so a range can compare a defence against the same attack.

- FGSM adversarial training (Goodfellow et al., 2015): every batch is trained half on clean images and half
  on FGSM examples of the model being trained (ε, true labels).
- Ensemble adversarial training (Tramèr et al., ICLR 2018): the adversarial half comes, batch by batch, from
  the model itself or from one of several static models trained beforehand, whose examples the model
  being trained cannot mask its own gradient against. It was designed against transferred attacks,
  which is what the black-box attack is.

FGSM is written here rather than taken from the attack engine: the oracle never imports the attacker, and
training uses the true labels and the plain cross-entropy gradient, as the defence papers do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bbrange.shared.architectures import build_model


@dataclass(frozen=True)
class AdversarialTraining:
    eps: float = 0.3
    # Architectures of the static models (ensemble adversarial training); empty: FGSM adversarial training.
    static_architectures: tuple[str, ...] = ()
    static_epochs: int = 2


def fgsm_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    was_training = model.training
    model.eval()
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), x)
    model.train(was_training)
    return (x.detach() + eps * grad.sign()).clamp_(0.0, 1.0)


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
                     static: list[nn.Module], step: int) -> torch.Tensor:
    """Half clean, half adversarial: from the model itself, or in turn from each static model."""
    sources = [model, *static]
    x_adv = fgsm_examples(sources[step % len(sources)], xb, yb, spec.eps)
    return 0.5 * nn.functional.cross_entropy(model(xb), yb) + 0.5 * nn.functional.cross_entropy(model(x_adv), yb)
