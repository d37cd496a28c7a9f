"""Short stock says how much is left only to the product's merchant (README: guests and
buyers see no stock figures), on the route and through the front door's refusal cache."""

from __future__ import annotations

import httpx

from tests.fixtures.factories import account
from tests.orders.shop import ALMATY, merchant, order, stocked_product

QUOTE_TO = {"country": "KZ", "city": "Almaty"}


async def test_only_the_products_merchant_hears_what_is_left(client: httpx.AsyncClient) -> None:
    """Guest, buyer and another merchant get out_of_stock without `available`; the owner
    gets the figure in details and message."""
    _, mh = await merchant(client)
    few = await stocked_product(client, mh, KZALA=2, DEDUI=1)
    body = {"items": [{"product_id": few["id"], "quantity": 5}], "ship_to": QUOTE_TO}
    _, buyer = await account(client)
    _, rival = await merchant(client)
    guest = (await client.post("/api/v1/auth/guest")).json()["access_token"]
    for headers in ({}, {"Authorization": f"Bearer {guest}"}, buyer, rival):
        for locale in ("en", "ru"):
            short = await client.post(f"/api/v1/quotes?locale={locale}", json=body, headers=headers)
            assert short.status_code == 409, short.text
            error = short.json()["error"]
            assert error["code"] == "out_of_stock" and "available" not in error["details"]
            assert "3" not in error["message"], error
    for headers in (buyer, rival):
        placed = await order(client, headers, [(few["id"], 5)], query="?locale=en")
        assert placed.status_code == 409, placed.text
        assert "available" not in placed.json()["error"]["details"]
        assert "3" not in placed.json()["error"]["message"]
    own = await client.post("/api/v1/quotes?locale=en", json=body, headers=mh)
    assert own.status_code == 409
    error = own.json()["error"]
    assert error["details"]["available"] == 3 and "3" in error["message"]
    own_order = await order(client, mh, [(few["id"], 5)], query="?locale=ru", ship_to=ALMATY)
    assert own_order.status_code == 409
    assert own_order.json()["error"]["details"]["available"] == 3


async def test_refusals_at_the_front_door_carry_no_figure(client: httpx.AsyncClient) -> None:
    """A sold-out product's refusals from the door (cached per language) hold no stock
    figure for any caller, and carry nosniff and no-store like the route's."""
    from tests.orders.test_concurrency import buyers
    from tests.orders.test_placed_at_the_door import reaching_the_route

    app = client._transport.app  # type: ignore[attr-defined]
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=1)
    first, second, third, fourth = await buyers(app, 4)
    assert (await order(client, first, [(hot["id"], 1)])).status_code == 201
    assert (await order(client, second, [(hot["id"], 1)])).status_code == 409  # marks it gone
    with reaching_the_route(app) as reached:
        answers = [
            await order(client, headers, [(hot["id"], 2)], query="?locale=en")
            for headers in (third, fourth, third)
        ]
    assert reached == []  # all three answered by the door
    for answer in answers:
        assert answer.status_code == 409, answer.text
        error = answer.json()["error"]
        assert error["code"] == "out_of_stock" and "available" not in error["details"]
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
    assert answers[0].content == answers[1].content == answers[2].content
