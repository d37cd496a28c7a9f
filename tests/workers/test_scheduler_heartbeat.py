"""The scheduler's heartbeat: where it is kept, and how /readyz judges it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from fastapi import FastAPI

from livecommerce import jobs
from livecommerce.config import Settings
from tests.fixtures.redis import redis_url, require_redis


@pytest.fixture
def heartbeat_file(app: FastAPI) -> Iterator[Path]:
    """The app's heartbeat file, removed afterwards (the app is shared by the session)."""
    path = jobs.heartbeat_path(app.state.settings)
    yield path
    path.unlink(missing_ok=True)


async def test_readyz_reports_a_stale_scheduler_and_a_fresh_one(
    app: FastAPI, client: httpx.AsyncClient, heartbeat_file: Path
) -> None:
    """No heartbeat: not judged. One older than the threshold: 503 ``scheduler: stale`` with
    when it was last seen. A fresh one: ready, with ``scheduler: ok``."""
    settings: Settings = app.state.settings
    assert "scheduler" not in (await client.get("/readyz")).json()

    jobs.record_heartbeat(settings, time.time() - settings.scheduler_stale_seconds - 5)
    response = await client.get("/readyz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "service_unavailable"
    assert error["details"]["scheduler"] == "stale"
    assert error["details"]["stale_after_seconds"] == settings.scheduler_stale_seconds
    assert error["details"]["age_seconds"] >= settings.scheduler_stale_seconds + 5

    jobs.record_heartbeat(settings, time.time())
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "rooms": "ok", "scheduler": "ok"}


async def test_the_heartbeat_lives_in_redis_when_there_is_one(tmp_path: Path) -> None:
    """With a Redis broker the heartbeat is a Redis key of the deployment's queue, kept
    without expiry (a dead scheduler must read as stale, never as one that never ran)."""
    require_redis()
    settings = Settings(
        data_dir=tmp_path, broker_url=redis_url(), task_queue=f"test-{uuid.uuid4().hex[:8]}"
    )
    assert await jobs.read_heartbeat(settings) is None
    jobs.record_heartbeat(settings, 1234.5)
    record = await jobs.read_heartbeat(settings)
    assert record is not None and record["at"] == 1234.5 and record["pid"] > 0
    client = redis.Redis.from_url(redis_url())
    try:
        assert client.ttl(jobs.heartbeat_key(settings)) == -1
        client.delete(jobs.heartbeat_key(settings))
    finally:
        client.close()
    assert not (tmp_path / jobs.HEARTBEAT_FILE).exists()
    health = await jobs.scheduler_health(settings, now=1234.5 + settings.scheduler_stale_seconds)
    assert health is None  # the key was deleted: nothing recorded any more
