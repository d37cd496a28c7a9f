"""From order to doorstep, in process: shipments, declarations, booking, tracking.

The services the Celery tasks call are exercised directly here (on SQLite and PostgreSQL);
tests/workers runs the same flow through real workers. Seeded rates: 1 EUR = 14,050 UZS =
94.80 RUB = 1.16 USD.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import col, select

from livecommerce.db import session_scope
from livecommerce.fulfillment import service
from livecommerce.fulfillment.carriers import CarrierUnavailable, SandboxCarrier
from livecommerce.fulfillment.models import CustomsDeclaration, Shipment, TrackingEvent
from livecommerce.logistics.network import DEFAULT_FILE, load_network
from livecommerce.notifications.models import Notification
from livecommerce.orders.models import Order
from tests.fixtures.factories import account
from tests.fixtures.jobs import Recorder
from tests.orders.shop import ALMATY, TASHKENT, merchant, order, stocked_product

# An INN of an individual: EAEU e-commerce parcels with duty due name the recipient by it.
MOSCOW = {
    **ALMATY,
    "country": "RU",
    "city": "Moscow",
    "phone": "+7 916 000 00 01",
    "tax_id": "770112345678",
}


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


def carrier(clock: Clock, **options: Any) -> SandboxCarrier:
    defaults: dict[str, Any] = {"hold_rate": 0.0, "delay_rate": 0.0, "failure_rate": 0.0}
    defaults.update(options)
    return SandboxCarrier(secret="test", day_seconds=60, clock=clock, **defaults)


async def ship(app: FastAPI, order_id: int) -> list[Shipment]:
    async with session_scope(app.state.sessions) as session:
        return await service.create_shipments(
            session=session, network=load_network(), order_id=order_id
        )


async def declaration_of(app: FastAPI, shipment_id: int | None) -> CustomsDeclaration:
    async with session_scope(app.state.sessions, read_only=True) as session:
        found = (
            await session.scalars(
                select(CustomsDeclaration).where(col(CustomsDeclaration.shipment_id) == shipment_id)
            )
        ).one()
        return found


async def quoted_customs(app: FastAPI, order_id: int, warehouse: str) -> dict[str, Any]:
    """The customs assessment the order's quote stored for the parcel from ``warehouse``."""
    async with session_scope(app.state.sessions, read_only=True) as session:
        placed = await session.get(Order, order_id)
        assert placed is not None
        [plan] = [s for s in placed.quote["shipments"] if s["warehouse"] == warehouse]
        customs: dict[str, Any] = plan["customs"]
        return customs


async def book(app: FastAPI, shipment_id: int | None, with_carrier: SandboxCarrier) -> Shipment:
    assert shipment_id is not None
    booked = await service.book_shipment(
        sessions=app.state.sessions,
        network=load_network(),
        carrier=with_carrier,
        shipment_id=shipment_id,
    )
    assert booked is not None
    return booked


async def cod_order(
    client: httpx.AsyncClient, buyer: dict[str, str], items: list[tuple[int, int]], **kw: Any
) -> dict[str, Any]:
    response = await order(client, buyer, items, **kw)
    assert response.status_code == 201, response.text
    placed: dict[str, Any] = response.json()
    return placed


