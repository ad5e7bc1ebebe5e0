"""ruff and mypy over the whole project, run as part of the test suite so that CI runs them.

The installed package `bbrange` is assembled from two folders (services/ and shared/, see pyproject's
package-dir), which mypy cannot follow through the editable install's import hook: it checks a tree of
symbolic links laid out as the installed package.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def package_tree(into: Path) -> Path:
    package = into / "bbrange"
    package.mkdir()
    for entry in (ROOT / "services").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    (package / "shared").symlink_to(ROOT / "shared")
    return into


def test_ruff_is_clean() -> None:
    run = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "services", "shared", "tests", "benchmarks",
                          "docker", "deploy"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy_is_clean(tmp_path: Path) -> None:
    tree = package_tree(tmp_path)
    run = subprocess.run([str(BIN / "mypy"), "--config-file", str(ROOT / "pyproject.toml"), "--no-incremental",
                          "-p", "bbrange"], cwd=tree, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
