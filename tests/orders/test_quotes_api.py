"""Landed-cost quotes for the corridor's cities, against figures computed by hand.

Seeded rates (migration 0001): 1 EUR = 602.50 KZT = 14,050 UZS = 94.80 RUB = 101.20 KGS =
8.27 CNY = 1.16 USD. Tariffs and transit days are those of ``logistics/corridor.json``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from livecommerce.db import session_scope
from livecommerce.logistics.customs import NoCustomsRule
from livecommerce.logistics.network import load_network
from livecommerce.orders import service as orders_service
from livecommerce.orders.schemas import QuoteIn
from tests.orders.shop import merchant, stocked_product


async def quote(
    client: httpx.AsyncClient,
    items: list[tuple[int, int]],
    country: str,
    city: str,
    currency: str,
    headers: dict[str, str] | None = None,
    locale: str = "en",
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "items": [{"product_id": p, "quantity": q} for p, q in items],
        "ship_to": {"country": country, "city": city},
        "currency": currency,
        **extra,
    }
    response = await client.post(
        f"/api/v1/quotes?locale={locale}", json=body, headers=headers or {}
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def amounts(q: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        q["subtotal"]["amount"],
        q["shipping"]["amount"],
        q["duties"]["amount"],
        q["total"]["amount"],
    )


def today_in(zone: str) -> date:
    return datetime.now(ZoneInfo(zone)).date()


async def test_almaty_from_the_almaty_warehouse(client: httpx.AsyncClient) -> None:
    """Almaty, KZT: 2 x CNY 120 cream from KZALA; local courier, no customs inside the EAEU."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=10, DEDUI=10)
    q = await quote(client, [(cream["id"], 2)], "KZ", "Алматы", "KZT", locale="kk")
    # unit: 120 CNY / 8.27 * 602.50 = 8,742.44 -> 8,742 KZT (whole tenge); 2 units 17,484.
    # shipping: courier EUR 2.00 + 0.30/kg * 0.36 kg = EUR 2.108 * 602.50 = 1,270.07 -> 1,270.
    assert amounts(q) == ("17484.00", "1270.00", "0.00", "18754.00")
    assert q["items"][0]["unit_price"]["formatted"].replace("\xa0", " ") == "8 742 ₸"
    assert q["items"][0]["title"] == "Ылғалдандыратын крем"
    [shipment] = q["shipments"]
    assert shipment["warehouse"] == "KZALA" and shipment["customs"] is None
    assert shipment["legs"] == [{"mode": "courier", "from": "Алматы", "to": "Алматы", "days": 1}]
    assert shipment["eta"] == (today_in("Asia/Almaty") + timedelta(days=2)).isoformat()
    assert {(r["base"], r["quote"]) for r in q["rates"]} == {("EUR", "CNY"), ("EUR", "KZT")}
    assert all(r["source"] and r["as_of"] for r in q["rates"])


async def test_tashkent_from_duisburg_counts_the_monthly_allowance(
    client: httpx.AsyncClient,
) -> None:
    """Tashkent, UZS: EUR 150 / 2 kg from DEDUI. First parcel fits USD 200; the second pays."""
    from tests.fixtures.factories import account
    from tests.orders.shop import TASHKENT, order

    _, mh = await merchant(client)
    bag = await stocked_product(
        client, mh, DEDUI=5, weight_grams=2000, price={"amount": "150.00", "currency": "EUR"}
    )
    _, buyer = await account(client)
    q = await quote(client, [(bag["id"], 1)], "UZ", "Toshkent", "UZS", headers=buyer, locale="uz")
    # item: 150 * 14,050 = 2,107,500 UZS.
    # shipping EUR: rail 6.00 + 1.20*2 = 8.40; road 1.50 + 0.20*2 = 1.90; road 3.00 + 0.50*2
    # = 4.00; courier 2.00 + 0.30*2 = 2.60 -> 16.90 EUR * 14,050 = 237,445 UZS.
    # customs: 150 EUR * 1.16 = USD 174.00 <= 200 -> no duty.
    assert amounts(q) == ("2107500.00", "237445.00", "0.00", "2344945.00")
    [shipment] = q["shipments"]
    assert [(leg["mode"], leg["from"], leg["to"], leg["days"]) for leg in shipment["legs"]] == [
        ("rail", "Duysburg", "Xorgos", 15),
        ("road", "Xorgos", "Olmaota", 1),
        ("road", "Olmaota", "Toshkent", 2),
        ("courier", "Toshkent", "Toshkent", 1),
    ]
    assert shipment["days"] == 20
    assert shipment["customs"]["rule"] == "UZ-2025-COURIER"
    assert shipment["customs"]["customs_value"] == "174.00"

    placed = await order(client, buyer, [(bag["id"], 1)], ship_to=TASHKENT)
    assert placed.status_code == 201, placed.text
    again = await quote(client, [(bag["id"], 1)], "UZ", "Tashkent", "UZS", headers=buyer)
    # USD 174 already used this month: USD 26 left, 148 over at 30 % = USD 44.40
    # -> 44.40 / 1.16 * 14,050 = 537,775.86 -> 537,776 UZS.
    assert amounts(again) == ("2107500.00", "237445.00", "537776.00", "2882721.00")
    assert again["shipments"][0]["customs"]["duty_free_allowance"] == "26.00"
    # Someone else, or a guest, still has the whole allowance.
    assert amounts(await quote(client, [(bag["id"], 1)], "UZ", "Tashkent", "UZS"))[2] == "0.00"


