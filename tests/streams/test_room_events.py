"""What stream rooms' events mean to the hub: the welcome state they keep, moderation, the
order ticker and flash-sale updates."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from livecommerce.events import ServerEvent
from livecommerce.rooms.broker import MemoryBroker
from livecommerce.rooms.hub import Connection, Hub
from livecommerce.rooms.presence import MemoryPresence
from livecommerce.rooms.render import encode_event, text
from livecommerce.sqltypes import utcnow
from livecommerce.streams.room_events import StreamRoomEvents
from tests.rooms.test_hub import (
    FakeSocket,
    StateHook,
    _live,
    _settled,
    opening_state,
    sale_card,
    viewer,
    welcome_data,
)


async def _hub(events: StreamRoomEvents) -> Hub:
    hub = Hub(broker=MemoryBroker(), presence=MemoryPresence(), rules=events, queue_max=8)
    await hub.start()
    return hub


async def test_order_ticker_coalesces_a_burst_into_one_event() -> None:
    """Fifty orders within a second become one order_placed event listing five of them."""
    events = StreamRoomEvents()
    hub = await _hub(events)
    try:
        conn = viewer("ru", "RUB")
        await _live(hub, "stream:4", conn)
        for n in range(50):
            events.announce_order("stream:4", {"buyer": f"Buyer {n}", "city": "Almaty"})
        await asyncio.sleep(1.4)
        ticker = [f for f in conn.socket.frames if '"order_placed"' in f]  # type: ignore[attr-defined]
        assert len(ticker) == 1
        assert '"count":50' in ticker[0]
        assert await hub.broker.last_seq("stream:4") == 1
    finally:
        await hub.close()


async def test_sale_updates_coalesce_to_the_lowest_remaining() -> None:
    """Updates of one sale queued between two ticks publish once, with the lowest figure."""
    events = StreamRoomEvents()
    hub = Hub(broker=MemoryBroker(), presence=MemoryPresence(), rules=events)
    await hub.broker.start()
    try:
        for remaining in (7, 5, 6):
            events.announce_flash_sale("stream:9", 3, {"id": 3, "remaining": remaining})
        await hub.flush_pending()
        history = await hub.broker.history("stream:9", 0)
        assert history is not None and len(history) == 1
        published = json.loads(history[0].payload)
        assert published["type"] == ServerEvent.FLASH_SALE
        assert published["data"]["remaining"] == 5
    finally:
        await hub.broker.close()


# --- the room's welcome state, kept by the stream rules ----------------------------------------


async def _state_hub(hook: StateHook) -> Hub:
    hub = Hub(
        broker=MemoryBroker(),
        presence=MemoryPresence(),
        load_state=hook,
        rules=StreamRoomEvents(),
    )
    await hub.start()
    return hub


async def test_welcome_state_follows_pins_sales_and_status_from_one_load() -> None:
    """Pins, sale updates (lowest remaining wins), a sale's end and the stream's end apply."""
    hook = StateHook(opening_state())
    hub = await _state_hub(hook)
    room = "stream:7"
    kk, ru = viewer("kk", "KZT"), viewer("ru", "RUB")
    await _live(hub, room, kk, ru)
    assert welcome_data(hub, kk)["pinned_product"] is None
    pin = {"product": {"id": 3, "title": text({"kk": "Крем", "ru": "Крем для лица"})}}
    await hub.broker.publish(room, encode_event("product_pinned", pin))
    await hub.broker.publish(room, encode_event("flash_sale", sale_card(5, 30)))
    await hub.broker.publish(room, encode_event("flash_sale", sale_card(5, 12)))
    # Overtaken by the update above (another process published it later): ignored.
    seq = await hub.broker.publish(room, encode_event("flash_sale", sale_card(5, 20)))
    await _settled(hub, room, seq)
    data = welcome_data(hub, ru)
    assert data["pinned_product"]["title"] == "Крем для лица"
    assert welcome_data(hub, kk)["pinned_product"]["title"] == "Крем"
    assert data["flash_sale"]["remaining"] == 12
    assert data["flash_sale"]["product"]["title"] == "Платок"
    assert data["last_seq"] == seq
    # The end of another sale leaves this one; its own end clears it.
    await hub.broker.publish(room, encode_event("flash_sale", sale_card(4, 0, "ended")))
    seq = await hub.broker.publish(room, encode_event("flash_sale", sale_card(5, 12, "ended")))
    await _settled(hub, room, seq)
    assert welcome_data(hub, ru)["flash_sale"] is None
    status = {"status": "ended", "text": text({"ru": "Эфир окончен"})}
    seq = await hub.broker.publish(room, encode_event("stream_status", status))
    await _settled(hub, room, seq)
    stream = welcome_data(hub, ru)["stream"]
    assert stream["status"] == "ended" and stream["ended_at"] is not None
    assert stream["title"] == "Эфир"
    assert hub.rooms[room].settings["status"] == "ended"
    assert hook.loads == 1
    await hub.close()


async def test_a_sale_over_by_the_clock_is_not_in_the_welcome() -> None:
    """A sale whose end time passed before its end was announced is left out of welcomes."""
    state = opening_state()
    state["flash_sale"] = sale_card(5, 3, ends_at=utcnow() + timedelta(milliseconds=200))
    hub = await _state_hub(StateHook(state))
    conn = viewer("ru", "RUB")
    await _live(hub, "stream:7", conn)
    assert welcome_data(hub, conn)["flash_sale"]["id"] == 5
    await asyncio.sleep(0.3)
    assert welcome_data(hub, conn)["flash_sale"] is None
    await hub.close()


async def test_the_welcome_splices_a_signed_in_viewer_and_a_muted_one() -> None:
    """``you`` carries the viewer's id and name (escaped) and whether they may chat."""
    hub = await _state_hub(StateHook(opening_state()))
    talker = Connection(
        socket=FakeSocket(), locale="ru", currency="RUB", user_id=11, name='Айгерим "A"'
    )
    muted = Connection(socket=FakeSocket(), locale="ru", currency="RUB", user_id=12, name="B")
    await _live(hub, "stream:7", talker, muted)
    hub.rooms["stream:7"].moderation[12] = ("mute", None)
    assert welcome_data(hub, talker)["you"] == {
        "user_id": 11,
        "name": 'Айгерим "A"',
        "guest": False,
        "can_chat": True,
    }
    assert welcome_data(hub, muted)["you"]["can_chat"] is False
    assert welcome_data(hub, muted)["viewer_count"] == 2
    await hub.close()


async def test_a_refresh_reads_the_state_again_and_keeps_what_arrived_meanwhile() -> None:
    """A re-read replaces the state (a lost event's effect shows) yet keeps later events."""
    hook = StateHook(opening_state())
    hub = await _state_hub(hook)
    room_name = "stream:7"
    conn = viewer("ru", "RUB")
    await _live(hub, room_name, conn)
    room = hub.rooms[room_name]
    # The database now has a sale whose event never reached the broker.
    assert hook.state is not None
    hook.state["flash_sale"] = sale_card(8, 4)
    pin = {"product": {"id": 3, "title": text({"ru": "Крем"})}}

    async def read_while_a_pin_arrives(stream_id: int) -> dict[str, Any] | None:
        # The pin commits and is delivered while the read is under way; the read misses it.
        state = await hook(stream_id)
        seq = await hub.broker.publish(room_name, encode_event("product_pinned", pin))
        await _settled(hub, room_name, seq)
        return state

    hub._load_state = read_while_a_pin_arrives
    await hub.refresh_state(room)
    data = welcome_data(hub, conn)
    assert data["flash_sale"]["id"] == 8
    assert data["pinned_product"]["title"] == "Крем"
    assert hook.loads == 2
    await hub.close()
