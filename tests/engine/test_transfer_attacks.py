"""The gradient transfer attacks (PGD, I-FGSM, MI-FGSM, DI-FGSM, R+FGSM): each stays within its ε-ball in its norm
and within [0, 1], does at least as well as FGSM white-box on a small trained model, takes its paper's defaults,
draws its randomness from the campaign's seed, and has a noise baseline of the same size in the same norm."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bbrange.attacker.engine import DIFGSM, FGSM, IFGSM, MIFGSM, PGD, RFGSM, GradientAttack, InProcessOracle
from bbrange.attacker.engine.attack import CraftingContext
from bbrange.attacker.engine.oracles import QueryCounter
from bbrange.attacker.engine.transfer_attacks.difgsm import input_diversity
from bbrange.attacker.engine.transfer_attacks.pgd import kurakin_steps
from bbrange.shared.datasets import Dataset

EVERY = [PGD(steps=5), PGD(eps=1.5, norm="l2", steps=5), PGD(steps=5, loss="margin"), IFGSM(steps=5, step_size=0.1),
         IFGSM(eps=1.5, norm="l2", loss="margin"), MIFGSM(), MIFGSM(eps=1.5, norm="l2"), MIFGSM(loss="margin"),
         DIFGSM(steps=5, step_size=0.1), DIFGSM(steps=5, step_size=0.1, momentum=0.0, loss="margin"), RFGSM(),
         RFGSM(loss="margin")]


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 5)).eval()


def misled(model: nn.Module, x: torch.Tensor, attack: GradientAttack | FGSM) -> float:
    """Share of x whose label the attack's example changes, white-box."""
    with torch.no_grad():
        return float((model(attack.craft(model, x)).argmax(1) != model(x).argmax(1)).float().mean())


@pytest.mark.parametrize("attack", EVERY, ids=lambda a: f"{a.name}-{a.norm}-{a.loss}")
def test_every_example_stays_in_its_ball_and_in_range(attack: GradientAttack) -> None:
    x = torch.rand(16, 1, 8, 8)
    x_adv = attack.craft(tiny_model(), x)
    moved = (x_adv - x).flatten(1)
    size = moved.abs().max(1).values if attack.norm == "linf" else moved.norm(dim=1)
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (size <= attack.eps + 1e-5).all() and (size > 0.5 * attack.eps).all()


@pytest.fixture(scope="module")
def images(mnist_test: Dataset) -> torch.Tensor:
    return torch.from_numpy(mnist_test.x[:100])


WHITE_BOX = [PGD(eps=0.2, steps=10, step_size=0.05), PGD(eps=0.2, steps=10, step_size=0.05, loss="margin"),
             IFGSM(eps=0.2, steps=20, step_size=0.015), MIFGSM(eps=0.2), MIFGSM(eps=0.2, loss="margin"),
             DIFGSM(eps=0.2)]  # DI-FGSM's random views need its paper's many steps to beat FGSM white-box


@pytest.mark.parametrize("attack", WHITE_BOX, ids=lambda a: f"{a.name}-{a.loss}")
def test_the_iterative_attacks_do_at_least_as_well_as_fgsm_white_box(quick_oracle_model: nn.Module,
                                                                      images: torch.Tensor,
                                                                      attack: GradientAttack) -> None:
    assert misled(quick_oracle_model, images, attack) >= misled(quick_oracle_model, images, FGSM(eps=0.2))


def test_r_fgsm_does_at_least_as_well_as_fgsm_of_its_gradient_step(quick_oracle_model: nn.Module,
                                                                    images: torch.Tensor) -> None:
    # Against an undefended model a full FGSM step does better: R+FGSM is meant for gradient-masked ones.
    for loss in ("ce", "margin"):
        rfgsm = RFGSM(eps=0.2, alpha=0.05, loss=loss)  # type: ignore[arg-type]
        assert misled(quick_oracle_model, images, rfgsm) >= misled(quick_oracle_model, images, FGSM(eps=0.15))


