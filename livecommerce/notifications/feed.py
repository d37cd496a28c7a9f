"""Live delivery of notices to ``/ws/me`` sockets, from the ``notifications`` table.

Notices are written by whichever process made the change (an API process taking a payment
webhook, a Celery worker booking a parcel), so the table is the one place every process can
read them from, in both modes. Each API process runs one poller for all its sockets: one
query per tick for the users connected to it, whatever their number. A change committed by
this process pokes the poller, so the buyer hears of it at once; others arrive within a tick.

Ids are assigned when a row is inserted but become visible when its transaction commits, so
a later id can be seen before an earlier one. The poller therefore re-reads a short window
behind its newest id (``LAG``) and remembers what it already sent; a notice whose
transaction took longer than that is still read by the client on its next reconnect
(``last_seq``), never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from livecommerce.db import session_scope
from livecommerce.notifications.models import Notification
from livecommerce.notifications.service import newest_after, on_commit_wake
from livecommerce.sqltypes import utcnow

log = logging.getLogger(__name__)

LAG = timedelta(seconds=5)
QUEUE_MAX = 256  # frames a socket may fall behind before it is closed (it can resume)


@dataclass(eq=False)
class Listener:
    """One socket: notices for its user, rendered in its locale, in a bounded queue.

    ``None`` in the queue tells the socket to close (it fell behind, or the server stops).
    """

    user_id: int
    locale: str
    render: Callable[[Notification, str], str]
    queue: asyncio.Queue[tuple[int, str] | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_MAX)
    )
    overflowed: bool = False

    def offer(self, notice: Notification) -> None:
        assert notice.id is not None
        if self.overflowed:
            return
        try:
            self.queue.put_nowait((notice.id, self.render(notice, self.locale)))
        except asyncio.QueueFull:
            self.overflowed = True
            self.stop()

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
        self._cursor = 0  # every notice up to here is older than LAG and was handled
        self._recent: dict[int, Any] = {}  # id -> created_at of notices above the cursor

    async def start(self) -> None:
        async with session_scope(self.sessions, read_only=True) as session:
            self._cursor = await _max_id(session)
        self._task = asyncio.create_task(self._run(), name="notification-feed")
        on_commit_wake(self.poke)

    async def close(self) -> None:
        on_commit_wake(self.poke, enabled=False)
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
        users = list(self.listeners)
        if not users:
            # Nobody listening: skip ahead so a later listener starts from now.
            async with session_scope(self.sessions, read_only=True) as session:
                self._cursor = max(self._cursor, await _max_id(session))
            self._recent.clear()
            return
        async with session_scope(self.sessions, read_only=True) as session:
            notices = await newest_after(session, after_id=self._cursor, user_ids=users)
        for notice in notices:
            assert notice.id is not None
            if notice.id in self._recent:
                continue
            self._recent[notice.id] = notice.created_at
            for listener in list(self.listeners.get(notice.user_id, ())):
                listener.offer(notice)
        # Move the cursor past notices old enough that nothing before them is still in flight.
        horizon = utcnow() - LAG
        settled = [i for i, at in self._recent.items() if at <= horizon]
        if settled:
            self._cursor = max(self._cursor, max(settled))
            self._recent = {i: at for i, at in self._recent.items() if i > self._cursor}


async def _max_id(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(col(Notification.id)))) or 0)
