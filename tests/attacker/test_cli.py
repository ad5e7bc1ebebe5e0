"""`bbrange attack run`: submit, follow, print the result table and where the grid picture is."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from bbrange.cli import app
from tests.attacker.conftest import AttackerStack
from tests.conftest import OracleProcess


def test_attack_run_follows_and_prints_results(attacker: AttackerStack, oracle: OracleProcess,
                                               oracle_key: tuple[str, str], tmp_path: Path) -> None:
    grid = tmp_path / "grid.png"
    result = CliRunner().invoke(app, [
        "attack", "run", "--api", attacker.url, "--token", attacker.token, "--oracle-url", oracle.url,
        "--api-key", oracle_key[1],
        "--s0", "30", "--rho", "1", "--train-epochs", "1", "--eval-size", "20", "--grid-out", str(grid),
    ])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "transfer rate" in result.output
    assert "30 / 20 / 20" not in result.output  # labelling is 60 = 30·2^1
    assert "60 / 20 / 20 / 20" in result.output  # labelling / agreement / evaluation / noise baseline
    assert "noise baseline" in result.output and "oracle accuracy on the clean images" in result.output
    assert "/samples.png" in result.output
    assert Image.open(grid).format == "PNG"


def test_attack_run_reports_a_refusal(attacker: AttackerStack) -> None:
    result = CliRunner().invoke(app, ["attack", "run", "--api", attacker.url, "--token", attacker.token,
                                      "--oracle-url", "http://10.0.0.1:8000", "--api-key", "k"])
    assert result.exit_code == 1
    assert "target_not_allowed" in result.output
