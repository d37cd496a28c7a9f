"""GET /products/{id}/delivery-estimate: a one-unit quote, cached per process, always fresh.

Seeded rates (migration 0001): 1 EUR = 602.50 KZT = 14,050 UZS = 94.80 RUB = 1.16 USD.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from livecommerce.app import create_app
from livecommerce.orders.estimates import EstimateCache
from tests.catalog.test_products import _admin
from tests.conftest import make_settings
from tests.fixtures.database import TestDatabase
from tests.fixtures.factories import account
from tests.orders.shop import TASHKENT, merchant, order, stock, stocked_product
from tests.orders.test_quotes_api import quote


async def estimate(
    client: httpx.AsyncClient,
    product_id: int,
    country: str,
    city: str,
    currency: str,
    headers: dict[str, str] | None = None,
    locale: str = "en",
) -> dict[str, Any]:
    response = await client.get(
        f"/api/v1/products/{product_id}/delivery-estimate",
        params={"country": country, "city": city, "currency": currency, "locale": locale},
        headers=headers or {},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def figures(body: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        body["unit_price"]["formatted"],
        body["shipping"]["formatted"],
        body["duties"]["formatted"],
        body["total"]["formatted"],
    )


def quoted(q: dict[str, Any]) -> tuple[str, str, str, str]:
    return (
        q["items"][0]["unit_price"]["formatted"],
        q["shipping"]["formatted"],
        q["duties"]["formatted"],
        q["total"]["formatted"],
    )


def cache_of(client: httpx.AsyncClient) -> EstimateCache:
    cache: EstimateCache = client._transport.app.state.estimates  # type: ignore[attr-defined]
    return cache


DESTINATIONS = [
    ("KZ", "Алматы", "KZT", "kk"),
    ("KZ", "Astana", "KZT", "ru"),
    ("UZ", "Toshkent", "UZS", "uz"),
    ("UZ", "Samarqand", "USD", "en"),
    ("RU", "Moscow", "RUB", "ru"),
    ("RU", "Kazan", "RUB", "ru"),  # off the network: through the Moscow hub
    ("KG", "Bishkek", "KGS", "ru"),
]


async def test_estimate_equals_a_one_unit_quote(client: httpx.AsyncClient) -> None:
    """Every destination and currency: the estimate shows the one-unit quote's figures."""
    _, mh = await merchant(client)
    coat = await stocked_product(
        client, mh, DEDUI=5, weight_grams=1200, price={"amount": "260.00", "currency": "EUR"}
    )
    for country, city, currency, locale in DESTINATIONS:
        body = await estimate(client, coat["id"], country, city, currency, locale=locale)
        q = await quote(client, [(coat["id"], 1)], country, city, currency, locale=locale)
        [shipment] = q["shipments"]
        assert figures(body) == quoted(q), (country, city)
        assert body["eta"] == shipment["eta"] and body["days"] == shipment["days"]
        assert body["warehouse"] == shipment["warehouse"]
        assert body["customs"] == shipment["customs"]
        assert body["rates"] == q["rates"]
        assert body["destination"]["city"] == q["destination"]["city"]
        assert body["currency"] == currency and body["personal"] is False
    moscow = await estimate(client, coat["id"], "RU", "Moscow", "RUB")
    assert moscow["duties"]["amount"] != "0.00"  # from Duisburg, EUR 260 is over the limit


