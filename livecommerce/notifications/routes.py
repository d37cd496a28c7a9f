"""``/ws/me``: a buyer's own channel of order and parcel news; and the same as a REST page.

Frames use the room envelope (docs/protocol.md): ``seq`` is the notice id, so a client that
reconnects with ``last_seq`` gets what it missed, in order, once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from fastapi import APIRouter, Query, WebSocket
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocketDisconnect

from livecommerce.accounts.models import User
from livecommerce.accounts.security import decode_token
from livecommerce.config import Settings
from livecommerce.db import session_scope
from livecommerce.deps import ContextDep, CurrentUser, ReadSessionDep, negotiate_locale
from livecommerce.errors import AppError
from livecommerce.fulfillment.routes import SHIPMENT_STATUS_LABELS
from livecommerce.i18n.messages import N_, translate
from livecommerce.notifications import service
from livecommerce.notifications.feed import Listener, NotificationFeed
from livecommerce.notifications.models import Notification
from livecommerce.orders.models import OrderStatus
from livecommerce.orders.states import STATUS_LABELS
from livecommerce.rooms.hub import CLOSE_SLOW, CLOSE_UNAUTHORIZED, SLOW_REASON
from livecommerce.rooms.limits import Cap, Policy, RoomLimits, user_me_key
from livecommerce.rooms.render import frame
from livecommerce.rooms.routes import (
    CLOSE_BAD_REQUEST,
    CLOSE_TOO_MANY_SOCKETS,
    TOO_MANY_SOCKETS_REASON,
    error_frame,
)
from livecommerce.rooms.schemas import BadFrame, Ping, parse_client_frame

router = APIRouter(tags=["notifications"])

REPLAY_MAX = 500
MAX_CLIENT_FRAME = 1024  # characters; a client only ever sends a ping here
ORDER_TEXT = N_("Order %(order)s: %(status)s")
SHIPMENT_TEXT = N_("Order %(order)s, parcel from %(warehouse)s: %(status)s")


def render_notice(notice: Notification, locale: str) -> dict[str, Any]:
    data = notice.data
    status = str(data.get("status", ""))
    order = f"#{notice.order_id}"
    if notice.kind == service.ORDER_STATUS:
        label = translate(locale, STATUS_LABELS[OrderStatus(status)])
        text = translate(locale, ORDER_TEXT, order=order, status=label)
    else:
        label = translate(locale, SHIPMENT_STATUS_LABELS.get(status, status))
        text = translate(
            locale, SHIPMENT_TEXT, order=order, warehouse=str(data.get("warehouse")), status=label
        )
    return {
        "seq": notice.seq,
        "kind": notice.kind,
        "order_id": notice.order_id,
        "shipment_id": notice.shipment_id,
        "status": status,
        "status_text": label,
        "text": text,
        "tracking_number": data.get("tracking_number"),
        "at": notice.created_at.isoformat(),
    }


def notice_frame(notice: Notification, locale: str) -> str:
    return frame(
        notice.kind,
        render_notice(notice, locale),
        seq=notice.seq,
        ts=notice.created_at.isoformat(),
    )


@router.get("/me/notifications")
async def my_notifications(
    user: CurrentUser,
    session: ReadSessionDep,
    ctx: ContextDep,
    # ``seq`` is a 32-bit column: a larger number is a 422 here, not a database error.
    after: int = Query(default=0, ge=0, le=2**31 - 1, description="only notices after this seq"),
    limit: int = Query(default=50, ge=1, le=service.PAGE),
) -> dict[str, Any]:
    """Your order and parcel news, oldest first, after ``after`` (what ``/ws/me`` sends)."""
    assert user.id is not None
    notices = await service.notices_after(session, user_id=user.id, after_seq=after, limit=limit)
    return {
        "items": [render_notice(n, ctx.locale) for n in notices],
        "last_seq": notices[-1].seq if notices else after,
    }


async def my_channel(websocket: WebSocket) -> None:
    settings: Settings = websocket.app.state.settings
    feed: NotificationFeed = websocket.app.state.notifications
    await websocket.accept()
    params = websocket.query_params
    locale: str = settings.default_locale
    user: User | None = None
    try:
        claims = decode_token(params.get("token") or "", secret=settings.resolved_secret_key())
        if not claims.is_guest:
            async with session_scope(websocket.app.state.sessions, read_only=True) as session:
                user = await session.get(User, claims.user_id)
            if user is not None and not claims.current_for(user):
                user = None
    except AppError:
        user = None
    if user is None or not user.is_active or user.id is None:
        await websocket.send_text(error_frame(locale, "invalid_token"))
        await websocket.close(CLOSE_UNAUTHORIZED)
        return
    try:
        locale = negotiate_locale(websocket, user, settings.default_locale)
    except AppError:
        await websocket.send_text(error_frame(locale, "unsupported_locale"))
        await websocket.close(CLOSE_BAD_REQUEST)
        return
    last_seq: int | None = None
    raw = params.get("last_seq")
    if raw is not None:
        last_seq = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else -1
    limits: RoomLimits = websocket.app.state.room_limits
    policy: Policy = websocket.app.state.room_policy
    claimed = await limits.open_socket([Cap(user_me_key(user.id), policy.me_sockets_per_user)])
    if isinstance(claimed, Cap):
        await websocket.send_text(error_frame(locale, "too_many_sockets", limit=claimed.limit))
        await websocket.close(CLOSE_TOO_MANY_SOCKETS, TOO_MANY_SOCKETS_REASON)
        return
    try:
        await _serve(websocket, feed, user.id, locale, last_seq)
    finally:
        await limits.close_socket(claimed)


async def _serve(
    websocket: WebSocket, feed: NotificationFeed, user_id: int, locale: str, last_seq: int | None
) -> None:
    try:
        through = await _welcome(websocket, user_id, locale, last_seq)
    except (WebSocketDisconnect, RuntimeError):
        return
    # Joined after the welcome: the feed first reads what came after ``through`` by seq, so
    # nothing committed meanwhile is missed, and nothing is sent twice.
    listener = Listener(user_id=user_id, locale=locale, render=notice_frame, last_seq=through)
    feed.add(listener)
    try:
        tasks = {
            asyncio.create_task(_read(websocket, locale)),
            asyncio.create_task(_write(websocket, listener)),
        }
        # Whichever ends first (the client left, or the socket must close) ends the other.
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await task
    finally:
        feed.remove(listener)


async def _welcome(websocket: WebSocket, user_id: int, locale: str, last_seq: int | None) -> int:
    """Send the welcome and the replay; returns the seq the client now has."""
    async with session_scope(websocket.app.state.sessions, read_only=True) as session:
        newest = await service.last_seq_of(session, user_id=user_id)
        replay: list[Notification] = []
        resumed: bool | None = None
        if last_seq is not None and 0 <= last_seq <= newest:
            replay = await service.notices_after(
                session, user_id=user_id, after_seq=last_seq, limit=REPLAY_MAX + 1
            )
            resumed = len(replay) <= REPLAY_MAX
            replay = replay[:REPLAY_MAX] if resumed else []
        elif last_seq is not None:
            resumed = False  # unusable, or from the future: start from now
    through = replay[-1].seq if replay else newest
    if resumed is False:
        through = newest
    welcome = {"user_id": user_id, "locale": locale, "last_seq": through, "resumed": resumed}
    await websocket.send_text(frame("welcome", welcome))
    for notice in replay:
        await websocket.send_text(notice_frame(notice, locale))
    return through


async def _write(websocket: WebSocket, listener: Listener) -> None:
    while True:
        text = await listener.queue.get()
        if text is None:
            if listener.overflowed:
                await websocket.close(CLOSE_SLOW, SLOW_REASON)
            else:
                await websocket.close(1001)
            return
        await websocket.send_text(text)


async def _read(websocket: WebSocket, locale: str) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            await websocket.send_text(error_frame(locale, "binary_not_supported"))
            continue
        if len(text) > MAX_CLIENT_FRAME:
            await websocket.send_text(error_frame(locale, "frame_too_large"))
            continue
        try:
            if not isinstance(parse_client_frame(text), Ping):
                raise BadFrame("unknown_type")
        except BadFrame as bad:
            # A room message of the wrong shape is still one this channel does not take.
            code = "unknown_type" if bad.code == "invalid_frame" else bad.code
            await websocket.send_text(error_frame(locale, code))
            continue
        await websocket.send_text(frame("pong", {}))


routes = [WebSocketRoute("/ws/me", my_channel)]
