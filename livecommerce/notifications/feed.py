"""Live delivery of notices to ``/ws/me`` sockets, from the ``notifications`` table.

Notices are written by whichever process made the change (an API process taking a payment
webhook, a Celery worker booking a parcel), so the table is the one place every process can
read them from, in both modes. Each API process runs one poller for all its sockets. A
change committed by this process pokes the poller (``create_app`` wires ``poke`` as its
notice wake-up), so the buyer hears of it at once; others arrive within a tick.

Each user's notices are numbered 1, 2, 3... and commit in that order (models.py), so a
socket never skips one: it takes ``seq`` n + 1 after n, and when it sees a later one it reads
the missing ones by ``seq`` first (they are committed). The poller finds new notices by id;
ids of different users commit out of order, so it also re-reads the last few seconds. A
notice whose transaction took longer than that still arrives with the user's next notice,
or on reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.db import session_scope
from livecommerce.notifications import service
from livecommerce.notifications.models import Notification
from livecommerce.sqltypes import utcnow

log = logging.getLogger(__name__)

LAG = timedelta(seconds=5)
QUEUE_MAX = 256  # frames a socket may fall behind before it is closed (it can resume)
BATCH = 1000


@dataclass(eq=False)
class Listener:
    """One socket: its user's notices after ``last_seq``, rendered in its locale, queued.

    ``None`` in the queue tells the socket to close (it fell behind, or the server stops).
    """

    user_id: int
    locale: str
    render: Callable[[Notification, str], str]
    last_seq: int
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    overflowed: bool = False
    caught_up: bool = False

    def offer(self, notice: Notification) -> bool:
        """Queue the notice if it is the next one; False when one before it is missing."""
        if self.overflowed or notice.seq <= self.last_seq:
            return True
        if notice.seq > self.last_seq + 1:
            return False
        try:
            self.queue.put_nowait(self.render(notice, self.locale))
        except asyncio.QueueFull:
            self.overflowed = True
            self.stop()
            return True
        self.last_seq = notice.seq
        return True

    def stop(self) -> None:
        # Make room for the stop signal: what was queued is re-read on resume anyway.
        while self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class NotificationFeed:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], poll_s: float) -> None:
        self.sessions = sessions
        self.poll_s = poll_s
        self.listeners: dict[int, set[Listener]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._cursor: int | None = None  # newest id read; None: read it afresh

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notification-feed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for group in self.listeners.values():
            for listener in group:
                listener.stop()

    def add(self, listener: Listener) -> None:
        self.listeners.setdefault(listener.user_id, set()).add(listener)
        self.poke()

    def remove(self, listener: Listener) -> None:
        group = self.listeners.get(listener.user_id)
        if group is not None:
            group.discard(listener)
            if not group:
                del self.listeners[listener.user_id]

    def poke(self) -> None:
        """Poll now, not at the next tick: a socket joined, or this process committed
        notices."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
            self._wake.clear()
            try:
                await self.tick()
            except Exception:
                log.exception("notification poll failed; retried next tick")

    async def tick(self) -> None:
        if not self.listeners:
            # Nobody listening costs nothing; whoever connects next catches up by seq.
            self._cursor = None
            return
        async with session_scope(self.sessions, read_only=True) as session:
            for group in list(self.listeners.values()):
                for listener in list(group):
                    if not listener.caught_up:
                        await self._fill(session, listener)
                        listener.caught_up = True
            if self._cursor is None:
                self._cursor = await service.max_id(session)
                return
            late = await service.written_since(
                session, since=utcnow() - LAG, up_to_id=self._cursor, limit=BATCH
            )
            new = await service.newer_than(session, after_id=self._cursor, limit=BATCH)
            if new:
                self._cursor = max(n.id or 0 for n in new)
            notices = [*late, *new]
            by_user: dict[int, list[Notification]] = {}
            for notice in notices:
                if notice.user_id in self.listeners:
                    by_user.setdefault(notice.user_id, []).append(notice)
            for user_id, mine in by_user.items():
                mine.sort(key=lambda n: n.seq)
                for listener in list(self.listeners.get(user_id, ())):
                    for notice in mine:
                        if not listener.offer(notice):
                            await self._fill(session, listener)
                            break

    async def _fill(self, session: AsyncSession, listener: Listener) -> None:
        """Everything after the listener's ``last_seq``, read by seq (all committed)."""
        while not listener.overflowed:
            missed = await service.notices_after(
                session, user_id=listener.user_id, after_seq=listener.last_seq
            )
            for notice in missed:
                listener.offer(notice)
            if len(missed) < service.PAGE:
                return
