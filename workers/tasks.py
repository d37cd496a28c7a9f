"""The Celery tasks: the worker's side of each domain's background work.

The work itself is the domain's (``fulfillment/tasks.py``, ``orders/tasks.py``,
``rates/tasks.py``, ``flashsales/tasks.py``); here are the task names, retries, batching,
time limits and logging. Each task takes ids, re-reads what it needs and is safe to run
twice; its work runs in transactions (``session_scope``), so a worker killed half-way leaves
nothing half-made, and the redelivered job starts from a clean state.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import IntegrityError, OperationalError

from livecommerce.flashsales import tasks as flashsales
from livecommerce.fulfillment import tasks as fulfilment
from livecommerce.fulfillment.carriers import CarrierUnavailable
from livecommerce.orders import tasks as orders
from livecommerce.orders.states import OrderChanged
from livecommerce.rates import tasks as rates
from workers import embedded
from workers.runtime import Runtime
from workers.worker import celery_app, runtime

log = logging.getLogger("livecommerce.workers")

# Errors worth another try, with exponential backoff: a lost race on a unique key or a row
# (the retry finds the winner's work), a database that is briefly away, a carrier outage.
TRANSIENT = (IntegrityError, OperationalError, OrderChanged, CarrierUnavailable, ConnectionError)

RETRYING: dict[str, Any] = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": True,
    "max_retries": 10,
}
# A batch's failed order runs again this long after, as fulfil_order's first retry would.
HAND_OVER_SECONDS = RETRYING["retry_backoff"]


@celery_app.task(name="livecommerce.fulfil_order", bind=True, **RETRYING)
def fulfil_order(self: Task, order_id: int) -> int:
    """Shipments and customs declarations for a paid (or cash-on-delivery) order."""
    return _fulfil(order_id)


@celery_app.task(name="livecommerce.fulfil_orders")
def fulfil_orders(order_ids: list[int]) -> int:
    """``fulfil_order`` for each order of a batch the API sent at once (livecommerce/jobs.py).

    Each order has a transaction of its own. The batch is never retried as a whole, which
    would run again the orders already done: an order that fails is handed to a
    ``fulfil_order`` job of its own, which retries it as that task does, and the batch goes
    on. Out of time, the orders not yet done are handed over the same way.
    """
    made = 0
    for position, order_id in enumerate(order_ids):
        try:
            made += _fulfil(order_id)
        except SoftTimeLimitExceeded:
            log.warning("fulfil_orders out of time: orders %s go one by one", order_ids[position:])
            for rest in order_ids[position:]:
                _hand_over(rest, countdown=None)
            return made
        except Exception:
            log.exception("order %s not fulfilled; it is retried as a job of its own", order_id)
            _hand_over(order_id, countdown=HAND_OVER_SECONDS)
    return made


def _fulfil(order_id: int) -> int:
    async def work(rt: Runtime) -> int:
        return await fulfilment.fulfil(sessions=rt.sessions, network=rt.network, order_id=order_id)

    return runtime().run(work)


def _hand_over(order_id: int, *, countdown: float | None) -> None:
    try:
        fulfil_order.apply_async((order_id,), countdown=countdown)
    except Exception:
        log.exception("order %s: fulfil_order not sent; reconciliation will start it", order_id)


@celery_app.task(name="livecommerce.book_shipment", bind=True, **RETRYING)
def book_shipment(self: Task, shipment_id: int) -> str | None:
    async def work(rt: Runtime) -> str | None:
        return await fulfilment.book(
            sessions=rt.sessions, network=rt.network, carrier=rt.carrier, shipment_id=shipment_id
        )

    return runtime().run(work)


@celery_app.task(name="livecommerce.poll_tracking", soft_time_limit=50, time_limit=60)
def poll_tracking() -> int:
    async def work(rt: Runtime) -> int:
        return await fulfilment.poll(sessions=rt.sessions, carriers=rt.carriers)

    return runtime().run(work)


@celery_app.task(name="livecommerce.expire_reservations")
def expire_reservations() -> list[int]:
    """Unpaid card orders whose hold ran out go back to sale."""

    async def work(rt: Runtime) -> list[int]:
        return await orders.expire_reservations(sessions=rt.sessions)

    expired = runtime().run(work)
    if expired:
        log.info("reservations expired: orders %s", expired)
    return expired


@celery_app.task(name="livecommerce.reconcile_fulfilment")
def reconcile_fulfilment() -> dict[str, int]:
    """Start again what a lost job should have started: orders paid a while ago without
    shipments, and shipments never booked. Duplicates are harmless (idempotent tasks)."""

    async def work(rt: Runtime) -> tuple[list[int], list[int]]:
        grace = rt.settings.reconcile_grace_seconds
        return await fulfilment.lost_work(sessions=rt.sessions, grace_seconds=grace)

    order_ids, shipment_ids = runtime().run(work)
    for order_id in order_ids:
        fulfil_order.delay(order_id)
    for shipment_id in shipment_ids:
        book_shipment.delay(shipment_id)
    if order_ids or shipment_ids:
        log.warning("reconciled: orders %s, shipments %s", order_ids, shipment_ids)
    return {"orders": len(order_ids), "shipments": len(shipment_ids)}


@celery_app.task(name="livecommerce.rollup_stream_stats")
def rollup_stream_stats() -> int:
    """GMV, orders, unique viewers and conversion by locale of live and recent streams."""

    async def work(rt: Runtime) -> int:
        return len(await orders.roll_up_stream_sales(sessions=rt.sessions))

    return runtime().run(work)


@celery_app.task(name="livecommerce.refresh_rates", soft_time_limit=60, time_limit=90)
def refresh_rates() -> list[dict[str, Any]]:
    """New exchange rates from the configured sources (national-bank files or URLs)."""

    async def work(rt: Runtime) -> list[dict[str, Any]]:
        results = await rates.refresh(sessions=rt.sessions, locations=rt.settings.rates_sources)
        return [{"location": r.location, "inserted": r.inserted, "error": r.error} for r in results]

    results = runtime().run(work)
    for result in results:
        if result["error"]:
            log.warning("rates from %s not refreshed: %s", result["location"], result["error"])
        elif result["inserted"]:
            log.info("rates from %s: %s new", result["location"], result["inserted"])
    return results


@celery_app.task(name="livecommerce.close_due_flash_sales")
def close_due_flash_sales() -> int:
    """Announce the end of flash sales whose API process could not (it stopped meanwhile)."""

    async def work(rt: Runtime) -> int:
        return await flashsales.close_due(sessions=rt.sessions, rooms=rt.rooms)

    return runtime().run(work)


@celery_app.task(name="livecommerce.prune_job_queue")
def prune_job_queue() -> int:
    """Embedded queue only: forget jobs delivered more than a day ago."""
    settings = runtime().settings
    if not settings.embedded_jobs:
        return 0
    return embedded.prune(settings.resolved_broker_url, timedelta(days=1))
