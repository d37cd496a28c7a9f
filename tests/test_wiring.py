"""Cross-domain hooks are wired in one place (livecommerce/composition.py): the API process
and a worker process have the same ones, whichever modules each happened to import.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from livecommerce import jobs
from livecommerce.db import session_factory, session_scope
from livecommerce.fulfillment import service as fulfillment
from livecommerce.fulfillment.models import Shipment
from livecommerce.logistics.network import load_network
from livecommerce.orders import service as orders
from livecommerce.orders.models import Order
from livecommerce.wiring import NO_LISTENERS, WIRING, DomainHooks, NotWired, Wiring
from tests.fixtures.database import TestDatabase
from tests.fixtures.factories import account
from tests.fixtures.jobs import Recorder
from tests.fixtures.server import server_env
from tests.orders.shop import merchant, order, stocked_product
from workers.runtime import Runtime

# Run by a fresh interpreter: a worker's runtime cancels the order in its own session,
# having imported nothing of the API (no app, no routes) and nothing of fulfilment itself.
CANCEL_IN_A_WORKER = """
import asyncio, json, sys

from livecommerce.accounts.models import User
from livecommerce.config import get_settings
from livecommerce.db import session_scope
from livecommerce.orders import payments
from workers.runtime import Runtime

order_id, buyer_id = int(sys.argv[1]), int(sys.argv[2])
rt = Runtime(get_settings())


async def cancel(rt):
    async with session_scope(rt.sessions) as session:
        buyer = await session.get(User, buyer_id)
        record = await payments.cancel_order(
            session=session, provider=None, user=buyer, order_id=order_id
        )
        return record.order.status


try:
    status = rt.run(cancel)
finally:
    rt.close()
print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
"""


def worker_wiring(app: FastAPI) -> Wiring:
    """The wiring a worker process's runtime makes from the app's settings (run it in a
    thread: the runtime runs an event loop of its own)."""
    rt = Runtime(app.state.settings)
    try:
        return rt.wiring
    finally:
        rt.close()


async def test_the_api_and_a_worker_wire_the_same_domain_hooks(app: FastAPI) -> None:
    """create_app and the worker runtime get the same domain hooks, fulfilment's parcel
    withdrawal among them; only the API process has listeners of its own."""
    api: Wiring = app.state.wiring
    worker = await asyncio.to_thread(worker_wiring, app)
    assert api.hooks == worker.hooks
    assert api.hooks == DomainHooks(order_closing=(fulfillment.withdraw_shipments,))
    assert worker.listeners == NO_LISTENERS
    assert api.listeners.stock and api.listeners.notice_wakeups
    assert api.jobs is app.state.jobs and worker.jobs is not api.jobs
    async with app.state.sessions() as session:
        assert session.info[WIRING] is api


async def cod_order_with_a_parcel(
    app: FastAPI, client: httpx.AsyncClient
) -> tuple[int, int, Shipment]:
    """A cash-on-delivery order with its parcel made, not booked: (order id, buyer id,
    parcel)."""
    _, mh = await merchant(client)
    bag = await stocked_product(client, mh, KZALA=5)
    buyer, headers = await account(client)
    placed = await order(client, headers, [(bag["id"], 1)])
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    async with session_scope(app.state.sessions) as session:
        [parcel] = await fulfillment.create_shipments(
            session=session, network=load_network(), order_id=order_id
        )
    return order_id, buyer["id"], parcel


async def test_an_order_cancelled_by_a_worker_withdraws_its_parcels(
    app: FastAPI,
    client: httpx.AsyncClient,
    database: TestDatabase,
    tmp_path: Path,
    sent_jobs: Recorder,
) -> None:
    """A fresh worker process that imported neither the app nor fulfilment's service by
    itself cancels an order: its parcel is withdrawn all the same."""
    order_id, buyer_id, parcel = await cod_order_with_a_parcel(app, client)
    env = server_env(tmp_path, database_url=database.url)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CANCEL_IN_A_WORKER, str(order_id), str(buyer_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "cancelled"
    assert "livecommerce.app" not in result["modules"]
    assert "livecommerce.fulfillment.routes" not in result["modules"]
    async with session_scope(app.state.sessions, read_only=True) as session:
        withdrawn = await session.get(Shipment, parcel.id)
        assert withdrawn is not None and withdrawn.status == "cancelled"


async def test_a_session_without_wiring_refuses_to_close_an_order(
    app: FastAPI, client: httpx.AsyncClient, database: TestDatabase, sent_jobs: Recorder
) -> None:
    """Closing an order, or enqueuing a job, in a session made without wiring raises instead
    of leaving the parcel on its way; the order stays as it was."""
    order_id, _, parcel = await cod_order_with_a_parcel(app, client)
    bare = session_factory(database.engine)
    with pytest.raises(NotWired):
        async with session_scope(bare) as session:
            placed = await session.get(Order, order_id)
            assert placed is not None
            await orders.before_closing(session, placed, strict=True)
    with pytest.raises(NotWired):
        async with session_scope(bare) as session:
            jobs.enqueue(session, "fulfil_order", order_id)
    async with session_scope(app.state.sessions, read_only=True) as session:
        kept = await session.get(Shipment, parcel.id)
        assert kept is not None and kept.status == "created"
    assert await sent_jobs.of("fulfil_order") == [[order_id]]  # the placing's own, only
