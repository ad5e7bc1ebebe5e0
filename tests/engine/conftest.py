"""Fixtures for the attack engine: a quick MNIST oracle behind the label-only interface, no network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bbrange.attacker.engine import InProcessOracle


@pytest.fixture(scope="session")
def quick_oracle_model(quick_model_dir: Path) -> torch.nn.Module:
    from bbrange.shared.model_card import load_model

    model, _ = load_model(quick_model_dir / "mnist.json", torch.device("cpu"))
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture
def quick_oracle(quick_oracle_model: torch.nn.Module) -> InProcessOracle:
    return InProcessOracle(quick_oracle_model, (1, 28, 28), 10)
