"""In-process fixtures: the attacker API on an in-memory Redis, made per test with the settings it needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.attacker_inprocess import InProcessApi, start_inprocess_api


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., InProcessApi]]:
    made: list[InProcessApi] = []

    def make(**settings: Any) -> InProcessApi:
        made.append(start_inprocess_api(tmp_path / f"data-{len(made)}", **settings))
        return made[-1]

    yield make
    for api in made:
        api.client.close()
        api.svc.connection.close()


@pytest.fixture
def api(make_api: Callable[..., InProcessApi]) -> InProcessApi:
    """The API with its default limits."""
    return make_api()
