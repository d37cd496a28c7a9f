from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from fastapi import FastAPI

from livecommerce import jobs
from workers.app import make_celery


class Recorder:
    """Stands in for the Celery app: records what would have been sent."""

    def __init__(self, queue: jobs.JobQueue) -> None:
        self.queue = queue
        self.sent: list[tuple[str, list[Any]]] = []

    def send_task(self, name: str, args: Any = None, **options: Any) -> None:
        self.sent.append((name.removeprefix(jobs.TASK_PREFIX), list(args or [])))

    async def of(self, task: str) -> list[list[Any]]:
        """The args of every ``task`` job sent, once the outbox has been flushed; a message of
        its batch task (``jobs.BATCHED``) counts as one job per id it carries."""
        await self.queue.flush()
        batch = jobs.BATCHED.get(task)
        found: list[list[Any]] = []
        for name, args in self.sent:
            if name == task:
                found.append(args)
            elif name == batch:
                [ids] = args
                found.extend([i] for i in ids)
        return found


@pytest.fixture
def sent_jobs(app: FastAPI) -> Iterator[Recorder]:
    """The app's job queue sends to a recorder for the test."""
    queue: jobs.JobQueue = app.state.jobs
    recorder = Recorder(queue)
    queue.configure(lambda: recorder)
    yield recorder
    queue.configure(partial(make_celery, app.state.settings))