def test_l2_attacks_beat_l2_noise_of_their_size(quick_oracle_model: nn.Module, images: torch.Tensor) -> None:
    x = images.numpy()
    with torch.no_grad():
        clean = quick_oracle_model(images).argmax(1).numpy()
    for attack in (PGD(eps=2.0, norm="l2", steps=10), IFGSM(eps=2.0, norm="l2"), MIFGSM(eps=2.0, norm="l2")):
        noise = attack.noise(x, x, np.random.default_rng(0))
        assert np.linalg.norm((noise - x).reshape(len(x), -1), axis=1).max() <= 2.0 + 1e-4
        with torch.no_grad():
            noise_rate = float((quick_oracle_model(torch.from_numpy(noise)).argmax(1).numpy() != clean).mean())
        assert misled(quick_oracle_model, images, attack) > noise_rate + 0.3


def test_the_papers_defaults() -> None:
    assert kurakin_steps(0.3) == 80 and kurakin_steps(16 / 255) == 20  # min(ε+4, 1.25ε) in intensity levels
    assert PGD().schedule().steps == 40 and PGD().schedule().step_size == pytest.approx(0.01)  # Madry et al.
    assert IFGSM().schedule().step_size == pytest.approx(1 / 255) and IFGSM().schedule().steps == 80  # Kurakin et al.
    mi = MIFGSM().schedule()
    assert (mi.steps, mi.step_size, mi.momentum) == (10, pytest.approx(0.03), 1.0)  # Dong et al.
    di = DIFGSM().schedule()
    assert (DIFGSM().probability, di.momentum, di.steps) == (0.5, 1.0, 80)  # Xie et al.'s M-DI²-FGSM
    r = RFGSM().schedule()
    assert (RFGSM().alpha, r.steps, r.step_size) == (0.05, 1, pytest.approx(0.25))  # Tramèr et al.'s MNIST code


def test_what_a_paper_does_not_define_is_refused() -> None:
    for build in (lambda: RFGSM(norm="l2", eps=1.0), lambda: DIFGSM(norm="l2", eps=1.0), lambda: RFGSM(alpha=0.3),
                  lambda: RFGSM(eps=0.3, more_sizes=(0.05,)), lambda: PGD(eps=1.5)):
        with pytest.raises(ValueError):
            build()


def test_without_momentum_mi_fgsm_is_i_fgsm() -> None:
    x = torch.rand(8, 1, 8, 8)
    model = tiny_model()
    plain = IFGSM(steps=7, step_size=0.05).craft(model, x)
    assert torch.equal(MIFGSM(momentum=0.0, steps=7, step_size=0.05).craft(model, x), plain)
    assert not torch.equal(MIFGSM(steps=7, step_size=0.05).craft(model, x), plain)


def test_input_diversity_resizes_and_pads_back_differentiably() -> None:
    x = torch.rand(4, 1, 28, 28, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    assert input_diversity(x, generator, 0.0, 0.9) is x
    out = input_diversity(x, generator, 1.0, 0.9)
    assert out.shape == x.shape and not torch.equal(out, x)
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert grad.abs().sum() > 0


def test_a_set_s_random_draws_follow_the_campaign_seed(quick_oracle_model: nn.Module, quick_oracle: InProcessOracle,
                                                       images: torch.Tensor) -> None:
    x = images.numpy()[:20]

    def crafted(seed: int) -> np.ndarray:
        context = CraftingContext(quick_oracle_model, QueryCounter(quick_oracle), x, np.zeros(len(x), np.int64), 10,
                                  seed, torch.device("cpu"))
        return PGD(steps=2, batch_size=7).craft_set(context, None, lambda fraction: None)

    first = crafted(1)
    assert np.array_equal(first, crafted(1)) and not np.array_equal(first, crafted(2))
    assert not np.array_equal(first[:7] - x[:7], first[7:14] - x[7:14])  # one generator across the set's batches


def test_noise_baselines_have_the_attack_s_size_and_norm() -> None:
    x = np.full((3, 1, 8, 8), 0.5, np.float32)
    linf = PGD(eps=0.1).noise(x, x, np.random.default_rng(0))
    assert np.allclose(np.abs(linf - x), 0.1)
    l2 = MIFGSM(eps=1.0, norm="l2").noise(x, x, np.random.default_rng(0))
    assert np.allclose(np.linalg.norm((l2 - x).reshape(3, -1), axis=1), 1.0, atol=1e-5)
    assert np.array_equal(FGSM(eps=0.1).noise(x, x, np.random.default_rng(0)), linf)  # one noise, one place