async def test_uzbek_courier_and_postal_allowances_count_apart(
    client: httpx.AsyncClient,
) -> None:
    """Tashkent, UZS: EUR 75 / 1 kg from KZALA = USD 87.00 of customs value. Courier
    shipments have USD 200 a month per recipient, postal items USD 100, each counting only
    that month's earlier parcels delivered the same way."""
    from tests.fixtures.factories import account
    from tests.orders.shop import TASHKENT, order

    _, mh = await merchant(client)
    scarf = await stocked_product(
        client, mh, KZALA=10, weight_grams=1000, price={"amount": "75.00", "currency": "EUR"}
    )
    _, buyer = await account(client)
    ask = partial(quote, client, [(scarf["id"], 1)], "UZ", "Tashkent", "UZS", headers=buyer)

    post = await ask(delivery="postal")
    # item: 75 x 14,050 = 1,053,750 UZS. Shipping EUR: road Almaty -> Tashkent 3.00 + 0.50
    # = 3.50, then the post 1.00 + 0.15 = 1.15 -> 4.65 x 14,050 = 65,332.50 -> 65,333 UZS.
    # USD 87.00 <= the postal USD 100: no duty.
    assert amounts(post) == ("1053750.00", "65333.00", "0.00", "1119083.00")
    assert (post["delivery"], post["deliveries"]) == ("postal", ["courier", "postal"])
    [parcel] = post["shipments"]
    assert parcel["legs"][-1] == {"mode": "post", "from": "Tashkent", "to": "Tashkent", "days": 3}
    assert parcel["customs"]["rule"] == "UZ-2025-POSTAL"
    assert parcel["customs"]["duty_free_allowance"] == "100.00"

    placed = await order(client, buyer, [(scarf["id"], 1)], ship_to=TASHKENT, delivery="postal")
    assert placed.status_code == 201, placed.text
    assert placed.json()["delivery"] == "postal"

    # A second postal item that month: USD 100 - 87 = 13 left, 74 over at 30 % = USD 22.20
    # -> 22.20 / 1.16 x 14,050 = 268,887.93 -> 268,888 UZS.
    again = await ask(delivery="postal")
    assert amounts(again)[2] == "268888.00"
    assert again["shipments"][0]["customs"]["duty_free_allowance"] == "13.00"
    # By courier the postal item does not count: the whole USD 200 is open. Shipping: 3.50 +
    # courier 2.00 + 0.30 = 5.80 EUR x 14,050 = 81,490 UZS.
    courier = await ask()
    assert amounts(courier) == ("1053750.00", "81490.00", "0.00", "1135240.00")
    assert courier["shipments"][0]["customs"]["rule"] == "UZ-2025-COURIER"
    assert courier["shipments"][0]["customs"]["duty_free_allowance"] == "200.00"

    # Two courier orders use USD 174 of 200: 26 left, 61 over at 30 % = USD 18.30
    # -> 18.30 / 1.16 x 14,050 = 221,650.86 -> 221,651 UZS.
    for _ in range(2):
        placed = await order(client, buyer, [(scarf["id"], 1)], ship_to=TASHKENT)
        assert placed.status_code == 201, placed.text
    third = await ask()
    assert third["shipments"][0]["customs"]["duty_free_allowance"] == "26.00"
    assert amounts(third)[2] == "221651.00"
    # ... and the postal allowance still has its 13 left, untouched by the couriers.
    assert (await ask(delivery="postal"))["shipments"][0]["customs"]["duty_free_allowance"] == (
        "13.00"
    )


