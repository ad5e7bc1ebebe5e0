from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from bbrange.attacker.engine.cli import app


def test_cli_presets_jsma_and_substitute(quick_model_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    card = str(quick_model_dir / "mnist.json")
    r = runner.invoke(app, ["presets"])
    assert r.exit_code == 0 and "papernot-mnist" in r.output
    r = runner.invoke(app, ["jsma", "--model-card", card, "--images", "1", "--upsilon", "0.05", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "9 samples" in r.output
    out = tmp_path / "run.json"
    r = runner.invoke(app, ["substitute", "--model-card", card, "--s0", "20", "--rho", "1", "--train-epochs", "1",
                            "--budget", "30", "--holdout", "300", "--preset", "mlp", "--device", "cpu", "--json-out", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads(out.read_text())
    assert summary["queries"]["labelling"] == 30 and not summary["completed"]
    assert summary["queries"]["agreement"] == 300 == summary["queries"]["evaluation"]
