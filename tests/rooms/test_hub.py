"""The fan-out hub on its own: encode once per group, slow consumers, empty rooms."""

from __future__ import annotations

import asyncio

from livecommerce.rooms.broker import MemoryBroker
from livecommerce.rooms.hub import CLOSE_SLOW, Connection, Hub
from livecommerce.rooms.presence import MemoryPresence
from livecommerce.rooms.render import encode_event, text


class FakeSocket:
    """Records frames; ``stall`` makes sends hang like a client that stopped reading."""

    def __init__(self, *, stall: bool = False) -> None:
        self.frames: list[str] = []
        self.closed_with: int | None = None
        self.stall = stall

    async def send_text(self, data: str) -> None:
        if self.stall:
            await asyncio.Event().wait()
        self.frames.append(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed_with = code


async def _hub() -> Hub:
    hub = Hub(broker=MemoryBroker(), presence=MemoryPresence(), queue_max=8)
    await hub.start()
    return hub


async def test_each_group_shares_one_frame_object() -> None:
    """Connections of one (locale, currency) get the very same string, rendered once."""
    hub = await _hub()
    try:
        conns = [
            Connection(socket=FakeSocket(), locale=locale, currency="KZT", user_id=None, name="")
            for locale in ("kk", "kk", "ru")
        ]
        for conn in conns:
            await hub.join(conn, room_name="stream:1", stream_id=1)
        await hub.broker.publish(
            "stream:1",
            encode_event("announcement", {"text": text({"kk": "Сәлем", "ru": "Привет"})}),
        )
        await asyncio.sleep(0.05)
        kk1, kk2, ru = (c.queue[-1] for c in conns)
        assert kk1 is kk2
        assert "Сәлем" in kk1 and "Привет" in ru
    finally:
        await hub.close()


async def test_slow_consumer_is_closed_and_others_keep_receiving() -> None:
    """A client whose socket stops draining is closed with 4008; the room goes on."""
    hub = await _hub()
    try:
        slow_socket, fast_socket = FakeSocket(stall=True), FakeSocket()
        slow = Connection(socket=slow_socket, locale="ru", currency="RUB", user_id=None, name="")
        fast = Connection(socket=fast_socket, locale="ru", currency="RUB", user_id=None, name="")
        writers = []
        for conn in (slow, fast):
            await hub.join(conn, room_name="stream:2", stream_id=2)
            writers.append(asyncio.create_task(conn.run_writer()))
        for n in range(20):
            await hub.broker.publish("stream:2", encode_event("chat", {"text": f"m{n}"}))
        await asyncio.sleep(0.1)
        assert slow.closed and slow.close_code == CLOSE_SLOW
        assert len(fast_socket.frames) == 20
        assert [f'"text":"m{n}"' in fast_socket.frames[n] for n in range(20)] == [True] * 20
        writers[0].cancel()
        fast.shut(1000, "done")
        await asyncio.gather(*writers, return_exceptions=True)
    finally:
        await hub.close()


async def test_room_without_viewers_is_released() -> None:
    """The last viewer leaving unsubscribes the process: no room state stays behind."""
    hub = await _hub()
    try:
        conn = Connection(socket=FakeSocket(), locale="uz", currency="UZS", user_id=None, name="")
        await hub.join(conn, room_name="stream:3", stream_id=3)
        assert "stream:3" in hub.rooms
        await hub.leave(conn)
        assert hub.rooms == {}
    finally:
        await hub.close()


async def test_order_ticker_coalesces_a_burst_into_one_event() -> None:
    """Fifty orders within a second become one order_placed event listing five of them."""
    hub = await _hub()
    try:
        conn = Connection(socket=FakeSocket(), locale="ru", currency="RUB", user_id=None, name="")
        await hub.join(conn, room_name="stream:4", stream_id=4)
        for n in range(50):
            hub.announce_order("stream:4", {"buyer": f"Buyer {n}", "city": "Almaty"})
        await asyncio.sleep(1.4)
        ticker = [f for f in conn.queue if '"order_placed"' in f]
        assert len(ticker) == 1
        assert '"count":50' in ticker[0]
        assert await hub.broker.last_seq("stream:4") == 1
    finally:
        await hub.close()