async def test_a_paid_order_becomes_one_declared_shipment_per_warehouse(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """A basket split over Duisburg and Almaty ships as two parcels, each declared for
    Uzbek customs with HS codes, Russian descriptions and USD values; a second run adds none."""
    _, mh = await merchant(client)
    bag = await stocked_product(
        client, mh, DEDUI=5, weight_grams=2000, price={"amount": "150.00", "currency": "EUR"}
    )
    cream = await stocked_product(client, mh, KZALA=5, hs_code="330499")
    _, buyer = await account(client)
    placed = await cod_order(client, buyer, [(bag["id"], 1), (cream["id"], 2)], ship_to=TASHKENT)
    assert await sent_jobs.of("fulfil_order") == [[placed["id"]]]

    shipments = await ship(app, placed["id"])
    assert sorted(s.warehouse_code for s in shipments) == ["DEDUI", "KZALA"]
    assert sorted(await sent_jobs.of("book_shipment")) == sorted([[s.id] for s in shipments])
    by_code = {s.warehouse_code: s for s in shipments}
    dedui = by_code["DEDUI"]
    assert [(leg["mode"], leg["from_key"], leg["to_key"], leg["days"]) for leg in dedui.legs] == [
        ("rail", "duisburg", "khorgos", 15),
        ("road", "khorgos", "almaty", 1),
        ("road", "almaty", "tashkent", 2),
        ("courier", "tashkent", "tashkent", 1),
    ]
    assert dedui.planned_days == 20 and dedui.weight_grams == 2000

    # KZALA ships first (2 + 1 + 1 days): its parcel is declared first under the allowance.
    kz = await declaration_of(app, by_code["KZALA"].id)
    de = await declaration_of(app, dedui.id)
    assert kz.rule == de.rule == "UZ-2025-COURIER" and kz.currency == "USD" and kz.language == "ru"
    [kz_line] = kz.lines
    assert kz_line["hs_code"] == "330499" and kz_line["quantity"] == 2
    assert kz_line["description"] == "Увлажняющий крем"
    # 2 x CNY 120 = 240 CNY, charged in UZS at the quoted rates: 120 / 8.27 * 14,050
    # = 203,869.41 -> 203,869 UZS a unit; 407,738 UZS / 14,050 * 1.16 = USD 33.66.
    assert kz.declared_value == Decimal("33.66") and kz.earlier_value == 0 and kz.duty == 0
    # 150 EUR = 2,107,500 UZS = USD 174.00; USD 33.66 already declared: 166.34 left,
    # 7.66 over at 30 % = USD 2.30 (the quote estimated the same).
    assert de.declared_value == Decimal("174.00")
    assert de.earlier_value == Decimal("33.66")
    assert de.duty_free_allowance == Decimal("166.34")
    assert de.duty == Decimal("2.30") and de.quoted_duty == Decimal("2.30")
    assert de.recipient["name"] == TASHKENT["recipient_name"]
    assert de.recipient["phone"] == TASHKENT["phone"]

    again = await ship(app, placed["id"])
    assert sorted(s.id or 0 for s in again) == sorted(s.id or 0 for s in shipments)
    async with session_scope(app.state.sessions, read_only=True) as session:
        assert await service.count_shipments(session=session, order_id=placed["id"]) == 2


async def test_the_monthly_allowance_counts_earlier_shipments(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """Two orders for one Uzbek recipient: the second parcel's declaration counts the first."""
    _, mh = await merchant(client)
    bag = await stocked_product(
        client, mh, DEDUI=5, weight_grams=2000, price={"amount": "150.00", "currency": "EUR"}
    )
    _, buyer = await account(client)
    first = await cod_order(client, buyer, [(bag["id"], 1)], ship_to=TASHKENT)
    second = await cod_order(client, buyer, [(bag["id"], 1)], ship_to=TASHKENT)
    [one] = await ship(app, first["id"])
    [two] = await ship(app, second["id"])
    d1, d2 = await declaration_of(app, one.id), await declaration_of(app, two.id)
    assert (d1.earlier_value, d1.duty) == (Decimal(0), Decimal(0))
    # USD 174 used: 26 left, 148 over at 30 % = USD 44.40.
    assert d2.earlier_value == Decimal("174.00") and d2.duty == Decimal("44.40")


async def test_postal_items_are_declared_under_their_own_allowance(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """EUR 75 from Almaty to Tashkent = USD 87.00. By post (USD 100 a month) a second item
    pays on what no longer fits; a courier parcel after both still has its whole USD 200."""
    _, mh = await merchant(client)
    scarf = await stocked_product(
        client, mh, KZALA=10, weight_grams=1000, price={"amount": "75.00", "currency": "EUR"}
    )
    _, buyer = await account(client)
    first = await cod_order(client, buyer, [(scarf["id"], 1)], ship_to=TASHKENT, delivery="postal")
    second = await cod_order(client, buyer, [(scarf["id"], 1)], ship_to=TASHKENT, delivery="postal")
    courier = await cod_order(client, buyer, [(scarf["id"], 1)], ship_to=TASHKENT)
    [one] = await ship(app, first["id"])
    [two] = await ship(app, second["id"])
    [three] = await ship(app, courier["id"])
    assert one.legs[-1]["mode"] == "post" and three.legs[-1]["mode"] == "courier"
    d1, d2, d3 = [await declaration_of(app, s.id) for s in (one, two, three)]
    assert (d1.rule, d1.earlier_value, d1.duty_free_allowance, d1.duty) == (
        "UZ-2025-POSTAL",
        Decimal(0),
        Decimal("100.00"),
        Decimal(0),
    )
    # USD 87 used of the post's 100: 13 left, 74 over at 30 % = USD 22.20, as quoted.
    assert (d2.rule, d2.earlier_value, d2.duty_free_allowance) == (
        "UZ-2025-POSTAL",
        Decimal("87.00"),
        Decimal("13.00"),
    )
    assert d2.duty == Decimal("22.20") and d2.quoted_duty == Decimal("22.20")
    assert (d3.rule, d3.earlier_value, d3.duty) == ("UZ-2025-COURIER", Decimal(0), Decimal(0))

    # Cancelling the second postal order gives its USD 87 back to the postal month only.
    cancelled = await client.post(f"/api/v1/orders/{second['id']}/cancel", headers=buyer)
    assert cancelled.status_code == 200, cancelled.text
    fourth = await cod_order(client, buyer, [(scarf["id"], 1)], ship_to=TASHKENT, delivery="postal")
    [four] = await ship(app, fourth["id"])
    d4 = await declaration_of(app, four.id)
    assert (d4.earlier_value, d4.duty) == (Decimal("87.00"), Decimal("22.20"))

    # The warehouse's manifest says who takes each parcel: the post or the courier.
    day = datetime.now(UTC).astimezone(ZoneInfo("Asia/Almaty")).date().isoformat()
    listed = await client.get(
        f"/api/v1/shipments/manifest.csv?warehouse=KZALA&date={day}", headers=mh
    )
    assert listed.status_code == 200, listed.text
    rows = csv.DictReader(io.StringIO(listed.content.decode("utf-8-sig")))
    assert {int(r["order_id"]): (r["delivery"], r["rule"]) for r in rows} == {
        first["id"]: ("postal", "UZ-2025-POSTAL"),
        courier["id"]: ("courier", "UZ-2025-COURIER"),
        fourth["id"]: ("postal", "UZ-2025-POSTAL"),
    }


async def test_eaeu_parcels_are_declared_in_euro_with_the_quoted_duty(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """Moscow: EUR 250 / 1 kg from Duisburg is declared at EUR 250; at the border after
    1 Jul 2026 the e-commerce duty is 5 % of the whole value = EUR 12.50, as quoted.
    Almaty from Almaty crosses no border and has no declaration."""
    _, mh = await merchant(client)
    coat = await stocked_product(
        client, mh, DEDUI=3, weight_grams=1000, price={"amount": "250.00", "currency": "EUR"}
    )
    _, buyer = await account(client)
    ru = await cod_order(client, buyer, [(coat["id"], 1)], ship_to=MOSCOW, currency="RUB")
    [parcel] = await ship(app, ru["id"])
    declared = await declaration_of(app, parcel.id)
    assert (declared.rule, declared.customs_union, declared.currency) == (
        "EAEU-2026-ECOM",
        "EAEU",
        "EUR",
    )
    assert declared.declared_value == Decimal("250.00") and declared.duty == Decimal("12.50")
    assert declared.quoted_duty == declared.duty
    # Import VAT at Russia's 22 % on value + duty: 0.22 x 262.50 = EUR 57.75, as quoted.
    quoted = await quoted_customs(app, ru["id"], "DEDUI")
    assert declared.vat == Decimal("57.75") == Decimal(quoted["vat"])
    assert declared.total == Decimal("70.25") == Decimal(quoted["total"])
    assert declared.border_date is not None
    assert declared.border_date.isoformat() == quoted["border_date"] > "2026-07-01"
    assert declared.legal_basis is not None and declared.legal_basis.startswith("EEC Council")
    assert declared.declared_by == "ecommerce_operator"
    assert [c["type"] for c in declared.charges or []] == ["duty", "vat"]

    cream = await stocked_product(client, mh, KZALA=3)
    kz = await cod_order(client, buyer, [(cream["id"], 1)], ship_to=ALMATY)
    [local] = await ship(app, kz["id"])
    assert local.warehouse_code == "KZALA"
    async with session_scope(app.state.sessions, read_only=True) as session:
        found = await session.scalars(
            select(CustomsDeclaration).where(col(CustomsDeclaration.shipment_id) == local.id)
        )
        assert found.first() is None


async def test_a_duty_free_eaeu_parcel_is_declared_with_nothing_to_pay(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """Every e-commerce parcel is declared whatever its value: EUR 150 to Moscow is within
    the EUR 200 purchase threshold, so it is declared by the e-commerce operator under
    EAEU-2026-ECOM with no duty, no VAT and 0 to pay; the tracking API says so."""
    _, mh = await merchant(client)
    scarf = await stocked_product(
        client, mh, DEDUI=3, weight_grams=1000, price={"amount": "150.00", "currency": "EUR"}
    )
    _, buyer = await account(client)
    placed = await cod_order(client, buyer, [(scarf["id"], 1)], ship_to=MOSCOW, currency="RUB")
    [parcel] = await ship(app, placed["id"])
    declared = await declaration_of(app, parcel.id)
    assert declared.rule == "EAEU-2026-ECOM" and declared.declared_by == "ecommerce_operator"
    assert declared.declared_value == Decimal("150.00")
    assert (declared.duty, declared.vat, declared.total) == (Decimal("0.00"),) * 3
    quoted = await quoted_customs(app, placed["id"], "DEDUI")
    assert declared.border_date is not None
    assert declared.border_date.isoformat() == quoted["border_date"]
    assert Decimal(quoted["total"]) == 0
    assert {c["basis"] for c in declared.charges or []} == {"within_allowance"}

    response = await client.get(f"/api/v1/orders/{placed['id']}/tracking?locale=en", headers=buyer)
    assert response.status_code == 200, response.text
    [shown] = response.json()["shipments"]
    shown_declaration = shown["declaration"]
    assert shown_declaration["rule"] == "EAEU-2026-ECOM"
    assert shown_declaration["customs_union"] == "EAEU"
    assert shown_declaration["legal_basis"] == declared.legal_basis
    assert shown_declaration["border_date"] == quoted["border_date"]
    assert shown_declaration["declared_by"] == "ecommerce_operator"
    assert shown_declaration["duty"]["amount"] == "0.00"
    assert shown_declaration["vat"]["amount"] == "0.00"
    assert shown_declaration["total"]["amount"] == "0.00"
    assert shown_declaration["total"]["currency"] == "EUR"


async def test_a_declaration_keeps_the_wording_of_its_rule_after_the_data_changes(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder, tmp_path: Path
) -> None:
    """A parcel declared while the corridor data worded its rule one way still shows that
    rule and wording after the data (here the packaged file) words it another way."""
    raw = json.loads(DEFAULT_FILE.read_text(encoding="utf-8"))
    [ecom] = [r for r in raw["customs"]["rules"] if r["id"] == "EAEU-2026-ECOM"]
    ecom["legal_basis"] = "EEC Council decisions of 12 January 2026 (as first published)"
    ecom["declared_by"] = "logistics_partner"
    earlier = tmp_path / "corridor.json"
    earlier.write_text(json.dumps(raw), encoding="utf-8")

    _, mh = await merchant(client)
    coat = await stocked_product(
        client, mh, DEDUI=3, weight_grams=1000, price={"amount": "250.00", "currency": "EUR"}
    )
    _, buyer = await account(client)
    placed = await cod_order(client, buyer, [(coat["id"], 1)], ship_to=MOSCOW, currency="RUB")
    async with session_scope(app.state.sessions) as session:
        [parcel] = await service.create_shipments(
            session=session, network=load_network(earlier), order_id=placed["id"]
        )

    # Read back through the API, which serves today's packaged data.
    packaged = load_network().customs.rules_of("EAEU")[-1]
    assert packaged.id == "EAEU-2026-ECOM" and packaged.legal_basis != ecom["legal_basis"]
    response = await client.get(f"/api/v1/orders/{placed['id']}/tracking?locale=en", headers=buyer)
    [shown] = response.json()["shipments"]
    assert shown["declaration"]["rule"] == "EAEU-2026-ECOM"
    assert shown["declaration"]["legal_basis"] == ecom["legal_basis"]
    assert shown["declaration"]["declared_by"] == "logistics_partner"
    assert shown["declaration"]["duty"]["amount"] == "12.50"
    assert shown["declaration"]["vat"]["amount"] == "57.75"
    assert shown["declaration"]["total"]["amount"] == "70.25"
    stored = await declaration_of(app, parcel.id)
    assert [c["legal_basis"] for c in stored.charges or []] == [
        ecom["legal_basis"],
        "Tax Code of Russia, art. 164, as amended from 1 January 2026",
    ]


async def test_tracking_follows_the_parcel_to_the_door(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """Booked, scanned at every hub and the border, delivered: the order moves fulfilling ->
    shipped -> delivered, scans reported twice are stored once, the buyer reads it all in
    Uzbek and was notified of each move."""
    _, mh = await merchant(client)
    bag = await stocked_product(client, mh, DEDUI=5, weight_grams=2000)
    buyer_user, buyer = await account(client)
    placed = await cod_order(client, buyer, [(bag["id"], 1)], ship_to=TASHKENT)
    [parcel] = await ship(app, placed["id"])
    clock = Clock()
    sandbox = carrier(clock, hold_rate=1.0)  # customs holds every parcel
    booked = await book(app, parcel.id, sandbox)
    assert booked.tracking_number and booked.status == "booked"
    again = await book(app, parcel.id, sandbox)
    assert again.tracking_number == booked.tracking_number

    carriers = {sandbox.name: sandbox}
    # Day 1: picked and departed from Duisburg -> the order is shipped.
    clock.now += timedelta(minutes=1, seconds=1)
    assert await service.poll_tracking(sessions=app.state.sessions, carriers=carriers) == 2
    response = await client.get(f"/api/v1/orders/{placed['id']}/tracking?locale=uz", headers=buyer)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "shipped"
    [shown] = body["shipments"]
    assert [e["code"] for e in shown["events"]] == ["picked", "departed"]
    assert shown["events"][1]["text"] == "Joʻnab ketdi: Duysburg"

    # Past the whole journey (20 days plus a customs hold of at most 3).
    clock.now += timedelta(minutes=30)
    assert await service.poll_tracking(sessions=app.state.sessions, carriers=carriers) > 0
    assert await service.poll_tracking(sessions=app.state.sessions, carriers=carriers) == 0
    body = (
        await client.get(f"/api/v1/orders/{placed['id']}/tracking?locale=ru", headers=buyer)
    ).json()
    assert body["status"] == "delivered"
    [shown] = body["shipments"]
    codes = [e["code"] for e in shown["events"]]
    assert codes[:3] == ["picked", "departed", "arrived"]
    assert codes[-2:] == ["out_for_delivery", "delivered"]
    assert codes.index("at_border") < codes.index("customs_held") < codes.index("customs_cleared")
    border = next(e for e in shown["events"] if e["code"] == "at_border")
    assert border["location"] == "Ташкент"  # where it enters Uzbek customs
    assert shown["status"] == "delivered" and shown["declaration"]["rule"] == "UZ-2025-COURIER"
    assert shown["declaration"]["declared_value"]["currency"] == "USD"

    async with session_scope(app.state.sessions, read_only=True) as session:
        stored = list(
            await session.scalars(
                select(TrackingEvent).where(col(TrackingEvent.shipment_id) == parcel.id)
            )
        )
        assert len(stored) == len(codes) == len({e.carrier_event_id for e in stored})
        notices = list(
            await session.scalars(
                select(Notification)
                .where(col(Notification.user_id) == buyer_user["id"])
                .order_by(col(Notification.id))
            )
        )
    assert [n.seq for n in notices] == list(range(1, len(notices) + 1))
    order_moves = [n.data["status"] for n in notices if n.kind == "order_status"]
    assert order_moves == ["shipped", "delivered"]
    parcel_moves = [n.data["status"] for n in notices if n.kind == "shipment_status"]
    assert parcel_moves[0] == "booked" and parcel_moves[-1] == "delivered"
    assert "customs_hold" in parcel_moves

    # The merchant may read it too; another buyer may not even learn it exists.
    assert (
        await client.get(f"/api/v1/orders/{placed['id']}/tracking", headers=mh)
    ).status_code == 200
    _, stranger = await account(client)
    response = await client.get(f"/api/v1/orders/{placed['id']}/tracking", headers=stranger)
    assert response.status_code == 404


async def test_a_carrier_outage_leaves_the_parcel_to_be_booked_later(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """A failing booking call raises for the task to retry and changes nothing."""
    _, mh = await merchant(client)
    bag = await stocked_product(client, mh, KZALA=5)
    _, buyer = await account(client)
    placed = await cod_order(client, buyer, [(bag["id"], 1)])
    [parcel] = await ship(app, placed["id"])
    broken = carrier(Clock(), failure_rate=1.0)
    with pytest.raises(CarrierUnavailable):
        await book(app, parcel.id, broken)
    async with session_scope(app.state.sessions, read_only=True) as session:
        again = await session.get(Shipment, parcel.id)
        assert again is not None and again.status == "created" and again.tracking_number is None
        older = datetime.now(UTC) + timedelta(seconds=1)
        assert parcel.id in await service.unbooked_shipments(session=session, older_than=older)


async def test_orders_not_to_be_shipped_get_no_parcels(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """Unpaid and cancelled orders make no shipment; a paid one without parcels is found by
    the reconciliation."""
    _, mh = await merchant(client)
    bag = await stocked_product(client, mh, KZALA=5)
    _, buyer = await account(client)
    unpaid = await cod_order(client, buyer, [(bag["id"], 1)], method="card")
    assert await ship(app, unpaid["id"]) == []
    cancelled = await cod_order(client, buyer, [(bag["id"], 1)])
    response = await client.post(f"/api/v1/orders/{cancelled['id']}/cancel", headers=buyer)
    assert response.status_code == 200, response.text
    assert await ship(app, cancelled["id"]) == []

    waiting = await cod_order(client, buyer, [(bag["id"], 1)])
    later = datetime.now(UTC) + timedelta(seconds=1)
    async with session_scope(app.state.sessions, read_only=True) as session:
        lost = await service.unshipped_orders(session=session, older_than=later)
    assert waiting["id"] in lost and unpaid["id"] not in lost and cancelled["id"] not in lost


async def test_cancelling_withdraws_parcels_not_yet_with_the_carrier(
    app: FastAPI, client: httpx.AsyncClient, sent_jobs: Recorder
) -> None:
    """A cash-on-delivery order cancelled before booking: its parcel is withdrawn, the Uzbek
    allowance it took is given back, and a late booking job books nothing. Once a parcel is
    with the carrier, cancelling is refused and nothing changes."""
    _, mh = await merchant(client)
    bag = await stocked_product(
        client, mh, DEDUI=5, weight_grams=2000, price={"amount": "150.00", "currency": "EUR"}
    )
    _, buyer = await account(client)
    first = await cod_order(client, buyer, [(bag["id"], 1)], ship_to=TASHKENT)
    [parcel] = await ship(app, first["id"])
    cancelled = await client.post(f"/api/v1/orders/{first['id']}/cancel", headers=buyer)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert await book(app, parcel.id, carrier(Clock())) is not None
    async with session_scope(app.state.sessions, read_only=True) as session:
        withdrawn = await session.get(Shipment, parcel.id)
        assert withdrawn is not None
        assert withdrawn.status == "cancelled" and withdrawn.tracking_number is None
    # The allowance is whole again: the next parcel declares USD 174 with nothing earlier.
    second = await cod_order(client, buyer, [(bag["id"], 1)], ship_to=TASHKENT)
    [again] = await ship(app, second["id"])
    declared = await declaration_of(app, again.id)
    assert declared.earlier_value == Decimal(0) and declared.duty == Decimal(0)

    booked = await book(app, again.id, carrier(Clock()))
    assert booked.status == "booked"
    refused = await client.post(f"/api/v1/orders/{second['id']}/cancel", headers=buyer)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "order_with_carrier"
    shown = (await client.get(f"/api/v1/orders/{second['id']}", headers=buyer)).json()
    assert shown["status"] == "fulfilling"
    async with session_scope(app.state.sessions, read_only=True) as session:
        kept = await session.get(Shipment, again.id)
        assert kept is not None and kept.status == "booked"


def test_customs_values_fall_back_to_current_rates() -> None:
    """When the rates an order was priced with do not connect its currency to the customs
    currency, the current rates are used."""
    from datetime import UTC, datetime

    from livecommerce.i18n.money import Money
    from livecommerce.rates.service import RateBook, RateQuote, RateUnavailable

    at = datetime(2026, 11, 23, tzinfo=UTC)
    quoted = RateBook([RateQuote("USD", "KZT", Decimal("512"), "NBK", at)])
    current = RateBook([RateQuote("USD", "UZS", Decimal("12500"), "CBU", at)])
    money = Money(Decimal("250000"), "UZS")
    with pytest.raises(RateUnavailable):
        quoted.convert(money, "USD")  # the quoted book does not connect UZS to USD
    assert service._convert(money, "USD", [quoted, current]).amount == Decimal("20")
