"""The oracle's predict path in-process: FastAPI's TestClient over `create_app`, what `answer` needs
(`api.dependencies.get_services`) overridden by small typed fakes: a ledger of one client that records its charges, a
model that answers label 7 for each input, a detector that admits everyone. Request validation is tested
without Redis, a model or a process; tests/oracle proves the same path against the real ones."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from pydantic import SecretStr

from bbrange.oracle.accounts.budgets import Budgets, ChargeResult, ChargeStatus
from bbrange.oracle.accounts.keys import AccountKeys, ClientStore, KeyLookup
from bbrange.oracle.accounts.ledger import Ledger
from bbrange.oracle.api.app import create_app
from bbrange.oracle.api.dependencies import get_services
from bbrange.oracle.detection.detector import Detector
from bbrange.oracle.serving.answering import Services
from bbrange.oracle.serving.predictor import Predictor, ServedModel
from bbrange.oracle.serving.replays import ReplayStore
from bbrange.oracle.settings import OracleSettings
from bbrange.shared.model_card import ModelCard

API_KEY = "bbk_in-process"
CLIENT_ID = "c_inprocess"
LABEL = 7
BUDGET = 1000


class OneClientStore(ClientStore):
    """One client, API_KEY; every lookup is recorded."""

    def __init__(self) -> None:  # no Redis
        self.keys = AccountKeys("inprocess")
        self.lookups: list[str] = []

    def cached_client(self, api_key: str) -> str | None:
        return None

    async def resolve_key(self, api_key: str, source: str) -> KeyLookup:
        self.lookups.append(api_key)
        return KeyLookup(CLIENT_ID if api_key == API_KEY else None, 0 if api_key == API_KEY else 1, 60)


class RecordedBudgets(Budgets):
    """A budget of BUDGET for the one client; every charge is recorded."""

    def __init__(self) -> None:  # no Redis
        self.charges: list[int] = []

    async def charge(self, client_id: str, inputs: int) -> ChargeResult:
        self.charges.append(inputs)
        return ChargeResult(ChargeStatus.CHARGED, BUDGET - sum(self.charges), 0)


class OneClientLedger(Ledger):
    """One client with API_KEY and BUDGET; `charges` and `lookups` record what the predict path asked."""

    def __init__(self) -> None:  # no Redis
        self.clients = OneClientStore()
        self.keys = self.clients.keys
        self.budgets = RecordedBudgets()

    @property
    def charges(self) -> list[int]:
        return self.budgets.charges

    @property
    def lookups(self) -> list[str]:
        return self.clients.lookups


class _ConstantBackend:
    kind, device = "constant", "cpu"

    def labels(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), LABEL, np.int64)

    def close(self) -> None:
        pass


class MnistPredictor(Predictor):
    """One model, "mnist" (1, 28, 28), 10 classes: label 7 for every input."""

    def __init__(self) -> None:  # no model files, no torch device
        card = ModelCard.model_construct(name="mnist", input_shape=(1, 28, 28), num_classes=10)
        self.models = {"mnist": ServedModel(card, _ConstantBackend(), None)}
        self.predicted: list[int] = []

    @contextmanager
    def arriving(self, name: str) -> Iterator[None]:
        yield

    async def predict(self, name: str, x: np.ndarray) -> np.ndarray:
        self.predicted.append(len(x))
        return self.models[name].backend.labels(x)


class AdmitAll(Detector):
    def __init__(self) -> None:  # no Redis, no background task
        pass

    async def admit(self, client_id: str, model: str) -> dict[str, str]:
        return {}

    def observe(self, client_id: str, model: str, x: np.ndarray, labels: np.ndarray) -> None:
        pass


@dataclass
class InProcessOracle:
    client: TestClient
    ledger: OneClientLedger = field(default_factory=OneClientLedger)
    predictor: MnistPredictor = field(default_factory=MnistPredictor)


def start_inprocess_oracle(**settings: Any) -> InProcessOracle:
    """The app without its lifespan (which opens Redis and loads models): predict's services are the fakes."""
    app = create_app(OracleSettings(admin_token=SecretStr("in-process-admin"), **settings))
    oracle = InProcessOracle(TestClient(app, raise_server_exceptions=False))
    # The replay store is only reached with an Idempotency-Key, which these tests do not send.
    replays = ReplayStore.__new__(ReplayStore)
    app.dependency_overrides[get_services] = lambda: Services(app.state.settings, app.state.metrics, oracle.ledger,
                                                              replays, oracle.predictor, AdmitAll())
    return oracle
