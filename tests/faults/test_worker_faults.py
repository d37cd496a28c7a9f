"""A worker SIGKILLed at the worst moment: the parcels committed, their bookings half sent.

The worker is made to stop right there, deterministically: a ``sitecustomize`` module (on the
worker's ``PYTHONPATH`` only) hangs the second ``book_shipment`` publish of that worker and
says so in a marker file; the test then kills the worker's whole process group with
``Worker.kill()``. The job in hand was never acknowledged, so the broker hands it to the
next worker, whose run must send the bookings the dead one never did. Reconciliation is
kept out of it (no scheduler runs, and its grace is the default half hour): only the
redelivery can book those parcels.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import BACKENDS  # noqa: F401 - the backend param drives the database
from tests.fixtures.database import TestDatabase
from tests.fixtures.factories import account
from tests.fixtures.queues import require_broker
from tests.fixtures.server import running_server
from tests.fixtures.waiting import wait_for
from tests.fixtures.worker import running_worker, start_worker
from tests.orders.shop import ALMATY, merchant, order, stocked_product
from tests.workers.test_fulfilment_jobs import job_env

ORDERS = 40  # two parcels each: one from Almaty, one from Duisburg

HANG_ON_SECOND_BOOKING = """
import os
import time
from pathlib import Path

_marker = os.environ.get("FAULT_HANG_MARKER")
if _marker:
    from celery.signals import before_task_publish

    _seen = []

    @before_task_publish.connect(weak=False)
    def _hang(sender=None, **_):
        if sender != "livecommerce.book_shipment":
            return
        _seen.append(sender)
        if len(_seen) == 2:
            Path(_marker).write_text(str(os.getpid()))
            time.sleep(3600)
"""


async def _booked(database: TestDatabase) -> dict[int, str | None]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, tracking_number, status FROM shipments"))
        return {r.id: r.tracking_number for r in rows if r.status == "booked"}


async def _shipments(database: TestDatabase) -> dict[int, str]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, status FROM shipments"))
        return {r.id: r.status for r in rows}


async def _booking_notices(database: TestDatabase) -> dict[int, int]:
    async with database.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT shipment_id, count(*) AS n FROM notifications "
                "WHERE kind = 'shipment_status' GROUP BY shipment_id"
            )
        )
        return {r.shipment_id: r.n for r in rows}


def _carrier_books(*logs: str) -> dict[str, set[str]]:
    """Reference -> the tracking numbers the sandbox carrier answered for it."""
    books: dict[str, set[str]] = {}
    for log in logs:
        for reference, number in re.findall(r"sandbox carrier: (\S+) booked as (\S+)", log):
            books.setdefault(reference, set()).add(number)
    return books


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["redis", "amqp"])
async def test_a_worker_killed_between_commit_and_bookings_leaves_no_parcel_unbooked(
    clean: TestDatabase,
    tmp_path: Path,
    broker: str,
) -> None:
    """Forty two-parcel orders; the worker dies after committing parcels and sending only
    some of their bookings: the next worker books every parcel, each once at the carrier."""
    require_broker(broker)
    env = job_env(
        tmp_path,
        clean,
        broker,
        carrier_sandbox_failure_rate="0",
        task_visibility_timeout="3",  # Redis: the dead worker's job comes back after 3 s
    )
    with running_server(env, tmp_path / "server.log") as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            _, mh = await merchant(client)
            near = await stocked_product(client, mh, KZALA=ORDERS)
            far = await stocked_product(client, mh, DEDUI=ORDERS)
            buyers = [(await account(client))[1] for _ in range(8)]
            placed = await asyncio.gather(
                *(
                    order(client, buyers[i % 8], [(near["id"], 1), (far["id"], 1)], ship_to=ALMATY)
                    for i in range(ORDERS)
                )
            )
            assert [p.status_code for p in placed] == [201] * ORDERS, [p.text for p in placed]

        hook = tmp_path / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(HANG_ON_SECOND_BOOKING)
        marker = tmp_path / "hanging"
        hanging = {
            **env,
            "FAULT_HANG_MARKER": str(marker),
            "PYTHONPATH": os.pathsep.join([str(hook), env.get("PYTHONPATH", "")]),
        }
        first = start_worker(hanging, tmp_path / "worker-1.log", beat=False)
        try:
            deadline = time.monotonic() + 60
            while not marker.exists():
                assert time.monotonic() < deadline, first.log()
                await asyncio.sleep(0.1)
        finally:
            first.kill()
        # The kill landed at the dangerous point: parcels committed, not all of them booked
        # (one booking sent at most, and nobody is left to run it).
        made = await _shipments(clean)
        assert len(made) >= 2 and all(s == "created" for s in made.values()), made

        with running_worker(env, tmp_path / "worker-2.log", beat=False) as second:
            await wait_for(lambda: _all_booked(clean), f"{2 * ORDERS} booked parcels", within=90)
            await asyncio.sleep(1.0)  # a duplicate booking job would have run by now
            logs = (first.log(), second.log())

    booked = await _booked(clean)
    assert len(booked) == 2 * ORDERS
    books = _carrier_books(*logs)
    # Every parcel reached the carrier under its own reference, and every call for one
    # reference got the same parcel back: the carrier holds one booking per parcel.
    assert set(books) == {f"shipment-{sid}" for sid in booked}
    for sid, number in booked.items():
        assert books[f"shipment-{sid}"] == {number}
    # And the shop recorded each booking once: one "booked" notice per parcel.
    assert await _booking_notices(clean) == {sid: 1 for sid in booked}


async def _all_booked(database: TestDatabase) -> bool:
    return len(await _booked(database)) == 2 * ORDERS
