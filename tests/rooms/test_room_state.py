"""A room's welcome state: read once when the room opens, then kept current by its events.

The application runs under a real uvicorn server in this process (as ``livecommerce serve``
runs it, on SQLite and on PostgreSQL), so that the test can count the room's state reads and
the database statements each join costs; viewers are real WebSocket clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from websockets.asyncio.client import ClientConnection, connect

from livecommerce.rooms.hub import Hub
from tests.fixtures.frames import next_frame
from tests.rooms.test_rooms_ws import Live, guest_token, live_stream, viewer_token


class Reads:
    """Counts the hub's room-state loads and the SELECTs the database is sent."""

    def __init__(self, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
        self.state_loads = 0
        self.selects: list[str] = []
        hub: Hub = app.state.hub
        load = hub._load_state

        async def counted(stream_id: int) -> dict[str, Any] | None:
            self.state_loads += 1
            return await load(stream_id)

        monkeypatch.setattr(hub, "_load_state", counted)
        self._engine = app.state.engine.sync_engine
        event.listen(self._engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # Joins add to the room's viewer statistics, written every few seconds: not reads.
        if statement.lstrip().upper().startswith("SELECT"):
            self.selects.append(statement)

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


@pytest.fixture
def reads(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> Iterator[Reads]:
    counter = Reads(app, monkeypatch)
    yield counter
    counter.close()


def url(base: str, live: Live, token: str, **params: Any) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"token": token, **params}.items())
    return f"{base}/ws/streams/{live.stream_id}?{query}"


async def welcome_of(target: str, reads: Reads) -> tuple[dict[str, Any], int]:
    """A new viewer's welcome and the SELECTs its join cost."""
    before = len(reads.selects)
    async with connect(target) as ws:
        welcome = await next_frame(ws, "welcome")
    return welcome["data"], len(reads.selects) - before


async def sale_frame(ws: ClientConnection) -> dict[str, Any]:
    return (await next_frame(ws, "flash_sale"))["data"]


async def test_welcome_follows_pin_sale_and_status_without_a_read_per_join(
    client: httpx.AsyncClient, ws_base: str, reads: Reads
) -> None:
    """Joins after a pin, a sale and the stream's end (with its sale) see each, with no DB read."""
    live = await live_stream(client)
    token = await guest_token(client)
    async with connect(url(ws_base, live, token, locale="ru")) as first:
        opened = (await next_frame(first, "welcome"))["data"]
        assert opened["pinned_product"] is None and opened["flash_sale"] is None
        assert reads.state_loads == 1

        pinned = await client.post(
            f"/api/v1/streams/{live.stream_id}/pins",
            json={"product_id": live.product["id"]},
            headers=live.host,
        )
        assert pinned.status_code == 200, pinned.text
        await next_frame(first, "product_pinned")  # the hub has applied it
        welcome, selects = await welcome_of(
            url(ws_base, live, token, locale="kk", currency="KZT"), reads
        )
        assert selects == 0
        assert welcome["pinned_product"]["title"] == "Ылғалдандыратын крем"
        assert welcome["pinned_product"]["price"]["currency"] == "KZT"

        sale = await client.post(
            f"/api/v1/streams/{live.stream_id}/flash-sales",
            json={
                "product_id": live.product["id"],
                "price": {"amount": "99.00", "currency": "CNY"},
                "quantity": 30,
                "duration_s": 300,
            },
            headers=live.host,
        )
        assert sale.status_code == 201, sale.text
        sale_id = (await sale_frame(first))["id"]
        welcome, selects = await welcome_of(
            url(ws_base, live, token, locale="uz", currency="UZS"), reads
        )
        assert selects == 0
        assert welcome["flash_sale"]["id"] == sale_id
        assert welcome["flash_sale"]["remaining"] == 30
        assert welcome["flash_sale"]["price"]["currency"] == "UZS"
        assert welcome["flash_sale"]["product"]["title"] == "Namlovchi krem"

        # Ending the stream ends its sale first: two events, each applied to the state.
        stopped = await client.post(f"/api/v1/streams/{live.stream_id}/end", headers=live.host)
        assert stopped.status_code == 200, stopped.text
        assert (await sale_frame(first))["status"] == "ended"
        await next_frame(first, "stream_status")
        welcome, selects = await welcome_of(url(ws_base, live, token, locale="ru"), reads)
        assert selects == 0
        assert welcome["flash_sale"] is None
        assert welcome["pinned_product"]["title"] == "Увлажняющий крем"
        assert welcome["stream"]["status"] == "ended"
        assert welcome["stream"]["ended_at"] is not None
        detail = await client.get(f"/api/v1/streams/{live.stream_id}", headers=live.host)
        assert welcome["last_seq"] == detail.json()["stats"]["last_seq"]
    assert reads.state_loads == 1, "the room's state is read once, when it opens"


async def test_the_room_state_is_read_again_only_when_the_room_reopens(
    client: httpx.AsyncClient, ws_base: str, reads: Reads, app: FastAPI
) -> None:
    """The last viewer leaving closes the room; the next one opens it and reads it anew."""
    live = await live_stream(client)
    token = await guest_token(client)
    for _ in range(3):
        async with connect(url(ws_base, live, token)) as ws:
            await next_frame(ws, "welcome")
        async with asyncio.timeout(5):
            while f"stream:{live.stream_id}" in app.state.hub.rooms:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    assert reads.state_loads == 3


async def test_a_guest_join_sends_the_database_nothing_and_a_user_join_one_query(
    client: httpx.AsyncClient, ws_base: str, reads: Reads
) -> None:
    """Into an open room: a guest costs no query; a signed-in viewer one (row and standing)."""
    live = await live_stream(client)
    guest = await guest_token(client)
    user, token = await viewer_token(client)
    async with connect(url(ws_base, live, guest)) as resident:
        await next_frame(resident, "welcome")
        welcome, selects = await welcome_of(url(ws_base, live, guest, locale="kk"), reads)
        assert selects == 0
        assert welcome["you"] == {"user_id": None, "name": "", "guest": True, "can_chat": False}
        welcome, selects = await welcome_of(url(ws_base, live, token, locale="ru"), reads)
        assert selects == 1
        assert welcome["you"]["user_id"] == user["id"]
        assert welcome["you"]["name"] == user["display_name"]
        assert welcome["you"]["can_chat"] is True


async def test_an_unknown_stream_is_refused_and_leaves_no_room_behind(
    client: httpx.AsyncClient, ws_base: str, app: FastAPI
) -> None:
    """A guest asking for a stream that does not exist gets 4404; no room stays open."""
    token = await guest_token(client)
    async with connect(f"{ws_base}/ws/streams/987654?token={token}") as ws:
        error = await next_frame(ws, "error")
        await ws.wait_closed()
    assert error["data"]["code"] == "stream_not_found"
    assert ws.close_code == 4404
    assert "stream:987654" not in app.state.hub.rooms
