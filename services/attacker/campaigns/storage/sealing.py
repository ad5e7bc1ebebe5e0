"""The target a campaign spends (its API key or other credentials), encrypted at rest (Fernet) with a key
from the environment.

The API seals the whole target before the spec reaches Redis, so neither Redis's memory nor its AOF history ever
holds it in plain text; a worker opens it when the campaign starts. The sealed spec is deleted when the
campaign ends (CampaignStore.update(finish=True)).
"""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from bbrange.attacker.campaigns.errors import InvalidCampaign
from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from bbrange.attacker.campaigns.spec.target import REVEAL_SECRETS

SEALED = "sealed"  # the key under which the stored spec holds its encrypted target
GENERATE_HINT = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"


class MissingSecretKey(RuntimeError):
    pass


class KeySealer:
    def __init__(self, key: SecretStr | None) -> None:
        if key is None:
            raise MissingSecretKey("BBRANGE_ATTACK_SECRET_KEY is not set: the API and the workers need the same "
                                   f"Fernet key to keep oracle API keys encrypted in Redis; make one with {GENERATE_HINT}")
        try:
            self._fernet = Fernet(key.get_secret_value().encode())
        except ValueError:
            raise MissingSecretKey(f"BBRANGE_ATTACK_SECRET_KEY is not a Fernet key (32 url-safe base64 bytes); "
                                   f"make one with {GENERATE_HINT}") from None

    def seal(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise InvalidCampaign("the campaign's oracle API key cannot be decrypted: BBRANGE_ATTACK_SECRET_KEY "
                                  "differs between the API and this worker") from None


def sealed_spec_json(spec: CampaignSpec, sealer: KeySealer) -> str:
    """The full spec as stored for the worker: the whole target (API key, auth secrets) sealed."""
    full = spec.model_dump(mode="json")  # secrets masked
    full["target"] = {SEALED: sealer.seal(spec.target.model_dump_json(context=REVEAL_SECRETS))}
    return json.dumps(full)


def open_spec(spec_json: str, sealer: KeySealer) -> CampaignSpec:
    """The stored spec with its target's secrets decrypted."""
    full = json.loads(spec_json)
    full["target"] = json.loads(sealer.open(full["target"][SEALED]))
    return CampaignSpec.model_validate_json(json.dumps(full))
