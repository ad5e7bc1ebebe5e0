"""Ensembles of substitutes and adversarially trained substitutes: the members are trained on the same labels at no
extra query, crafting on the ensemble reaches every member, augmentation follows the first member (its labelled
set is a lone substitute's) or the ensemble, and adversarial training runs with the shared examples."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bbrange.attacker.engine import (
    MIFGSM,
    PGD,
    BlackBoxAttack,
    InProcessOracle,
    SubstituteConfig,
    SubstituteEnsemble,
    run_blackbox_attack,
    train_substitute,
)
from bbrange.shared.datasets import Dataset
from bbrange.shared.perturbations import TrainingAttack

SMALL = SubstituteConfig(substitute_epochs=2, train_epochs=2, seed=3)


def small(**fields: object) -> SubstituteConfig:
    return SubstituteConfig(**{**vars(SMALL), **fields})  # type: ignore[arg-type]


def first_weights(model: nn.Module) -> torch.Tensor:
    return next(iter(model.state_dict().values()))


def test_crafting_on_an_ensemble_takes_every_member_s_gradient() -> None:
    torch.manual_seed(0)
    members = [nn.Sequential(nn.Flatten(), nn.Linear(64, 5)) for _ in range(3)]
    reached = [0, 0, 0]
    for i, member in enumerate(members):
        member.register_full_backward_hook(lambda module, grad_in, grad_out, i=i: reached.__setitem__(i, reached[i] + 1))
    ensemble = SubstituteEnsemble(members).eval()
    x = torch.rand(4, 1, 8, 8)
    assert torch.allclose(ensemble(x), torch.stack([m(x) for m in members]).mean(0))
    x_adv = MIFGSM(steps=3).craft(ensemble, x)
    assert reached == [3, 3, 3]
    assert not torch.equal(x_adv, MIFGSM(steps=3).craft(members[0], x))


def test_an_ensemble_augmented_by_its_first_member_labels_a_lone_substitute_s_set(quick_oracle: InProcessOracle,
                                                                                 mnist_test: Dataset) -> None:
    x0 = mnist_test.x[:20]
    lone = train_substitute(quick_oracle, x0, small())
    ensemble = train_substitute(quick_oracle, x0, small(ensemble=("mlp", "papernot-mnist")))
    assert isinstance(ensemble.model, SubstituteEnsemble) and len(ensemble.model.members) == 3
    assert (ensemble.x_train == lone.x_train).all() and len(ensemble.y_train) == 80
    first = ensemble.model.members[0]
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), lone.model.state_dict().values(),
                                                 strict=True))
    # The second papernot-mnist member has its own seed: the same preset twice is two substitutes.
    assert not torch.equal(first_weights(ensemble.model.members[2]), first_weights(first))
    by_ensemble = train_substitute(quick_oracle, x0, small(ensemble=("mlp",), augment_with="ensemble"))
    assert len(by_ensemble.y_train) == 80 and not (by_ensemble.x_train == lone.x_train).all()


def test_a_campaign_with_an_ensemble_costs_the_queries_of_one_substitute(quick_oracle: InProcessOracle,
                                                                         mnist_test: Dataset) -> None:
    x0, x, y = mnist_test.x[:20], mnist_test.x[100:140], mnist_test.y[100:140]
    attack = BlackBoxAttack(small(ensemble=("mlp",)), PGD(steps=3, more_sizes=(0.1,)))
    result = run_blackbox_attack(quick_oracle, x0, x, y, attack)
    assert result.completed and result.report is not None and result.report.noise_rate is not None
    assert result.substitute is not None and result.substitute.reports[-1].labelling_queries == 80
    assert [s.eps for s in result.sizes] == [0.3, 0.1] and abs(result.x_adv - x).max() <= 0.3 + 1e-6


@pytest.mark.parametrize("training", [TrainingAttack("fgsm"), TrainingAttack("pgd", steps=3)],
                         ids=["fgsm", "pgd"])
def test_adversarial_substitute_training_runs(quick_oracle: InProcessOracle, mnist_test: Dataset,
                                              training: TrainingAttack) -> None:
    x0 = mnist_test.x[:20]
    plain = train_substitute(quick_oracle, x0, small(substitute_epochs=1))
    defended = train_substitute(quick_oracle, x0, small(substitute_epochs=1, adversarial=training),
                                holdout=(mnist_test.x[200:400], mnist_test.y[200:400]))
    assert defended.completed and len(defended.y_train) == len(plain.y_train) == 40
    report = defended.reports[-1]
    assert report.train_loss == report.train_loss and report.oracle_agreement is not None  # trained, not NaN
    assert not torch.equal(first_weights(defended.model), first_weights(plain.model))


@pytest.mark.parametrize(("fields", "says"), [
    ({"ensemble": ("mlp",) * 5}, "at most 5"),
    ({"augment_with": "ensemble"}, "needs an ensemble"),
    ({"ensemble": ("resnet",)}, "unknown substitute preset"),
])
def test_bad_ensembles_are_refused(fields: dict[str, object], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        small(**fields)
