"""The campaign logic below the API, as plain functions: the plan (spec to engine attack and images), the
limits on what a campaign may ask, and the sealing of its target's secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from bbrange.attacker.campaigns.errors import InvalidCampaign
from bbrange.attacker.campaigns.settings import AttackerSettings
from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from bbrange.attacker.campaigns.spec.limits import check_spec_limits, check_spec_size, epoch_set_sizes, initial_set_size
from bbrange.attacker.campaigns.storage.sealing import SEALED, KeySealer, MissingSecretKey, open_spec, sealed_spec_json
from bbrange.attacker.campaigns.storage.user_data import Uploads
from bbrange.attacker.campaigns.worker.plan import campaign_inputs, engine_attack, epoch_weights
from bbrange.attacker.engine import FGSM, JSMA
from bbrange.shared.http_errors import ApiError
from tests.specs import campaign_spec

MNIST = ((1, 28, 28), 10)
NO_UPLOADS = Uploads(x0=None, x_eval=None, y_eval=None)


def spec(**overrides: Any) -> CampaignSpec:
    return CampaignSpec.model_validate(campaign_spec(**overrides))


# ------------------------------------------------------------------ plan


def test_the_engine_attack_is_the_spec_said_in_the_engine_s_terms() -> None:
    attack = engine_attack(spec(substitute={"rho": 3, "lam": 0.2}, crafting={"method": "fgsm", "eps": [0.2, 0.3]},
                                evaluation={"noise_baseline": False}, seed=5))
    assert (attack.substitute.substitute_epochs, attack.substitute.lam, attack.substitute.seed) == (3, 0.2, 5)
    assert attack.substitute.train_epochs == 2 and attack.stop_when_training_stops and not attack.noise_baseline
    assert attack.crafting == FGSM(eps=0.2, more_sizes=(0.3,))
    jsma = engine_attack(spec(crafting={"method": "jsma", "target": "fixed", "target_class": 4}))
    assert isinstance(jsma.crafting, JSMA) and jsma.crafting.target_class == 4


def test_s0_from_the_evaluation_split_is_kept_out_of_the_evaluation_images(data_dir: Path) -> None:
    inputs = campaign_inputs(spec(initial_set={"kind": "dataset", "split": "test", "offset": 10, "size": 30}),
                             NO_UPLOADS, *MNIST)
    assert inputs.x0.shape == (30, 1, 28, 28) and inputs.x_eval.shape == (60, 1, 28, 28)
    assert inputs.eval_index.tolist() == [*range(10), *range(40, 90)]
    assert not set(inputs.eval_index.tolist()) & set(range(10, 40))
    other_split = campaign_inputs(spec(initial_set={"kind": "dataset", "split": "train", "offset": 0, "size": 30}),
                                  NO_UPLOADS, *MNIST)
    assert other_split.eval_index.tolist() == list(range(60))
    assert inputs.class_names is not None and len(inputs.class_names) == 10


@pytest.mark.parametrize(("shape", "classes", "says"), [
    ((3, 32, 32), 10, "takes inputs of shape (3, 32, 32)"),
    ((1, 28, 28), 43, "has 43 classes, the mnist domain has 10; give target.class_map"),
])
def test_a_spec_that_does_not_fit_the_model_is_refused_before_any_query(
        data_dir: Path, shape: tuple[int, int, int], classes: int, says: str) -> None:
    with pytest.raises(InvalidCampaign) as e:
        campaign_inputs(spec(), NO_UPLOADS, shape, classes)
    assert says in str(e.value) and e.value.error_code == "invalid_campaign"


def test_images_beyond_the_split_are_refused(data_dir: Path) -> None:
    with pytest.raises(InvalidCampaign, match="that split has 10000 images"):
        campaign_inputs(spec(initial_set={"kind": "dataset", "split": "test", "offset": 9990, "size": 30}),
                        NO_UPLOADS, *MNIST)


def test_uploaded_images_are_used_in_the_unit_interval() -> None:
    x0 = np.full((4, 1, 28, 28), 255, np.uint8)
    x_eval, y_eval = np.zeros((8, 1, 28, 28), np.uint8), np.arange(8) % 10
    s = spec(initial_set={"kind": "upload", "shape": [4, 1, 28, 28]},
             evaluation={"size": 5, "source": {"kind": "upload", "shape": [8, 1, 28, 28]}})
    inputs = campaign_inputs(s, Uploads(x0=x0, x_eval=x_eval, y_eval=y_eval), *MNIST)
    assert inputs.x0.dtype == np.float32 and float(inputs.x0.max()) == 1.0
    assert inputs.x_eval.shape == (5, 1, 28, 28) and inputs.y_eval.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(InvalidCampaign, match="uploaded initial set is missing"):
        campaign_inputs(s, NO_UPLOADS, *MNIST)


def test_epoch_sizes_double_or_grow_by_kappa_under_reservoir_sampling() -> None:
    assert epoch_set_sizes(30, 3, False, 0, 0) == [30, 60, 120, 240]
    assert epoch_set_sizes(30, 4, True, 2, 50) == [30, 60, 120, 170, 220]
    assert epoch_set_sizes(10, 2, True, 0, 400) == [10, 20, 40]  # κ beyond the set's size: at most doubles
    assert epoch_weights(30, 2, False, 0, 0) == [30.0, 60.0, 120.0]


# ------------------------------------------------------------------ limits


def test_the_substitute_s_points_are_bounded_by_its_last_epoch() -> None:
    settings = AttackerSettings(max_substitute_points=240)
    check_spec_limits(spec(substitute={"rho": 3}), 30, settings)  # 30 · 2³ = 240: at the limit
    with pytest.raises(ApiError) as e:
        check_spec_limits(spec(substitute={"rho": 4}), 30, settings)
    assert (e.value.status, e.value.code, e.value.details) == (422, "spec_too_large", {"points": 480, "limit": 240})
    assert "BBRANGE_ATTACK_MAX_SUBSTITUTE_POINTS" in e.value.message and "reservoir" in e.value.message


def test_the_evaluation_size_is_bounded() -> None:
    with pytest.raises(ApiError) as e:
        check_spec_limits(spec(evaluation={"size": 101}), 30, AttackerSettings(max_evaluation_size=100))
    assert e.value.details == {"evaluation_size": 101, "limit": 100}
    assert "BBRANGE_ATTACK_MAX_EVALUATION_SIZE" in e.value.message


def test_the_initial_set_size_is_the_spec_s_or_the_upload_s() -> None:
    assert initial_set_size(spec(), None) == 30
    assert initial_set_size(spec(initial_set={"kind": "upload", "shape": [7, 1, 28, 28]}), 7) == 7


def test_the_stored_spec_is_bounded_in_bytes() -> None:
    settings = AttackerSettings(max_spec_bytes=1024)
    check_spec_size("x" * 1024, settings)
    with pytest.raises(ApiError) as e:
        check_spec_size("é" * 600, settings)  # counted in bytes, not characters
    assert e.value.details == {"spec_bytes": 1200, "limit": 1024}


# ------------------------------------------------------------------ sealing


def test_the_target_is_sealed_whole_and_opens_with_the_same_key() -> None:
    sealer = KeySealer(SecretStr(Fernet.generate_key().decode()))
    s = spec(target={"api_key": "oracle-secret-key"})
    stored = sealed_spec_json(s, sealer)
    assert "oracle-secret-key" not in stored and "127.0.0.1" not in stored
    assert set(json.loads(stored)["target"]) == {SEALED}
    opened = open_spec(stored, sealer)
    assert opened.target.api_key is not None and opened.target.api_key.get_secret_value() == "oracle-secret-key"
    assert opened.model_dump(mode="json") == s.model_dump(mode="json")


def test_another_key_cannot_open_it_and_says_why() -> None:
    stored = sealed_spec_json(spec(), KeySealer(SecretStr(Fernet.generate_key().decode())))
    with pytest.raises(InvalidCampaign, match="differs between the API and this worker"):
        open_spec(stored, KeySealer(SecretStr(Fernet.generate_key().decode())))


@pytest.mark.parametrize(("key", "says"), [(None, "is not set"), (SecretStr("short"), "is not a Fernet key")])
def test_a_missing_or_malformed_secret_key_says_how_to_make_one(key: SecretStr | None, says: str) -> None:
    with pytest.raises(MissingSecretKey, match=says) as e:
        KeySealer(key)
    assert "Fernet.generate_key()" in str(e.value)
