"""The smoke's steps in order, the cleanup that always runs, and the command line."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import NoReturn

from compose_smoke import daemon, stack, standins, wheelhouse
from compose_smoke.commands import SmokeFailure
from compose_smoke.context import Context
from compose_smoke.project_image import build


def cleanup(ctx: Context) -> None:
    with ctx.table.step("cleanup") as note:
        left = stack.down(ctx) + daemon.stop_daemon(ctx)
        shutil.rmtree(ctx.tmp, ignore_errors=True)
        if ctx.tmp.exists():
            left.append(f"folder {ctx.tmp}")
        if left:
            raise SmokeFailure("left behind: " + ", ".join(left))
        note["detail"] = ("no container, network or volume of the project; "
                          + ("daemon stopped, its folder removed" if ctx.daemon is not None else "daemon untouched"))


def _user_flow() -> Callable[[Context], None]:
    """The user's step, which talks to the stack through the project's typed clients: checked first, so that a
    python without the project installed fails in seconds rather than after the build."""
    try:
        from compose_smoke.user_flow import user_flow
    except ImportError as e:
        raise SmokeFailure(f"{e}: run the smoke with the project's .venv (`make compose-smoke` does)") from None
    return user_flow


def smoke(ctx: Context) -> int:
    failed = False
    step = ctx.table.step
    try:
        with step("tools") as note:
            user_flow = _user_flow()
            daemon.tools(ctx, note)
        with step("dockerd") as note:
            daemon.start_daemon(ctx, note)
        with step("base images") as note:
            standins.base_images(ctx, note)
        with step("wheelhouse") as note:
            house = wheelhouse.wheelhouse(ctx, note)
        with step("project image (docker/Dockerfile)") as note:
            build(ctx, note, house)
        with step("compose up, all healthy") as note:
            stack.up(ctx, note)
        user_flow(ctx)
    except (SmokeFailure, subprocess.SubprocessError, OSError, KeyboardInterrupt) as e:
        failed = True
        print(f"FAILED: {e}", file=sys.stderr, flush=True)
        stack.dump_logs(ctx)
    finally:
        try:
            cleanup(ctx)
        except (SmokeFailure, subprocess.SubprocessError, OSError) as e:
            failed = True
            print(f"CLEANUP FAILED: {e}", file=sys.stderr)
    mode = f"{ctx.args.images} images, {'own' if ctx.args.daemon == 'own' else 'existing'} daemon"
    print(f"\ncompose smoke ({mode}): {'FAILED' if failed else 'passed'}\n")
    print(ctx.table.render(), flush=True)
    return 1 if failed else 0


def parse_args(argv: list[str], description: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
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


def _interrupt(*_: object) -> NoReturn:
    raise KeyboardInterrupt


def main(argv: list[str], description: str = "") -> int:
    ctx = Context(parse_args(argv, description))
    # SIGTERM (a CI timeout, `kill`) cleans up like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    return smoke(ctx)
