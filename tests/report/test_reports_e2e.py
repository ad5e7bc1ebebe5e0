"""Reports of real campaigns: the real attacker API and workers against a real oracle process, the route's
access rules, the CLI, the model page, and both pages opened in headless Chromium."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.attacker.conftest import AttackerStack, small_spec, submit, wait_final, wait_for
from tests.conftest import BBRANGE, OracleProcess
from tests.report.browser import assert_readable, open_page

SIZES = [0.3, 0.1]


@pytest.fixture(scope="module")
def campaign(attacker: AttackerStack, oracle_pair: tuple[OracleProcess, OracleProcess]) -> dict[str, Any]:
    """One small FGSM campaign crafting two sizes from its substitute, finished."""
    oracle = oracle_pair[0]
    _, key = oracle.create_client(budget=100_000, name="report-e2e")
    with attacker.client() as api:
        cid = submit(api, small_spec(oracle.url, key, name="report <e2e>", crafting={"method": "fgsm", "eps": SIZES}))
        record = wait_final(api, cid, timeout=300)
    assert record["state"] == "succeeded", record
    return record


def stranger(attacker: AttackerStack) -> str:
    return attacker.create_user("stranger")[1]


def bbrange(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BBRANGE), *args], capture_output=True, text=True, timeout=120)


def test_the_campaign_keeps_each_size_beside_its_noise(campaign: dict[str, Any]) -> None:
    results, q = campaign["results"], campaign["queries"]
    assert [s["eps"] for s in results["by_eps"]] == SIZES
    assert results["transfer_rate"] == results["by_eps"][0]["transfer_rate"]  # the headline is the first size
    assert all(s["samples"] == s["noise_samples"] == 60 for s in results["by_eps"])
    assert (q["labelling"], q["agreement"], q["evaluation"], q["baseline"]) == (120, 60, 120, 120)
    assert campaign["target_model"]["dataset"] == "mnist" and campaign["target_model"]["input_shape"] == [1, 28, 28]


def test_the_report_route_keeps_the_api_s_access_rules(attacker: AttackerStack, campaign: dict[str, Any]) -> None:
    path = f"/attacks/{campaign['id']}/report"
    with attacker.client() as owner, attacker.admin() as admin, attacker.client(stranger(attacker)) as other, \
            attacker.client("") as nobody:
        mine = owner.get(path)
        assert mine.status_code == 200 and mine.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in mine.headers["content-security-policy"]
        assert admin.get(path).status_code == 200
        refused = other.get(path)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "unknown_campaign"
        assert nobody.get(path).status_code == 401
    html = mine.text
    for section in ("attacked", "substitute", "queries", "transfer", "sizes", "blue-side", "samples"):
        assert f'<section id="{section}">' in html
    assert "report &lt;e2e&gt;" in html and f"{attacker.url}/attacks/{campaign['id']}/samples.npz" in html


def test_the_cli_saves_one_file_that_opens_offline(attacker: AttackerStack, campaign: dict[str, Any],
                                                   tmp_path: Path) -> None:
    out = tmp_path / "nested" / "report.html"
    run = bbrange("attack", "report", campaign["id"], "--output", str(out), "--api", attacker.url,
                  "--token", attacker.token)
    assert run.returncode == 0, run.stdout + run.stderr
    assert str(out.resolve()) in run.stdout.replace("\n", "")
    url = out.resolve().as_uri()
    seen = open_page(url, "campaign-report")
    assert_readable(seen, url, images=20)
    assert seen.sections == ["attacked", "substitute", "queries", "transfer", "sizes", "blue-side", "samples"]
    assert len(seen.plots) == 5
    refused = bbrange("attack", "report", campaign["id"], "--output", str(tmp_path / "x.html"), "--api", attacker.url,
                      "--token", stranger(attacker))
    assert refused.returncode == 1 and "unknown_campaign" in refused.stdout and not (tmp_path / "x.html").exists()


def test_the_report_from_the_api_in_a_browser(attacker: AttackerStack, campaign: dict[str, Any]) -> None:
    url = f"{attacker.url}/attacks/{campaign['id']}/report"
    seen = open_page(url, "campaign-report-api", {"Authorization": f"Bearer {attacker.token}"})
    assert_readable(seen, url, images=20)


def test_the_model_page(attacker: AttackerStack, campaign: dict[str, Any], tmp_path: Path) -> None:
    path = "/models/mnist/report"
    with attacker.client() as owner, attacker.admin() as admin, attacker.client(stranger(attacker)) as other:
        mine = owner.get(path)
        assert mine.status_code == 200 and f"/attacks/{campaign['id']}/report" in mine.text
        assert "ε=0.1: " in mine.text and "ε=0.3: " in mine.text
        assert campaign["id"] in admin.get(path).text
        assert other.get(path).status_code == 404  # none of the stranger's, none of anyone else's shown
        assert owner.get("/models/no-such-model/report").status_code == 404
    out = tmp_path / "model.html"
    run = bbrange("attack", "model-report", "mnist", "--output", str(out), "--api", attacker.url, "--token",
                  attacker.token)
    assert run.returncode == 0, run.stdout + run.stderr
    seen = open_page(out.resolve().as_uri(), "model-report")
    assert_readable(seen, out.resolve().as_uri(), images=0)
    assert len(seen.plots) == 2


def test_a_cancelled_campaign_s_report_shows_what_it_had(attacker: AttackerStack,
                                                         oracle_pair: tuple[OracleProcess, OracleProcess]) -> None:
    oracle = oracle_pair[0]
    _, key = oracle.create_client(budget=100_000, name="report-cancelled")
    with attacker.client() as api:
        cid = submit(api, small_spec(oracle.url, key, substitute={"rho": 9, "training": {"epochs": 3}}))
        wait_for(api, cid, lambda r: r["state"] == "running" and len(r["epochs"]) >= 2, timeout=300, what="two epochs")
        assert api.post(f"/attacks/{cid}/cancel").status_code == 202
        record = wait_final(api, cid, timeout=120)
        assert record["state"] == "cancelled", record
        html = api.get(f"/attacks/{cid}/report").text
    assert '<section id="outcome">' in html and "cancelled on request" in html
    assert '<section id="substitute">' in html and '<section id="samples">' not in html
    url = f"{attacker.url}/attacks/{cid}/report"
    seen = open_page(url, "cancelled-report", {"Authorization": f"Bearer {attacker.token}"})
    assert_readable(seen, url, images=0)
    assert seen.sections[:3] == ["attacked", "outcome", "substitute"]
