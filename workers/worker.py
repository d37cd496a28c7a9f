"""``celery -A workers.worker worker``: the worker's Celery app, with its tasks."""

from __future__ import annotations

from typing import Any

from celery import signals

from livecommerce.config import get_settings
from livecommerce.logs import redact_every_handler
from workers.app import make_celery

celery_app = make_celery(get_settings(), with_tasks=True)


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _redact_secrets(**_: Any) -> None:
    """The worker logs what it is handed (a message it cannot run is logged whole, with its
    arguments; at debug level every task's), so its handlers redact tokens as the server's
    do (livecommerce/logs.py). Celery sets them up itself: the filter goes on once they exist."""
    redact_every_handler()
