"""The project image: `docker build -f docker/Dockerfile`, on a stand-in base with the wheelhouse as its index,
or on the public images."""

from __future__ import annotations

from pathlib import Path

from compose_smoke.commands import run
from compose_smoke.context import PROJECT_IMAGE, Context
from compose_smoke.standins import STANDINS
from compose_smoke.wheelhouse import serve_directory


def build(ctx: Context, note: dict[str, str], house: Path | None) -> None:
    cmd = ["docker", "build", "--file", "docker/Dockerfile", "--tag", PROJECT_IMAGE]
    env = dict(ctx.env)
    server = None
    if ctx.standins:
        assert house is not None
        # The daemon here has no Docker Hub, hence no BuildKit Dockerfile frontend: the classic builder reads
        # the same Dockerfile (and the root .dockerignore). Its RUN steps reach only the wheelhouse, served on
        # the host's loopback for the length of the build.
        env["DOCKER_BUILDKIT"] = "0"
        server, port = serve_directory(house)
        index = f"http://127.0.0.1:{port}/simple"
        cmd += ["--network", "host", "--build-arg", f"PYTHON_IMAGE={STANDINS['python']['tag']}",
                "--build-arg", f"TORCH_INDEX_URL={index}", "--build-arg", f"PIP_INDEX_URL={index}"]
    try:
        run(cmd + ["."], env=env)
    finally:
        if server is not None:
            server.shutdown()
    size = run(["docker", "image", "inspect", PROJECT_IMAGE, "--format", "{{.Size}}"], env=ctx.env,
               capture=True, quiet=True).stdout.strip()
    torch = run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python", PROJECT_IMAGE, "-c",
                 "import torch; print(torch.__version__)"], env=ctx.env, capture=True, quiet=True).stdout.strip()
    note["detail"] = f"{PROJECT_IMAGE}, {int(size) / 1e9:.2f} GB, torch {torch}"
