"""Model architectures, by name: the oracles' and the attacker's substitute presets.

Every model maps float32 NCHW inputs in [0, 1] to logits (the layer before the softmax), which is
what the JSMA forward derivative is taken on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

InputShape = tuple[int, int, int]


@dataclass(frozen=True)
class Architecture:
    name: str
    layers: str  # human-readable layer list, shown in model cards and docs
    build: Callable[[InputShape, int], nn.Module]


def _flat_features(features: nn.Module, input_shape: InputShape) -> int:
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).numel())


def lenet(input_shape: InputShape, num_classes: int) -> nn.Module:
    """The JSMA thesis's LeNet, the Theano tutorial's simplified LeNet-5: tanh after each pooling and in
    the hidden layer. The activation matters to the reproductions: a ReLU LeNet trained the same way
    has far larger logit gradients, and white-box JSMA on it succeeds on ~84% of the samples instead of
    the thesis's 97% (benchmarks/ENGINE.md)."""
    features = nn.Sequential(
        nn.Conv2d(input_shape[0], 20, 5), nn.MaxPool2d(2), nn.Tanh(),
        nn.Conv2d(20, 50, 5), nn.MaxPool2d(2), nn.Tanh(),
        nn.Flatten(),
    )
    return nn.Sequential(
        features,
        nn.Linear(_flat_features(features, input_shape), 500), nn.Tanh(),
        nn.Linear(500, num_classes),
    )


def gtsrb_cnn(input_shape: InputShape, num_classes: int) -> nn.Module:
    """A VGG-style CNN for 3x32x32 traffic signs: three conv blocks with batch norm, two dense layers."""

    def block(c_in: int, c_out: int, convs: int) -> list[nn.Module]:
        layers: list[nn.Module] = []
        for i in range(convs):
            layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        return layers + [nn.MaxPool2d(2)]

    features = nn.Sequential(
        *block(input_shape[0], 32, 2), *block(32, 64, 2), *block(64, 128, 1), nn.Flatten()
    )
    return nn.Sequential(
        features,
        nn.Dropout(0.3),
        nn.Linear(_flat_features(features, input_shape), 256), nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(256, num_classes),
    )


def papernot_substitute(input_shape: InputShape, num_classes: int) -> nn.Module:
    """The black-box paper's MNIST substitute for the MetaMind run (architecture A):
    conv 32@3x3, max-pool 2, conv 64@3x3, max-pool 2, fc 200, fc 200, fc classes (ReLU)."""
    features = nn.Sequential(
        nn.Conv2d(input_shape[0], 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
    )
    return nn.Sequential(
        features,
        nn.Linear(_flat_features(features, input_shape), 200), nn.ReLU(),
        nn.Linear(200, 200), nn.ReLU(),
        nn.Linear(200, num_classes),
    )


def mlp(input_shape: InputShape, num_classes: int) -> nn.Module:
    """A small fully-connected network: fc 256, fc 256, fc classes (ReLU)."""
    size = input_shape[0] * input_shape[1] * input_shape[2]
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(size, 256), nn.ReLU(),
        nn.Linear(256, 256), nn.ReLU(),
        nn.Linear(256, num_classes),
    )


def gtsrb_substitute(input_shape: InputShape, num_classes: int) -> nn.Module:
    """A smaller GTSRB CNN for substitutes: conv 64@5x5 pool, conv 128@3x3 pool, fc 256, fc classes."""
    features = nn.Sequential(
        nn.Conv2d(input_shape[0], 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
    )
    return nn.Sequential(
        features,
        nn.Linear(_flat_features(features, input_shape), 256), nn.ReLU(),
        nn.Linear(256, num_classes),
    )


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in (
        Architecture("lenet", "conv 20@5x5, max-pool 2, tanh, conv 50@5x5, max-pool 2, tanh, fc 500, tanh, fc classes",
                     lenet),
        Architecture(
            "gtsrb-cnn",
            "2x conv 32@3x3+BN, pool, 2x conv 64@3x3+BN, pool, conv 128@3x3+BN, pool, fc 256, fc classes; "
            "ReLU, dropout 0.3",
            gtsrb_cnn,
        ),
        Architecture(
            "papernot-mnist",
            "conv 32@3x3, max-pool 2, conv 64@3x3, max-pool 2, fc 200, fc 200, fc classes; ReLU",
            papernot_substitute,
        ),
        Architecture("mlp", "fc 256, fc 256, fc classes; ReLU", mlp),
        Architecture(
            "gtsrb-substitute",
            "conv 64@5x5, max-pool 2, conv 128@3x3, max-pool 2, fc 256, fc classes; ReLU",
            gtsrb_substitute,
        ),
    )
}


def build_model(name: str, input_shape: InputShape, num_classes: int) -> nn.Module:
    try:
        arch = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None
    return arch.build(input_shape, num_classes)
