"""The fan-out hub: one per API process, holding this process's connections by room.

A room exists in a process only while it has viewers there: the first viewer subscribes
the process to the room's broker channel, the last one leaving unsubscribes it, so a room
with no viewers costs nothing.

Every room event is rendered once per (locale, currency) group present in the room, and the
one resulting frame goes to every connection of that group; an event without localized
parts is serialised once for the whole room. Events that arrive together (a burst) are
delivered together: one write per connection carries all of them.

Where the server offers a direct frame writer (``livecommerce serve`` does), the prebuilt
frame bytes are written straight to each socket and the socket's own send buffer is the
bounded queue; otherwise each connection has a bounded queue drained by a writer task over
``websocket.send``. Either way a client that cannot keep up is closed with ``CLOSE_SLOW``
(it may reconnect with ``last_seq`` and resume), so one slow phone never holds back the
room or grows the server's memory.

A room also keeps what a joining viewer's ``welcome`` shows (for a stream: the stream, the
pinned product, the flash sale): loaded once when the room opens in the process (after
subscribing and reading the head, so nothing is missed) and from then on kept current by
the room's own events, which every process applies as it receives them (and read again
once a minute, in case an event was lost before it reached the broker). The welcome is
rendered once per group and spliced with the viewer's own fields, so a join costs no
database read and no full serialisation.

What the events mean is not this module's: the hub is handed :class:`RoomRules` when it is
made (for stream rooms, livecommerce/streams/room_events.py), which apply each event to the
room and may hold events of their own to publish on the hub's tick (coalesced updates).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from livecommerce.events import RELOAD, ServerEvent
from livecommerce.rooms.broker import Broker, BrokerUnavailable, Envelope, Subscription
from livecommerce.rooms.presence import PRESENCE_TTL_S, Presence
from livecommerce.rooms.render import Event, Group, encode_event, frame, render
from livecommerce.rooms.wire import Batch, FrameWriter
from livecommerce.sqltypes import utcnow

log = logging.getLogger(__name__)

# WebSocket close codes (4000-4999 are the application's; see docs/protocol.md).
CLOSE_SLOW = 4008  # the client fell too far behind; reconnect with last_seq
CLOSE_UNAUTHORIZED = 4401
CLOSE_BANNED = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_GOING_AWAY = 1001  # the server is shutting down
CLOSE_TRY_AGAIN = 1013  # the room could not be opened (its broker is unreachable); retry later

QUEUE_MAX_FRAMES = 512  # per connection; about 100 KiB of typical frames
SEND_BUFFER_MAX = 256 * 1024  # bytes the kernel has not taken yet, on the direct path
BATCH_MAX_EVENTS = 256  # events of a burst delivered in one write
REACTION_FLUSH_S = 0.25  # reactions reach the room at most four times a second
VIEWER_COUNT_S = 1.0  # viewer counts at most once a second, and only when they changed
TICK_S = REACTION_FLUSH_S  # the ticker's period: how often the rules may publish
PRESENCE_REFRESH_S = PRESENCE_TTL_S / 3
STATS_FLUSH_S = 5.0
# How often a process compares each open room with the broker's position: a room whose history
# was reset, or whose last events never reached this process, is put right within this long
# even when no later event shows it.
POSITION_CHECK_S = 5.0
OUTAGE_LOG_S = 30.0  # while the broker is unreachable, the ticker says so once per this long
# A room's welcome state is read again this often, in case an event never reached the broker
# (its publish failed after the commit) or a pinned product was edited.
STATE_REFRESH_S = 60.0
STATE_LOG_MAX = 256  # state events kept to re-apply over a refresh read while they arrived
SLOW_REASON = "slow consumer: reconnect with last_seq"
# Reconnects after a drain are spread over a window long enough for this many joins a
# second, between these bounds; each socket's close reason carries its own random delay.
RECONNECT_JOINS_PER_S = 1000
RECONNECT_SPREAD_MIN_S = 1.0
RECONNECT_SPREAD_MAX_S = 30.0
# Joins remembered between two stats flushes; a flood beyond is not counted as unique viewers
# rather than held in memory.
MAX_NEW_VIEWERS = 50_000


_GUEST_YOU = '{"user_id":null,"name":"","guest":true,"can_chat":false}'
_JSON_BOOL = {True: "true", False: "false", None: "null"}


def reconnect_reason(text: str, sockets: int) -> str:
    """A close reason telling the client when to come back: ``... (retry_after_ms=N)``.

    ``N`` is drawn per socket from a window that grows with the number of sockets being
    closed, so that a drained process's viewers do not all return in the same instant.
    """
    window = min(
        RECONNECT_SPREAD_MAX_S, max(RECONNECT_SPREAD_MIN_S, sockets / RECONNECT_JOINS_PER_S)
    )
    return f"{text} (retry_after_ms={int(random.uniform(0, window) * 1000)})"


class NoSuchRoom(Exception):
    """The room's state hook found nothing to open (for a stream: no such stream)."""


