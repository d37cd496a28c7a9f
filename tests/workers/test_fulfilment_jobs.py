"""Fulfilment through real Celery workers: an API server and a worker in separate processes.

The broker is real Redis or RabbitMQ (or the embedded SQLite queue), the database SQLite or
PostgreSQL, the carrier the sandbox with a fast clock (one transit day = 0.05 s) that fails
bookings and holds parcels at customs often, to exercise the retries.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import BACKENDS  # noqa: F401 - the backend param drives the database
from tests.fixtures.database import TestDatabase
from tests.fixtures.factories import account
from tests.fixtures.queues import queue_env, require_broker
from tests.fixtures.server import migrate, running_server, server_env
from tests.fixtures.waiting import wait_for
from tests.fixtures.worker import running_worker, start_worker
from tests.orders.shop import ALMATY, TASHKENT, merchant, order, stocked_product
from tests.orders.test_payments import GOOD, confirm, start_payment

FAST = {
    "carrier_sandbox_day_seconds": "0.05",
    "carrier_sandbox_failure_rate": "0.3",
    "carrier_sandbox_hold_rate": "0.5",
    "tracking_poll_seconds": "0.3",
    "reconcile_seconds": "2",
    "reservation_sweep_seconds": "1",
}


def job_env(data_dir: Path, database: TestDatabase, broker: str, **extra: str) -> dict[str, str]:
    return queue_env(data_dir, broker, **{**FAST, "database_url": database.url, **extra})


async def tracking(client: httpx.AsyncClient, oid: int, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get(f"/api/v1/orders/{oid}/tracking?locale=ru", headers=headers)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def delivered(client: httpx.AsyncClient, oid: int, headers: dict[str, str]) -> Any:
    body = await tracking(client, oid, headers)
    return body if body["status"] == "delivered" else None


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["redis", "amqp"])
async def test_a_paid_order_is_shipped_declared_and_delivered_by_a_worker(
    clean: TestDatabase, tmp_path: Path, broker: str
) -> None:
    """Card payment -> webhook -> paid -> shipments with declarations -> booked (through
    failing bookings) -> scans -> delivered, all done by the worker over a real broker."""
    require_broker(broker)
    env = job_env(tmp_path, clean, broker)
    with (
        running_server(env, tmp_path / "server.log") as base,
        running_worker(env, tmp_path / "worker.log") as worker,
    ):
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            _, mh = await merchant(client)
            bag = await stocked_product(
                client,
                mh,
                DEDUI=5,
                weight_grams=2000,
                price={"amount": "150.00", "currency": "EUR"},
            )
            _, bh = await account(client)
            placed = await order(client, bh, [(bag["id"], 1)], ship_to=TASHKENT, method="card")
            assert placed.status_code == 201, placed.text
            oid = placed.json()["id"]
            payment = await start_payment(client, oid, bh)
            assert (await confirm(client, payment, GOOD)).json()["status"] == "succeeded"

            body = await wait_for(lambda: delivered(client, oid, bh), "delivery")
            [parcel] = body["shipments"]
            assert parcel["warehouse"] == "DEDUI" and parcel["tracking_number"].startswith("LC")
            declaration = parcel["declaration"]
            assert declaration["rule"] == "UZ-2025-COURIER"
            assert declaration["declared_value"]["amount"] == "174.00"
            assert declaration["lines"][0]["hs_code"] == bag["hs_code"]
            codes = [e["code"] for e in parcel["events"]]
            assert codes[0] == "picked" and codes[-1] == "delivered"
            assert "customs_cleared" in codes
            history = (await client.get(f"/api/v1/orders/{oid}", headers=bh)).json()
            moves = [e["to_status"] for e in history["events"]]
            assert moves == ["pending_payment", "paid", "fulfilling", "shipped", "delivered"], moves
    assert "livecommerce.fulfil_order" in worker.log()


def sender_for(env: dict[str, str]) -> Any:
    from livecommerce.config import Settings
    from workers.app import make_celery

    return make_celery(
        Settings(
            data_dir=Path(env["LIVECOMMERCE_DATA_DIR"]),
            broker_url=env.get("LIVECOMMERCE_BROKER_URL"),
            task_queue=env["LIVECOMMERCE_TASK_QUEUE"],
        )
    )


def runs(log: str, task: str) -> int:
    return len(re.findall(rf"Task {re.escape(task)}\[[^\]]+\] succeeded", log))


async def shipment_count(database: TestDatabase, order_id: int) -> int:
    async with database.engine.connect() as conn:
        found = await conn.scalar(
            text("SELECT count(*) FROM shipments WHERE order_id = :id"), {"id": order_id}
        )
        return int(found or 0)


@pytest.mark.slow
async def test_a_job_run_three_times_at_once_makes_one_shipment_per_warehouse(
    clean: TestDatabase, tmp_path: Path
) -> None:
    """The fulfilment job queued three times before a worker with two processes starts:
    the runs race, and the order still gets exactly one parcel per warehouse."""
    require_broker("redis")
    env = job_env(tmp_path, clean, "redis", carrier_sandbox_failure_rate="0")
    with running_server(env, tmp_path / "server.log") as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            _, mh = await merchant(client)
            cream = await stocked_product(client, mh, KZALA=2, DEDUI=2)
            _, bh = await account(client)
            # 4 units: 2 from Almaty, 2 from Duisburg -> two parcels.
            placed = await order(client, bh, [(cream["id"], 4)], ship_to=ALMATY)
            assert placed.status_code == 201, placed.text
            oid = placed.json()["id"]
            sender = sender_for(env)
            for _ in range(2):
                sender.send_task("livecommerce.fulfil_order", args=[oid])
            sender.close()
            with running_worker(env, tmp_path / "worker.log", concurrency=2) as worker:
                await wait_for(
                    lambda: runs(worker.log(), "livecommerce.fulfil_order") >= 3,
                    "three runs of the job",
                )
                body = await wait_for(lambda: delivered(client, oid, bh), "delivery")
    assert sorted(s["warehouse"] for s in body["shipments"]) == ["DEDUI", "KZALA"]
    assert await shipment_count(clean, oid) == 2


async def _hold_a_row_the_job_needs(database: TestDatabase, recipient_key: str) -> Any:
    """Lock what the job reaches half-way through, so it stops there.

    PostgreSQL: the recipient's monthly customs allowance, which the job raises after it
    has inserted the shipment (so the kill really lands mid-transaction). SQLite: the
    database's write lock, which the job's transaction waits for.
    """
    if database.backend == "sqlite":
        path = database.url.split("///", 1)[1]
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("BEGIN IMMEDIATE")
        return conn
    month = datetime.now(ZoneInfo("Asia/Tashkent")).strftime("%Y-%m")
    held = await database.engine.connect()
    await held.execute(
        text(
            "INSERT INTO customs_allowances (rule, recipient_key, month, declared_minor) "
            "VALUES ('UZ-2025-COURIER', :key, :month, 0)"
        ),
        {"key": recipient_key, "month": month},
    )
    return held


async def _release(database: TestDatabase, conn: Any) -> None:
    if database.backend == "sqlite":
        conn.rollback()
        conn.close()
    else:
        await conn.rollback()  # the allowance row was never committed: it goes too
        await conn.close()


async def _job_is_waiting(database: TestDatabase, worker: Any) -> bool:
    if "livecommerce.fulfil_order" not in worker.log():
        return False
    if database.backend == "sqlite":
        await asyncio.sleep(1.0)  # received; its transaction is now queued on the write lock
        return True
    async with database.engine.connect() as conn:
        waiting = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid() "
                "AND datname = current_database()"
            )
        )
    return bool(waiting)


@pytest.mark.slow
async def test_a_worker_killed_mid_job_leaves_nothing_half_made(
    clean: TestDatabase, tmp_path: Path
) -> None:
    """SIGKILL while the job is inside its transaction: no parcel is left behind, and the
    broker hands the unacknowledged job to the next worker, which completes it."""
    require_broker("redis")
    env = job_env(
        tmp_path,
        clean,
        "redis",
        task_visibility_timeout="3",
        reconcile_seconds="3600",  # the broker's redelivery must do it, not reconciliation
        carrier_sandbox_failure_rate="0",
    )
    with running_server(env, tmp_path / "server.log") as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            _, mh = await merchant(client)
            bag = await stocked_product(client, mh, DEDUI=5, weight_grams=2000)
            _, bh = await account(client)
            placed = await order(client, bh, [(bag["id"], 1)], ship_to=TASHKENT)
            assert placed.status_code == 201, placed.text
            oid = placed.json()["id"]
            lock = await _hold_a_row_the_job_needs(clean, "tel:998901234567")
            try:
                first = start_worker(env, tmp_path / "worker-1.log", beat=False)
                try:
                    await wait_for(lambda: _job_is_waiting(clean, first), "the job to block")
                finally:
                    first.kill()
            finally:
                await _release(clean, lock)
            assert await shipment_count(clean, oid) == 0
            with running_worker(env, tmp_path / "worker-2.log", beat=True):
                body = await wait_for(lambda: delivered(client, oid, bh), "delivery")
    assert [s["warehouse"] for s in body["shipments"]] == ["DEDUI"]
    assert body["shipments"][0]["declaration"]["rule"] == "UZ-2025-COURIER"
    assert await shipment_count(clean, oid) == 1


@pytest.mark.slow
def test_the_embedded_mode_delivers_with_no_external_service(tmp_path: Path) -> None:
    """``livecommerce serve`` alone (SQLite file, SQLite job queue, its own worker and
    scheduler): a cash-on-delivery order is fulfilled and delivered."""
    # Bookings do not fail here (the broker tests cover retries), and the worker logs each
    # job, so a slow run can be read afterwards in server.log.
    env = server_env(
        tmp_path,
        embedded_worker="true",
        **{**FAST, "carrier_sandbox_failure_rate": "0", "log_level": "info"},
    )
    migrate(env)

    async def scenario(base: str) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            _, mh = await merchant(client)
            cream = await stocked_product(client, mh, KZALA=5)
            _, bh = await account(client)
            placed = await order(client, bh, [(cream["id"], 1)], ship_to=ALMATY)
            assert placed.status_code == 201, placed.text
            oid = placed.json()["id"]
            body = await wait_for(lambda: delivered(client, oid, bh), "delivery", within=90)
            [parcel] = body["shipments"]
            assert parcel["events"][-1]["code"] == "delivered"
            assert parcel["declaration"] is None  # Almaty to Almaty crosses no border

    with running_server(env, tmp_path / "server.log") as base:
        asyncio.run(scenario(base))
    assert (tmp_path / "jobs.db").exists()


async def _unshippable(database: TestDatabase, order_id: int) -> None:
    """Point the order at a country the corridor does not serve: its fulfilment fails."""
    async with database.engine.begin() as conn:
        await conn.execute(
            text("UPDATE orders SET destination_country = 'ZZ' WHERE id = :id"), {"id": order_id}
        )


async def _all_shipped(database: TestDatabase, order_ids: list[int]) -> bool:
    return all([await shipment_count(database, oid) > 0 for oid in order_ids])


@pytest.mark.slow
async def test_a_batch_job_fulfils_every_order_and_hands_a_failing_one_over(
    clean: TestDatabase, tmp_path: Path
) -> None:
    """One fulfil_orders message for eight orders, one of which cannot be fulfilled: the
    other seven get their parcel from that one run, and the failing order alone goes on
    to a fulfil_order job of its own (which fails too) without the batch running again."""
    require_broker("redis")
    api = job_env(tmp_path, clean, "redis", carrier_sandbox_failure_rate="0")
    # The worker reads another queue than the API's: the API's own jobs for these orders
    # are never run, so only the batch below can fulfil them.
    env = {**api, "LIVECOMMERCE_TASK_QUEUE": f"test-{uuid.uuid4().hex[:8]}"}
    with running_server(api, tmp_path / "server.log") as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            _, mh = await merchant(client)
            cream = await stocked_product(client, mh, KZALA=20)
            _, bh = await account(client)
            ids = []
            for _ in range(8):
                placed = await order(client, bh, [(cream["id"], 1)], ship_to=ALMATY)
                assert placed.status_code == 201, placed.text
                ids.append(placed.json()["id"])
    bad = ids[3]
    good = [oid for oid in ids if oid != bad]
    await _unshippable(clean, bad)
    sender = sender_for(env)
    sender.send_task("livecommerce.fulfil_orders", args=[ids])
    sender.close()
    with running_worker(env, tmp_path / "worker.log", beat=False) as worker:
        await wait_for(lambda: _all_shipped(clean, good), "the seven parcels")
        await wait_for(
            lambda: re.search(r"Task livecommerce\.fulfil_order\[\S+\] raised", worker.log()),
            "the handed-over job to fail in its turn",
        )
        await asyncio.sleep(1.0)  # a batch run again would show by now
        log = worker.log()
    assert runs(log, "livecommerce.fulfil_orders") == 1
    assert log.count("Task livecommerce.fulfil_orders[") == 2  # received, succeeded
    assert log.count("Task livecommerce.fulfil_order[") == 2  # received, raised
    assert f"order {bad} not fulfilled; it is retried as a job of its own" in log
    assert [await shipment_count(clean, oid) for oid in good] == [1] * 7
    assert await shipment_count(clean, bad) == 0


@pytest.mark.slow
async def test_a_rush_of_cash_orders_is_fulfilled_through_the_embedded_queue(
    clean: TestDatabase, tmp_path: Path
) -> None:
    """Thirty cash-on-delivery orders at once, through a real server, its job outbox, the
    embedded SQLite queue and a worker: every one gets its parcel, exactly one."""
    env = job_env(tmp_path, clean, "embedded", carrier_sandbox_failure_rate="0")
    with (
        running_server(env, tmp_path / "server.log") as base,
        running_worker(env, tmp_path / "worker.log", beat=False),
    ):
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            _, mh = await merchant(client)
            cream = await stocked_product(client, mh, KZALA=40)
            buyers = [(await account(client))[1] for _ in range(30)]
            placed = await asyncio.gather(
                *(order(client, bh, [(cream["id"], 1)], ship_to=ALMATY) for bh in buyers)
            )
            assert [p.status_code for p in placed] == [201] * 30, [p.text for p in placed]
            ids = [p.json()["id"] for p in placed]
            await wait_for(lambda: _all_shipped(clean, ids), "thirty parcels", within=90)
    assert [await shipment_count(clean, oid) for oid in ids] == [1] * 30
