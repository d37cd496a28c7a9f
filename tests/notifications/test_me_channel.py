"""``/ws/me`` over a real socket: a buyer hears of their orders live, and resumes by id."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.fixtures.factories import account
from tests.fixtures.frames import next_frame
from tests.fixtures.server import migrated_server
from tests.orders.shop import merchant, order, stocked_product
from tests.orders.test_payments import GOOD, confirm, start_payment


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("me-server")
    with migrated_server(data, notification_poll_seconds="0.2") as (base, _):
        yield base


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


def me_url(http: httpx.AsyncClient, token: str, **params: Any) -> str:
    base = str(http.base_url).replace("http://", "ws://").rstrip("/")
    query = "&".join(f"{k}={v}" for k, v in {"token": token, **params}.items())
    return f"{base}/ws/me?{query}"


async def test_a_buyer_hears_of_payment_and_cancellation_live_and_on_resume(
    http: httpx.AsyncClient,
) -> None:
    """Paid (by the provider's webhook) and cancelled reach the buyer's socket in Russian;
    a reconnect with last_seq=0 replays both in order; another user hears nothing."""
    _, mh = await merchant(http)
    product = await stocked_product(http, mh, KZALA=5)
    _, bh = await account(http)
    token = bh["Authorization"].removeprefix("Bearer ")
    _, other = await account(http)
    other_token = other["Authorization"].removeprefix("Bearer ")
    async with (
        connect(me_url(http, token, locale="ru")) as ws,
        connect(me_url(http, other_token)) as bystander,
    ):
        welcome = await next_frame(ws, "welcome")
        assert welcome["data"]["last_seq"] == 0 and welcome["data"]["locale"] == "ru"
        await next_frame(bystander, "welcome")
        placed = await order(http, bh, [(product["id"], 1)], method="card")
        assert placed.status_code == 201, placed.text
        oid = placed.json()["id"]
        payment = await start_payment(http, oid, bh)
        assert (await confirm(http, payment, GOOD)).json()["status"] == "succeeded"
        paid = await next_frame(ws, "order_status")
        assert paid["data"]["order_id"] == oid and paid["data"]["status"] == "paid"
        assert paid["data"]["text"] == f"Заказ #{oid}: оплачен"
        assert paid["seq"] == paid["data"]["seq"] == 1
        cancelled = await http.post(f"/api/v1/orders/{oid}/cancel", headers=bh)
        assert cancelled.status_code == 200, cancelled.text
        refunded = await next_frame(ws, "order_status")
        assert refunded["data"]["status"] == "refunded" and refunded["seq"] == 2
        with pytest.raises(TimeoutError):
            await next_frame(bystander, "order_status", wait_s=0.8)
        await ws.send(json.dumps({"type": "ping"}))
        assert (await next_frame(ws, "pong"))["seq"] is None

    async with connect(me_url(http, token, locale="en", last_seq=0)) as again:
        welcome = await next_frame(again, "welcome")
        assert welcome["data"]["resumed"] is True
        assert welcome["data"]["last_seq"] == refunded["seq"]
        replay = [await next_frame(again, "order_status") for _ in range(2)]
        assert [f["data"]["status"] for f in replay] == ["paid", "refunded"]
        assert replay[0]["data"]["text"] == f"Order #{oid}: paid"

    page = (await http.get("/api/v1/me/notifications?locale=kk", headers=bh)).json()
    assert [n["status"] for n in page["items"]] == ["paid", "refunded"]
    assert page["last_seq"] == refunded["seq"]
    later = (await http.get("/api/v1/me/notifications?after=1", headers=bh)).json()
    assert [n["seq"] for n in later["items"]] == [2]


async def test_strangers_and_bad_frames_are_refused_cleanly(http: httpx.AsyncClient) -> None:
    """No token or a guest token closes with 4401; junk frames get an error, not a crash."""
    guest = (await http.post("/api/v1/auth/guest")).json()["access_token"]
    for token in ("", "not-a-token", guest):
        async with connect(me_url(http, token)) as ws:
            error = await next_frame(ws, "error")
            assert error["data"]["code"] == "invalid_token"
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    _, bh = await account(http)
    async with connect(me_url(http, bh["Authorization"].removeprefix("Bearer "))) as ws:
        await next_frame(ws, "welcome")
        await ws.send("{nope")
        assert (await next_frame(ws, "error"))["data"]["code"] == "invalid_json"
        await ws.send(json.dumps({"type": "chat", "data": {"text": "hi"}}))
        assert (await next_frame(ws, "error"))["data"]["code"] == "unknown_type"
        await ws.send(b"\x00\x01")
        assert (await next_frame(ws, "error"))["data"]["code"] == "binary_not_supported"
        await ws.send(json.dumps({"type": "ping"}))
        await next_frame(ws, "pong")
