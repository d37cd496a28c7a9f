"""Redis killed mid-stream and started again empty, under two real server processes.

What must hold (README, "What survives which fault"): during the outage the HTTP API keeps
answering (live figures null) and sockets get error frames, never a dead connection; after
it, every room resynchronises in a new epoch, viewers who stayed connected get a fresh
``welcome`` and then every later event in order, and a resume across the reset says
``resumed: false``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.fixtures.frames import next_frame
from tests.fixtures.redis_server import RedisServer
from tests.fixtures.server import migrate, running_server, server_env
from tests.rooms.test_rooms_ws import guest_token, live_stream, viewer_token, ws_url


@dataclass
class Stack:
    redis: RedisServer
    a: str
    b: str
    data: Path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("redis-restart")
    redis = RedisServer(data / "redis.log")
    redis.start()
    env = server_env(data, redis_url=redis.url)
    migrate(env)
    try:
        with ExitStack() as stack:
            a = stack.enter_context(running_server(env, data / "a.log"))
            b = stack.enter_context(running_server(env, data / "b.log"))
            yield Stack(redis, a, b, data)
    finally:
        redis.kill()


async def announce(http: httpx.AsyncClient, stream_id: int, host: dict[str, str], n: int) -> None:
    sent = await http.post(
        f"/api/v1/streams/{stream_id}/announcements",
        json={"text": {"ru": f"Новость {n}"}},
        headers=host,
    )
    assert sent.status_code == 202, sent.text


async def frames_until(ws: ClientConnection, text: str, wait_s: float = 20) -> list[dict[str, Any]]:
    """Welcomes and announcements, in the order they came, up to the announcement ``text``."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(wait_s):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] in ("welcome", "announcement"):
                seen.append(frame)
                if frame["type"] == "announcement" and frame["data"]["text"] == text:
                    return seen


async def test_rooms_resynchronise_after_redis_restarts_empty(stack: Stack) -> None:
    async with (
        httpx.AsyncClient(base_url=stack.a, timeout=15) as a,
        httpx.AsyncClient(base_url=stack.b, timeout=15) as b,
    ):
        live = await live_stream(b)
        quiet = await live_stream(b)  # no viewer opens it before the outage
        guest = await guest_token(a)
        _, talker = await viewer_token(a)
        async with (
            connect(ws_url(a, live.stream_id, guest, locale="ru")) as on_a,
            connect(ws_url(b, live.stream_id, talker, locale="ru")) as on_b,
        ):
            first = (await next_frame(on_a, "welcome"))["data"]
            await next_frame(on_b, "welcome")
            old_epoch = first["epoch"]
            for n in range(3):
                await announce(b, live.stream_id, live.host, n)
            before = await frames_until(on_a, "Новость 2")
            assert [f["seq"] for f in before] == [first["last_seq"] + n for n in (1, 2, 3)]
            assert (await frames_until(on_b, "Новость 2"))[-1]["seq"] == before[-1]["seq"]

            stack.redis.kill()

            # The API answers; only the live figures are unknown.
            detail = await a.get(f"/api/v1/streams/{live.stream_id}")
            assert detail.status_code == 200, detail.text
            stats = detail.json()["stats"]
            assert stats["viewer_count"] is None and stats["last_seq"] is None
            # A chat that cannot be carried is an error frame; the socket stays usable.
            await on_b.send(json.dumps({"type": "chat", "data": {"text": "Алло?"}}))
            error = await next_frame(on_b, "error", wait_s=15)
            assert error["data"]["code"] == "chat_unavailable"
            await on_b.send(json.dumps({"type": "ping"}))
            await next_frame(on_b, "pong")
            # A room not open in the process cannot be opened: an error frame, then 1013.
            async with connect(ws_url(a, quiet.stream_id, guest)) as refused:
                error = await next_frame(refused, "error", wait_s=15)
                assert error["data"]["code"] == "rooms_unavailable"
                await refused.wait_closed()
            assert refused.close_code == 1013
            assert refused.close_reason is not None and "retry_after_ms=" in refused.close_reason
            # Changes committed meanwhile are not lost to the database (announcements are
            # fire-and-forget, so this one is simply not carried).
            await announce(b, live.stream_id, live.host, 99)

            stack.redis.start()  # empty: no history, no sequence, no presence

            for n in range(10):
                await announce(b, live.stream_id, live.host, 100 + n)
            for ws in (on_a, on_b):
                after = await frames_until(ws, "Новость 109")
                resets = [f for f in after if f["type"] == "welcome"]
                assert len(resets) == 1, after
                reset = resets[0]["data"]
                assert reset["resumed"] is False
                assert reset["epoch"] != old_epoch
                assert reset["last_seq"] == 0
                assert reset["stream"]["status"] == "live"
                news = [f for f in after if f["type"] == "announcement"]
                # Every event of the new epoch, in order, none from before mixed in.
                assert [f["seq"] for f in news] == list(range(1, 11))
                wanted = [f"Новость {100 + n}" for n in range(10)]
                assert [f["data"]["text"] for f in news] == wanted
                assert after.index(resets[0]) < after.index(news[0])
            new_epoch = reset["epoch"]

        # A resume from before the reset is not a resume: the whole state comes instead.
        resume = ws_url(
            a, live.stream_id, guest, last_seq=before[-1]["seq"], epoch=old_epoch, locale="ru"
        )
        async with connect(resume) as again:
            welcome = (await next_frame(again, "welcome"))["data"]
        assert welcome["resumed"] is False
        assert welcome["epoch"] == new_epoch and welcome["last_seq"] == 10
        # And one within the new epoch is.
        resume = ws_url(a, live.stream_id, guest, last_seq=8, epoch=new_epoch, locale="ru")
        async with connect(resume) as again:
            welcome = (await next_frame(again, "welcome"))["data"]
            replay = [await next_frame(again, "announcement") for _ in range(2)]
        assert welcome["resumed"] is True
        assert [f["seq"] for f in replay] == [9, 10]
        detail = (await b.get(f"/api/v1/streams/{live.stream_id}")).json()
        assert detail["stats"]["last_seq"] == 10 and detail["stats"]["epoch"] == new_epoch
        # The room that could not open during the outage opens now.
        async with connect(ws_url(a, quiet.stream_id, guest)) as ws:
            assert (await next_frame(ws, "welcome"))["data"]["stream"]["id"] == quiet.stream_id
    for log in ("a.log", "b.log"):
        text = (stack.data / log).read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]
