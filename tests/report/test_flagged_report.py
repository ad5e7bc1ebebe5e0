"""The blue side of a real report: an oracle whose extraction detector flags (and announces) a JBDA campaign;
the campaign goes on, and its report says when it was flagged and marks it on the query timeline."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from bbrange.attacker.campaigns.spec.builder import bbrange_target
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


def test_the_report_shows_each_keys_flag_and_what_the_bad_queries_bought(flagged_attacker: AttackerStack,
                                                                          flagging_oracle: OracleProcess) -> None:
    """HopSkipJump over two keys against an oracle that announces flags: Blacklight matches its probes across both
    keys; the report's blue side has the bad-query figure and a row per key (never the key itself)."""
    keys = [flagging_oracle.create_client(budget=100_000, name=f"bad-queries-{i}")[1] for i in range(2)]
    spec = small_spec(flagging_oracle.url, keys[0], crafting={"method": "hopskipjump", "max_queries_per_image": 300,
                                                              "checkpoints": [100, 200, 300]}, evaluation={"size": 4})
    spec["target"] = bbrange_target(flagging_oracle.url, keys)
    with flagged_attacker.client() as api:
        record = wait_final(api, submit(api, spec), timeout=300)
        assert record["state"] == "succeeded", record
        html = api.get(f"/attacks/{record['id']}/report").raise_for_status().text
    figure = record["results"]["distortion_after_bad_queries"]
    assert record["results"]["flagged"].startswith("blacklight; queries=") and figure["images_with_bad_queries"] > 0
    assert all(k["flagged"] for k in record["queries"]["keys"])  # each key's own probes matched the other's
    blue = html[html.index('<section id="blue-side">'):html.index('<section id="samples">')]
    assert "the bad-query figure" in blue and "queries of its own answered under the flag" in blue
    assert "<td>key 1</td>" in blue and "<td>key 2</td>" in blue and not any(k in html for k in keys)
