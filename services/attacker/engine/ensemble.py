"""Ensembles of substitutes: several presets trained on the same labelled set, crafted on as one model.

Liu et al. (ICLR 2017, "Delving into transferable adversarial examples and black-box attacks") craft on an
ensemble of models, so that an example which fools them all is more likely to fool an unseen one too; they
average the members' softmax outputs. We average their logits, which Dong et al. (CVPR 2018, Section 3.2) found
to transfer best of the three ways of fusing (logits, predictions, losses). The crafting plug-ins receive the
ensemble as one `nn.Module`, so none of them needs to know it is one.

The members cost no extra oracle queries: all are trained on the same S_ρ and its labels, and the Jacobian
augmentation that chooses the next points follows the first member (then its set is exactly the one a lone
substitute of that preset and seed would have labelled) or the ensemble's averaged logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bbrange.attacker.engine.presets import get_preset
from bbrange.shared.architectures import InputShape, build_model


class SubstituteEnsemble(nn.Module):
    """The members' logits, averaged."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(0)


def build_members(presets: Sequence[str], seed: int, input_shape: InputShape, num_classes: int,
                  device: torch.device) -> list[nn.Module]:
    """One fresh model per preset. The first is built from torch's global generator as the caller seeded it (as a
    lone substitute is), each further one i from seed + i, without disturbing the global generator's state."""
    members = []
    for i, name in enumerate(presets):
        architecture = get_preset(name).architecture
        if i == 0:
            members.append(build_model(architecture, input_shape, num_classes))
            continue
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + i)
            members.append(build_model(architecture, input_shape, num_classes))
    return [m.to(device) for m in members]


def crafting_model(members: Sequence[nn.Module]) -> nn.Module:
    """What the attack crafts on: a lone substitute itself, or the ensemble of several."""
    return members[0] if len(members) == 1 else SubstituteEnsemble(members)
