"""``/ws/streams/{id}``: a stream room's WebSocket, and what a viewer may say in it (chat,
reactions). The protocol is written up in docs/protocol.md; the handshake steps are the
transport's (livecommerce/rooms/handshake.py), what events do to the room is
livecommerce/streams/room_events.py."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import WebSocket
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocketDisconnect, WebSocketState

from livecommerce.accounts.models import User
from livecommerce.config import Settings
from livecommerce.db import session_scope
from livecommerce.errors import DatabaseUnreachable
from livecommerce.events import ServerEvent
from livecommerce.i18n.messages import N_
from livecommerce.rooms import handshake
from livecommerce.rooms.broker import BrokerUnavailable
from livecommerce.rooms.handshake import CLOSE_BAD_REQUEST
from livecommerce.rooms.hub import (
    CLOSE_BANNED,
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHORIZED,
    Connection,
    Hub,
    NoSuchRoom,
)
from livecommerce.rooms.limits import Policy, RoomLimits, Ticket, chat_key
from livecommerce.rooms.render import Event, encode_event, frame
from livecommerce.rooms.schemas import (
    BadFrame,
    Chat,
    Ping,
    React,
    parse_client_frame,
    request_data,
)
from livecommerce.rooms.wire import FRAMES_EXTENSION, Batch
from livecommerce.streams import service as streams
from livecommerce.streams import wordfilter
from livecommerce.streams.room_events import chat_open, restriction

log = logging.getLogger(__name__)

MAX_CLIENT_FRAME = 4096  # characters; a chat message is at most CHAT_MAX of them
CHAT_MAX = 500
REACTIONS_PER_S = 20  # per connection; taps beyond are dropped silently
REQUEST_BURST = 5  # requests answered by another part of the app (an estimate)...
REQUEST_REFILL_S = 1.0  # ...then one per second
REACTION_KINDS = frozenset({"heart", "fire", "clap", "laugh", "wow", "gift"})

# The room's own errors, besides the handshake's and the transport's.
ERRORS = {
    **handshake.ERRORS,
    "stream_not_found": N_("This stream does not exist."),
    "banned": N_("You cannot join this stream."),
    "guest_cannot_chat": N_("Sign in to chat."),
    "muted": N_("You are muted in this stream."),
    "chat_empty": N_("The message is empty."),
    "chat_too_long": N_("The message is longer than %(max)s characters."),
    "chat_rate_limited": N_("You are sending messages too fast. Wait a moment."),
    "chat_blocked": N_("The message contains a word that is not allowed in this stream."),
    "stream_not_live": N_("The stream is not live."),
    "invalid_reaction": N_("Unknown reaction."),
    "chat_unavailable": N_("Your message could not be sent. Try again in a moment."),
}

# Room messages that other parts of the app answer (``app.state.room_requests``, by type):
# the handler must not wait; it answers later with ``Connection.push``.
RoomRequest = Callable[[Connection, dict[str, Any]], None]


def error_frame(locale: str, code: str, **params: Any) -> str:
    return handshake.error_frame(locale, code, messages=ERRORS, **params)


@dataclass
class ChatBucket:
    """Token bucket per connection: ``burst`` requests at once, then one per ``refill_s``."""

    burst: int = REQUEST_BURST
    refill_s: float = REQUEST_REFILL_S
    tokens: float = field(init=False)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) / self.refill_s)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


async def _refuse(websocket: WebSocket, locale: str, code: str, close: int) -> None:
    await handshake.refuse(websocket, locale, code, close, messages=ERRORS)


@dataclass(slots=True)
class Admission:
    conn: Connection
    last_seq: int | None
    epoch: str | None  # the client's, with last_seq
    restriction: tuple[str, datetime | None] | None


async def stream_room(websocket: WebSocket) -> None:
    """The room socket. Registered as a plain Starlette route (see ``routes``): it lives as
    long as the viewer watches, and the lighter the stack of frames it sits on, the less each
    idle viewer costs."""
    hub: Hub = websocket.app.state.hub
    stream_id: int = websocket.path_params["stream_id"]
    await websocket.accept()
    try:
        admission = await _admit(websocket, stream_id)
    except DatabaseUnreachable:
        settings: Settings = websocket.app.state.settings
        await handshake.try_again(websocket, settings.default_locale)
        return
    if admission is None:
        return
    conn = admission.conn
    limits: RoomLimits = websocket.app.state.room_limits
    ticket = await _claim_socket(websocket, conn, stream_id)
    if ticket is None:
        return
    try:
        joined_at = await hub.join(conn, room_name=streams.room_of(stream_id), stream_id=stream_id)
    except NoSuchRoom:
        await limits.close_socket(ticket)
        await _refuse(websocket, conn.locale, "stream_not_found", CLOSE_NOT_FOUND)
        return
    except (BrokerUnavailable, DatabaseUnreachable) as exc:
        await limits.close_socket(ticket)
        log.warning("room of stream %s could not be opened: %s", stream_id, exc)
        await handshake.try_again(websocket, conn.locale)
        return
    except BaseException:
        await limits.close_socket(ticket)
        raise
    room = conn.room
    assert room is not None
    epoch = room.epoch  # what joined_at counts in (read before anything below waits)
    if admission.restriction is not None and conn.user_id is not None:
        action, until = admission.restriction
        room.moderation[conn.user_id] = (action, until.timestamp() if until else None)
    started = False
    try:
        first = await _first_frames(hub, conn, admission, joined_at, epoch)
        started = True
        conn.start(first)
        del admission, first  # this frame lives as long as the viewer: keep it small
        await _read_loop(websocket, hub, conn, stream_id)
    except WebSocketDisconnect:
        pass
    finally:
        await hub.leave(conn)
        await conn.stop()
        await limits.close_socket(ticket)
        if not started and websocket.application_state != WebSocketState.DISCONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close()


async def _claim_socket(websocket: WebSocket, conn: Connection, stream_id: int) -> Ticket | None:
    """Count the socket against its user's (or guest address's) caps; None once refused."""
    limits: RoomLimits = websocket.app.state.room_limits
    policy: Policy = websocket.app.state.room_policy
    client = websocket.client
    caps = policy.caps(
        stream_id=stream_id, user_id=conn.user_id, address=client.host if client else None
    )
    return await handshake.claim_socket(websocket, limits, caps, conn.locale)


async def _admit(websocket: WebSocket, stream_id: int) -> Admission | None:
    """Who, in which language and currency; None once the socket has been refused.

    A guest costs no database read: the token is signed, and whether the stream exists is
    the room's to say (the hub reads it once when the room opens in this process). A
    signed-in viewer's row and standing in the stream are one query.
    """
    settings: Settings = websocket.app.state.settings
    params = websocket.query_params
    fallback_locale = settings.default_locale
    user: User | None = None
    claims = handshake.read_token(websocket, settings)
    if claims is None:
        await _refuse(websocket, fallback_locale, "invalid_token", CLOSE_UNAUTHORIZED)
        return None
    if not 0 < stream_id < 2**31:
        await _refuse(websocket, fallback_locale, "stream_not_found", CLOSE_NOT_FOUND)
        return None
    restriction = None
    if not claims.is_guest:
        assert claims.user_id is not None
        async with session_scope(websocket.app.state.sessions, read_only=True) as session:
            user, record = await streams.viewer_in_room(
                session=session, stream_id=stream_id, user_id=claims.user_id
            )
        if not handshake.stands_for(claims, user):
            await _refuse(websocket, fallback_locale, "invalid_token", CLOSE_UNAUTHORIZED)
            return None
        if record is not None:
            restriction = (record.action, record.until)
    locale = handshake.choose_locale(websocket, user, settings)
    if locale is None:
        await _refuse(websocket, fallback_locale, "unsupported_locale", CLOSE_BAD_REQUEST)
        return None
    currency = handshake.choose_currency(websocket, user, locale)
    if currency is None:
        await _refuse(websocket, locale, "unsupported_currency", CLOSE_BAD_REQUEST)
        return None
    # An unusable last_seq (not a plain number) is answered with resumed=false.
    last_seq = handshake.parse_last_seq(params.get("last_seq"))
    if restriction is not None and restriction[0] == "ban":
        await _refuse(websocket, locale, "banned", CLOSE_BANNED)
        return None
    conn = Connection(
        socket=websocket,
        locale=locale,
        currency=currency,
        user_id=user.id if user else None,
        name=user.display_name if user else "",
        writer=websocket.scope.get("extensions", {}).get(FRAMES_EXTENSION),
        viewer_key=f"user:{user.id}" if user else claims.subject,
    )
    conn.skip_through = max(last_seq or 0, 0)
    return Admission(conn, last_seq, handshake.parse_epoch(params.get("epoch")), restriction)


async def _first_frames(
    hub: Hub, conn: Connection, admission: Admission, joined_at: int, epoch: str
) -> Batch:
    """The welcome snapshot, then the replay of what the viewer missed (up to ``joined_at``,
    which counts in ``epoch``; later events reach the connection live). A resume needs the
    client's epoch to be the room's: a ``seq`` means nothing in another epoch (but from
    ``last_seq=0``, the start of the room, any epoch does)."""
    room = conn.room
    assert room is not None
    last_seq = admission.last_seq
    if last_seq is None:
        return Batch([hub.welcome(conn, last_seq=joined_at, resumed=None, epoch=epoch)])
    # The room's state now is the state at joined_at: nothing below waits before it is read.
    state = hub.welcome_state(conn)
    history = None
    # From 0 any epoch will do: a client that holds no event cannot have a gap.
    if last_seq == 0 or (last_seq > 0 and admission.epoch == epoch):
        try:
            history = await hub.broker.history(room.name, last_seq, epoch=epoch)
        except BrokerUnavailable as exc:
            log.warning("room %s: history unavailable for a resume: %s", room.name, exc)
    if history is not None and last_seq + len(history) < joined_at:
        history = None  # the epoch changed under the read: the replay would stop short
    replay = [
        Event.decode(envelope.payload, envelope.seq)
        for envelope in history or []
        if envelope.seq is not None and envelope.seq <= joined_at
    ]
    welcome = hub.welcome(
        conn, last_seq=joined_at, resumed=history is not None, shared=state, epoch=epoch
    )
    locale, currency = conn.locale, conn.currency
    return Batch([welcome, *(e.frame(locale, currency) for e in replay)])


async def _read_loop(websocket: WebSocket, hub: Hub, conn: Connection, stream_id: int) -> None:
    limits: RoomLimits = websocket.app.state.room_limits
    policy: Policy = websocket.app.state.room_policy
    requests = ChatBucket(REQUEST_BURST, REQUEST_REFILL_S)
    handlers: dict[str, RoomRequest] = getattr(websocket.app.state, "room_requests", {})
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
            parsed = parse_client_frame(text)
            if isinstance(parsed, Chat):
                said = parsed.data.text
                check_chat(conn, said)
                assert conn.user_id is not None and conn.room is not None
                # Per user, not per socket: every socket of the user, on any process, draws
                # from the one bucket.
                wait_s = await limits.take_chat(chat_key(conn.user_id), policy.chat)
                if wait_s > 0:
                    raise BadFrame("chat_rate_limited", retry_after_ms=math.ceil(wait_s * 1000))
                payload = encode_event(
                    ServerEvent.CHAT,
                    {"user": {"id": conn.user_id, "name": conn.name}, "text": said.strip()},
                )
                try:
                    await hub.broker.publish(room_name, payload)
                except BrokerUnavailable as exc:
                    log.warning("room %s: chat not published: %s", room_name, exc)
                    raise BadFrame("chat_unavailable") from exc
                hub.count_chat(conn.room)
            elif isinstance(parsed, React):
                kind = parsed.data.kind
                if kind not in REACTION_KINDS:
                    raise BadFrame("invalid_reaction")
                now = time.monotonic()
                if now - reaction_window >= 1.0:
                    reaction_window, reactions_in_window = now, 0
                reactions_in_window += 1
                if reactions_in_window <= REACTIONS_PER_S and conn.room is not None:
                    hub.react(conn.room, kind)
            elif isinstance(parsed, Ping):
                conn.push(frame(ServerEvent.PONG, {}))
            elif parsed.type in handlers:
                data = request_data(parsed)
                if not requests.take():
                    raise BadFrame("rate_limited")
                handlers[parsed.type](conn, data)
            else:
                raise BadFrame("unknown_type")
        except BadFrame as bad:
            conn.push(error_frame(conn.locale, bad.code, **bad.params))


def check_chat(conn: Connection, text: str) -> None:
    """Raises :class:`BadFrame` unless ``conn`` may send ``text`` to its room now."""
    if conn.user_id is None:
        raise BadFrame("guest_cannot_chat")
    room = conn.room
    if room is None:
        raise BadFrame("stream_not_live")
    if not chat_open(room):
        raise BadFrame("stream_not_live")
    if restriction(room, conn.user_id) is not None:
        raise BadFrame("muted")
    if not text.strip():
        raise BadFrame("chat_empty")
    if len(text.strip()) > CHAT_MAX:
        raise BadFrame("chat_too_long", max=CHAT_MAX)
    if any(ch < " " and ch not in "\n\t" for ch in text):
        raise BadFrame("chat_empty")
    if wordfilter.blocked(text, room.settings.get("blocked_skeletons", ())):
        raise BadFrame("chat_blocked")


# A plain Starlette route, not FastAPI's: no dependency solving and no exit stacks kept alive
# for the whole life of every viewer's socket.
routes = [WebSocketRoute("/ws/streams/{stream_id:int}", stream_room)]
