"""`bbrange attack run -c eps=A -c eps=B`: several sizes from one substitute, printed size by size, with the
command that saves the campaign's report."""

from __future__ import annotations

from typer.testing import CliRunner

from bbrange.cli import app
from tests.attacker.conftest import AttackerStack
from tests.conftest import OracleProcess


def test_attack_run_crafts_each_eps_given(attacker: AttackerStack, oracle_pair: tuple[OracleProcess, OracleProcess]
                                          ) -> None:
    oracle = oracle_pair[0]
    _, key = oracle.create_client(budget=10_000, name="cli-sizes")
    result = CliRunner().invoke(app, [
        "attack", "run", "--api", attacker.url, "--token", attacker.token, "--oracle-url", oracle.url, "--api-key", key,
        "--s0", "30", "--rho", "1", "--train-epochs", "1", "--eval-size", "20", "-c", "eps=0.2", "-c", "eps=0.05",
    ], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "at each ε (one substitute)" in result.output
    rows = [line for line in result.output.splitlines() if line.startswith(("│ 0.2 ", "│ 0.05 "))]
    assert [r.split("│")[1].strip() for r in rows] == ["0.2", "0.05"]  # the headline first
    assert "60 / 20 / 40 / 40" in result.output  # labelling / agreement / evaluation / noise: two sizes
    assert "report: bbrange attack report " in result.output and "/report)" in result.output
