"""The blue side of a real report: an oracle whose extraction detector flags (and announces) a JBDA campaign;
the campaign goes on, and its report says when it was flagged and marks it on the query timeline."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from tests.attacker.conftest import AttackerStack, small_spec, start_stack, submit, wait_final
from tests.conftest import OracleProcess, RedisServer, start_oracle
from tests.report.browser import assert_readable, open_page


@pytest.fixture(scope="module")
def flagging_oracle(quick_model_dir, redis_server, tmp_path_factory) -> Iterator[OracleProcess]:
    oracle = start_oracle(quick_model_dir, redis_server.url, "bbflag", tmp_path_factory.mktemp("flag-logs"),
                          extra_env={"BBRANGE_DETECTION_MODELS": json.dumps({"mnist": {"policy": "flag"}})})
    yield oracle
    oracle.stop()


@pytest.fixture(scope="module")
def flagged_attacker(redis_server: RedisServer, flagging_oracle: OracleProcess,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[AttackerStack]:
    stack = start_stack(redis_server, 13, tmp_path_factory.mktemp("flagged-attacker"), workers=1,
                        oracles=(flagging_oracle,))
    yield stack
    stack.stop()


def test_the_report_marks_when_the_oracle_flagged_the_campaign(flagged_attacker: AttackerStack,
                                                               flagging_oracle: OracleProcess) -> None:
    _, key = flagging_oracle.create_client(budget=100_000, name="flagged-report")
    spec = small_spec(flagging_oracle.url, key, initial_set={"kind": "dataset", "split": "test", "offset": 0, "size": 100},
                      substitute={"rho": 4, "training": {"epochs": 1}}, evaluation={"size": 50})
    with flagged_attacker.client() as api:
        record = wait_final(api, submit(api, spec), timeout=300)
        assert record["state"] == "succeeded", record  # flagged, not blocked: the campaign went on
        at = record["results"]["flagged_after_queries"]
        assert record["results"]["flagged"].startswith("prada; queries=") and 0 < at < record["queries"]["total"]
        html = api.get(f"/attacks/{record['id']}/report").raise_for_status().text
    blue = html[html.index('<section id="blue-side">'):html.index('<section id="samples">')]
    assert "The oracle flagged this campaign" in blue and f"{at:,} queries, during the labelling for ρ=" in blue
    assert re.search(r'<g id="data-flag-\d+"', blue) and f"flagged after {at:,} queries" in blue
    url = f"{flagged_attacker.url}/attacks/{record['id']}/report"
    seen = open_page(url, "flagged-report", {"Authorization": f"Bearer {flagged_attacker.token}"})
    assert_readable(seen, url)
