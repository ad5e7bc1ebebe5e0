"""The README's "Point it at your own model" examples are valid specs, and the KServe one runs as written
with `bbrange attack run --spec` (pointed at the test server, with tiny sizes)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from bbrange.attacker.campaigns.spec.campaign import CampaignSpec
from bbrange.cli import app
from tests.attacker.conftest import AttackerStack
from tests.conftest import REPO
from tests.targets.conftest import KServeServer


def section() -> str:
    text = (REPO / "README.md").read_text()
    return text.split("## Point it at your own model", 1)[1].split("\n## ", 1)[0]


def full_spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(re.search(r"```json\n(.*?)```", section(), re.S).group(1))  # type: ignore[union-attr]
    return spec


def test_every_protocol_example_is_a_valid_spec() -> None:
    rows = re.findall(r"^\| (`[a-z0-9-]+`|an oracle[^|]*)[^|]*\| `(\{.*?\})` \|", section(), re.M)
    protocols = {json.loads(target)["protocol"] for _, target in rows}
    assert protocols == {"kserve-v1", "bbrange", "torchserve", "http-json"}
    CampaignSpec.model_validate(full_spec())
    for _, target in rows:
        CampaignSpec.model_validate({**full_spec(), "target": json.loads(target)})
    shuffled = {**full_spec()["target"], "class_map": [3, 0, 7, 4, 1, 8, 5, 2, 9, 6]}
    assert '"class_map": [3, 0, 7, 4, 1, 8, 5, 2, 9, 6]' in section()
    assert [(7 * (o - 1)) % 10 for o in range(10)] == shuffled["class_map"]  # the map of 3·digit+1 mod 10
    CampaignSpec.model_validate({**full_spec(), "target": shuffled})


def test_attack_run_with_the_readme_spec(stack: AttackerStack, kserve_server: KServeServer, tmp_path: Path) -> None:
    spec = full_spec()
    spec["target"]["oracle_url"] = kserve_server.url
    spec.update(initial_set={"kind": "dataset", "split": "test", "size": 20}, evaluation={"split": "test", "size": 20},
                substitute={**spec["substitute"], "rho": 1, "training": {"epochs": 1}})
    (tmp_path / "kserve-v2.json").write_text(json.dumps(spec))
    result = CliRunner().invoke(app, ["attack", "run", "--api", stack.url, "--token", stack.token,
                                      "--spec", str(tmp_path / "kserve-v2.json")])
    assert result.exit_code == 0, result.output
    for shown in ("succeeded", "transfer rate", "noise baseline", "oracle accuracy on the clean images",
                  "40 / 20 / 20 / 20"):
        assert shown in result.output, result.output
