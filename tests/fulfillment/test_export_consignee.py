"""Parcels carry the Chinese export mode of their warehouse's stock, and declarations the
recipient's tax id: whole where it is filed, masked wherever someone reads it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI

from tests.fixtures.factories import account
from tests.fixtures.jobs import Recorder
from tests.fulfillment.test_fulfilment import MOSCOW, cod_order, declaration_of, ship
from tests.orders.shop import TASHKENT, merchant, stocked_product


def manifest_rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def local_day(zone: str) -> str:
    return datetime.now(UTC).astimezone(ZoneInfo(zone)).date().isoformat()


async def test_shipments_and_declarations_carry_the_export_mode_of_their_warehouse(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """Stock in Duisburg and Almaty left China under 9810 (export to an overseas
    warehouse): both parcels of a split Tashkent order, their declarations, the buyer's
    tracking and each warehouse's manifest say so, the mode named in the reader's language."""
    _, mh = await merchant(client)
    bag = await stocked_product(client, mh, DEDUI=5, weight_grams=2000)
    cream = await stocked_product(client, mh, KZALA=5, hs_code="330499")
    _, buyer = await account(client)
    placed = await cod_order(client, buyer, [(bag["id"], 1), (cream["id"], 1)], ship_to=TASHKENT)
    shipments = await ship(app, placed["id"])
    assert sorted((s.warehouse_code, s.export_mode) for s in shipments) == [
        ("DEDUI", "9810"),
        ("KZALA", "9810"),
    ]
    for shipment in shipments:
        assert (await declaration_of(app, shipment.id)).export_mode == "9810"

    tracked = await client.get(f"/api/v1/orders/{placed['id']}/tracking?locale=zh", headers=buyer)
    assert tracked.status_code == 200, tracked.text
    for shown in tracked.json()["shipments"]:
        assert shown["export_mode"] == shown["declaration"]["export_mode"] == "9810"
        assert shown["declaration"]["export_mode_name"] == "跨境电商出口海外仓"

    for code, zone in (("DEDUI", "Europe/Berlin"), ("KZALA", "Asia/Almaty")):
        response = await client.get(
            f"/api/v1/shipments/manifest.csv?warehouse={code}&date={local_day(zone)}&locale=ru",
            headers=mh,
        )
        [row] = manifest_rows(response)
        assert row["warehouse"] == code and row["export_mode"] == "9810"
        assert row["export_mode_name"] == (
            "Трансграничная электронная торговля, экспорт на зарубежный склад"
        )
        assert row["recipient_tax_id"] == ""  # Uzbekistan asks for none and none was given


async def test_the_tax_id_is_filed_whole_and_shown_masked(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """Moscow, EUR 250 from Duisburg, with the recipient's INN: the declaration names the
    recipient by name, phone and the whole INN; the merchant's manifest and parcel list and
    the buyer's tracking show only its last four digits."""
    _, mh = await merchant(client)
    coat = await stocked_product(
        client, mh, DEDUI=3, weight_grams=1000, price={"amount": "250.00", "currency": "EUR"}
    )
    _, buyer = await account(client)
    placed = await cod_order(client, buyer, [(coat["id"], 1)], ship_to=MOSCOW, currency="RUB")
    [parcel] = await ship(app, placed["id"])
    declared = await declaration_of(app, parcel.id)
    assert declared.recipient["name"] == MOSCOW["recipient_name"]
    assert declared.recipient["phone"] == MOSCOW["phone"]
    assert declared.recipient["tax_id"] == MOSCOW["tax_id"] == "770112345678"

    masked = "••••••••5678"
    response = await client.get(
        f"/api/v1/shipments/manifest.csv?warehouse=DEDUI&date={local_day('Europe/Berlin')}",
        headers=mh,
    )
    [row] = manifest_rows(response)
    assert row["recipient_tax_id"] == masked and "770112345678" not in response.text
    listed = (await client.get("/api/v1/shipments?warehouse=DEDUI", headers=mh)).json()
    [item] = listed["items"]
    assert item["declaration"]["recipient"]["tax_id"] == masked
    as_merchant = await client.get(f"/api/v1/orders/{placed['id']}", headers=mh)
    assert as_merchant.json()["ship_to"]["tax_id"] == masked
    for reader in (buyer, mh):
        tracked = await client.get(f"/api/v1/orders/{placed['id']}/tracking", headers=reader)
        [shown] = tracked.json()["shipments"]
        assert shown["declaration"]["recipient"]["tax_id"] == masked
        assert "770112345678" not in tracked.text
