"""Security headers on every API answer, and OPTIONS answered with the path's methods."""

from __future__ import annotations

import httpx

from tests.fixtures.factories import account
from tests.orders.shop import ALMATY, merchant, stocked_product


def assert_hardened(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff", response.headers
    assert response.headers["cache-control"] == "no-store", response.headers


async def test_api_answers_carry_nosniff_and_no_store(client: httpx.AsyncClient) -> None:
    """Successes, errors, 404s and the order path say nosniff and no-store."""
    _, mh = await merchant(client)
    product = await stocked_product(client, mh, KZALA=3)
    assert_hardened(await client.get("/api/v1/me", headers=mh))
    assert_hardened(await client.get("/api/v1/me"))
    assert_hardened(await client.get("/api/v1/nothing-here"))
    assert_hardened(await client.get(f"/api/v1/products/{product['id']}", headers=mh))
    _, buyer = await account(client)
    placed = await client.post(
        "/api/v1/orders?locale=en",
        json={
            "items": [{"product_id": product["id"], "quantity": 1}],
            "ship_to": ALMATY,
            "payment_method": "cod",
        },
        headers=buyer,
    )
    assert placed.status_code == 201, placed.text
    assert_hardened(placed)


async def test_own_cache_control_is_kept(client: httpx.AsyncClient) -> None:
    """The delivery estimate keeps its max-age, static files keep theirs; both get nosniff."""
    _, mh = await merchant(client)
    product = await stocked_product(client, mh, KZALA=3)
    estimate = await client.get(
        f"/api/v1/products/{product['id']}/delivery-estimate?country=KZ&city=Almaty"
    )
    assert estimate.status_code == 200, estimate.text
    assert "max-age" in estimate.headers["cache-control"]
    assert estimate.headers["x-content-type-options"] == "nosniff"
    page = await client.get("/")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers.get("cache-control") != "no-store"


async def test_options_lists_the_methods_of_the_path(client: httpx.AsyncClient) -> None:
    """OPTIONS is a 204 whose Allow names every method of the path; an unknown path is 404."""
    products = await client.options("/api/v1/products")
    assert products.status_code == 204, products.text
    allowed = {m.strip() for m in products.headers["allow"].split(",")}
    assert {"GET", "POST", "OPTIONS"} <= allowed and "DELETE" not in allowed
    one = await client.options("/api/v1/products/1")
    assert one.status_code == 204
    assert {"GET", "PATCH", "DELETE", "OPTIONS"} <= {
        m.strip() for m in one.headers["allow"].split(",")
    }
    assert one.headers["x-content-type-options"] == "nosniff"
    missing = await client.options("/api/v1/nothing-here")
    assert missing.status_code == 404
