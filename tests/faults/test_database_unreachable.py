"""PostgreSQL unreachable under a real server process: clear 503s, and no half-written order.

The server reaches its own scratch database through a proxy the test cuts and restores
(the machine's PostgreSQL itself is never touched).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url
from websockets.asyncio.client import connect

from livecommerce.db import create_engine
from tests.fixtures.database import postgres_url, require_postgres
from tests.fixtures.frames import next_frame
from tests.fixtures.server import migrate, running_server, server_env
from tests.fixtures.tcp_proxy import CuttableProxy
from tests.orders.shop import account, merchant, order, stocked_product
from tests.rooms.test_rooms_ws import live_stream, viewer_token, ws_url

ORDERS = 24


@pytest.fixture
async def scratch_url() -> AsyncIterator[str]:
    """A database of this test's own on the test PostgreSQL, dropped afterwards."""
    require_postgres()
    name = f"lc_partition_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url())
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(postgres_url()).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


@pytest.fixture
def proxied(scratch_url: str, tmp_path: Path) -> Iterator[tuple[str, CuttableProxy, Path]]:
    url = make_url(scratch_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    env = server_env(tmp_path, database_url=through, database_pool_timeout="2")
    migrate(env)
    try:
        with running_server(env, tmp_path / "server.log") as base:
            yield base, proxy, tmp_path / "server.log"
    finally:
        proxy.cut()


async def test_a_lost_database_is_a_clear_503_and_no_order_is_half_written(
    proxied: tuple[str, CuttableProxy, Path],
) -> None:
    base, proxy, log_path = proxied
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        _, seller = await merchant(client)
        product = await stocked_product(client, seller, KZALA=1000)
        _, buyer = await account(client)
        keys = [f"partition-{n}" for n in range(ORDERS)]
        live = await live_stream(client)
        _, viewer = await viewer_token(client)

        async def place(key: str) -> httpx.Response:
            return await order(client, buyer, [(product["id"], 2)], key=key)

        # Orders in flight when the database goes away.
        attempts = [asyncio.create_task(place(key)) for key in keys]
        await asyncio.sleep(0.05)
        proxy.cut()
        answers = await asyncio.gather(*attempts)
        assert {a.status_code for a in answers} <= {201, 503}, [a.text for a in answers]
        assert any(a.status_code == 503 for a in answers)

        # While it is away: every request that needs it is a localized 503 to retry.
        for path in ("/api/v1/products?locale=ru", f"/api/v1/products/{product['id']}"):
            away = await client.get(path, headers={"Accept-Language": "ru"})
            assert away.status_code == 503, away.text
            error = away.json()["error"]
            assert error["code"] == "service_unavailable"
            assert error["details"] == {"database": "unreachable"}
            assert away.headers["retry-after"]
            assert error["message"] and error["message"].isascii() is False  # in Russian
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["details"] == {"database": "unreachable"}
        assert (await client.get("/healthz")).status_code == 200  # the process itself is fine
        # A signed-in viewer cannot be admitted to a room: told so, and when to come back.
        async with connect(ws_url(client, live.stream_id, viewer)) as refused:
            error = await next_frame(refused, "error", wait_s=15)
            assert error["data"]["code"] == "rooms_unavailable"
            await refused.wait_closed()
        assert refused.close_code == 1013
        # Nor can a buyer's own channel open; it says to come back, not to sign in again.
        me_url = base.replace("http", "ws", 1) + "/ws/me?token=" + buyer["Authorization"][7:]
        async with connect(me_url) as refused_me:
            error = await next_frame(refused_me, "error", wait_s=15)
            assert error["data"]["code"] == "rooms_unavailable"
            await refused_me.wait_closed()
        assert refused_me.close_code == 1013

        proxy.restore()
        for _ in range(100):
            if (await client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert (await client.get("/readyz")).status_code == 200

        # The client retries what failed with the same key: each order exists exactly once,
        # whole, and the stock moved by exactly what the orders hold.
        for key, answer in zip(keys, answers, strict=True):
            if answer.status_code != 201:
                retried = await place(key)
                assert retried.status_code == 201, retried.text
        mine = (await client.get("/api/v1/orders?page_size=100", headers=buyer)).json()
        assert mine["total"] == ORDERS
        assert all(sum(i["quantity"] for i in o["items"]) == 2 for o in mine["items"])
        seen = await client.get(f"/api/v1/products/{product['id']}", headers=seller)
        levels = {s["warehouse"]: s["quantity"] for s in seen.json()["stock"]}
        assert levels["KZALA"] == 1000 - 2 * ORDERS
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
