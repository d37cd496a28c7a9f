"""The fan-out hub on its own: encode once per group, slow consumers, empty rooms."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from typing import Any

import pytest

from livecommerce.rooms.broker import MemoryBroker, new_epoch
from livecommerce.rooms.hub import (
    CLOSE_GOING_AWAY,
    CLOSE_SLOW,
    SEND_BUFFER_MAX,
    Connection,
    Hub,
    NoSuchRoom,
    reconnect_reason,
)
from livecommerce.rooms.presence import MemoryPresence
from livecommerce.rooms.render import encode_event, text
from livecommerce.rooms.wire import Batch
from livecommerce.sqltypes import utcnow


class FakeSocket:
    """Records frames; ``stall`` makes sends hang like a client that stopped reading."""

    def __init__(self, *, stall: bool = False) -> None:
        self.frames: list[str] = []
        self.closed_with: int | None = None
        self.reason: str | None = None
        self.stall = stall

    async def send_text(self, data: str) -> None:
        if self.stall:
            await asyncio.Event().wait()
        self.frames.append(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed_with = code
        self.reason = reason


class FakeWriter:
    """A direct frame writer; ``stall`` keeps everything written in the send buffer."""

    def __init__(self, *, stall: bool = False) -> None:
        self.writes: list[bytes] = []
        self.stall = stall
        self.open = True

    def write(self, data: bytes) -> bool:
        if not self.open:
            return False
        self.writes.append(data)
        return True

    def buffered(self) -> int:
        return sum(map(len, self.writes)) if self.stall else 0

    def frames(self) -> list[str]:
        """The text frames of every write, parsed back per RFC 6455."""
        data, out, at = b"".join(self.writes), [], 0
        while at < len(data):
            assert data[at] == 0x81, "a final, unmasked text frame"
            size, at = data[at + 1], at + 2
            assert size < 128, "server frames are never masked"
            if size == 126:
                size, at = int.from_bytes(data[at : at + 2], "big"), at + 2
            elif size == 127:
                size, at = int.from_bytes(data[at : at + 8], "big"), at + 8
            out.append(data[at : at + size].decode())
            at += size
        return out


def viewer(locale: str, currency: str, **kwargs: object) -> Connection:
    socket = kwargs.pop("socket", None) or FakeSocket()
    return Connection(
        socket=socket,  # type: ignore[arg-type]
        locale=locale,
        currency=currency,
        user_id=None,
        name="",
        **kwargs,  # type: ignore[arg-type]
    )


async def _hub() -> Hub:
    hub = Hub(broker=MemoryBroker(), presence=MemoryPresence(), queue_max=8)
    await hub.start()
    return hub


async def _live(hub: Hub, room: str, *conns: Connection) -> None:
    for conn in conns:
        await hub.join(conn, room_name=room, stream_id=int(room.split(":")[1]))
        conn.start(Batch([]))


def greeting() -> bytes:
    return encode_event("announcement", {"text": text({"kk": "Сәлем", "ru": "Привет"})})


async def test_each_group_shares_one_frame_object() -> None:
    """Connections of one (locale, currency) get the very same string, rendered once."""
    hub = await _hub()
    try:
        conns = [viewer(locale, "KZT") for locale in ("kk", "kk", "ru")]
        await _live(hub, "stream:1", *conns)
        await hub.broker.publish("stream:1", greeting())
        await asyncio.sleep(0.05)
        kk1, kk2, ru = (c.socket.frames[-1] for c in conns)  # type: ignore[attr-defined]
        assert kk1 is kk2
        assert "Сәлем" in kk1 and "Привет" in ru
        for conn in conns:
            await conn.stop()
    finally:
        await hub.close()


async def test_direct_path_writes_the_same_bytes_to_every_socket_of_a_group() -> None:
    """On the direct path the frame is built once per group and written as-is."""
    hub = await _hub()
    try:
        writers = [FakeWriter() for _ in range(3)]
        conns = [
            viewer(locale, "KZT", writer=w)
            for locale, w in zip(("kk", "kk", "ru"), writers, strict=True)
        ]
        await _live(hub, "stream:5", *conns)
        await hub.broker.publish("stream:5", greeting())
        await asyncio.sleep(0.05)
        kk1, kk2, ru = (w.writes[-1] for w in writers)
        assert kk1 is kk2 and kk1 != ru
        assert "Сәлем" in writers[0].frames()[-1] and "Привет" in writers[2].frames()[-1]
    finally:
        await hub.close()


async def test_a_burst_reaches_each_socket_in_one_write_and_in_order() -> None:
    """Events that arrive together are delivered together, as separate frames."""
    hub = await _hub()
    try:
        writer = FakeWriter()
        conn = viewer("ru", "RUB", writer=writer)
        await _live(hub, "stream:6", conn)
        for n in range(20):
            await hub.broker.publish("stream:6", encode_event("chat", {"text": f"m{n}"}))
        await asyncio.sleep(0.05)
        assert len(writer.writes) == 1
        frames = [json.loads(f) for f in writer.frames()]
        assert [f["seq"] for f in frames] == list(range(1, 21))
        assert [f["data"]["text"] for f in frames] == [f"m{n}" for n in range(20)]
    finally:
        await hub.close()


async def test_frames_before_start_follow_the_welcome_in_order() -> None:
    """Events that arrive while the welcome is prepared are held, then sent after it."""
    hub = await _hub()
    try:
        writer = FakeWriter()
        conn = viewer("ru", "RUB", writer=writer)
        await hub.join(conn, room_name="stream:7", stream_id=7)
        for n in range(3):
            await hub.broker.publish("stream:7", encode_event("chat", {"text": f"m{n}"}))
        await asyncio.sleep(0.05)
        assert writer.writes == []
        conn.start(Batch(['{"type":"welcome"}']))
        frames = writer.frames()
        assert frames[0] == '{"type":"welcome"}'
        assert [json.loads(f)["seq"] for f in frames[1:]] == [1, 2, 3]
    finally:
        await hub.close()


async def test_a_viewer_who_joined_mid_burst_skips_what_its_replay_covered() -> None:
    """skip_through: events already replayed are not sent a second time."""
    hub = await _hub()
    try:
        early, late = FakeWriter(), FakeWriter()
        first = viewer("ru", "RUB", writer=early)
        await _live(hub, "stream:8", first)
        second = viewer("ru", "RUB", writer=late)
        second.skip_through = 2  # as if seq 1-2 came with its welcome
        await hub.join(second, room_name="stream:8", stream_id=8)
        second.start(Batch([]))
        for n in range(4):
            await hub.broker.publish("stream:8", encode_event("chat", {"text": f"m{n}"}))
        await asyncio.sleep(0.05)
        assert [json.loads(f)["seq"] for f in early.frames()] == [1, 2, 3, 4]
        assert [json.loads(f)["seq"] for f in late.frames()] == [3, 4]
    finally:
        await hub.close()


async def test_slow_consumer_is_closed_and_others_keep_receiving() -> None:
    """A client whose socket stops draining is closed with 4008; the room goes on."""
    hub = await _hub()
    try:
        slow_socket, fast_socket = FakeSocket(stall=True), FakeSocket()
        slow = viewer("ru", "RUB", socket=slow_socket)
        fast = viewer("ru", "RUB", socket=fast_socket)
        await _live(hub, "stream:2", slow, fast)
        for n in range(20):
            await hub.broker.publish("stream:2", encode_event("chat", {"text": f"m{n}"}))
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)
        assert slow.closed and slow.close_code == CLOSE_SLOW
        assert len(fast_socket.frames) == 20
        assert [f'"text":"m{n}"' in fast_socket.frames[n] for n in range(20)] == [True] * 20
        assert slow.task is not None
        slow.task.cancel()
        await fast.stop()
    finally:
        await hub.close()


async def test_slow_consumer_on_the_direct_path_is_closed_with_4008() -> None:
    """When the kernel stops taking a socket's bytes, the buffer limit closes it."""
    hub = await _hub()
    try:
        stalled, healthy = FakeWriter(stall=True), FakeWriter()
        slow_socket = FakeSocket()
        slow = viewer("ru", "RUB", writer=stalled, socket=slow_socket)
        fast = viewer("ru", "RUB", writer=healthy)
        await _live(hub, "stream:9", slow, fast)
        big = "x" * 4000
        for n in range(SEND_BUFFER_MAX // 4000 + 5):
            await hub.broker.publish("stream:9", encode_event("chat", {"text": f"{n}{big}"}))
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)
        assert slow.closed and slow.close_code == CLOSE_SLOW
        assert slow_socket.closed_with == CLOSE_SLOW
        assert len(healthy.frames()) == SEND_BUFFER_MAX // 4000 + 5
        written = len(stalled.writes)
        await hub.broker.publish("stream:9", encode_event("chat", {"text": "after"}))
        await asyncio.sleep(0.05)
        assert len(stalled.writes) == written  # nothing more is written to a closed viewer
    finally:
        await hub.close()


