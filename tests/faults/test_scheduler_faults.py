"""The scheduler (celery beat) killed: ``/readyz`` says so, and the worker that ran it stops.

A short staleness threshold (2 s, a heartbeat every 0.5 s) keeps the waits short. The
scheduler's own heartbeat names its process; the test SIGKILLs exactly that process and
leaves the rest of the worker alone, as a crash of the scheduler alone would.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from livecommerce import jobs
from livecommerce.config import Settings
from tests.fixtures.queues import queue_env, require_broker
from tests.fixtures.server import migrate, running_server
from tests.fixtures.waiting import wait_for
from tests.fixtures.worker import Worker, running_worker, start_worker

STALE_AFTER = "2"


def scheduler_env(tmp_path: Path, broker: str, **extra: str) -> dict[str, str]:
    env = queue_env(
        tmp_path, broker, **{"scheduler_stale_seconds": STALE_AFTER, "log_level": "info", **extra}
    )
    migrate(env)
    return env


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(
        data_dir=Path(env["LIVECOMMERCE_DATA_DIR"]),
        broker_url=env.get("LIVECOMMERCE_BROKER_URL"),
        task_queue=env["LIVECOMMERCE_TASK_QUEUE"],
        scheduler_stale_seconds=float(STALE_AFTER),
    )


async def ready(client: httpx.AsyncClient) -> dict[str, Any] | None:
    response = await client.get("/readyz")
    body: dict[str, Any] = response.json()
    return body if response.status_code == 200 and body.get("scheduler") == "ok" else None


async def stale(client: httpx.AsyncClient) -> dict[str, Any] | None:
    response = await client.get("/readyz")
    if response.status_code != 503:
        return None
    error: dict[str, Any] = response.json()["error"]
    return error if error["details"].get("scheduler") == "stale" else None


async def scheduler_pid(env: dict[str, str]) -> int:
    record = await jobs.read_heartbeat(settings_of(env))
    assert record is not None
    return int(record["pid"])


def exit_status(worker: Worker, within: float = 30.0) -> int:
    return worker.proc.wait(timeout=within)


@pytest.mark.slow
async def test_a_killed_scheduler_turns_readyz_stale_and_its_worker_exits(
    tmp_path: Path,
) -> None:
    """Scaled mode (Redis broker): the scheduler in ``worker --beat`` is SIGKILLed; its worker
    stops with a non-zero status and says why, /readyz answers 503 ``scheduler: stale``, and
    is ready again once a new scheduler runs."""
    require_broker("redis")
    env = scheduler_env(tmp_path, "redis")
    log_path = tmp_path / "server.log"
    with running_server(env, log_path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            # No scheduler has ever run here: nothing to judge, and the rest is ready.
            before = await client.get("/readyz")
            assert before.status_code == 200 and "scheduler" not in before.json()
            worker = start_worker(env, tmp_path / "worker-1.log", beat=True)
            try:
                await wait_for(lambda: ready(client), "a fresh heartbeat")
                beat = await scheduler_pid(env)
                assert beat != worker.proc.pid  # the scheduler is the worker's child process
                os.kill(beat, signal.SIGKILL)
                assert exit_status(worker) == os.EX_SOFTWARE, worker.log()
            finally:
                worker.kill()
            assert "the scheduler (celery beat) in worker" in worker.log()
            assert "has died" in worker.log()

            error = await wait_for(lambda: stale(client), "readyz to call the scheduler stale")
            assert error["code"] == "service_unavailable"
            assert error["details"]["stale_after_seconds"] == float(STALE_AFTER)
            assert error["details"]["age_seconds"] > float(STALE_AFTER)

            with running_worker(env, tmp_path / "worker-2.log", beat=True):
                body = await wait_for(lambda: ready(client), "the new scheduler's heartbeat")
    assert body == {"status": "ok", "database": "ok", "rooms": "ok", "scheduler": "ok"}
    assert "scheduler's last heartbeat is" in log_path.read_text()


@pytest.mark.slow
async def test_the_embedded_scheduler_killed_is_reported_by_readyz(tmp_path: Path) -> None:
    """Embedded mode (``serve`` with its own worker and scheduler, SQLite queue, heartbeat in
    the data dir): the scheduler is SIGKILLed, the worker says so, /readyz turns 503
    ``scheduler: stale``; a ``worker --beat`` started beside it makes it ready again."""
    env = scheduler_env(tmp_path, "embedded", embedded_worker="true")
    log_path = tmp_path / "server.log"
    with running_server(env, log_path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            await wait_for(lambda: ready(client), "the embedded scheduler's heartbeat", 60)
            assert (tmp_path / jobs.HEARTBEAT_FILE).exists()
            os.kill(await scheduler_pid(env), signal.SIGKILL)
            await wait_for(lambda: stale(client), "readyz to call the scheduler stale")
            # serve's worker reports it and keeps working the queue: nothing would restart it.
            await wait_for(
                lambda: "periodic jobs have stopped; restart" in log_path.read_text(),
                "the worker to report it",
            )
            with running_worker(env, tmp_path / "worker.log", beat=True):
                await wait_for(lambda: ready(client), "the new scheduler's heartbeat", 60)
