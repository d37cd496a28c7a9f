"""The realtime layer's broker: ordered room events with history, plus ephemeral signals.

Two implementations honour one contract (``tests/rooms/test_broker_contract.py`` runs the
same tests against both):

- :class:`MemoryBroker`, the embedded default: one process, nothing to run.
- :class:`livecommerce.rooms.redis_broker.RedisBroker`, the scaled mode: every API process
  shares rooms, sequence numbers and history through Redis.

A *room event* (``publish``) gets the room's next ``seq`` (1, 2, 3, ... with no gaps), is kept
in the room's bounded history and reaches every subscriber of the room in ``seq`` order. An
*ephemeral* message (``publish_ephemeral``: aggregated reactions and the like) reaches the
subscribers that are listening right now and is neither numbered nor kept.

A room's sequence and history belong to an *epoch*, an opaque string that changes whenever
they are lost or start again (Redis restarted empty or evicted the room, or the room was
forgotten after its TTL); sequence numbers then start again at 1. ``seq`` alone names an event
only within its epoch, so every room event carries both, and ``history`` given another epoch
answers None. The idea is Centrifugo's stream position (offset + epoch).

A broker that cannot be reached raises :class:`BrokerUnavailable`, whatever the transport.

Payloads are opaque bytes to the broker (the hub stores language-neutral JSON there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

HISTORY_MAX_EVENTS = 2000  # per room; enough for a few minutes of a busy flash sale
HISTORY_TTL_S = 6 * 3600  # a room's history and sequence outlive its last event by this long
SUBSCRIBER_QUEUE_MAX = 10_000  # a subscriber this far behind has lost messages (see Gap)


class BrokerUnavailable(Exception):
    """The broker could not be reached or did not answer in time."""


def new_epoch() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message as the broker carries it. ``seq`` and ``epoch`` are None for ephemeral
    messages. Envelopes compare by room, seq and payload (the epoch is where they came from,
    not what they say)."""

    room: str
    seq: int | None
    payload: bytes
    epoch: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a room's history stands: its newest ``seq`` (0 before any event) and epoch."""

    seq: int
    epoch: str


class Subscription(Protocol):
    """Messages of one room, in the order they were published, until ``close``."""

    def __aiter__(self) -> AsyncIterator[Envelope]: ...

    def take_ready(self, limit: int) -> list[Envelope]:
        """Up to ``limit`` messages that have already arrived, without waiting (so that a
        burst can be delivered as one)."""
        ...

    async def close(self) -> None: ...


class Broker(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, room: str, payload: bytes) -> int:
        """Number the event, keep it in history, deliver it; return its ``seq``."""
        ...

    async def publish_ephemeral(self, room: str, payload: bytes) -> None: ...

    async def subscribe(self, room: str) -> Subscription:
        """Listen to ``room``; everything published after this returns is delivered."""
        ...

    async def history(
        self, room: str, after_seq: int, *, epoch: str | None = None
    ) -> list[Envelope] | None:
        """Events with ``seq > after_seq`` in order, or None if history no longer reaches
        back to ``after_seq + 1`` (or ``after_seq`` is ahead of the room), or ``epoch`` is
        given and is not the room's."""
        ...

    async def position(self, room: str) -> Position:
        """The room's newest ``seq`` and its epoch. A room without an epoch gets one here,
        so that what a viewer is told now still holds when the first event comes."""
        ...

    async def last_seq(self, room: str) -> int:
        """The ``seq`` of the room's newest event; 0 for a room without events."""
        ...

    async def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        ...


async def publish_committed(broker: Broker, room: str, payload: bytes) -> None:
    """Publish an event whose change is already committed (an after-commit effect).

    A broker outage must not turn a committed change into an error response, so it is
    logged, not raised: rooms read their state again within a minute and joiners get it in
    their welcome.
    """
    try:
        await broker.publish(room, payload)
    except BrokerUnavailable as exc:
        log.warning("room %s: event not published (%s)", room, exc)
    except Exception:
        log.exception("room %s: event could not be published", room)


# --- In memory ---------------------------------------------------------------------------


@dataclass
class _MemoryRoom:
    seq: int = 0
    epoch: str = field(default_factory=new_epoch)
    history: deque[Envelope] = field(default_factory=lambda: deque(maxlen=HISTORY_MAX_EVENTS))
    subscribers: set[_MemorySubscription] = field(default_factory=set)
    touched: float = field(default_factory=time.monotonic)