async def test_room_without_viewers_is_released() -> None:
    """The last viewer leaving unsubscribes the process: no room state stays behind."""
    hub = await _hub()
    try:
        conn = viewer("uz", "UZS")
        await hub.join(conn, room_name="stream:3", stream_id=3)
        assert "stream:3" in hub.rooms
        await hub.leave(conn)
        assert hub.rooms == {}
    finally:
        await hub.close()


async def test_joins_are_flushed_as_unique_viewers_with_their_locale() -> None:
    """Each viewer key is reported once per flush with the locale it joined in; guests
    without a key are not counted."""
    flushed: list[tuple[int, dict[str, str]]] = []

    async def record(stream_id: int, _peak: int, _chats: int, viewers: dict[str, str]) -> None:
        flushed.append((stream_id, viewers))

    hub = Hub(broker=MemoryBroker(), presence=MemoryPresence(), flush_stats=record)
    await hub.start()
    try:
        conns = [
            viewer("kk", "KZT", viewer_key="user:1"),
            viewer("uz", "UZS", viewer_key="user:1"),  # the same person again, later
            viewer("uz", "UZS", viewer_key="guest-9"),
            viewer("ru", "RUB"),
        ]
        for conn in conns:
            await hub.join(conn, room_name="stream:4", stream_id=4)
        for conn in conns:
            await hub.leave(conn)  # the room closes and flushes its figures
        assert flushed == [(4, {"user:1": "kk", "guest-9": "uz"})]
    finally:
        await hub.close()


