"""The gradient transfer attacks, ensembles of substitutes and adversarially trained substitutes in a campaign spec,
through the API in-process: good specs are queued as they were written, bad combinations are 422 with the reason."""

from __future__ import annotations

from typing import Any

import pytest

from bbrange.attacker.campaigns.spec.builder import gradient_attack
from bbrange.attacker.campaigns.spec.substitute import Substitute
from tests.specs import campaign_spec
from tests.unit.attacker_inprocess import InProcessApi

ENSEMBLE = {"presets": ["papernot-mnist", "mlp", "lenet"], "augment_with": "ensemble"}

REFUSED = [
    (campaign_spec(crafting={"method": "pgd", "momentum": 1.0}), "pgd has no setting 'momentum'; mifgsm, difgsm have it"),
    (campaign_spec(crafting={"method": "rfgsm", "norm": "l2", "eps": 2.0}), "rfgsm supports the norm(s) linf, not 'l2'"),
    (campaign_spec(crafting={"method": "difgsm", "norm": "l2", "eps": 2.0}), "difgsm supports the norm(s) linf"),
    (campaign_spec(crafting={"method": "pgd", "eps": 2.0}), "an L∞ ε is at most 1"),
    (campaign_spec(crafting={"method": "mifgsm", "norm": "l1"}), "crafting.mifgsm.norm"),
    (campaign_spec(crafting={"method": "ifgsm", "loss": "hinge"}), "crafting.ifgsm.loss"),
    (campaign_spec(crafting={"method": "rfgsm", "eps": [0.3, 0.04]}), "must be smaller than every ε"),
    (campaign_spec(crafting={"method": "pgd", "steps": 5000}), "crafting.pgd.steps"),
    (campaign_spec(crafting={"method": "difgsm", "probability": 1.5}), "crafting.difgsm.probability"),
    (campaign_spec(crafting={"method": "mifgsm", "eps": [0.3, 0.3]}), "give each ε once"),
    (campaign_spec(crafting={"method": "jsma", "loss": "ce"}), "jsma has no setting 'loss'"),
    (campaign_spec(substitute={"presets": ["papernot-mnist", "resnet"]}), "substitute.presets.1"),
    (campaign_spec(substitute={"presets": ["mlp"] * 6}), "at most 5 items"),
    (campaign_spec(substitute={"presets": ["mlp"]}), "at least 2 items"),
    (campaign_spec(substitute={"preset": "lenet", "presets": ["papernot-mnist", "mlp"]}),
     "give preset (one substitute) or presets (an ensemble), not both"),
    (campaign_spec(substitute={"augment_with": "ensemble"}), "augment_with 'ensemble' needs an ensemble"),
    (campaign_spec(substitute={"presets": ["papernot-mnist", "mlp"], "augment_with": "average"}),
     "substitute.augment_with"),
    (campaign_spec(substitute={"adversarial_training": {"method": "fgsm", "steps": 10}}), "steps and step_size are PGD's"),
    (campaign_spec(substitute={"adversarial_training": {"method": "cw"}}), "substitute.adversarial_training.method"),
    (campaign_spec(substitute={"adversarial_training": {"method": "pgd", "steps": 1000}}),
     "substitute.adversarial_training.steps"),
    (campaign_spec(substitute={"adversarial_training": {"eps": 1.5}}), "substitute.adversarial_training.eps"),
]


@pytest.mark.parametrize(("body", "says"), REFUSED, ids=[s[:40] for _, s in REFUSED])
def test_bad_combinations_are_refused_with_the_reason(api: InProcessApi, body: dict[str, Any], says: str) -> None:
    r = api.submit(body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_request" and says in r.json()["error"]["message"], r.text
    assert api.total() == 0


ACCEPTED = [
    campaign_spec(crafting=gradient_attack("pgd", eps=[2.0, 1.0], norm="l2", loss="margin", steps=20)),
    campaign_spec(crafting=gradient_attack("ifgsm")),
    campaign_spec(crafting=gradient_attack("mifgsm", momentum=0.5), substitute=ENSEMBLE),
    campaign_spec(crafting=gradient_attack("difgsm", momentum=0.0, probability=0.3)),
    campaign_spec(crafting=gradient_attack("rfgsm", eps=[0.3, 0.1], alpha=0.05),
                  substitute={"adversarial_training": {"method": "pgd", "eps": 0.3, "steps": 5}}),
    campaign_spec(preset=["papernot-mnist", "papernot-mnist"], crafting={"method": "fgsm"}),
]


@pytest.mark.parametrize("body", ACCEPTED, ids=lambda b: f"{b['crafting']['method']}")
def test_good_specs_are_queued_as_written(api: InProcessApi, body: dict[str, Any]) -> None:
    r = api.submit(body)
    assert r.status_code == 202, r.text
    stored = api.get(f"/attacks/{r.json()['id']}").json()["spec"]
    assert holds(stored["crafting"], body["crafting"]) and holds(stored["substitute"], body["substitute"])


def holds(stored: Any, given: Any) -> bool:
    """Whether the stored spec has every value given (the defaults it added beside them aside)."""
    if isinstance(given, dict):
        return isinstance(stored, dict) and all(k in stored and holds(stored[k], v) for k, v in given.items())
    return bool(stored == given)


def test_the_openapi_schema_documents_the_new_attacks(api: InProcessApi) -> None:
    schemas = api.client.get("/openapi.json").json()["components"]["schemas"]
    assert {"PgdCrafting", "IfgsmCrafting", "MifgsmCrafting", "DifgsmCrafting", "RfgsmCrafting",
            "AdversarialTraining"} <= set(schemas)
    assert "presets" in schemas["Substitute"]["properties"]


def test_an_ensemble_s_stored_spec_validates_again() -> None:
    """The worker validates the stored spec, defaults written out: the ensemble's first preset stands as `preset`."""
    for given in ({"presets": ["mlp", "lenet"]}, {"presets": ["mlp", "lenet"], "preset": "mlp"}):
        stored = Substitute.model_validate(given).model_dump()
        assert stored["preset"] == "mlp" and Substitute.model_validate(stored).members == ["mlp", "lenet"]


@pytest.mark.parametrize(("args", "substitute"), [
    ([], {"preset": "papernot-mnist", "augment_with": "first"}),
    (["--preset", "mlp", "--preset", "lenet", "--augment-with", "ensemble", "--adversarial-training", "pgd"],
     {"presets": ["mlp", "lenet"], "augment_with": "ensemble", "adversarial_training": {"method": "pgd", "eps": 0.3}}),
])
def test_attack_run_names_an_ensemble_and_adversarial_training(monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                                substitute: dict[str, Any]) -> None:
    from typer.testing import CliRunner

    from bbrange.attacker.campaigns.cli import main
    from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
    from bbrange.cli import app

    submitted: list[dict[str, Any]] = []
    monkeypatch.setattr(main, "submit_and_follow", lambda spec, *_, **__: submitted.append(spec))
    result = CliRunner().invoke(app, ["attack", "run", "--token", "t", "--api-key", "k", "--method", "difgsm",
                                      "-c", "momentum=0", *args])
    assert result.exit_code == 0, result.output
    spec = submitted[0]
    assert holds(spec["substitute"], substitute) and spec["crafting"] == {"method": "difgsm", "momentum": 0}
    assert CampaignSpec.model_validate(spec).substitute.members == substitute.get("presets", ["papernot-mnist"])