class QueueSubscription:
    """A subscription fed by its broker through a bounded queue (both brokers use it)."""

    def __init__(self, room: str) -> None:
        self.room = room
        self._queue: asyncio.Queue[Envelope | None] = asyncio.Queue(SUBSCRIBER_QUEUE_MAX)
        self.closed = False

    def deliver(self, envelope: Envelope) -> None:
        if self.closed:
            return
        # When full, the message is dropped: the hub sees the seq gap and fills it from
        # history, and an ephemeral message lost here was only a snapshot.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(envelope)

    async def __aiter__(self) -> AsyncIterator[Envelope]:
        while True:
            envelope = await self._queue.get()
            if envelope is None:
                # Leave the end marker for any other iterator over this subscription.
                self._queue.put_nowait(None)
                return
            yield envelope

    def take_ready(self, limit: int) -> list[Envelope]:
        ready: list[Envelope] = []
        queue = self._queue
        while len(ready) < limit and not queue.empty():
            envelope = queue.get_nowait()
            if envelope is None:
                queue.put_nowait(None)  # the end marker stays for the iterator
                break
            ready.append(envelope)
        return ready

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # Undelivered messages go: the end marker must fit even when the queue is full.
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)
        await self._release()

    async def _release(self) -> None:
        """Tell the broker this subscription is gone."""


class _MemorySubscription(QueueSubscription):
    def __init__(self, broker: MemoryBroker, room: str) -> None:
        super().__init__(room)
        self._broker = broker

    async def _release(self) -> None:
        self._broker._unsubscribe(self.room, self)


class MemoryBroker:
    """Single-process broker: rooms live in a dict, history in a bounded deque.

    Rooms without subscribers or events for ``history_ttl_s`` are forgotten, like the TTL of
    the Redis keys, so that memory does not grow with every stream ever held.
    """

    def __init__(
        self,
        *,
        history_max_events: int = HISTORY_MAX_EVENTS,
        history_ttl_s: float = HISTORY_TTL_S,
    ) -> None:
        self._rooms: dict[str, _MemoryRoom] = {}
        self._history_max = history_max_events
        self._ttl = history_ttl_s

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        for room in list(self._rooms.values()):
            for sub in list(room.subscribers):
                await sub.close()
        self._rooms.clear()

    async def ping(self) -> None:
        return None

    def _room(self, name: str) -> _MemoryRoom:
        now = time.monotonic()
        room = self._rooms.get(name)
        if room is None or (not room.subscribers and now - room.touched > self._ttl):
            room = _MemoryRoom(history=deque(maxlen=self._history_max))
            self._rooms[name] = room
        room.touched = now
        self._expire(now)
        return room

    def _expire(self, now: float) -> None:
        if len(self._rooms) < 256:
            return
        for name, room in list(self._rooms.items()):
            if not room.subscribers and now - room.touched > self._ttl:
                del self._rooms[name]

    def _unsubscribe(self, name: str, sub: _MemorySubscription) -> None:
        room = self._rooms.get(name)
        if room is not None:
            room.subscribers.discard(sub)

    async def publish(self, room: str, payload: bytes) -> int:
        state = self._room(room)
        state.seq += 1
        envelope = Envelope(room, state.seq, payload, state.epoch)
        state.history.append(envelope)
        for sub in list(state.subscribers):
            sub.deliver(envelope)
        return state.seq

    async def publish_ephemeral(self, room: str, payload: bytes) -> None:
        state = self._rooms.get(room)
        if state is None:
            return
        envelope = Envelope(room, None, payload)
        for sub in list(state.subscribers):
            sub.deliver(envelope)

    async def subscribe(self, room: str) -> Subscription:
        sub = _MemorySubscription(self, room)
        self._room(room).subscribers.add(sub)
        return sub

    async def history(
        self, room: str, after_seq: int, *, epoch: str | None = None
    ) -> list[Envelope] | None:
        state = self._rooms.get(room)
        if epoch is not None and (state is None or state.epoch != epoch):
            return None
        last = state.seq if state else 0
        if after_seq < 0 or after_seq > last:
            return None
        if after_seq == last:
            return []
        assert state is not None
        events = state.history
        if not events or events[0].seq is None or events[0].seq > after_seq + 1:
            return None
        first = events[0].seq
        return list(events)[after_seq + 1 - first :]

    async def position(self, room: str) -> Position:
        state = self._room(room)
        return Position(state.seq, state.epoch)

    async def last_seq(self, room: str) -> int:
        state = self._rooms.get(room)
        return state.seq if state else 0
