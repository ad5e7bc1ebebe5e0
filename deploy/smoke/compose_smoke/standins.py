"""Stand-ins for the public base images: Debian bookworm root filesystems made with mmdebstrap from the host's
mirror and `docker import`ed, for machines without Docker Hub."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

from compose_smoke.commands import run
from compose_smoke.context import Context

SUITE = "bookworm"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Stand-ins for the public images the deployment names. Each mirrors what the compose file relies on in the real
# image: the command on PATH, the user, the working directory, the data folder the volume is mounted on.
STANDINS: dict[str, dict[str, Any]] = {
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


def base_images(ctx: Context, note: dict[str, str]) -> None:
    if not ctx.standins:
        note["detail"] = "public images: pulled by the build and by compose"
        return
    mirrors = debian_sources()
    made = []
    for name, spec in STANDINS.items():
        key = hashlib.sha256(json.dumps([SUITE, mirrors, spec["packages"], spec["hooks"]]).encode()).hexdigest()[:12]
        tarball = ctx.cache / "rootfs" / f"{name}-{SUITE}-{key}.tar"
        if not tarball.is_file():
            tarball.parent.mkdir(parents=True, exist_ok=True)
            part = tarball.with_suffix(".part.tar")
            cmd = ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(spec['packages'])}",
                   "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
                   "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
                   "--customize-hook=rm -rf \"$1\"/var/lib/apt/lists/* \"$1\"/var/cache/apt/*"]
            cmd += [f"--customize-hook={h}" for h in spec["hooks"]]
            run(cmd + [SUITE, str(part)] + mirrors, env=ctx.env)
            part.replace(tarball)
            made.append(name)
        prune(tarball.parent, keep=tarball, prefix=f"{name}-")
        changes = [a for c in spec["changes"] for a in ("--change", c)]
        run(["docker", "import", "--message", f"stand-in for {spec['replaces']} (Debian {SUITE})", *changes,
             str(tarball), spec["tag"]], env=ctx.env, capture=True)
    note["detail"] = (f"{len(STANDINS)} imported; built now: {', '.join(made) or 'none (cached)'}; "
                      f"mirror {mirrors[0].split()[1]}")
