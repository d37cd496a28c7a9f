"""The job outbox (livecommerce/jobs.py): jobs committed close together reach the broker in
one thread hop, fulfilment jobs as one batch message, and none is lost on the way.

The broker is the embedded SQLite queue, read back from its file; where a test needs a
broker that fails on one task only, a small sender stands in for it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from livecommerce import jobs
from livecommerce.app import create_app
from livecommerce.config import Settings
from tests.conftest import make_settings
from tests.fixtures.database import TestDatabase
from tests.fixtures.server import free_port
from workers.app import make_celery

Queued = tuple[str, list[Any], bool]  # task (without the prefix), args, has a countdown


@pytest.fixture
def queue() -> Iterator[jobs.JobQueue]:
    """A job queue of the test's own, sending nowhere until the test configures it."""
    job_queue = jobs.JobQueue(None)
    yield job_queue
    job_queue.close_now()


@pytest.fixture
def publishes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of messages handed to each call of ``jobs.publish`` (one per thread hop)."""
    calls: list[int] = []
    real = jobs.publish

    def counting(target: jobs.Sender, messages: Any) -> None:
        messages = list(messages)
        calls.append(len(messages))
        real(target, messages)

    monkeypatch.setattr(jobs, "publish", counting)
    return calls


def queue_in(data_dir: Path) -> Callable[[], Any]:
    """A Celery app on the embedded queue in ``data_dir`` (as the API makes it)."""
    settings = Settings(data_dir=data_dir, task_queue="test-outbox")
    return lambda: make_celery(settings)


def queued(data_dir: Path) -> list[Queued]:
    """The messages in the embedded queue in ``data_dir``, oldest first."""
    path = data_dir / "jobs.db"
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        try:
            rows = conn.execute("SELECT payload FROM kombu_message ORDER BY id").fetchall()
        except sqlite3.OperationalError:  # no table before the first message
            return []
    found = []
    for (payload,) in rows:
        message = json.loads(payload)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        headers = message["headers"]
        found.append(
            (headers["task"].removeprefix(jobs.TASK_PREFIX), args, headers["eta"] is not None)
        )
    return found


async def until(check: Callable[[], Any], within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)
    return value


def failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "livecommerce.jobs"]


class FailingOn:
    """A sender whose broker refuses one task and takes the others."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.sent: list[tuple[str, list[Any]]] = []

    def send_task(self, name: str, args: Any = None, **options: Any) -> None:
        if name == jobs.TASK_PREFIX + self.task:
            raise ConnectionError("broker refused the message")
        self.sent.append((name.removeprefix(jobs.TASK_PREFIX), list(args or [])))


def test_jobs_coalesce_by_task_in_order_each_id_once() -> None:
    """Batchable jobs become one message per task (ids in order, no duplicate, at most
    BATCH_MAX a message, a lone id as the single task); the rest stay as they are."""
    many = [jobs.Job("fulfil_order", (n,)) for n in range(1, jobs.BATCH_MAX + 2)]
    messages = jobs.coalesce(
        [
            jobs.Job("book_shipment", (7,)),
            jobs.Job("fulfil_order", (3,)),
            jobs.Job("fulfil_order", (1,), countdown=5),
            jobs.Job("book_shipment", (8,)),
            *many,
            jobs.Job("fulfil_order", (3,)),
        ]
    )
    ids = [3, *(n for n in range(1, jobs.BATCH_MAX + 2) if n != 3)]
    assert messages == [
        jobs.Job("book_shipment", (7,)),
        jobs.Job("fulfil_orders", (ids[: jobs.BATCH_MAX],)),
        jobs.Job("fulfil_order", (jobs.BATCH_MAX + 1,)),  # the one left over
        jobs.Job("fulfil_order", (1,), countdown=5),
        jobs.Job("book_shipment", (8,)),
    ]
    assert jobs.coalesce([jobs.Job("fulfil_order", (4,))]) == [jobs.Job("fulfil_order", (4,))]


async def test_quick_jobs_reach_the_broker_in_one_hop_as_one_batch(
    tmp_path: Path, publishes: list[int], queue: jobs.JobQueue
) -> None:
    """Jobs sent one after another go out in one publish: one fulfil_orders message with
    every order in the order sent, and the others one by one beside it."""
    queue.configure(queue_in(tmp_path))
    for order_id in [12, 5, 9, 5, 30]:
        await queue.send("fulfil_order", (order_id,))
    await queue.send("book_shipment", (41,))
    await queue.send("fulfil_order", (77,), countdown=30)

    await until(lambda: len(queued(tmp_path)) >= 3)
    await asyncio.sleep(10 * jobs.FLUSH_SECONDS)  # nothing more comes
    assert queued(tmp_path) == [
        ("fulfil_orders", [[12, 5, 9, 30]], False),
        ("book_shipment", [41], False),
        ("fulfil_order", [77], True),
    ]
    assert publishes == [3]


