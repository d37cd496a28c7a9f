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

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []

    def send_task(self, name: str, args: Any = None, **options: Any) -> None:
        self.sent.append((name.removeprefix(jobs.TASK_PREFIX), list(args or [])))

    def of(self, task: str) -> list[list[Any]]:
        return [args for name, args in self.sent if name == task]


@pytest.fixture
def sent_jobs(app: FastAPI) -> Iterator[Recorder]:
    recorder = Recorder()
    jobs.configure(lambda: recorder)
    yield recorder
    jobs.configure(partial(make_celery, app.state.settings))
