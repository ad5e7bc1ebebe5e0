"""The containers run the same commands as the plain processes: every `bbrange …` command line in the compose
files and the rendered k8s overlays parses with the real CLI (options exist, values have the right types)."""

from __future__ import annotations

import pytest
import typer

from bbrange.cli import app
from tests.deploy.rendering import COMPOSE_FILES, IMAGE, OVERLAYS, compose, pod_spec, render


def _command_lines() -> list[tuple[str, list[str]]]:
    found = []
    for path in COMPOSE_FILES:
        for name, service in compose(path)["services"].items():
            if isinstance(service.get("command"), list) and "entrypoint" not in service \
                    and "image" in service and service["image"].startswith("${BBRANGE_"):
                found.append((f"{path.name}:{name}", service["command"]))
    for overlay in sorted(OVERLAYS):
        for doc in render(overlay):
            if doc["kind"] not in ("Deployment", "StatefulSet", "Job"):
                continue
            for c in pod_spec(doc)["containers"]:
                if c["image"].startswith(IMAGE + ":") and "command" not in c:
                    found.append((f"{overlay}:{doc['kind']}/{doc['metadata']['name']}/{c['name']}", c["args"]))
    return found


COMMANDS = _command_lines()


def parse(args: list[str]):
    """Resolve the subcommands and parse the options as the CLI would, without running anything. (typer
    bundles its own click, so groups are recognised by behaviour, not by click's classes.)"""
    command = typer.main.get_command(app)
    rest = list(args)
    while hasattr(command, "get_command"):
        name, rest = rest[0], rest[1:]
        sub = command.get_command(command.make_context("bbrange", [], resilient_parsing=True), name)
        assert sub is not None, f"`bbrange {' '.join(args)}`: no command {name!r}"
        command = sub
    return command.make_context("bbrange", rest)  # parses and validates, runs nothing


def test_every_service_command_is_found() -> None:
    where = {w.split(":")[-1].split("/")[-1] for w, _ in COMMANDS}
    assert {"oracle", "attacker-api", "attacker-worker"} <= where


@pytest.mark.parametrize(("where", "args"), COMMANDS, ids=[w for w, _ in COMMANDS])
def test_container_command_parses_with_the_real_cli(where: str, args: list[str]) -> None:
    parse(args)


def _error_kinds(excinfo: pytest.ExceptionInfo) -> set[str]:
    return {cls.__name__ for cls in type(excinfo.value).__mro__}


def test_a_wrong_option_is_caught() -> None:
    with pytest.raises(Exception) as e:
        parse(["oracle", "serve", "--prot", "8000"])
    assert "NoSuchOption" in _error_kinds(e)
    with pytest.raises(Exception) as e:
        parse(["oracle", "serve", "--port", "eight"])
    assert "BadParameter" in _error_kinds(e)
    with pytest.raises(AssertionError, match="no command"):
        parse(["oracle", "srve"])
