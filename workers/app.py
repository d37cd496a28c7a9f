"""The Celery application, configured only from ``LIVECOMMERCE_*`` settings.

Scaled mode: ``LIVECOMMERCE_BROKER_URL`` names Redis (``redis://``) or RabbitMQ
(``amqp://``). Embedded default: jobs go through a SQLite file in the data dir
(``workers/embedded.py``), and ``livecommerce serve`` starts the worker and its scheduler.

Every task acknowledges late and is rejected back to the queue when its worker dies, so a
job in progress when a worker is killed runs again on another; tasks are idempotent for
that reason. Results are not kept: tasks record what they did in the database.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery

from livecommerce.config import Settings
from livecommerce.jobs import TASK_PREFIX


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """The periodic jobs (``celery beat``): entry name -> task and period."""
    every: dict[str, tuple[str, float]] = {
        "poll-tracking": ("poll_tracking", settings.tracking_poll_seconds),
        "expire-reservations": ("expire_reservations", settings.reservation_sweep_seconds),
        "reconcile-fulfilment": ("reconcile_fulfilment", settings.reconcile_seconds),
        "close-due-flash-sales": ("close_due_flash_sales", settings.flash_sale_sweep_seconds),
        "rollup-stream-stats": ("rollup_stream_stats", settings.stats_rollup_seconds),
    }
    if settings.rates_sources:
        every["refresh-rates"] = ("refresh_rates", settings.rates_refresh_seconds)
    if settings.embedded_jobs:
        every["prune-job-queue"] = ("prune_job_queue", 3600.0)
    return {
        name: {"task": TASK_PREFIX + task, "schedule": timedelta(seconds=seconds)}
        for name, (task, seconds) in every.items()
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.resolved_broker_url,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": settings.task_queue,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        # A job is taken only when a process is free for it: a long job never sits behind
        # another in a worker's prefetch buffer while other workers are idle.
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": 60,
        "task_time_limit": 90,
        # Publishing from the API: a broker blip is retried briefly, then the send is
        # abandoned to the periodic reconciliation (see livecommerce/jobs.py).
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0.1,
            "interval_step": 0.5,
            "interval_max": 1.0,
        },
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": beat_schedule(settings),
        # Celery's persistent scheduler that also records a heartbeat for /readyz.
        "beat_scheduler": "workers.beat:Scheduler",
    }
    if settings.embedded_jobs:
        from workers.embedded import Transport

        config["broker_transport"] = Transport
        # The SQLite queue has no broadcast: no remote control, gossip or mingle between
        # workers (there is one worker in the embedded mode anyway).
        config["worker_enable_remote_control"] = False
    elif settings.resolved_broker_url.startswith(("redis://", "rediss://")):
        timeout = settings.task_visibility_timeout
        config["broker_transport_options"] = {
            "visibility_timeout": timeout,
            # Look for jobs abandoned by a dead worker every few seconds (kombu's default
            # looks only every 100 s), so one comes back soon after its timeout.
            "unacked_restore_interval": max(1, min(10, int(timeout / 3))),
            "unacked_restore_throttle": 1,
        }
    return config


class WorkerApp(Celery):
    """The workers' app: ``worker_main`` exits with the worker's own status.

    Celery's returns nothing, so a worker that stopped for a fault (its scheduler died, an
    unrecoverable error) would end with status 0 and look to its supervisor like a clean
    stop, not something to restart.
    """

    def worker_main(self, argv: list[str] | None = None) -> None:
        from celery.bin.celery import celery as command

        if argv is None or "worker" not in argv:
            super().worker_main(argv)  # Celery's own way, and its refusal
            return
        # As Celery's ``start``, but keeping what the command returns: the exit status the
        # worker stopped with (click hands it back instead of exiting).
        command.params[0].default = self
        try:
            code = command.main(args=argv, standalone_mode=False)
        finally:
            command.params[0].default = None
        if isinstance(code, int) and code:
            raise SystemExit(code)


def make_celery(settings: Settings, *, with_tasks: bool = False) -> Celery:
    """A Celery app for ``settings``; the API sends by task name and needs no task code."""
    if not with_tasks:
        app = Celery("livecommerce", set_as_current=False)
        app.conf.update(celery_config(settings))
        return app
    from workers.beat import BeatWatch

    app = WorkerApp("livecommerce", set_as_current=False)
    app.conf.update(celery_config(settings))
    app.conf.update(include=["workers.tasks"])
    app.steps["worker"].add(BeatWatch)
    return app
