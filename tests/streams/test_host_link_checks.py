"""A stream's host acts for its merchant only while linked: every action checks it again."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect

from livecommerce.accounts.service import create_admin
from livecommerce.db import session_scope
from livecommerce.streams import service as streams
from tests.fixtures.factories import PASSWORD, account, login
from tests.fixtures.frames import next_frame
from tests.fixtures.hosts import link_host
from tests.orders.shop import stocked_product

TITLE = {"ru": "Вечерний эфир", "kk": "Кешкі эфир", "uz": "Kechki efir"}
SALE_PRICE = {"amount": "1.00", "currency": "CNY"}


async def hosted_stream(
    client: httpx.AsyncClient,
) -> tuple[dict[str, str], dict[str, Any], dict[str, str], int, dict[str, Any]]:
    """A live stream a linked host created for its merchant, and a stocked product:
    (merchant headers, host, host headers, stream id, product)."""
    _, mh = await account(client, role="merchant")
    host, hh = await account(client, role="host")
    await link_host(client, mh, host, hh)
    created = await client.post("/api/v1/streams", json={"title": TITLE}, headers=hh)
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    assert (await client.post(f"/api/v1/streams/{sid}/start", headers=hh)).status_code == 200
    product = await stocked_product(client, mh, KZALA=10)
    return mh, host, hh, sid, product


def host_actions(sid: int, product_id: int, sale_id: int, viewer_id: int) -> list[Any]:
    """Every action a stream's driver takes, as (method, path, json body)."""
    return [
        ("POST", f"/api/v1/streams/{sid}/pins", {"product_id": product_id}),
        ("POST", f"/api/v1/streams/{sid}/pins", {"product_id": None}),
        ("POST", f"/api/v1/streams/{sid}/announcements", {"text": {"ru": "Скидки!"}}),
        (
            "POST",
            f"/api/v1/streams/{sid}/flash-sales",
            {"product_id": product_id, "price": SALE_PRICE, "quantity": 5, "duration_s": 600},
        ),
        ("POST", f"/api/v1/streams/{sid}/flash-sales/{sale_id}/end", None),
        ("PUT", f"/api/v1/streams/{sid}/blocked-words", {"words": ["spam"]}),
        ("POST", f"/api/v1/streams/{sid}/moderation", {"user_id": viewer_id, "action": "mute"}),
        ("DELETE", f"/api/v1/streams/{sid}/chat/1", None),
        ("POST", f"/api/v1/streams/{sid}/end", None),
    ]


@pytest.mark.parametrize("how", ["removed", "left"])
async def test_a_host_no_longer_linked_drives_nothing(client: httpx.AsyncClient, how: str) -> None:
    """Removed by the merchant or gone of their own accord, the stream's host is refused
    every action on it (403 host_not_linked), a sale at their own price included; the
    stream stays the merchant's to run."""
    mh, host, hh, sid, product = await hosted_stream(client)
    viewer, _ = await account(client)
    sale = await client.post(
        f"/api/v1/streams/{sid}/flash-sales",
        json={"product_id": product["id"], "price": SALE_PRICE, "quantity": 5, "duration_s": 600},
        headers=hh,
    )
    assert sale.status_code == 201, sale.text
    merchant_id = (await client.get("/api/v1/me", headers=mh)).json()["merchant"]["id"]
    if how == "removed":
        gone = await client.delete(f"/api/v1/merchants/me/hosts/{host['id']}", headers=mh)
    else:
        gone = await client.delete(f"/api/v1/hosts/me/merchants/{merchant_id}", headers=hh)
    assert gone.status_code == 204

    for method, path, body in host_actions(sid, product["id"], sale.json()["id"], viewer["id"]):
        refused = await client.request(method, path, json=body, headers=hh)
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json()["error"]["code"] == "host_not_linked", (method, path)
    scheduled = await client.post("/api/v1/streams", json={"title": TITLE}, headers=mh)
    assert scheduled.status_code == 201
    start = await client.post(f"/api/v1/streams/{scheduled.json()['id']}/start", headers=hh)
    assert start.status_code == 403  # another of the merchant's streams: never the host's

    detail = (await client.get(f"/api/v1/streams/{sid}")).json()
    assert detail["flash_sale"]["id"] == sale.json()["id"]  # the refused calls changed nothing
    assert detail["status"] == "live" and detail["pinned_product"] is None
    pinned = await client.post(
        f"/api/v1/streams/{sid}/pins", json={"product_id": product["id"]}, headers=mh
    )
    assert pinned.status_code == 200, pinned.text