class SocketLike(Protocol):
    """What the hub needs of a WebSocket (Starlette's, or a test double)."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


@dataclass(eq=False, slots=True)
class Connection:
    """One viewer's socket in a room.

    Frames sent before :meth:`start` (events that arrive while the welcome and the replay
    are being prepared) are held and follow them, so a viewer sees everything in order.
    """

    socket: SocketLike
    locale: str
    currency: str
    user_id: int | None
    name: str
    writer: FrameWriter | None = None  # direct path, when the server offers it
    # Who watches, for unique-viewer counts: "user:<id>" or the guest token's subject.
    viewer_key: str | None = None
    queue_max: int = QUEUE_MAX_FRAMES
    queue: deque[str] | None = None  # the websocket.send path only
    held: list[Batch] | None = field(default_factory=list)  # None once started
    skip_through: int = 0  # room events up to this seq were already sent (welcome/replay)
    closed: bool = False
    close_code: int | None = None
    close_reason: str | None = None
    wakeup: asyncio.Event | None = None
    task: asyncio.Task[None] | None = None
    room: Room | None = None

    @property
    def group(self) -> Group:
        return (self.locale, self.currency)

    def push(self, data: str) -> None:
        self.send(Batch([data]))

    def send(self, batch: Batch) -> None:
        if self.closed or not batch:
            return
        if self.held is not None:
            if sum(len(b) for b in self.held) + len(batch) > self.queue_max:
                self.shut(CLOSE_SLOW, SLOW_REASON)
                return
            self.held.append(batch)
        elif self.writer is not None:
            if not self.writer.write(batch.wire):
                self.closed = True  # the socket is going away on its own
            elif self.writer.buffered() > SEND_BUFFER_MAX:
                self.shut(CLOSE_SLOW, SLOW_REASON)
        else:
            assert self.queue is not None
            if len(self.queue) + len(batch) > self.queue_max:
                self.shut(CLOSE_SLOW, SLOW_REASON)
                return
            self.queue.extend(batch.texts)
            assert self.wakeup is not None
            self.wakeup.set()

    def start(self, first: Batch) -> None:
        """Send ``first`` (welcome, replay), then what was held, then live frames."""
        if self.closed:
            return
        held, self.held = self.held or [], None
        if self.writer is None:
            self.queue = deque()
            self.wakeup = asyncio.Event()
            self.task = asyncio.create_task(self._run_writer())
        for batch in (first, *held):
            self.send(batch)

    def shut(self, code: int, reason: str) -> None:
        """Close after what is already written; frames not yet written are dropped."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self.close_reason = reason
        if self.queue is not None:
            self.queue.clear()
        self.held = None
        if self.wakeup is not None:
            self.wakeup.set()
        elif self.task is None:
            with contextlib.suppress(RuntimeError):  # no running loop: nothing to close
                self.task = asyncio.create_task(self._close_socket())

    async def stop(self) -> None:
        """The viewer left: end the writer (if any) without closing twice."""
        if not self.closed:
            self.closed = True
            if self.wakeup is not None:
                self.wakeup.set()
        if self.task is not None:
            with contextlib.suppress(Exception):
                await self.task

    async def _close_socket(self) -> None:
        if self.close_code is not None:
            with contextlib.suppress(Exception):
                await self.socket.close(self.close_code, self.close_reason)

    async def _run_writer(self) -> None:
        """The websocket.send path: drain the queue until the connection is shut."""
        assert self.wakeup is not None and self.queue is not None
        try:
            while not self.closed:
                await self.wakeup.wait()
                self.wakeup.clear()
                while self.queue and not self.closed:
                    await self.socket.send_text(self.queue.popleft())
        finally:
            await self._close_socket()


