"""``celery -A workers.worker worker``: the worker's Celery app, with its tasks."""

from __future__ import annotations

from livecommerce.config import get_settings
from workers.app import make_celery

celery_app = make_celery(get_settings(), with_tasks=True)