# --- the room's welcome state ---------------------------------------------------------------


def sale_card(sale_id: int, remaining: int, status: str = "active", **extra: Any) -> dict[str, Any]:
    ends = extra.pop("ends_at", utcnow() + timedelta(minutes=5))
    return {
        "id": sale_id,
        "status": status,
        "product": {"id": 1, "title": text({"kk": "Орамал", "ru": "Платок"})},
        "remaining": remaining,
        "ends_at": ends.isoformat(),
        **extra,
    }


class StateHook:
    """The room's state as the streams domain would load it, counting the loads."""

    def __init__(self, state: dict[str, Any] | None) -> None:
        self.state = state
        self.loads = 0

    async def __call__(self, stream_id: int) -> dict[str, Any] | None:
        self.loads += 1
        return json.loads(json.dumps(self.state)) if self.state is not None else None


def opening_state() -> dict[str, Any]:
    return {
        "stream": {"id": 7, "status": "live", "title": text({"ru": "Эфир"}), "ended_at": None},
        "pinned_product": None,
        "flash_sale": None,
    }


async def _state_hub(hook: StateHook) -> Hub:
    hub = Hub(broker=MemoryBroker(), presence=MemoryPresence(), load_state=hook)
    await hub.start()
    return hub


def welcome_data(hub: Hub, conn: Connection) -> dict[str, Any]:
    welcome = json.loads(
        hub.welcome(conn, last_seq=conn.room.last_seq if conn.room else 0, resumed=None)
    )
    assert welcome["type"] == "welcome" and welcome["seq"] is None
    data: dict[str, Any] = welcome["data"]
    return data


async def _settled(hub: Hub, room: str, seq: int) -> None:
    async with asyncio.timeout(2):
        while hub.rooms[room].last_seq < seq:  # noqa: ASYNC110 (the consumer is a task)
            await asyncio.sleep(0.005)


async def test_a_stream_the_state_hook_does_not_know_opens_no_room() -> None:
    """join raises NoSuchRoom and leaves nothing subscribed; the next try asks again."""
    hook = StateHook(None)
    hub = await _state_hub(hook)
    for _ in range(2):
        with pytest.raises(NoSuchRoom):
            await hub.join(viewer("ru", "RUB"), room_name="stream:9", stream_id=9)
    assert hub.rooms == {}
    assert hook.loads == 2
    await hub.close()


