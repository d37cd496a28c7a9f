"""A stream's sales figures are its merchant's, its host's and admins'; others see the rest."""

from __future__ import annotations

import itertools

import httpx
from fastapi import FastAPI

from livecommerce.accounts.service import create_admin
from livecommerce.db import session_scope
from livecommerce.orders import tasks as order_tasks
from tests.fixtures.factories import PASSWORD, account, login
from tests.fixtures.hosts import link_host
from tests.orders.shop import order, stocked_product

TITLE = {"ru": "Вечерний эфир", "kk": "Кешкі эфир", "uz": "Kechki efir"}
_admins = itertools.count(1)


async def test_sales_figures_only_for_merchant_host_and_admin(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Guest, anonymous, another viewer, host and merchant see stats without sales; the
    stream's merchant, its host and an admin see GMV, orders and conversion."""
    _, mh = await account(client, role="merchant")
    host, hh = await account(client, role="host")
    await link_host(client, mh, host, hh)
    created = await client.post("/api/v1/streams", json={"title": TITLE}, headers=hh)
    sid = created.json()["id"]
    assert (await client.post(f"/api/v1/streams/{sid}/start", headers=hh)).status_code == 200
    cream = await stocked_product(client, mh, KZALA=5)
    _, buyer = await account(client)
    placed = await order(client, buyer, [(cream["id"], 1)], stream_id=sid)
    assert placed.status_code == 201, placed.text
    assert sid in await order_tasks.roll_up_stream_sales(sessions=app.state.sessions)

    email = f"admin{next(_admins)}-privacy@example.kz"
    async with session_scope(app.state.sessions) as session:
        await create_admin(session=session, email=email, password=PASSWORD, display_name="Admin")
    admin = await login(client, email)
    guest = (await client.post("/api/v1/auth/guest")).json()["access_token"]
    others = [
        {},
        {"Authorization": f"Bearer {guest}"},
        buyer,
        (await account(client))[1],
        (await account(client, role="merchant"))[1],
        (await account(client, role="host"))[1],
    ]
    for headers in others:
        detail = await client.get(f"/api/v1/streams/{sid}", headers=headers)
        assert detail.status_code == 200, detail.text
        stats = detail.json()["stats"]
        assert stats["sales"] is None, headers
        assert "peak_viewers" in stats and "viewer_count" in stats
        assert "gmv" not in detail.text and "by_locale" not in detail.text
    for headers in (mh, hh, admin):
        sales = (await client.get(f"/api/v1/streams/{sid}", headers=headers)).json()["stats"][
            "sales"
        ]
        assert sales is not None and sales["orders"] == 1, headers
        assert sales["gmv"] and "by_locale" in sales and "conversion" in sales
