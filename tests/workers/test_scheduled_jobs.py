"""Scheduled and delayed jobs through a real worker: exchange rates, stream figures, and a
flash sale's end announced by the worker after the API process that started it is gone."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from livecommerce.rooms.redis_broker import RedisBroker
from tests.conftest import BACKENDS  # noqa: F401 - the backend param drives the database
from tests.fixtures.database import TestDatabase
from tests.fixtures.factories import account
from tests.fixtures.queues import broker_urls, require_broker
from tests.fixtures.server import running_server
from tests.fixtures.waiting import wait_for
from tests.fixtures.worker import running_worker
from tests.orders.shop import merchant, order, stocked_product
from tests.orders.test_orders_api import flash_sale, live_stream
from tests.workers.test_fulfilment_jobs import job_env

NBK_SAMPLE = Path(__file__).resolve().parents[1] / "rates" / "data" / "nbk_rates_all.xml"


@pytest.mark.slow
async def test_the_scheduler_refreshes_rates_and_rolls_up_stream_figures(
    clean: TestDatabase, tmp_path: Path
) -> None:
    """With a rates source configured, the worker's scheduler stores the National Bank of
    Kazakhstan's rates; an order placed from a stream shows up in its rolled-up figures."""
    require_broker("redis")
    env = job_env(
        tmp_path,
        clean,
        "redis",
        rates_sources=str(NBK_SAMPLE),
        rates_refresh_seconds="1",
        stats_rollup_seconds="0.5",
    )
    with (
        running_server(env, tmp_path / "server.log") as base,
        running_worker(env, tmp_path / "worker.log"),
    ):
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:

            async def nbk_rates() -> list[dict[str, Any]]:
                rates = (await client.get("/api/v1/rates")).json()
                return [r for r in rates if r["source"] == "National Bank of Kazakhstan"]

            stored = await wait_for(nbk_rates, "the NBK rates")
            assert all(r["quote"] == "KZT" for r in stored)

            _, mh = await merchant(client)
            sid = await live_stream(client, mh)
            cream = await stocked_product(client, mh, KZALA=5)
            _, bh = await account(client)
            placed = await order(client, bh, [(cream["id"], 1)], stream_id=sid)
            assert placed.status_code == 201, placed.text

            async def sales() -> dict[str, Any] | None:
                stats = (await client.get(f"/api/v1/streams/{sid}", headers=mh)).json()["stats"]
                figures = stats["sales"]
                return figures if figures and figures["orders"] == 1 else None

            figures = await wait_for(sales, "the stream's rollup")
            assert figures["buyers"] == 1
            assert figures["gmv"][0]["amount"] == placed.json()["total"]["amount"]


@pytest.mark.slow
async def test_the_worker_announces_a_flash_sale_end_when_the_api_process_is_gone(
    clean: TestDatabase, tmp_path: Path
) -> None:
    """Rooms on Redis: the API process that started a 10 s sale stops at once (its own timer
    dies with it); the workers' sweep of due sales announces the end in the room, once."""
    require_broker("redis")
    redis_url = broker_urls()["redis"]
    env = job_env(tmp_path, clean, "redis", redis_url=redis_url, flash_sale_sweep_seconds="0.5")
    with running_server(env, tmp_path / "server.log") as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            _, mh = await merchant(client)
            sid = await live_stream(client, mh)
            cream = await stocked_product(client, mh, KZALA=5)
            sale = await flash_sale(client, mh, sid, cream["id"], duration_s=10)
    room = f"stream:{sid}"
    rooms = RedisBroker(redis_url)
    try:
        started_at = await rooms.last_seq(room)
        with running_worker(env, tmp_path / "worker.log") as worker:
            done = re.compile(r"close_due_flash_sales\[[^\]]+\] succeeded in [0-9.e-]+s: 1")

            async def announced() -> bool:
                return bool(done.search(worker.log()))

            await wait_for(announced, "the worker's announcement", within=30)
        history = await rooms.history(room, started_at - 1)
    finally:
        await rooms.close()
    assert history is not None
    events = [json.loads(e.payload) for e in history if e.seq and e.seq > started_at]
    ended = [e for e in events if e["type"] == "flash_sale"]
    assert len(ended) == 1, events
    assert ended[0]["data"]["id"] == sale["id"]
    assert ended[0]["data"]["status"] == "ended"