async def test_a_cache_hit_does_not_rebuild(client: httpx.AsyncClient) -> None:
    """The same product, destination and currency twice: built once, then served."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=10)
    cache = cache_of(client)
    first = await estimate(client, cream["id"], "KZ", "Almaty", "KZT")
    builds, hits = cache.builds, cache.hits
    again = await estimate(client, cream["id"], "KZ", "Алматы", "KZT", locale="kk")
    assert (cache.builds, cache.hits) == (builds, hits + 1)
    assert again["total"]["amount"] == first["total"]["amount"]
    await estimate(client, cream["id"], "KZ", "Almaty", "RUB")
    assert cache.builds == builds + 1  # another currency is another entry


async def test_a_price_change_invalidates(client: httpx.AsyncClient) -> None:
    """After the merchant changes the price, the estimate follows the new quote."""
    _, mh = await merchant(client)
    bag = await stocked_product(client, mh, KZALA=3, price={"amount": "100.00", "currency": "EUR"})
    before = await estimate(client, bag["id"], "KZ", "Almaty", "KZT")
    changed = await client.patch(
        f"/api/v1/products/{bag['id']}",
        json={"price": {"amount": "120.00", "currency": "EUR"}},
        headers=mh,
    )
    assert changed.status_code == 200, changed.text
    after = await estimate(client, bag["id"], "KZ", "Almaty", "KZT")
    assert before["unit_price"]["amount"] == "60250.00"
    assert after["unit_price"]["amount"] == "72300.00"
    q = await quote(client, [(bag["id"], 1)], "KZ", "Almaty", "KZT")
    assert figures(after) == quoted(q)


async def test_a_stock_change_that_moves_the_warehouse_invalidates(
    client: httpx.AsyncClient,
) -> None:
    """Almaty sells out: the estimate ships from Duisburg (later, dearer); none left is 409."""
    _, mh = await merchant(client)
    kettle = await stocked_product(client, mh, KZALA=1, DEDUI=4)
    near = await estimate(client, kettle["id"], "KZ", "Almaty", "KZT")
    assert near["warehouse"] == "KZALA"
    await stock(client, mh, kettle["id"], KZALA=0)
    far = await estimate(client, kettle["id"], "KZ", "Almaty", "KZT")
    assert far["warehouse"] == "DEDUI" and far["days"] > near["days"]
    q = await quote(client, [(kettle["id"], 1)], "KZ", "Almaty", "KZT")
    assert figures(far) == quoted(q) and far["eta"] == q["shipments"][0]["eta"]
    await stock(client, mh, kettle["id"], DEDUI=0)
    gone = await client.get(
        f"/api/v1/products/{kettle['id']}/delivery-estimate?country=KZ&city=Almaty&locale=ru"
    )
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "out_of_stock"


async def test_a_new_rate_invalidates(client: httpx.AsyncClient) -> None:
    """An admin publishes a newer EUR/KZT rate: the next estimate converts with it."""
    _, mh = await merchant(client)
    bag = await stocked_product(client, mh, KZALA=3, price={"amount": "10.00", "currency": "EUR"})
    before = await estimate(client, bag["id"], "KZ", "Almaty", "KZT")
    posted = await client.post(
        "/api/v1/rates",
        headers=await _admin(client),
        json={
            "base": "EUR",
            "quote": "KZT",
            "rate": "610.00",
            "source": "National Bank of Kazakhstan",
            "as_of": "2099-01-01T06:00:00+05:00",
        },
    )
    assert posted.status_code == 201, posted.text
    after = await estimate(client, bag["id"], "KZ", "Almaty", "KZT")
    assert (before["unit_price"]["amount"], after["unit_price"]["amount"]) == (
        "6025.00",
        "6100.00",
    )
    assert figures(after) == quoted(await quote(client, [(bag["id"], 1)], "KZ", "Almaty", "KZT"))


@pytest.fixture
async def second_app(
    app: FastAPI, database: TestDatabase, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    other = create_app(make_settings(database.url, tmp_path_factory.mktemp("second")))
    async with other.router.lifespan_context(other):
        transport = httpx.ASGITransport(app=other)
        async with httpx.AsyncClient(transport=transport, base_url="http://second") as c:
            yield c


async def test_two_processes_sharing_a_database_both_see_a_change(
    client: httpx.AsyncClient, second_app: httpx.AsyncClient
) -> None:
    """Both instances cached the estimate; a price change made through one shows in both."""
    _, mh = await merchant(client)
    bag = await stocked_product(client, mh, KZALA=3, price={"amount": "100.00", "currency": "EUR"})
    for c in (client, second_app):
        await estimate(c, bag["id"], "UZ", "Tashkent", "UZS")
        await estimate(c, bag["id"], "UZ", "Tashkent", "UZS")
        assert cache_of(c).hits >= 1
    changed = await client.patch(
        f"/api/v1/products/{bag['id']}",
        json={"price": {"amount": "150.00", "currency": "EUR"}},
        headers=mh,
    )
    assert changed.status_code == 200, changed.text
    for c in (client, second_app):
        body = await estimate(c, bag["id"], "UZ", "Tashkent", "UZS")
        assert body["unit_price"]["amount"] == "2107500.00"  # 150 * 14,050


async def test_a_signed_in_uzbek_buyer_gets_their_own_allowance(
    client: httpx.AsyncClient,
) -> None:
    """After a parcel this month the buyer's allowance is smaller: duties differ from the
    anonymous figure and equal the buyer's own one-unit quote."""
    _, mh = await merchant(client)
    bag = await stocked_product(
        client, mh, DEDUI=5, weight_grams=2000, price={"amount": "150.00", "currency": "EUR"}
    )
    _, buyer = await account(client)
    fresh = await estimate(client, bag["id"], "UZ", "Tashkent", "UZS", headers=buyer)
    assert fresh["monthly_allowance"] is True and fresh["duties"]["amount"] == "0.00"
    placed = await order(client, buyer, [(bag["id"], 1)], ship_to=TASHKENT)
    assert placed.status_code == 201, placed.text

    mine = await estimate(client, bag["id"], "UZ", "Tashkent", "UZS", headers=buyer, locale="uz")
    anonymous = await estimate(client, bag["id"], "UZ", "Tashkent", "UZS", locale="uz")
    assert mine["personal"] is True and anonymous["personal"] is False
    assert anonymous["duties"]["amount"] == "0.00"
    assert mine["duties"]["amount"] == "537776.00"  # USD 148 over the USD 26 left, at 30 %
    q = await quote(client, [(bag["id"], 1)], "UZ", "Tashkent", "UZS", headers=buyer, locale="uz")
    assert figures(mine) == quoted(q)
    assert mine["customs"] == q["shipments"][0]["customs"]
    assert mine["rates"] == q["rates"]


