"""The order route's front door: certain losers answered before the request machinery,
with exactly the route's answer; everything else passes through untouched."""

from __future__ import annotations

import json

import httpx
from fastapi import FastAPI

from tests.flashsales.test_flash_sales_api import statements, touching
from tests.orders.shop import ALMATY, merchant, order, stocked_product
from tests.orders.test_concurrency import buyers
from tests.orders.test_orders_api import flash_sale, live_stream


async def sold_out_sale(app: FastAPI, client: httpx.AsyncClient) -> tuple[int, int, list]:
    """A sale of one unit, won, and its first refusal (the database check) done."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=10)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=1)
    crowd = await buyers(app, 6)
    assert (await order(client, crowd[0], [(hot["id"], 1)], flash_sale_id=sale["id"])).is_success
    checked = await order(client, crowd[1], [(hot["id"], 1)], flash_sale_id=sale["id"])
    assert checked.json()["error"]["code"] == "flash_sale_sold_out"
    return hot["id"], sale["id"], crowd[2:]


async def test_a_certain_loser_costs_no_database_at_all(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """With its language named, a loser's 409 is answered without a single SQL statement,
    in that language."""
    product, sale, crowd = await sold_out_sale(app, client)
    headers = {**crowd[0], "Accept-Language": "kk-KZ,kk;q=0.9,ru;q=0.8"}
    with statements(app) as seen:
        lost = await order(client, headers, [(product, 1)], flash_sale_id=sale)
    assert lost.status_code == 409
    assert lost.json()["error"]["code"] == "flash_sale_sold_out"
    assert lost.json()["error"]["details"] == {"remaining": 0}
    assert seen == []


async def test_the_front_doors_answer_is_the_routes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The same refusal through the front door (?locale=uz) and through the route (no
    language named: the user's saved one, looked up) is the same response."""
    product, sale, crowd = await sold_out_sale(app, client)
    patched = await client.patch("/api/v1/me", json={"locale": "uz"}, headers=crowd[1])
    assert patched.status_code == 200, patched.text
    with statements(app) as front:
        fast = await order(client, crowd[0], [(product, 1)], flash_sale_id=sale, query="?locale=uz")
    with statements(app) as route:
        full = await order(client, crowd[1], [(product, 1)], flash_sale_id=sale)
    assert front == [] and route  # one answered at the door, one by the route
    assert fast.status_code == full.status_code == 409
    assert fast.json() == full.json()


async def test_what_the_door_cannot_judge_goes_to_the_route(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A bad token is still a 401, a bad body a 422 (also a valid order that is not sent as
    JSON, which FastAPI does not read), and a guest's order a 403, sold out or not."""
    product, sale, crowd = await sold_out_sale(app, client)
    lang = {"Accept-Language": "ru"}
    bad_token = await order(
        client, {"Authorization": "Bearer nope", **lang}, [(product, 1)], flash_sale_id=sale
    )
    assert bad_token.status_code == 401
    body = {"items": [{"product_id": product, "quantity": 1}], "flash_sale_id": sale}
    no_address = await client.post("/api/v1/orders", json=body, headers={**crowd[0], **lang})
    assert no_address.status_code == 422
    full = {**body, "ship_to": ALMATY, "payment_method": "cod"}
    as_text = await client.post(
        "/api/v1/orders",
        content=json.dumps(full),
        headers={**crowd[0], **lang, "Content-Type": "text/plain"},
    )
    assert as_text.status_code == 422, as_text.text
    as_json = await client.post(
        "/api/v1/orders",
        content=json.dumps(full),
        headers={**crowd[0], **lang, "Content-Type": "application/json; charset=utf-8"},
    )
    assert as_json.status_code == 409, as_json.text  # read as JSON: refused at the door
    guest = (await client.post("/api/v1/auth/guest")).json()["access_token"]
    as_guest = await order(
        client, {"Authorization": f"Bearer {guest}", **lang}, [(product, 1)], flash_sale_id=sale
    )
    assert as_guest.status_code == 403


async def test_orders_that_may_win_pass_through(app: FastAPI, client: httpx.AsyncClient) -> None:
    """With units left the door lets the order through to be placed, body intact."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=10)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=2)
    [buyer] = await buyers(app, 1)
    placed = await order(
        client,
        {**buyer, "Accept-Language": "ru"},
        [(hot["id"], 1)],
        flash_sale_id=sale["id"],
        stream_id=sid,
        ship_to=ALMATY,
    )
    assert placed.status_code == 201, placed.text
    assert placed.json()["stream_id"] == sid


async def test_units_taken_at_the_door_come_back_when_the_order_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The door takes the last unit for a deactivated account's order, then answers 401 on
    looking the account up, and the unit goes back: the next buyer gets it."""
    from sqlalchemy import update

    from livecommerce.accounts.models import User
    from livecommerce.accounts.security import decode_token
    from livecommerce.db import session_scope

    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=10)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=1)
    gone, next_buyer = await buyers(app, 2)
    secret = app.state.settings.resolved_secret_key()
    user_id = decode_token(gone["Authorization"][7:], secret=secret).user_id
    async with session_scope(app.state.sessions) as session:
        await session.execute(update(User).where(User.id == user_id).values(is_active=False))
    lang = {"Accept-Language": "ru"}
    refused = await order(client, {**gone, **lang}, [(hot["id"], 1)], flash_sale_id=sale["id"])
    assert refused.status_code == 401
    won = await order(client, {**next_buyer, **lang}, [(hot["id"], 1)], flash_sale_id=sale["id"])
    assert won.status_code == 201, won.text