async def test_postal_delivery_where_none_is_offered_is_refused(
    client: httpx.AsyncClient,
) -> None:
    """Kazakhstan has no postal leg in the data: a clear, localized 422, not a courier."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=10)
    body = {
        "items": [{"product_id": cream["id"], "quantity": 1}],
        "ship_to": {"country": "KZ", "city": "Almaty"},
        "delivery": "postal",
    }
    response = await client.post("/api/v1/quotes?locale=ru", json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "delivery_not_available"
    assert error["details"] == {"country": "KZ", "delivery": "postal"}
    assert "курьер" in error["message"]
    body["delivery"] = "pigeon"
    assert (await client.post("/api/v1/quotes", json=body)).status_code == 422


async def test_moscow_pays_eaeu_duty_and_vat(client: httpx.AsyncClient) -> None:
    """Moscow, RUB: EUR 250 / 1 kg from DEDUI by rail, at the border on today + 10 days, so
    under the e-commerce regime (since 1 Jul 2026): 5 % of the whole value plus 22 % VAT."""
    _, mh = await merchant(client)
    coat = await stocked_product(
        client, mh, DEDUI=3, weight_grams=1000, price={"amount": "250.00", "currency": "EUR"}
    )
    q = await quote(client, [(coat["id"], 1)], "RU", "Moscow", "RUB", locale="ru")
    # item 250 * 94.80 = 23,700.00; shipping (5.00 + 1.00) + (3.00 + 0.30) = EUR 9.30
    # = 881.64 RUB; duty 0.05 * 250 = EUR 12.50 = 1,185.00 RUB; VAT 0.22 * (250 + 12.50)
    # = EUR 57.75 = 5,474.70 RUB; duties 6,659.70 RUB.
    assert amounts(q) == ("23700.00", "881.64", "6659.70", "31241.34")
    [shipment] = q["shipments"]
    assert [leg["mode"] for leg in shipment["legs"]] == ["rail", "courier"]
    assert shipment["legs"][0]["to"] == "Москва" and shipment["days"] == 11
    customs = shipment["customs"]
    assert (customs["rule"], customs["duty"], customs["vat"]) == (
        "EAEU-2026-ECOM",
        "12.50",
        "57.75",
    )
    assert customs["excess_value"] == "50.00"
    assert customs["border_date"] == (today_in("Europe/Moscow") + timedelta(days=10)).isoformat()
    assert [(c["type"], c["rule"], c["amount"]["amount"]) for c in q["customs"]] == [
        ("duty", "EAEU-2026-ECOM", "1185.00"),
        ("vat", "VAT-RU-2026", "5474.70"),
    ]
    assert q["customs"][1]["base"]["amount"] == "262.50"
    assert q["total"]["formatted"].replace("\xa0", " ") == "31 241,34 ₽"


async def test_excluded_goods_are_no_customs_rule(client: httpx.AsyncClient) -> None:
    """A car (HS 8703...) from Duisburg is outside the e-commerce regime: a localized 422."""
    _, mh = await merchant(client)
    car = await stocked_product(
        client,
        mh,
        DEDUI=1,
        hs_code="870323",
        weight_grams=1000,
        price={"amount": "250.00", "currency": "EUR"},
    )
    body = {
        "items": [{"product_id": car["id"], "quantity": 1}],
        "ship_to": {"country": "RU", "city": "Moscow"},
    }
    response = await client.post("/api/v1/quotes?locale=ru", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "no_customs_rule"
    assert error["details"]["reason"] == "excluded_goods"
    assert error["details"]["category"] == "motor_vehicles"
    assert error["details"]["product_id"] == car["id"]
    assert error["message"].startswith("Для страны RU на ")
    assert "г. нет действующего таможенного правила" in error["message"]
    estimate = await client.get(
        f"/api/v1/products/{car['id']}/delivery-estimate?country=RU&city=Moscow&locale=kk"
    )
    assert estimate.status_code == 422, estimate.text
    assert estimate.json()["error"]["code"] == "no_customs_rule"
    assert "қолданыстағы кеден ережесі жоқ" in estimate.json()["error"]["message"]


async def test_bishkek_from_almaty_without_customs(client: httpx.AsyncClient) -> None:
    """Bishkek, KGS: the Almaty warehouse is faster than Duisburg and inside the EAEU."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=10, DEDUI=10)
    q = await quote(client, [(cream["id"], 2)], "KG", "Бишкек", "KGS")
    # unit 120 / 8.27 * 101.20 = 1,468.44; two 2,936.88. Shipping: road 2.00 + 0.30*0.36 and
    # courier the same = EUR 4.216 * 101.20 = 426.66 KGS.
    assert amounts(q) == ("2936.88", "426.66", "0.00", "3363.54")
    [shipment] = q["shipments"]
    assert shipment["warehouse"] == "KZALA" and shipment["days"] == 3
    assert shipment["legs"][0] == {"mode": "road", "from": "Almaty", "to": "Bishkek", "days": 1}


