"""Background jobs, sent to the Celery workers only once the transaction has committed.

Services call ``enqueue(session, "fulfil_order", order_id)``; the send happens after the
commit (a rolled-back order never reaches a worker) and off the event loop (publishing is
blocking network or file I/O). A send that fails is logged, not raised: the request's work is
already committed, and the workers' periodic reconciliation picks up whatever a lost
message should have started (every task is idempotent, so a duplicate is harmless).

Tasks are addressed by name, so this module needs no import of the worker code.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from livecommerce.db import after_commit

log = logging.getLogger("livecommerce.jobs")

TASK_PREFIX = "livecommerce."


class Sender(Protocol):
    def send_task(self, name: str, args: Any = None, **options: Any) -> Any: ...


_sender: Sender | None = None
_factory: Callable[[], Sender] | None = None


def configure(factory: Callable[[], Sender] | None) -> None:
    """Set how jobs are sent (a Celery app made from the settings); None stops sending."""
    global _sender, _factory
    close = getattr(_sender, "close", None)
    if close is not None:
        close()  # the Celery app's broker connections
    _sender, _factory = None, factory


def sender() -> Sender | None:
    global _sender
    if _sender is None and _factory is not None:
        _sender = _factory()
    return _sender


def enqueue(session: AsyncSession, task: str, *args: Any, countdown: float | None = None) -> None:
    after_commit(session, partial(send, task, args, countdown))


async def send(task: str, args: tuple[Any, ...], countdown: float | None = None) -> None:
    target = sender()
    if target is None:
        log.warning("job %s%s not sent: no job queue is configured", task, args)
        return
    options: dict[str, Any] = {}
    if countdown:
        options["countdown"] = countdown
    try:
        await asyncio.to_thread(target.send_task, TASK_PREFIX + task, args=list(args), **options)
    except Exception:
        log.exception("job %s%s could not be sent; reconciliation will start it", task, args)
