"""Room limits per person over real sockets: one user's many sockets share one chat bucket and
a socket cap, in one process and across two processes sharing Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.fixtures.frames import next_frame
from tests.fixtures.redis import prepare_redis
from tests.fixtures.server import migrated_server, server_pair
from tests.rooms.test_rooms_ws import (
    Live,
    guest_token,
    live_stream,
    viewer_token,
    ws_url,
)

# Nothing refills during a test: exactly the burst passes.
LIMITS = {
    "room_chat_burst": "5",
    "room_chat_refill_seconds": "600",
    "room_sockets_per_user": "10",
    "room_sockets_per_user_total": "12",
    "room_guest_sockets_per_address": "3",
}


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with migrated_server(tmp_path_factory.mktemp("limits-server"), **LIMITS) as (base, _):
        yield base


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


async def joined(stack: AsyncExitStack, url: str) -> ClientConnection:
    ws = await stack.enter_async_context(connect(url))
    await next_frame(ws, "welcome")
    return ws


async def refused(url: str) -> tuple[dict[str, Any], int | None]:
    """The error frame and close code of a socket the server turns away."""
    async with connect(url) as ws:
        error = await next_frame(ws, "error")
        with pytest.raises(ConnectionClosed) as closed:
            await next_frame(ws)
    return error, closed.value.rcvd.code if closed.value.rcvd else None


async def chat_tally(
    http: httpx.AsyncClient,
    live: Live,
    senders: list[ClientConnection],
    listener: ClientConnection,
    per_socket: int,
) -> tuple[int, list[dict[str, Any]]]:
    """Each sender sends ``per_socket`` messages; the chats the listener hears and the errors
    the senders get back."""
    for n in range(per_socket):
        for i, ws in enumerate(senders):
            await ws.send(json.dumps({"type": "chat", "data": {"text": f"{i}-{n}"}}))
    errors: list[dict[str, Any]] = []
    for ws in senders:
        # A socket's frames are answered in order: its errors all come before this pong.
        await ws.send(json.dumps({"type": "ping"}))
        while (frame := await next_frame(ws, "error", "pong"))["type"] == "error":
            errors.append(frame)
    # Every accepted message was published before its sender's pong; an announcement after
    # them all marks the end of the room's chat.
    marker = await http.post(
        f"/api/v1/streams/{live.stream_id}/announcements",
        json={"text": {"ru": "конец"}},
        headers=live.host,
    )
    assert marker.status_code == 202, marker.text
    heard = 0
    while (await next_frame(listener, "chat", "announcement"))["type"] == "chat":
        heard += 1
    return heard, errors


async def test_one_users_sockets_share_one_chat_bucket(http: httpx.AsyncClient) -> None:
    """Ten sockets of one user sending 100 messages get the burst of five through, not 100;
    every other message gets chat_rate_limited with a retry hint, and the sockets stay open."""
    live = await live_stream(http)
    _, token = await viewer_token(http)
    guest = await guest_token(http)
    async with AsyncExitStack() as stack:
        senders = [await joined(stack, ws_url(http, live.stream_id, token)) for _ in range(10)]
        listener = await joined(stack, ws_url(http, live.stream_id, guest))
        heard, errors = await chat_tally(http, live, senders, listener, per_socket=10)
        assert heard == 5
        assert len(errors) == 95
        assert {e["data"]["code"] for e in errors} == {"chat_rate_limited"}
        assert all(0 < e["data"]["details"]["retry_after_ms"] <= 600_000 for e in errors)
        for ws in senders:
            await ws.send(json.dumps({"type": "ping"}))
            assert (await next_frame(ws, "pong"))["seq"] is None


async def test_sockets_per_user_are_capped_per_room_and_overall(http: httpx.AsyncClient) -> None:
    """The eleventh socket of a user in one room, and the thirteenth in all, are refused with
    too_many_sockets and 4429; closing one lets the next in."""
    first = await live_stream(http)
    second = await live_stream(http)
    _, token = await viewer_token(http)
    async with AsyncExitStack() as stack:
        in_first = [await joined(stack, ws_url(http, first.stream_id, token)) for _ in range(10)]
        error, code = await refused(ws_url(http, first.stream_id, token, locale="en"))
        assert code == 4429
        assert error["data"]["code"] == "too_many_sockets"
        assert error["data"]["details"] == {"limit": 10}
        assert error["data"]["message"]
        for _ in range(2):
            await joined(stack, ws_url(http, second.stream_id, token))
        error, code = await refused(ws_url(http, second.stream_id, token))
        assert (error["data"]["code"], code) == ("too_many_sockets", 4429)
        assert error["data"]["details"] == {"limit": 12}
        await in_first[0].close()
        # The server withdraws the claim once it has seen the close.
        for _ in range(50):
            async with connect(ws_url(http, second.stream_id, token)) as ws:
                frame = await next_frame(ws, "welcome", "error")
            if frame["type"] == "welcome":
                break
            await asyncio.sleep(0.1)
        assert frame["type"] == "welcome"


async def test_guest_sockets_are_capped_per_address(http: httpx.AsyncClient) -> None:
    """Fresh guest tokens do not get around the cap: it counts the client address."""
    live = await live_stream(http)
    other = await live_stream(http)
    async with AsyncExitStack() as stack:
        for _ in range(3):
            await joined(stack, ws_url(http, live.stream_id, await guest_token(http)))
        error, code = await refused(ws_url(http, live.stream_id, await guest_token(http)))
        assert (error["data"]["code"], code) == ("too_many_sockets", 4429)
        # Per room: the same address may watch another stream.
        await joined(stack, ws_url(http, other.stream_id, await guest_token(http)))
        # A signed-in user is counted as a user, not by address.
        _, token = await viewer_token(http)
        await joined(stack, ws_url(http, live.stream_id, token))


# --- Scaled mode: two processes, one Redis ------------------------------------------------


@pytest.fixture(scope="module")
async def redis_for_servers() -> AsyncIterator[str]:
    url = await prepare_redis()
    yield url
    # The buckets of this module's users (ids start at 1 in every server database) would
    # otherwise outlive it and limit another module's users of the same ids.
    admin = Redis.from_url(url)
    try:
        keys = [key async for key in admin.scan_iter(match="lc:limits:*")]
        if keys:
            await admin.delete(*keys)
    finally:
        await admin.aclose()


@pytest.fixture(scope="module")
def two_servers(
    redis_for_servers: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    data = tmp_path_factory.mktemp("limits-two-servers")
    limits = {**LIMITS, "room_sockets_per_user": "3"}
    with server_pair(data, redis_url=redis_for_servers, **limits) as servers:
        yield servers


async def test_limits_hold_across_processes(two_servers: tuple[str, str]) -> None:
    """Sockets on two processes fill one cap, and chat through both draws on one bucket."""
    async with (
        httpx.AsyncClient(base_url=two_servers[0], timeout=10) as a,
        httpx.AsyncClient(base_url=two_servers[1], timeout=10) as b,
        AsyncExitStack() as stack,
    ):
        live = await live_stream(a)
        _, token = await viewer_token(a)
        on_a = [await joined(stack, ws_url(a, live.stream_id, token)) for _ in range(2)]
        on_b = [await joined(stack, ws_url(b, live.stream_id, token))]
        for http in (a, b):
            error, code = await refused(ws_url(http, live.stream_id, token))
            assert (error["data"]["code"], code) == ("too_many_sockets", 4429)
        listener = await joined(stack, ws_url(b, live.stream_id, await guest_token(b)))
        heard, errors = await chat_tally(a, live, [*on_a, *on_b], listener, per_socket=4)
        assert heard == 5
        assert len(errors) == 7
        assert {e["data"]["code"] for e in errors} == {"chat_rate_limited"}