@dataclass(eq=False)
class Room:
    name: str
    stream_id: int
    groups: dict[Group, set[Connection]] = field(default_factory=dict)
    size: int = 0
    last_seq: int = 0
    epoch: str = ""  # of the history ``last_seq`` counts in (see rooms/broker.py)
    # Held while the room's events are taken in order (the consumer, the position check).
    sequencing: asyncio.Lock = field(default_factory=asyncio.Lock)
    subscription: Subscription | None = None
    consumer: asyncio.Task[None] | None = None
    reactions: Counter[str] = field(default_factory=Counter)
    viewer_count: int = -1  # last count sent to this process's viewers
    reported_count: int = -1  # last local count reported to presence
    reported_at: float = 0.0
    peak_viewers: int = 0
    new_chat_messages: int = 0
    new_viewers: dict[str, str] = field(default_factory=dict)  # viewer key -> locale
    settings: dict[str, Any] = field(default_factory=dict)
    # user id -> (action, until epoch or None): who may not speak, kept by the room's rules
    moderation: dict[int, tuple[str, float | None]] = field(default_factory=dict)
    # What the welcome shows, language-neutral (for a stream: "stream", "pinned_product",
    # "flash_sale"); kept current by the room's rules.
    state: dict[str, Any] = field(default_factory=dict)
    # Per group: the welcome's shared part as JSON, up to where the viewer's own fields go,
    # and until when it holds (a flash sale's end); dropped whenever the state changes.
    welcomes: dict[Group, tuple[str, float]] = field(default_factory=dict)
    state_read_at: float = 0.0  # monotonic
    # The latest events that changed the state, to re-apply over a read made while they came.
    state_events: deque[Event] = field(default_factory=lambda: deque(maxlen=STATE_LOG_MAX))

    def connections(self) -> list[Connection]:
        return [c for conns in self.groups.values() for c in conns]


# Hooks the hub calls into the rest of the application (the streams domain and the
# database), kept as plain callables so that this module imports no domain.
LoadSettings = Callable[[int], Awaitable[dict[str, Any]]]
# The welcome's state of a stream's room (see ``Room.state``), or None: no such stream.
LoadState = Callable[[int], Awaitable[dict[str, Any] | None]]
# stream id, peak viewers, new chat messages, viewers who joined since (key -> locale)
FlushStats = Callable[[int, int, int, dict[str, str]], Awaitable[None]]


async def _no_settings(_stream_id: int) -> dict[str, Any]:
    return {}


async def _no_state(stream_id: int) -> dict[str, Any] | None:
    return {"stream": {"id": stream_id}, "pinned_product": None, "flash_sale": None}


async def _no_stats(_stream_id: int, _peak: int, _chats: int, _viewers: dict[str, str]) -> None:
    return None


# Publishes one event payload to a room (``Broker.publish``), for the rules' own events.
Publish = Callable[[str, bytes], Awaitable[Any]]


class RoomRules(Protocol):
    """What a room's events mean, supplied by the domain that owns the rooms.

    :meth:`apply` runs once per room event in every process (not per viewer): it is on the
    fan-out path and must not wait.
    """

    def apply(self, room: Room, event: Event) -> bool:
        """What ``event`` changes in ``room`` (settings, moderation, the welcome state),
        before it is delivered; True when it changed ``room.state``."""
        ...

    def apply_state(self, state: dict[str, Any], event: Event) -> bool:
        """Apply ``event`` to a welcome state read meanwhile; False when it changes none."""
        ...

    def welcome_view(self, state: dict[str, Any], now: float) -> tuple[dict[str, Any], float]:
        """The welcome's shared fields (language-neutral, rendered per group) and until when
        (epoch seconds) they hold."""
        ...

    def can_chat(self, room: Room, user_id: int) -> bool: ...

    def settings_update(self, data: Any) -> dict[str, Any] | None:
        """The room's new settings from a reload signal's ``data``: a patch, or None to load
        them again (with ``load_settings``)."""
        ...

    async def tick(self, publish: Publish, now: float) -> None:
        """Publish what the rules hold back (coalesced updates); every ``TICK_S``."""
        ...

    async def flush(self, publish: Publish) -> None:
        """Publish everything held back now (the hub is closing, or a test wants it)."""
        ...


