"""The image's Python packages for the stand-ins: downloaded on the host (torch: the CPU wheel from the local
wheel folder) for the stand-in's interpreter, kept in the cache, and served to the build on 127.0.0.1 only."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
import zipfile
from pathlib import Path
from typing import Any

from compose_smoke.commands import REPO, run
from compose_smoke.context import Context
from compose_smoke.standins import STANDINS, prune


def wheelhouse(ctx: Context, note: dict[str, str]) -> Path | None:
    if not ctx.standins:
        note["detail"] = "public: the build installs from PyPI and the PyTorch CPU index"
        return None
    constraints = (REPO / "docker" / "constraints.txt").read_text()
    build_requires = (REPO / "pyproject.toml").read_text()
    # The stand-in's Python is Debian's 3.11.2, not the official image's 3.11.14: some requirements differ by
    # interpreter version (redis-py wants async-timeout below 3.11.3), so resolve for that interpreter.
    python = run(["docker", "run", "--rm", "--network", "none", STANDINS["python"]["tag"], "python3", "-c",
                  "import platform; print(platform.python_version())"], env=ctx.env, capture=True,
                 quiet=True).stdout.strip()
    key = hashlib.sha256((constraints + build_requires + python + "markers").encode()).hexdigest()[:12]
    house = ctx.cache / "wheelhouse" / key
    if not (house / "simple").is_dir():
        download(ctx, constraints, python, house)
    prune(house.parent, keep=house)
    files = list((house / "simple").glob("*/*.whl"))
    note["detail"] = (f"{len(files)} wheels, {sum(f.stat().st_size for f in files) / 1e6:.0f} MB, "
                      f"for Python {python} ({house})")
    return house


def _pip_download(ctx: Context, *args: str) -> None:
    run([sys.executable, "-m", "pip", "download", "--quiet", *args], env=ctx.env)


def download(ctx: Context, constraints: str, python: str, house: Path) -> None:
    dl = ctx.tmp / "wheels"
    dl.mkdir()
    pins = [ln.strip() for ln in constraints.splitlines() if ln.strip() and not ln.startswith("#")]
    torch = [p for p in pins if p.split("==")[0] == "torch"]
    others = [p for p in pins if p.split("==")[0] != "torch"]
    # torch: the CPU wheel from the local wheel folder (pip's find-links), never the CUDA build from PyPI.
    find_links = pip_find_links()
    if find_links:
        _pip_download(ctx, "--no-deps", "--only-binary=:all:", "--no-index",
                      *[a for f in find_links for a in ("--find-links", f)], "-d", str(dl), *torch)
    else:
        _pip_download(ctx, "--no-deps", "--only-binary=:all:", "--index-url", "https://download.pytorch.org/whl/cpu",
                      "-d", str(dl), *torch)
    # The rest of the pinned closure, and the build backend the project's pyproject asks for.
    _pip_download(ctx, "--no-deps", "--only-binary=:all:", "-d", str(dl), *others)
    # Then the project's requirements (torch aside) and its build backend, resolved with their
    # dependencies for the stand-in's interpreter, within the same pins.
    pinned = ctx.tmp / "constraints-without-torch.txt"
    pinned.write_text("\n".join(others) + "\n")
    project: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())
    wanted = [r for r in project["project"]["dependencies"] if not re.match(r"torch\b", r)]
    wanted += project["build-system"]["requires"]
    _pip_download(ctx, "--only-binary=:all:", "--python-version", python, "--constraint", str(pinned), "-d", str(dl),
                  *wanted)
    # pip evaluates environment markers for the interpreter it runs in, whatever --python-version says:
    # add what the wheels require on the stand-in's interpreter until nothing is missing.
    for _ in range(10):
        missing = missing_requirements(dl, python)
        if not missing:
            break
        _pip_download(ctx, "--no-deps", "--only-binary=:all:", "--constraint", str(pinned), "-d", str(dl), *missing)
    part = house.with_name(house.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    for wheel in dl.iterdir():
        name = _normalize(wheel.name.split("-")[0])
        (part / "simple" / name).mkdir(parents=True, exist_ok=True)
        shutil.move(str(wheel), part / "simple" / name / wheel.name)
    shutil.rmtree(house, ignore_errors=True)
    part.replace(house)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def missing_requirements(wheels: Path, python: str) -> list[str]:
    """Requirements of the wheels in `wheels`, markers evaluated for CPython `python` on Linux, that no wheel there
    satisfies by name."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip vendors it
        from pip._vendor.packaging.requirements import Requirement
    env = {"python_version": ".".join(python.split(".")[:2]), "python_full_version": python,
           "implementation_name": "cpython", "platform_python_implementation": "CPython", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix", "extra": ""}
    have = {_normalize(w.name.split("-")[0]) for w in wheels.glob("*.whl")}
    missing: dict[str, str] = {}
    for wheel in wheels.glob("*.whl"):
        with zipfile.ZipFile(wheel) as z:
            meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
            text = z.read(meta).decode(errors="replace")
        for line in text.splitlines():
            if not line.startswith("Requires-Dist:"):
                continue
            req = Requirement(line.split(":", 1)[1].strip())
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            if _normalize(req.name) not in have:
                missing[_normalize(req.name)] = f"{req.name}{req.specifier}"
    return sorted(missing.values())


def pip_find_links() -> list[str]:
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    links: list[str] = []
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if key.strip().endswith("find-links"):
            for v in value.strip().strip("'\"").split():
                if v not in links and (Path(v).is_dir() or "://" in v):
                    links.append(v)
    env = os.environ.get("PIP_FIND_LINKS")
    for v in (env or "").split():
        if v not in links:
            links.append(v)
    return links


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # the build prints what it installs
        pass


def serve_directory(root: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]