async def test_basket_splits_across_warehouses(client: httpx.AsyncClient) -> None:
    """One line in Duisburg only, another split because neither warehouse holds it all."""
    _, mh = await merchant(client)
    wine_glass = await stocked_product(client, mh, DEDUI=4)
    scarf = await stocked_product(client, mh, KZALA=3, DEDUI=2)
    q = await quote(client, [(wine_glass["id"], 2), (scarf["id"], 5)], "KZ", "Almaty", "KZT")
    by_warehouse = {s["warehouse"]: s["items"] for s in q["shipments"]}
    assert by_warehouse == {
        "KZALA": [{"product_id": scarf["id"], "quantity": 3}],
        "DEDUI": sorted(
            [
                {"product_id": wine_glass["id"], "quantity": 2},
                {"product_id": scarf["id"], "quantity": 2},
            ],
            key=lambda i: i["product_id"],
        ),
    }
    assert [s["warehouse"] for s in q["shipments"]] == ["KZALA", "DEDUI"]  # soonest first
    assert (
        q["shipping"]["amount"]
        == str(sum(int(s["shipping"]["amount"].split(".")[0]) for s in q["shipments"])) + ".00"
    )


async def test_quote_errors_are_clear(client: httpx.AsyncClient) -> None:
    """Short stock is a 409 (without the figure for a guest); bad input is a localized 422."""
    _, mh = await merchant(client)
    few = await stocked_product(client, mh, KZALA=2, DEDUI=1)
    body = {
        "items": [{"product_id": few["id"], "quantity": 5}],
        "ship_to": {"country": "KZ", "city": "Almaty"},
    }
    short = await client.post("/api/v1/quotes?locale=ru", json=body)
    assert short.status_code == 409
    error = short.json()["error"]
    assert error["code"] == "out_of_stock" and "available" not in error["details"]
    assert error["details"] == {"product_id": few["id"], "requested": 5}
    assert (
        "3" not in error["message"]
        and error["message"] != "Not enough stock for the quantity asked."
    )
    nowhere = await client.post(
        "/api/v1/quotes", json={**body, "ship_to": {"country": "BR", "city": "Rio"}}
    )
    assert (
        nowhere.status_code == 422 and nowhere.json()["error"]["code"] == "destination_not_served"
    )
    for bad in (
        {**body, "items": []},
        {**body, "items": [{"product_id": few["id"], "quantity": 0}]},
        {**body, "items": [{"product_id": few["id"], "quantity": 1}] * 2},
        {**body, "ship_to": {"country": "Kazakhstan", "city": "Almaty"}},
        {**body, "currency": "XYZ"},
    ):
        response = await client.post("/api/v1/quotes", json=bad)
        assert response.status_code == 422, bad
    missing = await client.post(
        "/api/v1/quotes", json={**body, "items": [{"product_id": 999999, "quantity": 1}]}
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "product_not_found"


async def test_service_quote_takes_the_moment_of_the_order(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """service.quote with an explicit ``now``: 20 Jun 2026 reaches Moscow's border on 30 Jun
    (old rule, 15 % x 50 = EUR 7.50 = 711.00 RUB); 1 Jun 2019 has no rule in force."""
    _, mh = await merchant(client)
    coat = await stocked_product(
        client, mh, DEDUI=3, weight_grams=1000, price={"amount": "250.00", "currency": "EUR"}
    )
    data = QuoteIn.model_validate(
        {
            "items": [{"product_id": coat["id"], "quantity": 1}],
            "ship_to": {"country": "RU", "city": "Moscow"},
        }
    )
    async with session_scope(app.state.sessions) as session:
        ask = partial(
            orders_service.quote,
            session=session,
            network=load_network(app.state.settings.logistics_file),
            data=data,
            currency="RUB",
            buyer=None,
            books=app.state.rate_books,
        )
        old = await ask(now=datetime(2026, 6, 20, 12, tzinfo=UTC))
        assert old.duties.amount_str() == "711.00"
        assert [c.charge.rule for c in old.customs] == ["EAEU-2020-PERSONAL"]
        with pytest.raises(NoCustomsRule) as caught:
            await ask(now=datetime(2019, 6, 1, 12, tzinfo=UTC))
        assert caught.value.details["reason"] == "no_rule"
