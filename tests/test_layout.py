"""The floor plan, enforced: imports point one way (shared <- services; engine <- campaign service), the
engine is a library without the web stack, the attacker API runs without torch, and modules stay short."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Module prefix -> the bbrange modules it may never import.
FORBIDDEN = {
    "bbrange.shared": ("bbrange.oracle", "bbrange.attacker", "bbrange.cli", "bbrange.local_range"),
    "bbrange.attacker.engine": ("bbrange.attacker.campaigns", "bbrange.oracle", "bbrange.cli", "bbrange.local_range"),
    "bbrange.attacker.campaigns": ("bbrange.oracle", "bbrange.cli", "bbrange.local_range"),
    "bbrange.oracle": ("bbrange.attacker", "bbrange.cli", "bbrange.local_range"),
}


def module_name(path: Path) -> str:
    if path.is_relative_to(ROOT / "shared"):
        parts = ("bbrange", "shared", *path.relative_to(ROOT / "shared").with_suffix("").parts)
    else:
        parts = ("bbrange", *path.relative_to(ROOT / "services").with_suffix("").parts)
    return ".".join(p for p in parts if p != "__init__")


def sources() -> list[Path]:
    return sorted([*(ROOT / "services").rglob("*.py"), *(ROOT / "shared").rglob("*.py")])


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_imports_point_one_way() -> None:
    wrong = []
    for path in sources():
        name = module_name(path)
        for prefix, banned in FORBIDDEN.items():
            if name == prefix or name.startswith(prefix + "."):
                wrong += [f"{name} imports {m}" for m in imported(path) if m.startswith(banned)]
    assert not wrong, "\n".join(wrong)


def test_the_attacker_api_never_imports_the_worker() -> None:
    """The API puts campaigns on the queue (storage.job_queue) and never sits on top of the runner."""
    api = [p for p in sources() if module_name(p).startswith("bbrange.attacker.campaigns.api")]
    assert api
    wrong = [f"{module_name(p)} imports {m}" for p in api for m in imported(p)
             if m.startswith("bbrange.attacker.campaigns.worker")]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("folder", ["services", "shared", "benchmarks", "deploy"])
def test_no_module_is_longer_than_300_lines(folder: str) -> None:
    modules = sorted((ROOT / folder).rglob("*.py"))
    long = {str(p.relative_to(ROOT)): n for p in modules if (n := len(p.read_text().splitlines())) > 300}
    assert not long, long


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_engine_is_a_library_without_the_web_stack() -> None:
    loaded = loaded_after("import bbrange.attacker.engine")
    assert not loaded & {"fastapi", "starlette", "redis", "rq", "prometheus_client", "uvicorn", "httpx"}


@pytest.mark.parametrize("app", ["bbrange.attacker.campaigns.api.app"])
def test_the_attacker_api_does_not_load_torch(app: str) -> None:
    assert "torch" not in loaded_after(f"import {app}")


def test_the_engine_s_face_does_not_load_torch() -> None:
    """The API validates specs with the engine's own words (vocabulary.py) and the attack registry; the engine
    package loads its torch parts on first use only."""
    for statement in ("import bbrange.attacker.engine", "from bbrange.attacker.engine import vocabulary, errors",
                      "from bbrange.attacker.engine import DEFAULT_STEP_SIZE, QUERY_PHASES, epoch_set_sizes",
                      "from bbrange.attacker.campaigns.spec.attacks.registry import load_attacks; load_attacks()"):
        assert "torch" not in loaded_after(statement), statement
    assert "torch" in loaded_after("from bbrange.attacker.engine import FGSM")


# The modules that run any attack name none: an attack is a plug-in (engine/attack.py, spec/attacks/).
ATTACK_AGNOSTIC = ["services/attacker/engine/pipeline.py", "services/attacker/engine/sizes.py",
                   "services/attacker/campaigns/worker/plan.py", "services/attacker/campaigns/worker/results.py",
                   "services/attacker/campaigns/worker/runner.py", "services/attacker/campaigns/spec/campaign.py",
                   *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "services/attacker/campaigns/cli").glob("*.py")))]


@pytest.mark.parametrize("path", ATTACK_AGNOSTIC)
def test_the_pipeline_plan_results_and_cli_name_no_attack(path: str) -> None:
    named = [f"{path}:{i}: {line.strip()}" for i, line in enumerate((ROOT / path).read_text().splitlines(), 1)
             if re.search(r"FGSM|JSMA|Fgsm|Jsma", line)]
    assert not named, "\n".join(named)


def test_the_engine_exports_the_pipeline_and_its_parts() -> None:
    import bbrange.attacker.engine as engine

    assert {"run_blackbox_attack", "FGSM", "JSMA", "train_substitute", "LabelOracle", "QueryCounter"} <= set(engine.__all__)
    assert all(hasattr(engine, name) for name in engine.__all__)


def test_every_package_is_installed() -> None:
    """A folder of modules missing from pyproject's package list works in the editable install and is missing
    from a real one (the Docker image): every one must have an __init__.py and be listed."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {p.parent for p in sources()}
    missing_init = [str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").exists()]
    assert not missing_init, missing_init
    names = {module_name(f / "__init__.py") for f in folders}
    assert names == listed, {"not listed": sorted(names - listed), "listed, not there": sorted(listed - names)}