async def test_flushes_are_spaced_unless_many_jobs_wait(
    monkeypatch: pytest.MonkeyPatch, publishes: list[int], queue: jobs.JobQueue
) -> None:
    """A job after a quiet spell goes at once; what follows waits for the next flush,
    FLUSH_SECONDS later, unless FLUSH_AT jobs are waiting."""
    sender = FailingOn("nothing")
    queue.configure(lambda: sender)
    monkeypatch.setattr(jobs, "FLUSH_SECONDS", 0.5)
    await queue.send("fulfil_order", (1,))
    await until(lambda: sender.sent)
    await queue.send("fulfil_order", (2,))
    await asyncio.sleep(0.05)
    await queue.send("fulfil_order", (3,))
    await until(lambda: len(sender.sent) == 2)
    assert sender.sent == [("fulfil_order", [1]), ("fulfil_orders", [[2, 3]])]

    monkeypatch.setattr(jobs, "FLUSH_SECONDS", 60)
    await queue.send("fulfil_order", (4,))  # the flush after this one is a minute away
    for order_id in range(100, 100 + jobs.FLUSH_AT - 2):
        await queue.send("fulfil_order", (order_id,))
    await asyncio.sleep(0.2)
    assert len(sender.sent) == 2  # FLUSH_AT - 1 waiting: still waiting
    await queue.send("book_shipment", (5,))
    await until(lambda: len(sender.sent) > 2, within=2)
    await until(lambda: ("book_shipment", [5]) in sender.sent, within=2)
    batches = [args[0] for name, args in sender.sent[2:] if name == "fulfil_orders"]
    assert [i for batch in batches for i in batch] == [4, *range(100, 100 + jobs.FLUSH_AT - 2)]
    assert publishes == [1, 1, 5]  # 4 batches of at most BATCH_MAX and book_shipment


async def test_a_failed_send_is_logged_and_the_others_still_go(
    caplog: pytest.LogCaptureFixture, queue: jobs.JobQueue
) -> None:
    """The broker refuses a message: it is logged for reconciliation, nothing is raised to
    the committing request, and the rest of the flush and later flushes still go out."""
    sender = FailingOn("fulfil_orders")
    queue.configure(lambda: sender)
    with caplog.at_level(logging.ERROR, logger="livecommerce.jobs"):
        await queue.send("fulfil_order", (1,))
        await queue.send("fulfil_order", (2,))
        await queue.send("book_shipment", (3,))
        await until(lambda: sender.sent)
        await queue.send("book_shipment", (4,))
        await until(lambda: len(sender.sent) == 2)
    assert sender.sent == [("book_shipment", [3]), ("book_shipment", [4])]
    [failure] = failures(caplog)
    assert failure.getMessage() == (
        "job fulfil_orders([1, 2],) could not be sent; reconciliation will start it"
    )
    assert failure.exc_info is not None


async def test_an_unreachable_broker_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, queue: jobs.JobQueue
) -> None:
    """A real Celery app whose Redis does not answer: the flush gives up after the publish
    retries and logs every job it could not send."""
    settings = Settings(data_dir=tmp_path, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    queue.configure(lambda: make_celery(settings))
    with caplog.at_level(logging.ERROR, logger="livecommerce.jobs"):
        await queue.send("fulfil_order", (1,))
        await queue.send("fulfil_order", (2,))
        await queue.send("book_shipment", (3,))
        await until(lambda: len(failures(caplog)) == 2, within=30)
    assert [r.getMessage().split(" could")[0] for r in failures(caplog)] == [
        "job fulfil_orders([1, 2],)",
        "job book_shipment(3,)",
    ]


async def test_shutdown_sends_what_the_outbox_holds(
    database: TestDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs still waiting for their flush when the app stops reach the broker before it
    closes."""
    monkeypatch.setattr(jobs, "FLUSH_SECONDS", 60)
    application = create_app(make_settings(database.url, tmp_path))
    async with application.router.lifespan_context(application):
        await application.state.jobs.send("fulfil_order", (1,))
        await until(lambda: queued(tmp_path))
        for order_id in (2, 3, 4):
            await application.state.jobs.send("fulfil_order", (order_id,))
        await application.state.jobs.send("book_shipment", (5,))
        await asyncio.sleep(0.1)
        assert len(queued(tmp_path)) == 1  # the others wait a minute for their flush
    assert queued(tmp_path) == [
        ("fulfil_order", [1], False),
        ("fulfil_orders", [[2, 3, 4]], False),
        ("book_shipment", [5], False),
    ]


async def test_reconfiguring_sends_the_old_outbox_through_the_old_sender(
    monkeypatch: pytest.MonkeyPatch, queue: jobs.JobQueue
) -> None:
    """Switching senders (as tests do between cases) first sends what waits, to the sender
    it was meant for, even while a flush is still on its way."""
    first, second = FailingOn("nothing"), FailingOn("nothing")
    started, release = threading.Event(), threading.Event()
    real = first.send_task

    def slow(name: str, args: Any = None, **options: Any) -> None:
        started.set()
        release.wait(5)
        real(name, args, **options)

    monkeypatch.setattr(first, "send_task", slow)
    monkeypatch.setattr(jobs, "FLUSH_SECONDS", 60)
    queue.configure(lambda: first)
    await queue.send("fulfil_order", (1,))
    await asyncio.to_thread(started.wait, 5)  # the first flush is in its thread now
    await queue.send("fulfil_order", (2,))
    await queue.send("fulfil_order", (3,))
    threading.Timer(0.2, release.set).start()
    queue.configure(lambda: second)  # blocks until the flush in flight and the rest are sent
    assert first.sent == [("fulfil_order", [1]), ("fulfil_orders", [[2, 3]])]
    await queue.send("fulfil_order", (4,))
    await until(lambda: second.sent)
    assert second.sent == [("fulfil_order", [4])]


async def test_without_an_outbox_each_job_is_sent_before_send_returns(
    publishes: list[int], queue: jobs.JobQueue
) -> None:
    """A worker process (outbox=False) publishes every job by itself, at once."""
    sender = FailingOn("nothing")
    queue.configure(lambda: sender, outbox=False)
    await queue.send("fulfil_order", (1,))
    assert sender.sent == [("fulfil_order", [1])]
    await queue.send("fulfil_order", (2,))
    assert sender.sent == [("fulfil_order", [1]), ("fulfil_order", [2])]
    assert publishes == [1, 1]