async def test_http_caching_headers(client: httpx.AsyncClient) -> None:
    """Anonymous answers are public with an ETag (a match is a bodiless 304); signed-in
    answers are private."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=10)
    url = f"/api/v1/products/{cream['id']}/delivery-estimate?country=KZ&city=Almaty&locale=kk"
    first = await client.get(url)
    assert first.status_code == 200
    assert first.headers["cache-control"].startswith("public, max-age=")
    etag = first.headers["etag"]
    again = await client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    other_locale = await client.get(url.replace("kk", "ru"), headers={"If-None-Match": etag})
    assert other_locale.status_code == 200
    await stock(client, mh, cream["id"], KZALA=0, DEDUI=3)
    moved = await client.get(url, headers={"If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["etag"] != etag
    _, viewer = await account(client)
    signed_in = await client.get(url, headers=viewer)
    assert signed_in.headers["cache-control"] == "private, no-cache"


async def test_bad_input_gets_localized_errors(client: httpx.AsyncClient) -> None:
    """Unknown or deleted product 404, unserved country, missing city and unknown currency
    422, each in the request's language."""
    _, mh = await merchant(client)
    cream = await stocked_product(client, mh, KZALA=10)
    base = "/api/v1/products"

    async def error(url: str, status: int, code: str) -> str:
        response = await client.get(url)
        assert response.status_code == status, response.text
        body = response.json()["error"]
        assert body["code"] == code
        message: str = body["message"]
        return message

    missing = await error(
        f"{base}/999999/delivery-estimate?country=KZ&city=Almaty&locale=ru",
        404,
        "product_not_found",
    )
    assert "999999" in missing and "Product" not in missing
    deleted = await client.delete(f"{base}/{cream['id']}", headers=mh)
    assert deleted.status_code == 204
    await error(
        f"{base}/{cream['id']}/delivery-estimate?country=KZ&city=Almaty", 404, "product_not_found"
    )
    other = await stocked_product(client, mh, KZALA=10, sku="KHG-EST-2")
    url = f"{base}/{other['id']}/delivery-estimate"
    served = await error(f"{url}?country=FR&city=Paris&locale=kk", 422, "destination_not_served")
    assert "FR" in served and "We do not deliver" not in served
    await error(f"{url}?country=KZ&locale=uz", 422, "validation_error")
    await error(f"{url}?country=KZ&city=&locale=uz", 422, "validation_error")
    await error(f"{url}?country=KAZ&city=Almaty", 422, "validation_error")
    await error(f"{url}?country=KZ&city=Almaty&currency=XYZ&locale=kk", 422, "unsupported_currency")
    await error(f"{base}/0/delivery-estimate?country=KZ&city=Almaty", 422, "validation_error")


async def test_room_estimates_equal_the_endpoint_in_every_currency(
    client: httpx.AsyncClient,
) -> None:
    """What a pin carries, rendered for any currency, is what the endpoint answers there,
    duties included."""
    from livecommerce.db import session_scope
    from livecommerce.i18n.money import supported_currencies
    from livecommerce.logistics.network import load_network
    from livecommerce.orders.estimates import room_estimates
    from livecommerce.rooms.render import render

    _, mh = await merchant(client)
    coat = await stocked_product(
        client, mh, DEDUI=5, weight_grams=1200, price={"amount": "260.00", "currency": "EUR"}
    )
    app = client._transport.app  # type: ignore[attr-defined]
    async with session_scope(app.state.sessions, read_only=True) as session:
        carried = await room_estimates(
            coat["id"], session=session, cache=app.state.estimates, network=load_network()
        )
    assert carried["out_of_stock"] is False
    cities = {(d["country"], d["city_key"]): d for d in carried["destinations"]}
    assert {("KZ", "almaty"), ("UZ", "tashkent"), ("RU", "moscow")} <= set(cities)
    for country, key, city in (("RU", "moscow", "Москва"), ("UZ", "samarkand", "Samarqand")):
        for currency in supported_currencies():
            shown = render(cities[(country, key)], "ru", currency)
            body = await estimate(client, coat["id"], country, city, currency, locale="ru")
            assert [shown[f] for f in ("unit_price", "shipping", "duties", "total")] == [
                body[f] for f in ("unit_price", "shipping", "duties", "total")
            ], (country, currency)
            assert shown["eta"] == body["eta"] and shown["city"] == body["destination"]["city"]
    assert render(cities[("RU", "moscow")], "ru", "RUB")["duties"]["amount"] != "0.00"
