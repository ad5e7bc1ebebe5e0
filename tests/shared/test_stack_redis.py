"""The stack's private Redis keeps its append-only file where it was told, whether the directory was given
relative to the caller's working directory (as the local range gives runs/demo/redis) or absolute."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from bbrange.shared.stack.redis import RedisServer


def test_a_relative_directory_is_the_callers_and_keeps_the_aof(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with RedisServer(directory=Path("runs/demo/redis"), append_only=True) as server:
        redis.Redis.from_url(server.url).set("kept", "1")
    assert (tmp_path / "runs/demo/redis").is_dir()
    assert any((tmp_path / "runs/demo/redis").rglob("*.aof*"))
    assert not (tmp_path / "runs/demo/redis/runs").exists()
