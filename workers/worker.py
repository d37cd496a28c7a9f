"""``celery -A workers.worker worker``: the worker's Celery app, with its tasks, and the
runtime its tasks run on (one per worker process; see workers/runtime.py)."""

from __future__ import annotations

from functools import partial
from typing import Any

from celery import signals

from livecommerce.config import get_settings
from livecommerce.logs import redact_every_handler
from workers.app import make_celery
from workers.runtime import ProcessRuntime, Runtime

settings = get_settings()
celery_app = make_celery(settings, with_tasks=True)
runtime = ProcessRuntime(partial(Runtime, settings))


@signals.worker_process_shutdown.connect
def _close_runtime(**_: Any) -> None:
    runtime.shutdown()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_secrets(**_: Any) -> None:
    """The worker logs what it is handed (a message it cannot run is logged whole, with its
    arguments; at debug level every task's), so its handlers redact tokens as the server's
    do (livecommerce/logs.py). Celery sets them up itself: the filter goes on once they exist."""
    redact_every_handler()
