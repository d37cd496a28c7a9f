"""What a worker process holds between tasks: one event loop, one database engine, its wiring.

The services are async; a Celery task is a plain function. Each worker process (a prefork
child, or the process itself) runs its tasks to completion on its own loop, re-using one
connection pool instead of opening the database for every task. Its sessions carry the same
domain hooks as the API process's (``livecommerce/composition.py``) and its own job queue.

The worker app (``workers/worker.py``) owns one ``ProcessRuntime``, which makes the
``Runtime`` on a task's first use in each process. A forked child never inherits its
parent's loop or connections: a runtime belongs to the process id that made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from livecommerce.composition import wire
from livecommerce.config import Settings
from livecommerce.db import create_engine
from livecommerce.fulfillment.carriers import Carrier, SandboxCarrier
from livecommerce.i18n.messages import load_catalogs
from livecommerce.jobs import JobQueue
from livecommerce.logistics.network import Network, load_network
from livecommerce.rooms.broker import Broker
from livecommerce.wiring import NO_LISTENERS, Wiring, wired_sessions

T = TypeVar("T")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.engine: AsyncEngine = create_engine(settings.resolved_database_url)
        # Follow-up jobs (book each parcel after the shipments exist) go to the same queue,
        # each at once: this loop runs only while a task does, so no outbox could flush.
        from workers.app import make_celery

        self.jobs = JobQueue(partial(make_celery, settings), outbox=False)
        # The domain hooks an API process has too; nothing of this process's own listens
        # (a worker serves no sockets and admits no buyers).
        self.wiring: Wiring = wire(self.jobs, NO_LISTENERS)
        self.sessions: async_sessionmaker[AsyncSession] = wired_sessions(self.engine, self.wiring)
        self.network: Network = load_network(settings.logistics_file)
        carrier = make_carrier(settings)
        self.carriers: dict[str, Carrier] = {carrier.name: carrier}
        self.carrier: Carrier = carrier
        self._rooms: Broker | None = None
        load_catalogs(settings.locales_dir)

    @property
    def rooms(self) -> Broker | None:
        """The rooms' broker when rooms live in Redis (scaled mode). Embedded rooms live
        inside the API process, out of a worker's reach: None."""
        if self._rooms is None and self.settings.redis_url:
            from livecommerce.rooms.redis_broker import RedisBroker

            self._rooms = RedisBroker(self.settings.redis_url)
        return self._rooms

    def run(self, work: Callable[[Runtime], Coroutine[Any, Any, T]]) -> T:
        task = self.loop.create_task(work(self))
        try:
            return self.loop.run_until_complete(task)
        except BaseException:
            # A time limit (or any signal) interrupted the loop: cancel the work now, so its
            # transaction rolls back and its locks go, instead of lingering on this loop
            # until the next task runs it further.
            task.cancel()
            with contextlib.suppress(BaseException):
                self.loop.run_until_complete(task)
            raise

    def close(self) -> None:
        if self._rooms is not None:
            self.loop.run_until_complete(self._rooms.close())
        self.loop.run_until_complete(self.engine.dispose())
        self.loop.close()
        self.jobs.close_now()  # the Celery app's broker connections


def make_carrier(settings: Settings) -> Carrier:
    return SandboxCarrier(
        secret=settings.resolved_secret_key(),
        day_seconds=settings.carrier_sandbox_day_seconds,
        hold_rate=settings.carrier_sandbox_hold_rate,
        delay_rate=settings.carrier_sandbox_delay_rate,
        failure_rate=settings.carrier_sandbox_failure_rate,
    )


class ProcessRuntime:
    """The ``Runtime`` of whichever process asks: made on first use in each process, so a
    forked child makes its own instead of using its parent's loop and engine."""

    def __init__(self, make: Callable[[], Runtime]) -> None:
        self._make = make
        self._current: Runtime | None = None

    def __call__(self) -> Runtime:
        current = self._current
        if current is None or current.pid != os.getpid():
            current = self._current = self._make()
        return current

    def shutdown(self) -> None:
        """Close this process's runtime (a parent's, inherited by a fork, is only dropped)."""
        current, self._current = self._current, None
        if current is not None and current.pid == os.getpid():
            current.close()