async def test_a_host_linked_again_drives_again(client: httpx.AsyncClient) -> None:
    """Invited and accepted once more, the host runs the stream again."""
    mh, host, hh, sid, product = await hosted_stream(client)
    await client.delete(f"/api/v1/merchants/me/hosts/{host['id']}", headers=mh)
    body = {"product_id": product["id"]}
    refused = await client.post(f"/api/v1/streams/{sid}/pins", json=body, headers=hh)
    assert refused.status_code == 403
    await link_host(client, mh, host, hh)
    pinned = await client.post(f"/api/v1/streams/{sid}/pins", json=body, headers=hh)
    assert pinned.status_code == 200, pinned.text


async def test_an_admin_cannot_put_an_unlinked_host_on_a_stream(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Only a host who accepted the merchant is put on its stream, by an admin too."""
    merchant, mh = await account(client, role="merchant")
    merchant_id = merchant["merchant"]["id"]
    host, hh = await account(client, role="host")
    await client.post("/api/v1/merchants/me/hosts", json={"email": host["email"]}, headers=mh)
    async with session_scope(app.state.sessions) as session:
        await create_admin(
            session=session, email="admin-links@example.kz", password=PASSWORD, display_name="A"
        )
    admin = await login(client, "admin-links@example.kz")
    body = {"title": TITLE, "merchant_id": merchant_id, "host_id": host["id"]}
    pending = await client.post("/api/v1/streams", json=body, headers=admin)
    assert pending.status_code == 403 and pending.json()["error"]["code"] == "host_not_linked"
    await client.post(f"/api/v1/hosts/me/merchants/{merchant_id}/accept", headers=hh)
    accepted = await client.post("/api/v1/streams", json=body, headers=admin)
    assert accepted.status_code == 201, accepted.text


async def test_may_drive_follows_the_link(app: FastAPI, client: httpx.AsyncClient) -> None:
    """The check by ids (for a room connection) answers as the actions do, at the time."""
    mh, host, _, sid, _ = await hosted_stream(client)
    viewer, _ = await account(client)

    async def may(user_id: int) -> bool:
        async with session_scope(app.state.sessions, read_only=True) as session:
            return await streams.may_drive(session=session, stream_id=sid, user_id=user_id)

    assert await may(host["id"]) and not await may(viewer["id"])
    await client.delete(f"/api/v1/merchants/me/hosts/{host['id']}", headers=mh)
    assert not await may(host["id"])


async def test_a_removed_host_in_the_room_can_be_muted(
    client: httpx.AsyncClient, ws_base: str
) -> None:
    """While linked, the host in its room cannot be muted; once removed, their open socket
    is a viewer's like any other: the merchant mutes them and their chat is refused."""
    mh, host, hh, sid, _ = await hosted_stream(client)
    token = hh["Authorization"].removeprefix("Bearer ")
    mute = {"user_id": host["id"], "action": "mute"}
    async with connect(f"{ws_base}/ws/streams/{sid}?token={token}") as ws:
        await next_frame(ws, "welcome")
        immune = await client.post(f"/api/v1/streams/{sid}/moderation", json=mute, headers=mh)
        assert immune.status_code == 409
        assert immune.json()["error"]["code"] == "cannot_moderate_host"

        await client.delete(f"/api/v1/merchants/me/hosts/{host['id']}", headers=mh)
        muted = await client.post(f"/api/v1/streams/{sid}/moderation", json=mute, headers=mh)
        assert muted.status_code == 204, muted.text
        await next_frame(ws, "moderation")
        await ws.send(json.dumps({"type": "chat", "data": {"text": "still here"}}))
        refused = await next_frame(ws, "error", "chat")
        assert refused["type"] == "error" and refused["data"]["code"] == "muted"