async def test_a_keyed_retry_of_a_won_order_takes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A keyed retry of a won order (let through by the gate: the buyer holds units) replays
    and takes nothing from the gate."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=10)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=2)
    [first] = await buyers(app, 1)
    headers = {**first, "Accept-Language": "ru"}
    placed = await order(client, headers, [(hot["id"], 1)], flash_sale_id=sale["id"], key="k")
    again = await order(client, headers, [(hot["id"], 1)], flash_sale_id=sale["id"], key="k")
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == placed.json()["id"]
    gate = app.state.admission.gate
    assert (await gate.peek(sale["id"], 999, 1, False)).remaining == 1


async def test_a_gate_wrong_at_the_door_is_corrected_beside_the_requests(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The gate lost its units: the door's refusals start checks against the database (not
    awaited by the requests); the database shows the same units at two checks a second
    apart, so they were lost rather than in flight: the gate is rebuilt, the next buyer
    wins."""
    import asyncio

    from sqlalchemy import update

    from livecommerce.db import session_scope
    from livecommerce.flashsales.models import FlashSale

    product, sale, crowd = await sold_out_sale(app, client)
    async with session_scope(app.state.sessions) as session:  # two more units, gate unaware
        await session.execute(
            update(FlashSale).where(FlashSale.id == sale).values(quantity=3, remaining=2)
        )
    admission = app.state.admission
    lang = {"Accept-Language": "ru"}
    for loser in crowd[:2]:
        admission._verified.clear()  # a second has passed since the last check
        with statements(app) as seen:
            first = await order(client, {**loser, **lang}, [(product, 1)], flash_sale_id=sale)
            await asyncio.gather(*admission._checks)
        assert first.status_code == 409  # answered at once, from the gate
        assert touching(seen, "flash_sales")  # ...while the check read the sale
    won = await order(client, {**crowd[2], **lang}, [(product, 1)], flash_sale_id=sale)
    assert won.status_code == 201, won.text


async def test_a_process_that_did_not_start_the_sale_answers_at_the_door(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Another process (a fresh Admission over the same Redis gate) knows the sale only from
    the gate, and still answers its losers at the door, with no SQL."""
    import time
    import uuid

    from livecommerce.flashsales.admission import Admission
    from livecommerce.flashsales.gate import RedisGate
    from tests.fixtures.redis import prepare_redis

    url = await prepare_redis()
    prefix = f"test:{uuid.uuid4().hex}:"
    app.state.admission = Admission(RedisGate(url, prefix=prefix), sessions=app.state.sessions)
    product, sale, crowd = await sold_out_sale(app, client)
    other = Admission(RedisGate(url, prefix=prefix), sessions=app.state.sessions)
    await app.state.admission.gate.close()
    app.state.admission = other
    other._verified[sale] = time.monotonic()  # the check against the database ran just now
    lang = {"Accept-Language": "uz"}
    with statements(app) as seen:
        lost = await order(client, {**crowd[0], **lang}, [(product, 1)], flash_sale_id=sale)
    assert lost.status_code == 409 and lost.json()["error"]["code"] == "flash_sale_sold_out"
    assert seen == []


async def test_units_the_database_still_shows_during_a_rush_are_not_taken_for_lost(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """In a rush the gate hands out every unit at once and the orders holding them commit
    over the next seconds: while the database's count keeps moving, the door's checks leave
    the gate alone (rebuilding it then would hand the same units out twice). Only a count
    that stays put between two checks is lost units, and rebuilt."""
    import asyncio

    from sqlalchemy import update

    from livecommerce.db import session_scope
    from livecommerce.flashsales.models import FlashSale

    product, sale, crowd = await sold_out_sale(app, client)
    admission = app.state.admission
    lang = {"Accept-Language": "ru"}

    async def remaining_in_database(units: int) -> None:
        async with session_scope(app.state.sessions) as session:
            await session.execute(
                update(FlashSale).where(FlashSale.id == sale).values(quantity=5, remaining=units)
            )

    async def refused_then_checked(buyer: dict[str, str]) -> int:
        admission._verified.clear()  # a second has passed since the last check
        answer = await order(client, {**buyer, **lang}, [(product, 1)], flash_sale_id=sale)
        await asyncio.gather(*admission._checks)
        return answer.status_code

    await remaining_in_database(3)  # orders the gate admitted, not yet committed
    assert await refused_then_checked(crowd[0]) == 409
    await remaining_in_database(2)  # one of them committed meanwhile
    assert await refused_then_checked(crowd[1]) == 409
    assert (await admission.gate.peek(sale, 999_999, 1, False)).remaining == 0  # left alone
    assert await refused_then_checked(crowd[2]) == 409  # the same 2 a second later: lost
    assert (await admission.gate.peek(sale, 999_999, 1, False)).remaining == 2  # rebuilt
    won = await order(client, {**crowd[3], **lang}, [(product, 1)], flash_sale_id=sale)
    assert won.status_code == 201, won.text