class NoRules:
    """Rules for rooms whose events change nothing: the welcome state is shown as it is."""

    def apply(self, room: Room, event: Event) -> bool:
        return False

    def apply_state(self, state: dict[str, Any], event: Event) -> bool:
        return False

    def welcome_view(self, state: dict[str, Any], now: float) -> tuple[dict[str, Any], float]:
        return state, math.inf

    def can_chat(self, room: Room, user_id: int) -> bool:
        return True

    def settings_update(self, data: Any) -> dict[str, Any] | None:
        return None

    async def tick(self, publish: Publish, now: float) -> None:
        return None

    async def flush(self, publish: Publish) -> None:
        return None


class Hub:
    def __init__(
        self,
        *,
        broker: Broker,
        presence: Presence,
        load_settings: LoadSettings = _no_settings,
        load_state: LoadState = _no_state,
        flush_stats: FlushStats = _no_stats,
        rules: RoomRules | None = None,
        queue_max: int = QUEUE_MAX_FRAMES,
    ) -> None:
        self.broker = broker
        self.presence = presence
        self._load_settings = load_settings
        self._load_state = load_state
        self._flush_stats = flush_stats
        self.rules: RoomRules = rules if rules is not None else NoRules()
        self.queue_max = queue_max
        self.rooms: dict[str, Room] = {}
        self._opening: dict[str, asyncio.Future[Room]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._timers: set[asyncio.Task[None]] = set()
        self._closing = False
        self._outage_logged_at = -OUTAGE_LOG_S

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.start()
        self._ticker = asyncio.create_task(self._tick_forever(), name="rooms-ticker")

    async def close(self) -> None:
        self._closing = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for task in list(self._timers):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.flush_pending()
        sockets = sum(room.size for room in self.rooms.values())
        for room in list(self.rooms.values()):
            for conn in room.connections():
                conn.shut(
                    CLOSE_GOING_AWAY,
                    reconnect_reason("server restarting: reconnect with last_seq", sockets),
                )
            await self._close_room(room)
        await self.presence.close()
        await self.broker.close()

    def call_later(self, delay_s: float, job: Callable[[], Awaitable[Any]]) -> None:
        """Run ``job`` after ``delay_s`` in this process (cancelled at shutdown)."""

        async def _run() -> None:
            await asyncio.sleep(max(0.0, delay_s))
            try:
                await job()
            except Exception:
                log.exception("room timer failed")

        task = asyncio.create_task(_run())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def update_settings(self, room_name: str, patch: dict[str, Any]) -> None:
        """Settings of a room, in force for its next message in this process (nothing to do
        where the room is not open)."""
        room = self.rooms.get(room_name)
        if room is not None:
            room.settings = {**room.settings, **patch}

    # --- joining and leaving -----------------------------------------------------------

    async def _open_room(self, name: str, stream_id: int) -> Room:
        room = self.rooms.get(name)
        if room is not None:
            return room
        pending = self._opening.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Room] = asyncio.get_running_loop().create_future()
        self._opening[name] = future
        try:
            room = Room(name=name, stream_id=stream_id)
            room.subscription = await self.broker.subscribe(name)
            # Subscribed first, then read the head: nothing published in between is missed.
            try:
                position = await self.broker.position(name)
            except BaseException:
                with contextlib.suppress(Exception):
                    await room.subscription.close()
                raise
            room.last_seq, room.epoch = position.seq, position.epoch
            # Read after the head: events from here on are applied to it by the consumer
            # (they set values, so applying one the read already saw changes nothing).
            state = await self._load_state(stream_id)
            if state is None:
                with contextlib.suppress(Exception):
                    await room.subscription.close()
                raise NoSuchRoom(name)
            room.state, room.state_read_at = state, time.monotonic()
            room.settings = await self._load_settings(stream_id)
            room.consumer = asyncio.create_task(self._consume(room), name=f"room-{name}")
            self.rooms[name] = room
            future.set_result(room)
            return room
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: joiners waiting on it re-raise it themselves
            raise
        finally:
            del self._opening[name]

    async def join(self, conn: Connection, *, room_name: str, stream_id: int) -> int:
        """Add ``conn`` to the room; returns the room's ``seq`` at the moment it joined.

        Room events after that ``seq`` go to the connection's queue; events up to it are the
        caller's to replay (from history) before starting the writer. The ``seq`` counts in
        ``conn.room.epoch`` as it is when this returns. Raises :class:`NoSuchRoom` when the
        room's state hook found nothing, and
        :class:`~livecommerce.rooms.broker.BrokerUnavailable` when the room is not open in
        this process and the broker cannot be reached to open it.
        """
        room = await self._open_room(room_name, stream_id)
        conn.room = room
        conn.queue_max = self.queue_max
        room.groups.setdefault(conn.group, set()).add(conn)
        room.size += 1
        if conn.viewer_key is not None and len(room.new_viewers) < MAX_NEW_VIEWERS:
            room.new_viewers.setdefault(conn.viewer_key, conn.locale)
        conn.skip_through = max(conn.skip_through, room.last_seq)
        return room.last_seq

    async def leave(self, conn: Connection) -> None:
        room = conn.room
        if room is None:
            return
        conn.room = None
        members = room.groups.get(conn.group)
        if members is not None and conn in members:
            members.discard(conn)
            room.size -= 1
            if not members:
                del room.groups[conn.group]
        if room.size == 0 and self.rooms.get(room.name) is room:
            await self._close_room(room)

    async def _close_room(self, room: Room) -> None:
        self.rooms.pop(room.name, None)
        if room.consumer is not None:
            room.consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await room.consumer
        if room.subscription is not None:
            with contextlib.suppress(Exception):
                await room.subscription.close()
        with contextlib.suppress(Exception):
            await self.presence.report(room.name, 0)
            await self._flush_room_stats(room)

    # --- events from the broker ----------------------------------------------------------

    async def _consume(self, room: Room) -> None:
        assert room.subscription is not None
        subscription = room.subscription
        try:
            async for envelope in subscription:
                # Whatever else has arrived meanwhile goes out with it, in one write.
                events: list[Event] = []
                async with room.sequencing:
                    for item in (envelope, *subscription.take_ready(BATCH_MAX_EVENTS - 1)):
                        try:
                            await self._receive(room, item, events)
                        except Exception:  # one bad message must not cost the rest of the burst
                            log.exception(
                                "room %s: event %s could not be read", room.name, item.seq
                            )
                    try:
                        self.fan_out(room, events)
                    except Exception:
                        log.exception(
                            "room %s: %d events could not be delivered", room.name, len(events)
                        )
                # Let the rest of the process run between bursts.
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("room %s: subscription failed", room.name)
            conns = room.connections()
            for conn in conns:
                conn.shut(
                    CLOSE_GOING_AWAY,
                    reconnect_reason("room unavailable: reconnect with last_seq", len(conns)),
                )

    async def _receive(self, room: Room, envelope: Envelope, events: list[Event]) -> None:
        if envelope.seq is None:
            event = Event.decode(envelope.payload, None)
            if event.type == RELOAD:
                patch = self.rules.settings_update(event.data)
                if patch is None:
                    room.settings = await self._load_settings(room.stream_id)
                else:
                    await self.update_settings(room.name, patch)
            else:
                events.append(event)
            return
        if envelope.epoch is not None and envelope.epoch != room.epoch:
            await self._restart(room, envelope.epoch, events)
        if envelope.seq <= room.last_seq:
            return  # already delivered (filled from history earlier)
        if envelope.seq > room.last_seq + 1:
            # A message was lost between broker and hub: take the missing ones from history.
            self._catch_up(room, await self._missed(room), events, before=envelope.seq)
        events.append(self._apply(room, Event.decode(envelope.payload, envelope.seq)))

    async def _missed(self, room: Room) -> list[Envelope] | None:
        missing = await self.broker.history(room.name, room.last_seq, epoch=room.epoch)
        if missing is None:
            log.warning("room %s: events after %d lost", room.name, room.last_seq)
        return missing

    def _catch_up(
        self, room: Room, missing: list[Envelope] | None, events: list[Event], *, before: float
    ) -> None:
        for earlier in missing or ():
            if earlier.seq is not None and room.last_seq < earlier.seq < before:
                events.append(self._apply(room, Event.decode(earlier.payload, earlier.seq)))

    async def _restart(self, room: Room, epoch: str, events: list[Event]) -> None:
        """The room's history was reset (a new ``epoch``): deliver what came before, read the
        room's state again and give every viewer a new ``welcome`` (``resumed: false``, at
        seq 0 of the new epoch); the new epoch's events follow it."""
        log.warning(
            "room %s: history reset (epoch %s -> %s); %d viewers here resynchronise",
            room.name,
            room.epoch,
            epoch,
            room.size,
        )
        self.fan_out(room, events)
        events.clear()
        room.epoch, room.last_seq = epoch, 0
        room.state_events.clear()
        try:
            await self.refresh_state(room)
        except Exception:
            log.exception("room %s: state could not be read again after the reset", room.name)
        room.welcomes.clear()
        for conn in room.connections():
            conn.skip_through = 0
            conn.push(self.welcome(conn, last_seq=0, resumed=False))

    async def check_position(self, room: Room) -> None:
        """Compare the room with the broker's position: a reset epoch, or events that were
        published but never reached this process (with no later event to show the gap), are
        put right now rather than when the next event comes."""
        async with room.sequencing:
            position = await self.broker.position(room.name)
            if self.rooms.get(room.name) is not room:
                return
            events: list[Event] = []
            if position.epoch != room.epoch:
                await self._restart(room, position.epoch, events)
            if position.seq > room.last_seq:
                self._catch_up(room, await self._missed(room), events, before=math.inf)
            self.fan_out(room, events)

    def _apply(self, room: Room, event: Event) -> Event:
        """What a room event changes in the room itself, before it is delivered."""
        assert event.seq is not None
        room.last_seq = event.seq
        if self.rules.apply(room, event):
            room.state_events.append(event)
            room.welcomes.clear()
        return event

    async def refresh_state(self, room: Room) -> None:
        """Read the room's welcome state again, keeping what arrived while it was read."""
        since = room.last_seq
        state = await self._load_state(room.stream_id)
        if state is None or self.rooms.get(room.name) is not room:
            return
        # Events from ``since`` on may have committed after the read: apply them over it.
        for event in room.state_events:
            if event.seq is not None and event.seq > since:
                self.rules.apply_state(state, event)
        room.state, room.state_read_at = state, time.monotonic()
        room.welcomes.clear()

    # --- the welcome -------------------------------------------------------------------

    def welcome_state(self, conn: Connection) -> str:
        """The shared part of ``conn``'s welcome as the room is now (see :meth:`welcome`)."""
        assert conn.room is not None
        return self._welcome_shared(conn.room, conn.group)

    def welcome(
        self,
        conn: Connection,
        *,
        last_seq: int,
        resumed: bool | None,
        shared: str | None = None,
        epoch: str | None = None,
    ) -> str:
        """The ``welcome`` frame for ``conn``: the group's shared part (``shared``, taken
        earlier with :meth:`welcome_state`, or as the room is now), rendered once per group,
        with the viewer's own fields spliced in (docs/protocol.md lists them). ``last_seq``
        counts in ``epoch`` (the room's now, unless given)."""
        room = conn.room
        assert room is not None
        if epoch is None:
            epoch = room.epoch
        if shared is None:
            shared = self._welcome_shared(room, conn.group)
        if conn.user_id is None:
            you = _GUEST_YOU
        else:
            can_chat = self.rules.can_chat(room, conn.user_id)
            you = (
                f'{{"user_id":{conn.user_id},"name":{json.dumps(conn.name, ensure_ascii=False)},'
                f'"guest":false,"can_chat":{"true" if can_chat else "false"}}}'
            )
        return (
            f'{{"type":"welcome","seq":null,"ts":"{utcnow().isoformat()}","data":{shared}'
            f',"viewer_count":{max(room.viewer_count, room.size)},"last_seq":{last_seq}'
            f',"epoch":{json.dumps(epoch)},"resumed":{_JSON_BOOL[resumed]},"you":{you}}}}}'
        )

    def _welcome_shared(self, room: Room, group: Group) -> str:
        now = time.time()
        cached = room.welcomes.get(group)
        if cached is not None and now < cached[1]:
            return cached[0]
        view, holds_until = self.rules.welcome_view(room.state, now)
        locale, currency = group
        data = {key: render(value, locale, currency) for key, value in view.items()}
        data["locale"], data["currency"] = locale, currency
        shared = json.dumps(data, ensure_ascii=False, separators=(",", ":"))[:-1]
        room.welcomes[group] = (shared, holds_until)
        return shared

    def fan_out(self, room: Room, events: list[Event]) -> None:
        """Render each event once per group (once for all if uniform); one batch per group.

        Every connection of a group is handed the same batch object, so its frames are
        serialised, and on the direct path framed, exactly once.
        """
        if not events or not room.groups:
            return
        shared = [event.frame("", "") if event.uniform else None for event in events]
        seqs = [event.seq for event in events]
        first_seq = next((seq for seq in seqs if seq is not None), None)
        # No copies of the groups: nothing below awaits, and sending never changes membership.
        for (locale, currency), conns in room.groups.items():
            texts = [
                text if text is not None else event.frame(locale, currency)
                for text, event in zip(shared, events, strict=True)
            ]
            batch = Batch(texts)
            for conn in conns:
                if first_seq is not None and conn.skip_through >= first_seq:
                    # Joined during this burst: part of it was in the welcome's replay.
                    fresh = [
                        text
                        for text, seq in zip(texts, seqs, strict=True)
                        if seq is None or seq > conn.skip_through
                    ]
                    if fresh:
                        conn.send(Batch(fresh))
                    continue
                conn.send(batch)

    def _send_all(self, room: Room, data: str) -> None:
        batch = Batch([data])
        for conns in room.groups.values():
            for conn in conns:
                conn.send(batch)

    # --- reactions, viewer counts, the rules' own events ---------------------------------

    def react(self, room: Room, kind: str) -> None:
        room.reactions[kind] += 1

    def count_chat(self, room: Room) -> None:
        room.new_chat_messages += 1

    async def flush_pending(self) -> None:
        """Publish what the rules hold back (coalesced updates) now rather than on the tick."""
        await self.rules.flush(self.broker.publish)

    async def _flush_reactions(self, room: Room) -> None:
        if not room.reactions:
            return
        counts, room.reactions = dict(room.reactions), Counter()
        await self.broker.publish_ephemeral(
            room.name, encode_event(ServerEvent.REACTIONS, {"counts": counts})
        )

    async def _update_viewer_count(self, room: Room, now: float) -> None:
        if room.size != room.reported_count or now - room.reported_at >= PRESENCE_REFRESH_S:
            try:
                await self.presence.report(room.name, room.size)
            except BrokerUnavailable:
                room.reported_count = -1  # report again on the next tick (Redis may be empty)
                raise
            room.reported_count, room.reported_at = room.size, now
        count = await self.presence.count(room.name)
        room.peak_viewers = max(room.peak_viewers, count)
        if count != room.viewer_count:
            room.viewer_count = count
            self._send_all(room, frame(ServerEvent.VIEWER_COUNT, {"count": count}))

    async def _flush_room_stats(self, room: Room) -> None:
        if room.peak_viewers or room.new_chat_messages or room.new_viewers:
            chats, room.new_chat_messages = room.new_chat_messages, 0
            viewers, room.new_viewers = room.new_viewers, {}
            await self._flush_stats(room.stream_id, room.peak_viewers, chats, viewers)

    async def _tick_forever(self) -> None:
        loop = asyncio.get_running_loop()
        next_count = next_stats = next_position = loop.time()
        while True:
            await asyncio.sleep(TICK_S)
            now = loop.time()
            for room in list(self.rooms.values()):
                await self._guard(self._flush_reactions(room))
            await self._guard(self.rules.tick(self.broker.publish, now))
            if now >= next_count:
                next_count = now + VIEWER_COUNT_S
                for room in list(self.rooms.values()):
                    await self._guard(self._update_viewer_count(room, now))
            if now >= next_position:
                next_position = now + POSITION_CHECK_S
                for room in list(self.rooms.values()):
                    await self._guard(self.check_position(room))
            if now >= next_stats:
                next_stats = now + STATS_FLUSH_S
                for room in list(self.rooms.values()):
                    await self._guard(self._flush_room_stats(room))
                    if time.monotonic() - room.state_read_at >= STATE_REFRESH_S:
                        await self._guard(self.refresh_state(room))

    async def _guard(self, job: Awaitable[None]) -> None:
        try:
            await job
        except BrokerUnavailable as exc:
            # Every room's jobs fail alike during an outage: one line now and then, not a
            # traceback per room and tick.
            now = time.monotonic()
            if now - self._outage_logged_at >= OUTAGE_LOG_S:
                self._outage_logged_at = now
                log.warning("rooms: broker unavailable, retrying (%s)", exc)
        except Exception:
            log.exception("rooms ticker job failed")
