"""The target spec's bounds and checks, in-process: templates (depth, bytes, placeholders), JMESPath paths, the
oracle URL's characters, and the User-Agent setting."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bbrange.attacker.campaigns.settings import AttackerSettings
from bbrange.attacker.campaigns.spec import json_templates
from bbrange.attacker.campaigns.spec.data import Domain
from bbrange.attacker.campaigns.spec.target import Target


def nested(levels: int) -> dict[str, Any]:
    template: Any = "$inputs"
    for _ in range(levels - 1):
        template = {"a": template}
    return {"wrap": template}


def http_json(**api: Any) -> dict[str, Any]:
    return {"protocol": "http-json", "oracle_url": "http://127.0.0.1:8000", "model": "m", "input_shape": [1, 28, 28],
            "num_classes": 10, "http_json": {"labels_path": "labels", **api}}


@pytest.mark.parametrize(("api", "says"), [
    ({"request_template": nested(900)}, f"request_template is nested more than {json_templates.MAX_DEPTH} levels"),
    ({"request_template": {"inputs": "$inputs", "pad": "x" * 20_000}},
     f"request_template is 20032 bytes as JSON, more than {json_templates.MAX_BYTES}"),
    ({"request_template": {"inputs": "$inputs", "pad": list(range(10_000))}}, "more than 16384"),
    ({"request_template": {"inputs": "the $inputs"}}, 'must contain the string "$inputs" (as a whole value)'),
    ({"input_template": {"pixels": "$inputs"}}, 'input_template must contain the string "$input"'),
    ({"input_template": nested(40)}, "input_template is nested more than"),
    ({"labels_path": "results[*.class_id"}, "labels_path is not a JMESPath expression"),
])
def test_http_json_templates_and_paths_are_bounded_and_checked(api: dict, says: str) -> None:
    with pytest.raises(ValidationError) as e:
        Target.model_validate(http_json(**api))
    assert says in str(e.value), str(e.value)[:500]


def test_templates_within_the_bounds_are_kept() -> None:
    ok = Target.model_validate(http_json(request_template=nested(json_templates.MAX_DEPTH),
                                         input_template={"pixels": "$input", "meta": {"scale": 1}}))
    assert ok.http_json is not None and json_templates.depth(ok.http_json.request_template) == json_templates.MAX_DEPTH


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000\x00", "http://127.0.0.1:8000\r\nX-Evil: 1",
                                 "http://127.0.\t0.1:8000", "http://127.0.0.1:8000\x7f", "http://127.0.0.1 :8000"])
def test_an_oracle_url_with_control_characters_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="control characters and spaces are not accepted"):
        Target(oracle_url=url, model="m", api_key="k")


def test_a_path_prefix_is_refused_with_where_to_put_it() -> None:
    with pytest.raises(ValidationError, match="a path is not accepted.*http-json, whose `path` may hold it"):
        Target(oracle_url="http://gateway:8080/team-a", model="m", api_key="k")


def test_the_user_agent_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AttackerSettings().oracle_user_agent is None
    monkeypatch.setenv("BBRANGE_ATTACK_ORACLE_USER_AGENT", "Mozilla/5.0 (Windows NT 10.0)")
    assert AttackerSettings().oracle_user_agent == "Mozilla/5.0 (Windows NT 10.0)"
    monkeypatch.setenv("BBRANGE_ATTACK_ORACLE_USER_AGENT", "x\r\nX-Injected: 1")
    with pytest.raises(ValidationError):
        AttackerSettings()


@pytest.mark.parametrize(("classes", "names", "says"), [
    (100_000, [f"c{i}" for i in range(100_000)], "at most 10000 items"),
    (2, ["stop", "x" * 65], "at most 64 characters"),
    (2, ["stop", ""], "at least 1 character"),
])
def test_class_names_are_bounded(classes: int, names: list[str], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Domain(input_shape=[1, 28, 28], num_classes=classes, class_names=names)
