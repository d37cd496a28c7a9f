"""Background jobs, sent to the Celery workers only once the transaction has committed.

Services call ``enqueue(session, "fulfil_order", order_id)``; the send happens after the
commit (a rolled-back order never reaches a worker) and off the event loop (publishing is
blocking network or file I/O).

Each process has one ``JobQueue``, owned by what runs it: ``create_app``'s lifespan makes
the API process's (``app.state.jobs``) and closes it at shutdown; each worker process's
``workers.runtime.Runtime`` makes its own. No module holds one: ``enqueue`` reaches the
queue of the process that made the session, through the session's wiring
(``livecommerce/wiring.py``), and a session made without wiring refuses the job
(``NotWired``) rather than drop it.

Sends are gathered per process. After commit a job only joins its queue's outbox, and
one flusher task publishes what has gathered in a single thread hop, at most every
``FLUSH_SECONDS`` (at once when ``FLUSH_AT`` jobs are waiting; a job after a quiet spell
goes out at once). Jobs of a task in ``BATCHED`` become one message of its batch task:
``fulfil_order`` for orders 1, 2 and 3 is one ``fulfil_orders([1, 2, 3])``, ids in the
order they came, each once, at most ``BATCH_MAX`` to a message; a lone id still goes as
the single task. Other tasks, and any job with a countdown, are published one by one in
the same hop. In a flash-sale rush this replaces a thread hop and a broker write per order
(on the embedded queue, a SQLite transaction each) with one of each per flush.

A job is published at once, in a thread of its own, where no outbox can take it: in a
worker process (``JobQueue(..., outbox=False)``: a task's event loop runs only while the
task does, so a flusher on it would stall between tasks), from a coroutine on another
event loop than the outbox's, or when ``OUTBOX_MAX`` jobs are already waiting.

What is lost is found again. The app's shutdown sends what is waiting
(``JobQueue.close()``), and ``JobQueue.configure()`` sends the old outbox's jobs before it
switches. A send that fails is
logged, not raised: the request's work is already committed. A job that never reaches the
broker (the broker is down, or the process is killed with jobs still in its outbox) leaves
its order ``fulfilling`` (cash on delivery) or ``paid`` without a shipment, or its
shipment unbooked; the workers' periodic ``reconcile_fulfilment`` looks for exactly those
(``unshipped_orders``, ``unbooked_shipments``) and sends their job again once they are
``LIVECOMMERCE_RECONCILE_GRACE_SECONDS`` old (30 min by default: such an order ships that
much later). A new task enqueued here needs the same kind of sweep. Every task is
idempotent, so a duplicate is harmless.

Tasks are addressed by name, so this module needs no import of the worker code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from livecommerce.config import Settings
from livecommerce.db import after_commit
from livecommerce.wiring import wiring_of

log = logging.getLogger("livecommerce.jobs")

TASK_PREFIX = "livecommerce."

# Task -> the task that takes a list of its ids (workers/tasks.py). Only tasks whose one
# argument is an integer id, and whose batch task runs each id as the single task would.
BATCHED: dict[str, str] = {"fulfil_order": "fulfil_orders"}
FLUSH_SECONDS = 0.1  # the least time between two flushes (under the worker's 0.2 s poll)
FLUSH_AT = 200  # waiting jobs that start a flush without waiting out FLUSH_SECONDS
BATCH_MAX = 50  # ids to a message: a batch stays far inside a task's time limit
OUTBOX_MAX = 10_000  # waiting jobs (a stalled broker); beyond, each is published at once


class Sender(Protocol):
    def send_task(self, name: str, args: Any = None, **options: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Job:
    """One task to run (by name, without ``TASK_PREFIX``) with its arguments."""

    task: str
    args: tuple[Any, ...]
    countdown: float | None = None


def coalesce(jobs: Iterable[Job]) -> list[Job]:
    """The messages that carry ``jobs``: the ids of each task in ``BATCHED`` in one message of
    its batch task (where its first job was), the others as they are."""
    entries: list[Job | str] = []
    batches: dict[str, dict[int, None]] = {}  # task -> its ids, first-seen order, each once
    for job in jobs:
        if _batchable(job):
            ids = batches.get(job.task)
            if ids is None:
                ids = batches[job.task] = {}
                entries.append(job.task)
            ids[job.args[0]] = None
        else:
            entries.append(job)
    messages: list[Job] = []
    for entry in entries:
        if isinstance(entry, Job):
            messages.append(entry)
            continue
        in_order = list(batches[entry])
        for start in range(0, len(in_order), BATCH_MAX):
            chunk = in_order[start : start + BATCH_MAX]
            if len(chunk) == 1:
                messages.append(Job(entry, (chunk[0],)))
            else:
                messages.append(Job(BATCHED[entry], (chunk,)))
    return messages


def _batchable(job: Job) -> bool:
    return (
        job.task in BATCHED
        and len(job.args) == 1
        and isinstance(job.args[0], int)
        and not job.countdown
    )


def publish(target: Sender, messages: Iterable[Job]) -> None:
    """Hand ``messages`` to the broker, blocking (run it in a thread); a failure is logged
    and the next message is still sent."""
    for message in messages:
        options: dict[str, Any] = {}
        if message.countdown:
            options["countdown"] = message.countdown
        try:
            target.send_task(TASK_PREFIX + message.task, args=list(message.args), **options)
        except Exception:
            log.exception(
                "job %s%s could not be sent; reconciliation will start it",
                message.task,
                message.args,
            )


class Outbox:
    """A job queue's jobs between their commit and the broker, on one event loop."""

    def __init__(self, target: Sender, loop: asyncio.AbstractEventLoop) -> None:
        self.target = target
        self.loop = loop
        self._pending: list[Job] = []
        self._ready = asyncio.Event()  # something is pending
        self._full = asyncio.Event()  # FLUSH_AT are: no waiting out FLUSH_SECONDS
        # Held by the thread that publishes. Closing waits for it, so the sender is never
        # closed under a flush in flight; and two flushes never publish at once.
        self._publishing = threading.Lock()
        self._closed = False
        self._flusher = loop.create_task(self._run(), name="livecommerce.jobs outbox")

    def put(self, job: Job) -> bool:
        """Queue ``job`` for the next flush; False when closed or full."""
        if self._closed or len(self._pending) >= OUTBOX_MAX:
            return False
        self._pending.append(job)
        self._ready.set()
        if len(self._pending) >= FLUSH_AT:
            self._full.set()
        return True

    async def flush(self) -> None:
        """Send what is waiting now; return once it (and a flush in flight) is sent."""
        await asyncio.to_thread(self._publish, self._take())

    async def close(self) -> None:
        """Stop the flusher and send what is left, off the event loop."""
        await asyncio.to_thread(self._publish, self._stop())

    def close_now(self) -> None:
        """As ``close``, blocking the caller."""
        self._publish(self._stop())

    async def _run(self) -> None:
        last = -math.inf
        while True:
            await self._ready.wait()
            pause = last + FLUSH_SECONDS - self.loop.time()
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), pause)
            batch = self._take()
            if not batch:  # flush() took them meanwhile
                continue
            last = self.loop.time()
            try:
                await asyncio.to_thread(self._publish, batch)
            except RuntimeError:
                # No thread to hop to: the loop's executor is shutting down. Cancellation
                # (BaseException) is not caught: that batch is in its thread already.
                self._publish(batch)

    def _take(self) -> list[Job]:
        batch, self._pending = self._pending, []
        self._ready.clear()
        self._full.clear()
        return batch

    def _stop(self) -> list[Job]:
        self._closed = True
        if not self.loop.is_closed():
            self._flusher.cancel()
        return self._take()

    def _publish(self, batch: list[Job]) -> None:
        with self._publishing:
            if batch:
                publish(self.target, coalesce(batch))


