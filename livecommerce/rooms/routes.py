"""``/ws/streams/{id}``: the room's WebSocket. The protocol is written up in docs/protocol.md."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from livecommerce.accounts.models import User
from livecommerce.accounts.security import decode_token
from livecommerce.config import Settings
from livecommerce.db import session_scope
from livecommerce.deps import negotiate_locale
from livecommerce.errors import AppError
from livecommerce.i18n.locales import DEFAULT_CURRENCY
from livecommerce.i18n.messages import N_, translate
from livecommerce.i18n.money import is_supported_currency
from livecommerce.rates.service import load_rate_book
from livecommerce.rooms.hub import (
    CLOSE_BANNED,
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHORIZED,
    Connection,
    Hub,
)
from livecommerce.rooms.render import Event, encode_event, frame, render
from livecommerce.rooms.wire import FRAMES_EXTENSION, Batch
from livecommerce.streams import service as streams
from livecommerce.streams.models import StreamStatus

log = logging.getLogger(__name__)
router = APIRouter()

MAX_CLIENT_FRAME = 4096  # characters; a chat message is at most CHAT_MAX of them
CHAT_MAX = 500
CHAT_BURST = 5  # messages a user may send at once...
CHAT_REFILL_S = 1.0  # ...then one per second
REACTIONS_PER_S = 20  # per connection; taps beyond are dropped silently
REACTION_KINDS = frozenset({"heart", "fire", "clap", "laugh", "wow", "gift"})
CLOSE_BAD_REQUEST = 4400

ERRORS = {
    "invalid_token": N_("Your session has expired. Sign in again."),
    "stream_not_found": N_("This stream does not exist."),
    "unsupported_locale": N_("This language is not supported."),
    "unsupported_currency": N_("This currency is not supported."),
    "banned": N_("You cannot join this stream."),
    "invalid_json": N_("The message is not valid JSON."),
    "unknown_type": N_("Unknown message type."),
    "frame_too_large": N_("The message is too large."),
    "binary_not_supported": N_("Send text frames with JSON."),
    "guest_cannot_chat": N_("Sign in to chat."),
    "muted": N_("You are muted in this stream."),
    "chat_empty": N_("The message is empty."),
    "chat_too_long": N_("The message is longer than %(max)s characters."),
    "chat_rate_limited": N_("You are sending messages too fast. Wait a moment."),
    "chat_blocked": N_("The message contains a word that is not allowed in this stream."),
    "stream_not_live": N_("The stream is not live."),
    "invalid_reaction": N_("Unknown reaction."),
}


def error_frame(locale: str, code: str, **params: Any) -> str:
    return frame(
        "error",
        {"code": code, "message": translate(locale, ERRORS[code], **params), "details": params},
    )


@dataclass
class ChatBucket:
    """Token bucket per connection: CHAT_BURST messages at once, then one per second."""

    tokens: float = CHAT_BURST
    stamp: float = field(default_factory=time.monotonic)

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(CHAT_BURST, self.tokens + (now - self.stamp) / CHAT_REFILL_S)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


async def _refuse(websocket: WebSocket, locale: str, code: str, close: int) -> None:
    await websocket.send_text(error_frame(locale, code))
    await websocket.close(close)


@router.websocket("/ws/streams/{stream_id}")
async def stream_room(websocket: WebSocket, stream_id: int) -> None:
    settings: Settings = websocket.app.state.settings
    hub: Hub = websocket.app.state.hub
    params = websocket.query_params
    await websocket.accept()
    fallback_locale = settings.default_locale

    # --- who, in which language and currency -------------------------------------------
    user: User | None = None
    token = params.get("token")
    if not token:
        await _refuse(websocket, fallback_locale, "invalid_token", CLOSE_UNAUTHORIZED)
        return
    try:
        claims = decode_token(token, secret=settings.resolved_secret_key())
    except AppError:
        await _refuse(websocket, fallback_locale, "invalid_token", CLOSE_UNAUTHORIZED)
        return
    async with session_scope(websocket.app.state.sessions, read_only=True) as session:
        if not claims.is_guest:
            user = await session.get(User, claims.user_id)
            if user is None or not user.is_active:
                await _refuse(websocket, fallback_locale, "invalid_token", CLOSE_UNAUTHORIZED)
                return
        try:
            locale = negotiate_locale(websocket, user, settings.default_locale)
        except AppError:
            await _refuse(websocket, fallback_locale, "unsupported_locale", CLOSE_BAD_REQUEST)
            return
        currency = (params.get("currency") or "").strip().upper() or (
            user.currency if user else DEFAULT_CURRENCY[locale]
        )
        if not is_supported_currency(currency):
            await _refuse(websocket, locale, "unsupported_currency", CLOSE_BAD_REQUEST)
            return
        raw_last_seq = params.get("last_seq")
        last_seq: int | None = None
        if raw_last_seq is not None:
            try:
                last_seq = int(raw_last_seq)
            except ValueError:
                last_seq = -1  # unusable: answered with resumed=false
        stream = await session.get(streams.Stream, stream_id) if 0 < stream_id < 2**31 else None
        if stream is None:
            await _refuse(websocket, locale, "stream_not_found", CLOSE_NOT_FOUND)
            return
        restriction = None
        if user is not None and user.id is not None:
            record = await streams.moderation_of(
                session=session, stream_id=stream_id, user_id=user.id
            )
            if record is not None:
                restriction = (record.action, record.until)
    if restriction is not None and restriction[0] == "ban":
        await _refuse(websocket, locale, "banned", CLOSE_BANNED)
        return

    # --- join, then the snapshot, then the replay, then live events ---------------------
    room_name = streams.room_of(stream_id)
    conn = Connection(
        socket=websocket,
        locale=locale,
        currency=currency,
        user_id=user.id if user else None,
        name=user.display_name if user else "",
        writer=websocket.scope.get("extensions", {}).get(FRAMES_EXTENSION),
    )
    conn.skip_through = max(last_seq or 0, 0)
    joined_at = await hub.join(conn, room_name=room_name, stream_id=stream_id)
    room = conn.room
    assert room is not None
    if restriction is not None and user is not None and user.id is not None:
        until = restriction[1].timestamp() if restriction[1] else None
        room.moderation[user.id] = (restriction[0], until)
    started = False
    try:
        resumed: bool | None = None
        replay: list[Event] = []
        if last_seq is not None:
            history = await hub.broker.history(room_name, last_seq) if last_seq >= 0 else None
            resumed = history is not None
            for envelope in history or []:
                if envelope.seq is not None and envelope.seq <= joined_at:
                    replay.append(Event.decode(envelope.payload, envelope.seq))
        async with session_scope(websocket.app.state.sessions, read_only=True) as session:
            current = await session.get(streams.Stream, stream_id)
            assert current is not None
            state = await streams.room_state(
                session=session, stream=current, book=await load_rate_book(session)
            )
        welcome = render(state, locale, currency)
        welcome.update(
            locale=locale,
            currency=currency,
            viewer_count=max(room.viewer_count, room.size),
            last_seq=joined_at,
            resumed=resumed,
            you={
                "user_id": conn.user_id,
                "name": conn.name,
                "guest": user is None,
                "can_chat": user is not None and hub.restriction(room, conn.user_id) is None,
            },
        )
        first = [frame("welcome", welcome), *(e.frame(locale, currency) for e in replay)]
        started = True
        conn.start(Batch(first))
        await _read_loop(websocket, hub, conn, user, stream_id)
    except WebSocketDisconnect:
        pass
    finally:
        await hub.leave(conn)
        await conn.stop()
        if not started and websocket.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close()


async def _read_loop(
    websocket: WebSocket, hub: Hub, conn: Connection, user: User | None, stream_id: int
) -> None:
    bucket = ChatBucket()
    reaction_window, reactions_in_window = time.monotonic(), 0
    room_name = streams.room_of(stream_id)
    while not conn.closed:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            conn.push(error_frame(conn.locale, "binary_not_supported"))
            continue
        if len(text) > MAX_CLIENT_FRAME:
            conn.push(error_frame(conn.locale, "frame_too_large"))
            continue
        try:
            parsed = json.loads(text)
        except ValueError:
            conn.push(error_frame(conn.locale, "invalid_json"))
            continue
        if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
            conn.push(error_frame(conn.locale, "unknown_type"))
            continue
        data = parsed.get("data")
        data = data if isinstance(data, dict) else {}
        kind = parsed["type"]
        if kind == "ping":
            conn.push(frame("pong", {}))
        elif kind == "chat":
            error = _check_chat(hub, conn, user, data, bucket)
            if error is not None:
                conn.push(error_frame(conn.locale, error[0], **error[1]))
                continue
            assert user is not None and conn.room is not None
            payload = encode_event(
                "chat",
                {"user": {"id": user.id, "name": user.display_name}, "text": data["text"].strip()},
            )
            await hub.broker.publish(room_name, payload)
            hub.count_chat(conn.room)
        elif kind == "react":
            if data.get("kind") not in REACTION_KINDS:
                conn.push(error_frame(conn.locale, "invalid_reaction"))
                continue
            now = time.monotonic()
            if now - reaction_window >= 1.0:
                reaction_window, reactions_in_window = now, 0
            reactions_in_window += 1
            if reactions_in_window <= REACTIONS_PER_S and conn.room is not None:
                hub.react(conn.room, str(data["kind"]))
        else:
            conn.push(error_frame(conn.locale, "unknown_type"))


def _check_chat(
    hub: Hub, conn: Connection, user: User | None, data: dict[str, Any], bucket: ChatBucket
) -> tuple[str, dict[str, Any]] | None:
    if user is None:
        return "guest_cannot_chat", {}
    room = conn.room
    if room is None:
        return "stream_not_live", {}
    if room.settings.get("status") != StreamStatus.LIVE:
        return "stream_not_live", {}
    if hub.restriction(room, user.id) is not None:
        return "muted", {}
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        return "chat_empty", {}
    if len(text.strip()) > CHAT_MAX:
        return "chat_too_long", {"max": CHAT_MAX}
    if any(ch < " " and ch not in "\n\t" for ch in text):
        return "chat_empty", {}
    folded = text.casefold()
    if any(word in folded for word in room.settings.get("blocked_words", ())):
        return "chat_blocked", {}
    if not bucket.take():
        return "chat_rate_limited", {}
    return None
