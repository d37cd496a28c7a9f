"""``/ws/me``: a buyer's own channel of order and parcel news; and the same as a REST page.

Frames use the room envelope (docs/protocol.md): ``seq`` is the notice id, so a client that
reconnects with ``last_seq`` gets what it missed, in order, once. The handshake is the room
socket's (livecommerce/rooms/handshake.py).

A notice stores its status as a code; the words for it (``status_text``) are the labels of
the domain that wrote the notice, handed to the app as ``app.state.notice_labels`` (notice
kind -> status -> msgid, see ``create_app``), so that this module reads no order or
shipment code.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial

from fastapi import APIRouter, Query, Request, WebSocket
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocketDisconnect

from livecommerce.accounts.deps import ContextDep, CurrentUser
from livecommerce.accounts.models import User
from livecommerce.config import Settings
from livecommerce.db import session_scope
from livecommerce.deps import ReadSessionDep
from livecommerce.errors import AppError, DatabaseUnreachable
from livecommerce.events import ServerEvent
from livecommerce.notifications import service
from livecommerce.notifications.feed import Listener, NotificationFeed
from livecommerce.notifications.models import Notification
from livecommerce.notifications.rendering import Labels, notice_frame, render_page
from livecommerce.notifications.schemas import NoticePage
from livecommerce.rooms import handshake
from livecommerce.rooms.handshake import CLOSE_BAD_REQUEST, error_frame
from livecommerce.rooms.hub import CLOSE_SLOW, CLOSE_UNAUTHORIZED, SLOW_REASON
from livecommerce.rooms.limits import Cap, Policy, RoomLimits, user_me_key
from livecommerce.rooms.render import frame
from livecommerce.rooms.schemas import BadFrame, Ping, parse_client_frame

router = APIRouter(tags=["notifications"])

REPLAY_MAX = 500
MAX_CLIENT_FRAME = 1024  # characters; a client only ever sends a ping here


@router.get("/me/notifications")
async def my_notifications(
    request: Request,
    user: CurrentUser,
    session: ReadSessionDep,
    ctx: ContextDep,
    # ``seq`` is a 32-bit column: a larger number is a 422 here, not a database error.
    after: int = Query(default=0, ge=0, le=2**31 - 1, description="only notices after this seq"),
    limit: int = Query(default=50, ge=1, le=service.PAGE),
) -> NoticePage:
    """Your order and parcel news, oldest first, after ``after`` (what ``/ws/me`` sends)."""
    assert user.id is not None
    notices = await service.notices_after(session, user_id=user.id, after_seq=after, limit=limit)
    labels: Labels = request.app.state.notice_labels
    return render_page(notices, ctx.locale, labels, after=after)


async def my_channel(websocket: WebSocket) -> None:
    settings: Settings = websocket.app.state.settings
    feed: NotificationFeed = websocket.app.state.notifications
    await websocket.accept()
    fallback_locale = settings.default_locale
    user: User | None = None
    claims = handshake.read_token(websocket, settings)
    # A guest has no channel of its own. A database that cannot be read is an outage to wait
    # out (1013, as the room socket answers), never a reason to sign the buyer out (4401).
    if claims is not None and not claims.is_guest:
        try:
            async with session_scope(websocket.app.state.sessions, read_only=True) as session:
                user = await session.get(User, claims.user_id)
        except DatabaseUnreachable:
            await handshake.try_again(websocket, fallback_locale)
            return
        except AppError:
            user = None
    if claims is None or not handshake.stands_for(claims, user) or user is None or user.id is None:
        await handshake.refuse(websocket, fallback_locale, "invalid_token", CLOSE_UNAUTHORIZED)
        return
    locale = handshake.choose_locale(websocket, user, settings)
    if locale is None:
        await handshake.refuse(websocket, fallback_locale, "unsupported_locale", CLOSE_BAD_REQUEST)
        return
    last_seq = handshake.parse_last_seq(websocket.query_params.get("last_seq"))
    limits: RoomLimits = websocket.app.state.room_limits
    policy: Policy = websocket.app.state.room_policy
    caps = [Cap(user_me_key(user.id), policy.me_sockets_per_user)]
    claimed = await handshake.claim_socket(websocket, limits, caps, locale)
    if claimed is None:
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
    labels: Labels = websocket.app.state.notice_labels
    render = partial(notice_frame, labels=labels)
    listener = Listener(user_id=user_id, locale=locale, render=render, last_seq=through)
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
    await websocket.send_text(frame(ServerEvent.WELCOME, welcome))
    labels: Labels = websocket.app.state.notice_labels
    for notice in replay:
        await websocket.send_text(notice_frame(notice, locale, labels))
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
        await websocket.send_text(frame(ServerEvent.PONG, {}))


routes = [WebSocketRoute("/ws/me", my_channel)]