class JobQueue:
    """How one process sends its jobs: its sender (made on first use from ``factory``) and,
    where it has one, its outbox.

    Owned by whoever runs the process: ``create_app``'s lifespan makes the API process's
    (``app.state.jobs``), each worker process's ``Runtime`` its own (``outbox=False``). The
    services reach it through their session's wiring (``enqueue``); ``factory`` None sends
    nothing (each job is logged as not sent).
    """

    def __init__(self, factory: Callable[[], Sender] | None, *, outbox: bool = True) -> None:
        self._factory = factory
        self._sender: Sender | None = None
        self._outbox: Outbox | None = None
        self._use_outbox = outbox

    def configure(self, factory: Callable[[], Sender] | None, *, outbox: bool = True) -> None:
        """Switch how jobs are sent; None stops sending.

        Jobs still in the old outbox are sent first, through the old sender, blocking the
        caller until they are (a coroutine that can wait calls ``close()`` before).
        ``outbox=False`` publishes each job at once (a worker process: see the module
        docstring).
        """
        old_outbox, old_sender = self._outbox, self._sender
        self._factory, self._sender, self._outbox, self._use_outbox = factory, None, None, outbox
        if old_outbox is not None:
            old_outbox.close_now()
        close = getattr(old_sender, "close", None)
        if close is not None:
            close()  # the Celery app's broker connections

    async def close(self) -> None:
        """Send what the outbox holds, off the event loop, and stop sending (the app's
        shutdown)."""
        if self._outbox is not None:
            await self._outbox.close()  # jobs committed meanwhile are published one by one
        self.configure(None)

    def close_now(self) -> None:
        """As ``close``, blocking the caller (a worker process's runtime, off any loop)."""
        self.configure(None)

    async def flush(self) -> None:
        """Send what this event loop's outbox holds now, and return once it has been sent."""
        box = self._outbox
        if box is not None and box.loop is asyncio.get_running_loop():
            await box.flush()

    def sender(self) -> Sender | None:
        if self._sender is None and self._factory is not None:
            self._sender = self._factory()
        return self._sender

    async def send(self, task: str, args: tuple[Any, ...], countdown: float | None = None) -> None:
        job = Job(task, tuple(args), countdown)
        box = self._outbox_here()
        if box is not None and box.put(job):
            return
        target = self.sender()
        if target is None:
            log.warning("job %s%s not sent: no job queue is configured", task, job.args)
            return
        await asyncio.to_thread(publish, target, [job])

    def _outbox_here(self) -> Outbox | None:
        """The running loop's outbox, made on first use; None where jobs go out one by one."""
        if not self._use_outbox:
            return None
        loop = asyncio.get_running_loop()
        if self._outbox is None:
            target = self.sender()
            if target is None:
                return None
            self._outbox = Outbox(target, loop)
        return self._outbox if self._outbox.loop is loop else None


