"""What a stream room's events mean: the rules the rooms hub is given (``Hub(rules=...)``).

- Each room event is applied to the room as every process receives it: ``stream_status``
  sets whether chat is open, ``moderation`` mutes and bans (a banned viewer's sockets are
  closed), and the events a joining viewer's ``welcome`` shows (the stream, the pinned
  product, the flash sale) keep the room's welcome state current.
- Orders placed in a stream are announced as a ticker: those within a second share one
  ``order_placed`` event, listing the first few.
- A flash sale's remaining quantity reaches the room at most once per tick of the hub
  (``rooms.hub.TICK_S``, four times a second): the lowest figure held since wins.

The order path queues its announcements here after commit (``announce_order``,
``announce_flash_sale``); the hub's tick publishes them.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from datetime import datetime
from typing import Any

from livecommerce.events import ServerEvent
from livecommerce.rooms.hub import CLOSE_BANNED, Publish, Room
from livecommerce.rooms.render import Event, encode_event
from livecommerce.streams import wordfilter
from livecommerce.streams.models import StreamStatus

ORDER_TICKER_S = 1.0  # orders placed within a second share one ticker event
ORDER_TICKER_MAX = 5  # orders listed by name in one ticker event (the rest are counted)


def restriction(room: Room, user_id: int | None) -> str | None:
    """ "mute" or "ban" when the user is currently restricted in the room."""
    if user_id is None:
        return None
    entry = room.moderation.get(user_id)
    if entry is None:
        return None
    action, until = entry
    if until is not None and until <= time.time():
        room.moderation.pop(user_id, None)
        return None
    return action


def chat_open(room: Room) -> bool:
    """Whether the room's stream is live (chat is open only then)."""
    return bool(room.settings.get("status") == StreamStatus.LIVE)


def apply_state(state: dict[str, Any], event: Event) -> bool:
    """Apply a room event to a welcome state; False when it is not one that changes it.

    Each sets values rather than adding to them, so applying an event the state already
    reflects changes nothing."""
    if event.type == ServerEvent.PRODUCT_PINNED:
        state["pinned_product"] = event.data.get("product")
    elif event.type == ServerEvent.FLASH_SALE:
        card = event.data
        current = state.get("flash_sale")
        same = current is not None and current.get("id") == card.get("id")
        if card.get("status") == "ended":
            if same:
                state["flash_sale"] = None
        elif not (current is not None and same and current["remaining"] < card["remaining"]):
            # (else an older update overtaken by a newer one, from another process)
            state["flash_sale"] = card
    elif event.type == ServerEvent.STREAM_STATUS:
        stream = state.get("stream")
        if stream is not None:
            status = event.data["status"]
            # The event does not carry the stream's times; its stamp is when it changed.
            if status == "live" and not stream.get("started_at"):
                stream["started_at"] = event.ts
            elif status == "ended" and not stream.get("ended_at"):
                stream["ended_at"] = event.ts
            stream["status"] = status
    else:
        return False
    return True


def _apply_moderation(room: Room, data: dict[str, Any]) -> None:
    user_id = int(data["user_id"])
    action = str(data["action"])
    if action in ("unmute", "unban"):
        room.moderation.pop(user_id, None)
        return
    until = data.get("until")
    expires = datetime.fromisoformat(until).timestamp() if until else None
    room.moderation[user_id] = (action, expires)
    if action == "ban":
        for conn in room.connections():
            if conn.user_id == user_id:
                conn.shut(CLOSE_BANNED, "banned from this stream")


class StreamRoomEvents:
    """The rules of stream rooms, and the order ticker and sale updates they coalesce."""

    def __init__(self) -> None:
        self._orders: dict[str, list[dict[str, Any]]] = {}
        self._order_counts: Counter[str] = Counter()
        self._next_orders = -math.inf  # loop time of the next ticker flush
        # Latest card per (room, sale): many orders in a quarter second make one event.
        self._sales: dict[tuple[str, int], dict[str, Any]] = {}

    # --- the rules (rooms.hub.RoomRules) -----------------------------------------------

    def apply(self, room: Room, event: Event) -> bool:
        if event.type == ServerEvent.MODERATION:
            _apply_moderation(room, event.data)
            return False
        if event.type == ServerEvent.STREAM_STATUS:
            room.settings["status"] = event.data["status"]
        return apply_state(room.state, event)

    def apply_state(self, state: dict[str, Any], event: Event) -> bool:
        return apply_state(state, event)

    def welcome_view(self, state: dict[str, Any], now: float) -> tuple[dict[str, Any], float]:
        sale = state.get("flash_sale")
        holds_until = math.inf
        if sale is not None:
            ends = datetime.fromisoformat(sale["ends_at"]).timestamp()
            if ends <= now:
                # Over by the clock, its end not yet heard of: nobody joins into it.
                sale = None
            else:
                holds_until = ends
        view = {
            "stream": state.get("stream"),
            "pinned_product": state.get("pinned_product"),
            "flash_sale": sale,
        }
        return view, holds_until

    def can_chat(self, room: Room, user_id: int) -> bool:
        return restriction(room, user_id) is None

    def settings_update(self, data: Any) -> dict[str, Any] | None:
        words = data.get("blocked_words") if isinstance(data, dict) else None
        return None if words is None else wordfilter.chat_rules(words)

    async def tick(self, publish: Publish, now: float) -> None:
        if self._sales:
            await self._flush_sales(publish)
        if now >= self._next_orders:
            self._next_orders = now + ORDER_TICKER_S
            await self._flush_orders(publish)

    async def flush(self, publish: Publish) -> None:
        await self._flush_orders(publish)
        await self._flush_sales(publish)

    # --- what the order path announces (orders.service.OrderAnnouncer) -------------------

    def announce_order(self, room_name: str, entry: dict[str, Any]) -> None:
        """Queue an order for the room's ticker (flushed as one event per second)."""
        self._order_counts[room_name] += 1
        listed = self._orders.setdefault(room_name, [])
        if len(listed) < ORDER_TICKER_MAX:
            listed.append(entry)

    def announce_flash_sale(self, room_name: str, sale_id: int, card: dict[str, Any]) -> None:
        """Queue a sale's new remaining quantity (coalesced; the lowest figure wins)."""
        key = (room_name, sale_id)
        held = self._sales.get(key)
        if held is None or card["remaining"] <= held["remaining"]:
            self._sales[key] = card

    async def _flush_sales(self, publish: Publish) -> None:
        sales, self._sales = self._sales, {}
        for (room_name, _), card in sales.items():
            await publish(room_name, encode_event(ServerEvent.FLASH_SALE, card))

    async def _flush_orders(self, publish: Publish) -> None:
        orders, counts = self._orders, self._order_counts
        self._orders, self._order_counts = {}, Counter()
        for room_name, count in counts.items():
            payload = encode_event(
                ServerEvent.ORDER_PLACED, {"orders": orders.get(room_name, []), "count": count}
            )
            await publish(room_name, payload)
