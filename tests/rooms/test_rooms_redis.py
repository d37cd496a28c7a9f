"""Two real server processes sharing rooms through a real Redis."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.fixtures.frames import next_frame
from tests.fixtures.redis import prepare_redis, require_redis
from tests.fixtures.server import server_pair
from tests.rooms.test_rooms_ws import guest_token, live_stream, viewer_token, ws_url


@pytest.fixture(scope="module")
async def redis_for_servers() -> str:
    require_redis()
    return await prepare_redis()


@pytest.fixture(scope="module")
def two_servers(
    redis_for_servers: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    data = tmp_path_factory.mktemp("two-servers")
    with server_pair(data, redis_url=redis_for_servers) as servers:
        yield servers


@pytest.fixture
async def clients(two_servers: tuple[str, str]) -> AsyncIterator[tuple[httpx.AsyncClient, ...]]:
    async with (
        httpx.AsyncClient(base_url=two_servers[0], timeout=10) as a,
        httpx.AsyncClient(base_url=two_servers[1], timeout=10) as b,
    ):
        yield a, b


async def test_a_room_spans_two_processes(clients: tuple[httpx.AsyncClient, ...]) -> None:
    """Host on B reaches a viewer on A; chat crosses over; the viewer count is room-wide."""
    a, b = clients
    live = await live_stream(b)
    _, token = await viewer_token(a)
    guest = await guest_token(a)
    async with (
        connect(ws_url(a, live.stream_id, guest, locale="kk")) as on_a,
        connect(ws_url(b, live.stream_id, token, locale="ru")) as on_b,
    ):
        first = await next_frame(on_a, "welcome")
        await next_frame(on_b, "welcome")
        pinned = await b.post(
            f"/api/v1/streams/{live.stream_id}/pins",
            json={"product_id": live.product["id"]},
            headers=live.host,
        )
        assert pinned.status_code == 200
        frame_a = await next_frame(on_a, "product_pinned")
        frame_b = await next_frame(on_b, "product_pinned")
        assert frame_a["seq"] == frame_b["seq"] == first["data"]["last_seq"] + 1
        assert frame_a["data"]["product"]["title"] == "Ылғалдандыратын крем"
        assert frame_b["data"]["product"]["title"] == "Увлажняющий крем"
        await on_b.send(json.dumps({"type": "chat", "data": {"text": "Салем из B"}}))
        chat = await next_frame(on_a, "chat")
        assert chat["data"]["text"] == "Салем из B"
        assert chat["seq"] == frame_a["seq"] + 1
        counts: list[int] = []
        while 2 not in counts:
            counts.append((await next_frame(on_a, "viewer_count", wait_s=5))["data"]["count"])
        detail = (await b.get(f"/api/v1/streams/{live.stream_id}")).json()
        assert detail["stats"]["viewer_count"] == 2
        assert detail["stats"]["last_seq"] == chat["seq"]


async def test_both_processes_keep_the_welcome_current(
    clients: tuple[httpx.AsyncClient, ...],
) -> None:
    """With the room open on A and B, a pin and a sale made on B (and the stream's end on A)
    are in the welcome of viewers joining either process."""
    a, b = clients
    live = await live_stream(b)
    guest = await guest_token(a)
    async with (
        connect(ws_url(a, live.stream_id, guest, locale="kk")) as on_a,
        connect(ws_url(b, live.stream_id, guest, locale="ru")) as on_b,
    ):
        await next_frame(on_a, "welcome")
        await next_frame(on_b, "welcome")
        pinned = await b.post(
            f"/api/v1/streams/{live.stream_id}/pins",
            json={"product_id": live.product["id"]},
            headers=live.host,
        )
        assert pinned.status_code == 200, pinned.text
        sale = await b.post(
            f"/api/v1/streams/{live.stream_id}/flash-sales",
            json={
                "product_id": live.product["id"],
                "price": {"amount": "99.00", "currency": "CNY"},
                "quantity": 7,
                "duration_s": 300,
            },
            headers=live.host,
        )
        assert sale.status_code == 201, sale.text
        for ws in (on_a, on_b):  # each process has applied both events
            await next_frame(ws, "flash_sale")
        for client, locale, title in (
            (a, "uz", "Namlovchi krem"),
            (b, "kk", "Ылғалдандыратын крем"),
        ):
            async with connect(ws_url(client, live.stream_id, guest, locale=locale)) as ws:
                welcome = (await next_frame(ws, "welcome"))["data"]
            assert welcome["pinned_product"]["title"] == title
            assert welcome["flash_sale"]["remaining"] == 7
            assert welcome["flash_sale"]["product"]["title"] == title
        ended = await a.post(f"/api/v1/streams/{live.stream_id}/end", headers=live.host)
        assert ended.status_code == 200, ended.text
        for ws in (on_a, on_b):
            await next_frame(ws, "stream_status")
        for client in (a, b):
            async with connect(ws_url(client, live.stream_id, guest)) as ws:
                welcome = (await next_frame(ws, "welcome"))["data"]
            assert welcome["stream"]["status"] == "ended"
            assert welcome["flash_sale"] is None
            assert welcome["pinned_product"]["title"] == "Увлажняющий крем"