def enqueue(session: AsyncSession, task: str, *args: Any, countdown: float | None = None) -> None:
    """Send ``task`` once the session's transaction has committed, through the job queue of
    the process that made the session (``NotWired`` in a session made without one)."""
    queue = wiring_of(session).jobs
    after_commit(session, partial(queue.send, task, args, countdown))


# --- The scheduler's heartbeat ---------------------------------------------------------
#
# Every periodic job (tracking polls, reservation expiry, reconciliation) is sent by the one
# scheduler (``celery beat``). A dead scheduler leaves the workers idle but healthy, so the
# scheduler itself records when it last ran (workers/beat.py) where every API process can
# read it: in Redis when there is one (the rooms' Redis, else the broker's), else in a
# file in the data dir, which ``serve`` shares with the worker it starts. ``/readyz`` calls
# the scheduler stale once that record is older than ``scheduler_stale_seconds``.

HEARTBEAT_FILE = "scheduler-heartbeat"
HEARTBEAT_TIMEOUT_SECONDS = 2.0  # Redis calls of the heartbeat: a probe must answer soon


def heartbeat_redis_url(settings: Settings) -> str | None:
    if settings.redis_url:
        return settings.redis_url
    broker = settings.broker_url or ""
    return broker if broker.startswith(("redis://", "rediss://")) else None


def heartbeat_key(settings: Settings) -> str:
    # One scheduler per deployment, and the queue names the deployment's jobs.
    return f"livecommerce:scheduler:{settings.task_queue}:heartbeat"


def heartbeat_path(settings: Settings) -> Path:
    return settings.data_dir / HEARTBEAT_FILE


def heartbeat_seconds(settings: Settings) -> float:
    """How often the scheduler records itself: four times within the staleness threshold,
    so one late or lost write never makes it look stale."""
    return settings.scheduler_stale_seconds / 4


def record_heartbeat(settings: Settings, at: float) -> None:
    """Blocking: the scheduler ran at ``at`` (Unix time). Raises when the store is away.

    The record names the scheduler's host and process, for whoever looks for it."""
    record = json.dumps({"at": at, "host": socket.gethostname(), "pid": os.getpid()})
    url = heartbeat_redis_url(settings)
    if url is not None:
        import redis

        client = redis.Redis.from_url(
            url,
            socket_timeout=HEARTBEAT_TIMEOUT_SECONDS,
            socket_connect_timeout=HEARTBEAT_TIMEOUT_SECONDS,
        )
        try:
            # No expiry: a heartbeat that vanished would read as "never ran", not "stale".
            client.set(heartbeat_key(settings), record)
        finally:
            client.close()
        return
    path = heartbeat_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(record)
    os.replace(tmp, path)  # a reader sees the old record or the new one, never half of one


async def read_heartbeat(settings: Settings) -> dict[str, Any] | None:
    """The scheduler's last record (``at``, ``host``, ``pid``); None when it never recorded
    itself here."""
    url = heartbeat_redis_url(settings)
    raw: bytes | str | None
    if url is not None:
        from redis.asyncio import Redis

        client = Redis.from_url(
            url,
            socket_timeout=HEARTBEAT_TIMEOUT_SECONDS,
            socket_connect_timeout=HEARTBEAT_TIMEOUT_SECONDS,
        )
        try:
            raw = await client.get(heartbeat_key(settings))
        finally:
            await client.aclose()
    else:
        try:
            raw = await asyncio.to_thread(heartbeat_path(settings).read_bytes)
        except FileNotFoundError:
            raw = None
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        float(record["at"])
    except (ValueError, TypeError, KeyError):
        log.warning("scheduler heartbeat unreadable: %r", raw)
        return None
    return dict(record)


async def scheduler_health(
    settings: Settings, *, now: float | None = None
) -> dict[str, Any] | None:
    """``{"scheduler": "ok" | "stale", ...}`` from the heartbeat, with when it was last seen;
    None when no scheduler has ever recorded itself in this deployment's store (nothing to
    judge yet: a fresh install, or the store lost its data; the scheduler writes again
    within ``heartbeat_seconds``)."""
    record = await read_heartbeat(settings)
    if record is None:
        return None
    at = float(record["at"])
    age = (time.time() if now is None else now) - at
    limit = settings.scheduler_stale_seconds
    return {
        "scheduler": "stale" if age > limit else "ok",
        "last_heartbeat": datetime.fromtimestamp(at, UTC).isoformat(),
        "age_seconds": round(max(age, 0.0), 1),
        "stale_after_seconds": limit,
    }
