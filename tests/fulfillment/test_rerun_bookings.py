"""A fulfilment run that finds its parcels made sends the bookings still owed, and only those."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.fixtures.factories import account
from tests.fixtures.jobs import Recorder
from tests.fulfillment.test_fulfilment import Clock, book, carrier, cod_order, ship
from tests.orders.shop import TASHKENT, merchant, stocked_product


async def test_a_second_run_sends_bookings_again_for_unbooked_parcels_only(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """Two parcels, one booked since the first run: a second run makes no parcel and sends
    book_shipment again for the unbooked one alone; once both are booked, a run sends none."""
    _, mh = await merchant(client)
    bag = await stocked_product(client, mh, DEDUI=5, weight_grams=2000)
    cream = await stocked_product(client, mh, KZALA=5)
    _, buyer = await account(client)
    placed = await cod_order(client, buyer, [(bag["id"], 1), (cream["id"], 1)], ship_to=TASHKENT)
    first = await ship(app, placed["id"])
    assert sorted(await sent_jobs.of("book_shipment")) == sorted([[s.id] for s in first])
    by_code = {s.warehouse_code: s for s in first}
    sandbox = carrier(Clock())
    booked = await book(app, by_code["KZALA"].id, sandbox)
    assert booked.status == "booked"
    # The carrier got our reference: a repeat booking is the same parcel to it.
    assert booked.tracking_number == sandbox.tracking_number(f"shipment-{booked.id}")
    sent_jobs.sent.clear()

    again = await ship(app, placed["id"])
    assert sorted(s.id for s in again) == sorted(s.id for s in first)
    assert await sent_jobs.of("book_shipment") == [[by_code["DEDUI"].id]]

    await book(app, by_code["DEDUI"].id, sandbox)
    sent_jobs.sent.clear()
    await ship(app, placed["id"])
    assert await sent_jobs.of("book_shipment") == []
