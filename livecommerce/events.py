"""The WebSocket events: every type's name and the shape of its ``data``.

Pure data, importing no domain, so that every layer (the rooms transport below, the
domains above it) names events from here. docs/protocol.md documents each of them; a test
(tests/test_events.py) holds the two together.

The payload models describe what a client receives (after the room has rendered the
language and currency markers of livecommerce/rooms/render.py); the server builds the
payloads as plain dicts and does not validate them on the hot path.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel


class ServerEvent(StrEnum):
    """Frames the server sends on a room socket (``/ws/streams/{id}``)."""

    WELCOME = "welcome"
    CHAT = "chat"
    CHAT_DELETED = "chat_deleted"
    MODERATION = "moderation"
    PRODUCT_PINNED = "product_pinned"
    FLASH_SALE = "flash_sale"
    ANNOUNCEMENT = "announcement"
    ORDER_PLACED = "order_placed"
    STREAM_STATUS = "stream_status"
    REACTIONS = "reactions"
    VIEWER_COUNT = "viewer_count"
    ESTIMATE = "estimate"
    ERROR = "error"
    PONG = "pong"


class ClientEvent(StrEnum):
    """Frames a client sends on a room socket (``ping`` also on ``/ws/me``)."""

    CHAT = "chat"
    REACT = "react"
    PING = "ping"
    ESTIMATE = "estimate"


class NoticeEvent(StrEnum):
    """Frames of a buyer's own channel (``/ws/me``), besides ``welcome``, ``error``, ``pong``."""

    ORDER_STATUS = "order_status"
    SHIPMENT_STATUS = "shipment_status"


# Between the API processes' hubs only, never sent to a client: a room's settings changed.
RELOAD = "_reload"


class _Payload(BaseModel):
    """A frame's ``data`` as a client reads it (documentation; not enforced on send)."""


class ChatPayload(_Payload):
    user: dict[str, Any]  # {"id", "name"}
    text: str


class ChatDeletedPayload(_Payload):
    seq: int


class ModerationPayload(_Payload):
    user_id: int
    action: Literal["mute", "ban", "unmute", "unban"]
    until: str | None


class ProductPinnedPayload(_Payload):
    product: dict[str, Any] | None
    estimates: dict[str, Any] | None = None


class FlashSalePayload(_Payload):
    id: int
    status: Literal["active", "sold_out", "ended"]
    product: dict[str, Any]
    price: dict[str, Any]
    quantity: int
    remaining: int
    per_customer_limit: int | None
    starts_at: str
    ends_at: str


class AnnouncementPayload(_Payload):
    text: str


class OrderPlacedPayload(_Payload):
    orders: list[dict[str, Any]]  # up to five {buyer, product, quantity, items}
    count: int


class StreamStatusPayload(_Payload):
    status: Literal["live", "ended"]
    text: str


class ReactionsPayload(_Payload):
    counts: dict[str, int]


class ViewerCountPayload(_Payload):
    count: int


class ErrorPayload(_Payload):
    code: str
    message: str
    details: dict[str, Any]


class NoticePayload(_Payload):
    seq: int
    kind: NoticeEvent
    order_id: int
    shipment_id: int | None
    status: str
    status_text: str
    text: str
    tracking_number: str | None
    at: str


PAYLOADS: dict[str, type[_Payload]] = {
    ServerEvent.CHAT: ChatPayload,
    ServerEvent.CHAT_DELETED: ChatDeletedPayload,
    ServerEvent.MODERATION: ModerationPayload,
    ServerEvent.PRODUCT_PINNED: ProductPinnedPayload,
    ServerEvent.FLASH_SALE: FlashSalePayload,
    ServerEvent.ANNOUNCEMENT: AnnouncementPayload,
    ServerEvent.ORDER_PLACED: OrderPlacedPayload,
    ServerEvent.STREAM_STATUS: StreamStatusPayload,
    ServerEvent.REACTIONS: ReactionsPayload,
    ServerEvent.VIEWER_COUNT: ViewerCountPayload,
    ServerEvent.ERROR: ErrorPayload,
    NoticeEvent.ORDER_STATUS: NoticePayload,
    NoticeEvent.SHIPMENT_STATUS: NoticePayload,
}