async def test_closing_the_hub_tells_each_viewer_when_to_come_back() -> None:
    """On shutdown every socket closes with 1001 and its own retry_after_ms in the reason."""
    hub = await _hub()
    sockets = [FakeSocket() for _ in range(40)]
    await _live(hub, "stream:1", *(viewer("ru", "RUB", socket=s) for s in sockets))
    await hub.close()
    await asyncio.sleep(0.05)
    delays = []
    for socket in sockets:
        assert socket.closed_with == CLOSE_GOING_AWAY
        found = re.search(r"retry_after_ms=(\d+)", socket.reason or "")
        assert found is not None, socket.reason
        delays.append(int(found.group(1)))
    assert all(0 <= d <= 1000 for d in delays)  # 40 sockets: the shortest window, 1 s
    assert len(set(delays)) > 10, "each socket draws its own delay"


def test_the_reconnect_window_grows_with_the_sockets_closed() -> None:
    """5,000 sockets spread over 5 s; a huge process is capped at 30 s."""

    def longest(sockets: int) -> int:
        return max(int(re.findall(r"\d+", reconnect_reason("x", sockets))[-1]) for _ in range(2000))

    assert 4000 < longest(5000) <= 5000
    assert 25_000 < longest(10**6) <= 30_000


def forget(hub: Hub, room: str) -> None:
    """What a Redis restarted empty does to a room: its history and numbering start again,
    in another epoch (the broker's subscribers stay, as Redis clients resubscribe)."""
    state = hub.broker._rooms[room]  # type: ignore[attr-defined]
    state.seq, state.epoch = 0, new_epoch()
    state.history.clear()


def _frames_of(conn: Connection) -> list[dict[str, Any]]:
    return [json.loads(f) for f in conn.socket.frames]  # type: ignore[attr-defined]


async def test_a_reset_history_gives_viewers_a_new_welcome_then_the_new_epoch() -> None:
    """The broker forgot the room (as a Redis restarted empty does): the next event, in a new
    epoch at seq 1, is preceded by a welcome with resumed=false; nothing is dropped as an
    old seq."""
    hub = await _hub()
    try:
        conn = viewer("ru", "RUB")
        await _live(hub, "stream:7", conn)
        for _ in range(3):
            await hub.broker.publish("stream:7", greeting())
        await asyncio.sleep(0.05)
        old_epoch = conn.room.epoch if conn.room else ""
        assert [f["seq"] for f in _frames_of(conn)] == [1, 2, 3]
        forget(hub, "stream:7")
        await hub.broker.publish("stream:7", greeting())
        await hub.broker.publish("stream:7", greeting())
        await asyncio.sleep(0.05)
        later = _frames_of(conn)[3:]
        assert [(f["type"], f["seq"]) for f in later] == [
            ("welcome", None),
            ("announcement", 1),
            ("announcement", 2),
        ]
        welcome = later[0]["data"]
        assert welcome["resumed"] is False and welcome["last_seq"] == 0
        assert welcome["epoch"] != old_epoch
        assert welcome["epoch"] == (await hub.broker.position("stream:7")).epoch
    finally:
        await hub.close()


async def test_the_position_check_finds_a_reset_and_lost_events_without_a_new_event() -> None:
    """Events that never reached the hub, and a reset nobody has published after, are put
    right by the periodic position check."""
    hub = await _hub()
    try:
        conn = viewer("ru", "RUB")
        await _live(hub, "stream:8", conn)
        room = conn.room
        assert room is not None
        assert room.subscription is not None
        await room.subscription.close()  # from here on, the hub hears nothing by itself
        await hub.broker.publish("stream:8", greeting())
        await hub.broker.publish("stream:8", greeting())
        await hub.check_position(room)
        await asyncio.sleep(0.05)
        assert [f["seq"] for f in _frames_of(conn)] == [1, 2]
        forget(hub, "stream:8")
        await hub.check_position(room)
        await asyncio.sleep(0.05)
        frames = _frames_of(conn)
        assert frames[-1]["type"] == "welcome" and frames[-1]["data"]["resumed"] is False
        await hub.broker.publish("stream:8", greeting())
        await hub.check_position(room)
        await asyncio.sleep(0.05)
        assert _frames_of(conn)[-1]["seq"] == 1
    finally:
        await hub.close()
