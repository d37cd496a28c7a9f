"""Merchants see their own parcels, filter them, and export a customs manifest per day."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI

from tests.fixtures.factories import account
from tests.fixtures.jobs import Recorder
from tests.fulfillment.test_fulfilment import MOSCOW, cod_order, ship
from tests.orders.shop import ALMATY, TASHKENT, merchant, stocked_product


async def test_merchant_lists_filters_and_exports_the_manifest(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """Shipments by warehouse and status; the manifest of Duisburg's day lists each declared
    line (Russian description, HS code, value) and nothing of another merchant or Almaty."""
    _, mh = await merchant(client)
    coat = await stocked_product(
        client,
        mh,
        DEDUI=5,
        weight_grams=1000,
        hs_code="620231",
        price={"amount": "250.00", "currency": "EUR"},
    )
    cream = await stocked_product(client, mh, KZALA=5)
    _, other_mh = await merchant(client)
    theirs = await stocked_product(client, other_mh, DEDUI=5)
    _, buyer = await account(client)
    to_moscow = await cod_order(client, buyer, [(coat["id"], 2)], ship_to=MOSCOW, currency="RUB")
    scarf = await stocked_product(
        client, mh, DEDUI=5, hs_code="611710", price={"amount": "150.00", "currency": "EUR"}
    )
    duty_free = await cod_order(client, buyer, [(scarf["id"], 1)], ship_to=MOSCOW, currency="RUB")
    local = await cod_order(client, buyer, [(cream["id"], 1)], ship_to=ALMATY)
    foreign = await cod_order(client, buyer, [(theirs["id"], 1)], ship_to=TASHKENT)
    for placed in (to_moscow, duty_free, local, foreign):
        await ship(app, placed["id"])

    listed = await client.get("/api/v1/shipments?locale=en", headers=mh)
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert page["total"] == 3
    assert {s["order_id"] for s in page["items"]} == {to_moscow["id"], duty_free["id"], local["id"]}
    dedui = (await client.get("/api/v1/shipments?warehouse=DEDUI", headers=mh)).json()
    assert [s["order_id"] for s in dedui["items"]] == [duty_free["id"], to_moscow["id"]]
    # E-commerce regime (border after 1 Jul 2026): 5 % of the whole EUR 500.
    assert dedui["items"][1]["declaration"]["duty"]["amount"] == "25.00"
    created = (await client.get("/api/v1/shipments?status=created", headers=mh)).json()
    assert created["total"] == 3
    booked = (await client.get("/api/v1/shipments?status=booked", headers=mh)).json()
    assert booked["total"] == 0
    orders = (await client.get("/api/v1/orders?warehouse=KZALA", headers=mh)).json()
    assert [o["id"] for o in orders["items"]] == [local["id"]]

    today = datetime.now(UTC).astimezone(ZoneInfo("Europe/Berlin")).date()
    response = await client.get(
        f"/api/v1/shipments/manifest.csv?warehouse=DEDUI&date={today}", headers=mh
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert f"manifest-DEDUI-{today}.csv" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    # Both Moscow parcels are declared, the one under the EUR 200 threshold included.
    assert len(rows) == 2
    row, free = rows
    assert row["order_id"] == str(to_moscow["id"]) and row["rule"] == "EAEU-2026-ECOM"
    assert row["hs_code"] == "620231" and row["quantity"] == "2"
    assert row["description"] == "Увлажняющий крем"  # the customs language is Russian
    assert (row["value"], row["currency"], row["parcel_duty"]) == ("500.00", "EUR", "25.00")
    assert row["recipient_name"] == MOSCOW["recipient_name"]
    assert row["weight_kg"] == "2"
    # Import VAT 22 % of (500 + 25) = EUR 115.50; EUR 140.50 to pay at the border.
    assert (row["parcel_vat"], row["parcel_total"]) == ("115.50", "140.50")
    assert row["border_date"] > "2026-07-01" and row["legal_basis"].startswith("EEC Council")
    assert row["declared_by"] == "ecommerce_operator"
    assert free["order_id"] == str(duty_free["id"]) and free["rule"] == "EAEU-2026-ECOM"
    assert free["hs_code"] == "611710" and free["border_date"] == row["border_date"]
    assert (free["parcel_duty"], free["parcel_vat"], free["parcel_total"]) == (("0.00",) * 3)

    yesterday = today - timedelta(days=1)
    empty = await client.get(
        f"/api/v1/shipments/manifest.csv?warehouse=DEDUI&date={yesterday}", headers=mh
    )
    assert empty.content.decode("utf-8-sig").strip().startswith("shipment_id,order_id")
    assert len(empty.content.decode("utf-8-sig").strip().splitlines()) == 1


async def test_shipment_views_are_for_merchants_and_admins(client: httpx.AsyncClient) -> None:
    """A viewer is refused; an unknown warehouse or a day without one is a clear 422."""
    _, viewer = await account(client)
    refused = await client.get("/api/v1/shipments", headers=viewer)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "shipments_forbidden"
    _, mh = await merchant(client)
    unknown = await client.get("/api/v1/shipments?warehouse=XXXXX", headers=mh)
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_warehouse"
    no_day = await client.get("/api/v1/shipments/manifest.csv?warehouse=DEDUI", headers=mh)
    assert no_day.status_code == 422
    day_alone = await client.get("/api/v1/shipments?date=2026-11-23", headers=mh)
    assert day_alone.status_code == 422
