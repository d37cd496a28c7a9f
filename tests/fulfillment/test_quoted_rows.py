"""Parcels are built from the quote kept on the order, whatever version of it was stored."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import update
from sqlmodel import col

from livecommerce.db import session_scope
from livecommerce.orders.models import Order
from tests.fixtures.factories import account
from tests.fixtures.jobs import Recorder
from tests.fulfillment.test_fulfilment import MOSCOW, cod_order, declaration_of, ship
from tests.orders.shop import merchant, stocked_product


def first_days_row(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` as the first days' code stored it: no version, charge breakdown, delivery or
    border, legs without node keys, and each assessment per union with its duty only."""
    old = {
        k: v for k, v in row.items() if k not in ("version", "customs", "delivery", "deliveries")
    }
    old["shipments"] = []
    for s in row["shipments"]:
        parcel = {k: v for k, v in s.items() if k not in ("border", "border_date")}
        parcel["legs"] = [
            {k: v for k, v in leg.items() if k not in ("from_key", "to_key")} for leg in s["legs"]
        ]
        if s["customs"]:
            c = s["customs"]
            parcel["customs"] = {
                "rule": c["union"],
                "currency": c["currency"],
                "customs_value": c["customs_value"],
                "weight_kg": c["weight_kg"],
                "duty_free_allowance": c["duty_free_allowance"],
                "excess_value": c["excess_value"],
                "excess_kg": c["excess_kg"],
                "duty": c["duty"],
            }
        old["shipments"].append(parcel)
    return old


async def restore(app: FastAPI, order_id: int, quote: dict[str, Any]) -> None:
    async with session_scope(app.state.sessions) as session:
        await session.execute(update(Order).where(col(Order.id) == order_id).values(quote=quote))


async def test_an_order_stored_in_the_first_days_shape_still_ships(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """A version-1 row without border dates or node keys: the parcel is declared under the
    rule of the border day worked out again, with the duty it was quoted, and its legs are
    copied as they were stored."""
    _, mh = await merchant(client)
    coat = await stocked_product(
        client, mh, DEDUI=3, weight_grams=1000, price={"amount": "250.00", "currency": "EUR"}
    )
    _, buyer = await account(client)
    placed = await cod_order(client, buyer, [(coat["id"], 1)], ship_to=MOSCOW, currency="RUB")
    async with session_scope(app.state.sessions, read_only=True) as session:
        found = await session.get(Order, placed["id"])
        assert found is not None
        row = found.quote
    assert row["version"] == 2
    await restore(app, placed["id"], first_days_row(row))

    [parcel] = await ship(app, placed["id"])
    assert [set(leg) for leg in parcel.legs] == [{"mode", "from", "to", "days"}] * len(
        row["shipments"][0]["legs"]
    )
    assert parcel.planned_days == row["shipments"][0]["days"]
    declared = await declaration_of(app, parcel.id)
    assert declared.rule == "EAEU-2026-ECOM"
    assert declared.border_date is not None
    assert declared.border_date.isoformat() == row["shipments"][0]["border_date"]
    assert declared.duty == declared.quoted_duty == Decimal("12.50")
    shown = (await client.get(f"/api/v1/orders/{placed['id']}", headers=buyer)).json()
    assert [c["basis"] for c in shown["customs"]] == ["legacy"]


async def test_an_order_stored_without_a_version_ships_as_a_current_one(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """The version-1 row of before this record had a version makes the same parcel."""
    _, mh = await merchant(client)
    coat = await stocked_product(
        client, mh, DEDUI=3, weight_grams=1000, price={"amount": "250.00", "currency": "EUR"}
    )
    _, buyer = await account(client)
    placed = await cod_order(client, buyer, [(coat["id"], 1)], ship_to=MOSCOW, currency="RUB")
    before = (await client.get(f"/api/v1/orders/{placed['id']}", headers=buyer)).text
    async with session_scope(app.state.sessions, read_only=True) as session:
        found = await session.get(Order, placed["id"])
        assert found is not None
        row = dict(found.quote)
    del row["version"]
    await restore(app, placed["id"], row)
    assert (await client.get(f"/api/v1/orders/{placed['id']}", headers=buyer)).text == before

    [parcel] = await ship(app, placed["id"])
    assert parcel.legs == row["shipments"][0]["legs"]
    declared = await declaration_of(app, parcel.id)
    assert declared.border_date is not None
    assert declared.border_date.isoformat() == row["shipments"][0]["border_date"]
    assert declared.duty == declared.quoted_duty == Decimal("12.50")
    assert declared.vat == Decimal(row["shipments"][0]["customs"]["vat"])
