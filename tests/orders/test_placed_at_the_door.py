"""Flash-sale winners placed by the order route's front door, without the request machinery:
the route's answer, byte for byte where it matters, and the gate's units kept right."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from starlette.types import Receive, Scope, Send

from livecommerce.accounts.models import User
from livecommerce.accounts.security import decode_token
from livecommerce.app import create_app
from livecommerce.db import session_scope
from livecommerce.flashsales.admission import Admission
from livecommerce.flashsales.models import FlashSale
from livecommerce.orders.front_door import OrderFrontDoor
from livecommerce.orders.models import Order
from tests.flashsales.test_flash_sales_api import statements
from tests.orders.shop import ALMATY, merchant, order, stock, stocked_product
from tests.orders.test_concurrency import buyers
from tests.orders.test_orders_api import flash_sale, live_stream

ORDERS = "/api/v1/orders"


@contextmanager
def reaching_the_route(app: FastAPI) -> Iterator[list[str]]:
    """The order requests the front door let through to the route (rather than answering
    them itself) while the block runs."""
    if app.middleware_stack is None:
        app.middleware_stack = app.build_middleware_stack()
    door: Any = app.middleware_stack
    while not isinstance(door, OrderFrontDoor):
        door = door.app
    inner = door.app
    seen: list[str] = []

    async def spy(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == ORDERS:
            seen.append(scope["path"])
        await inner(scope, receive, send)

    door.app = spy
    try:
        yield seen
    finally:
        door.app = inner


@contextmanager
def without_gate(app: FastAPI) -> Iterator[None]:
    """No admission gate while the block runs: every order goes to the route, which decides
    from the database alone (the reference answers)."""
    kept = app.state.admission
    app.state.admission = Admission(None, sessions=app.state.sessions)
    try:
        yield
    finally:
        app.state.admission = kept


async def running_sale(
    client: httpx.AsyncClient, *, quantity: int = 5, stocked: int = 20, **extra: Any
) -> tuple[int, int, int, dict[str, str]]:
    """A live stream's flash sale: (product, stream, sale, merchant's headers)."""
    _, mh = await merchant(client)
    hot = await stocked_product(client, mh, KZALA=stocked)
    sid = await live_stream(client, mh)
    sale = await flash_sale(client, mh, sid, hot["id"], quantity=quantity, **extra)
    return hot["id"], sid, sale["id"], mh


async def remaining_at_gate(app: FastAPI, sale: int) -> int:
    """The sale's units the gate still holds (asked for an unknown buyer, taking nothing)."""
    return int((await app.state.admission.gate.peek(sale, 999_999, 1, False)).remaining)


def user_id(app: FastAPI, headers: dict[str, str]) -> int:
    secret = app.state.settings.resolved_secret_key()
    uid = decode_token(headers["Authorization"][7:], secret=secret).user_id
    assert uid is not None
    return uid


async def orders_of(app: FastAPI, buyer: int) -> int:
    async with session_scope(app.state.sessions, read_only=True) as session:
        count = await session.scalar(
            select(func.count()).select_from(Order).where(Order.buyer_id == buyer)
        )
        return int(count or 0)


def comparable(placed: dict[str, Any]) -> dict[str, Any]:
    """An order's answer without what differs between two buyers' orders (ids, times)."""
    body = dict(placed)
    for key in ("id", "created_at"):
        body.pop(key)
    body["events"] = [
        {k: v for k, v in e.items() if k not in ("at", "actor")} for e in body["events"]
    ]
    body["payment"] = {
        k: v for k, v in body["payment"].items() if k not in ("pay_url", "expires_at")
    }
    return body


def same_headers(a: httpx.Response, b: httpx.Response) -> None:
    names = {"content-type", "content-length", "www-authenticate", "retry-after"}
    assert {k: v for k, v in a.headers.items() if k in names} == {
        k: v for k, v in b.headers.items() if k in names
    }


@pytest.mark.parametrize("method", ["cod", "card"])
async def test_a_winner_placed_at_the_door_gets_the_routes_answer(
    app: FastAPI, client: httpx.AsyncClient, method: str
) -> None:
    """The same order, named language (placed at the door) and saved language (placed by
    the route): the same 201, body and headers, and both in the database."""
    product, sid, sale, _ = await running_sale(client)
    at_door, by_route = await buyers(app, 2)
    items = [(product, 1)]
    with reaching_the_route(app) as reached:
        fast = await order(
            client, {**at_door, "Accept-Language": "ru"}, items, method=method,
            stream_id=sid, flash_sale_id=sale, key="first",
        )  # fmt: skip
    assert reached == []
    with reaching_the_route(app) as reached:
        full = await order(
            client, by_route, items, method=method, stream_id=sid, flash_sale_id=sale, key="first"
        )
    assert reached == [ORDERS]
    assert fast.status_code == full.status_code == 201, (fast.text, full.text)
    assert comparable(fast.json()) == comparable(full.json())
    assert fast.json()["currency"] == "RUB" and fast.json()["status"] == full.json()["status"]
    assert fast.headers["location"] == f"{ORDERS}/{fast.json()['id']}"
    assert full.headers["location"] == f"{ORDERS}/{full.json()['id']}"
    assert "idempotent-replayed" not in fast.headers
    same_headers(fast, full)
    stored = await client.get(f"{ORDERS}/{fast.json()['id']}?locale=ru", headers=at_door)
    assert stored.json() == fast.json()
    assert await remaining_at_gate(app, sale) == 3


async def test_the_currency_is_the_buyers_saved_one_unless_the_request_names_one(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """At the door, with no ?currency= the order is in the buyer's saved currency (not the
    language's market one); ?currency= wins over it."""
    product, _, sale, _ = await running_sale(client)
    saved, named = await buyers(app, 2)
    for headers in (saved, named):
        patched = await client.patch("/api/v1/me", json={"currency": "KZT"}, headers=headers)
        assert patched.status_code == 200, patched.text
    lang = {"Accept-Language": "uz"}  # UZS is the uz market's currency
    with reaching_the_route(app) as reached:
        in_saved = await order(client, {**saved, **lang}, [(product, 1)], flash_sale_id=sale)
        in_named = await order(
            client, {**named, **lang}, [(product, 1)], flash_sale_id=sale, query="?currency=eur"
        )
    assert reached == []
    assert in_saved.status_code == in_named.status_code == 201, (in_saved.text, in_named.text)
    assert in_saved.json()["currency"] == "KZT"
    assert in_saved.json()["total"]["currency"] == "KZT"
    assert in_named.json()["currency"] == "EUR"


async def test_a_deactivated_account_hears_401_from_the_door(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """An account deactivated after its token was issued: the door's answer is the route's
    401 (same body and headers, in the request's language), and the unit goes back."""
    product, _, sale, _ = await running_sale(client, quantity=1)
    gone, next_buyer = await buyers(app, 2)
    async with session_scope(app.state.sessions) as session:
        await session.execute(
            update(User).where(User.id == user_id(app, gone)).values(is_active=False)
        )
    lang = {"Accept-Language": "kk"}
    with reaching_the_route(app) as reached:
        refused = await order(client, {**gone, **lang}, [(product, 1)], flash_sale_id=sale)
    assert reached == []
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_token"
    assert refused.headers["www-authenticate"] == "Bearer"
    assert await remaining_at_gate(app, sale) == 1  # the door's unit went back
    with without_gate(app), reaching_the_route(app) as reached:
        routed = await order(client, {**gone, **lang}, [(product, 1)], flash_sale_id=sale)
    assert reached == [ORDERS]
    assert routed.status_code == 401 and routed.json() == refused.json()
    same_headers(refused, routed)
    won = await order(client, {**next_buyer, **lang}, [(product, 1)], flash_sale_id=sale)
    assert won.status_code == 201, won.text


async def test_a_signed_out_token_hears_401_from_the_door(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A token from before its user signed out: the door refuses it as the route does, 401,
    and the unit goes back."""
    product, _, sale, _ = await running_sale(client, quantity=1)
    gone, next_buyer = await buyers(app, 2)
    out = await client.post("/api/v1/auth/logout", headers=gone)
    assert out.status_code == 204
    gone = {**gone, "Accept-Language": "ru"}  # the door takes requests that name a language
    with reaching_the_route(app) as reached:
        refused = await order(client, gone, [(product, 1)], flash_sale_id=sale)
    assert reached == []
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_token"
    assert await remaining_at_gate(app, sale) == 1
    with without_gate(app), reaching_the_route(app) as reached:
        routed = await order(client, gone, [(product, 1)], flash_sale_id=sale)
    assert reached == [ORDERS]
    assert routed.status_code == 401 and routed.json() == refused.json()
    won = await order(client, next_buyer, [(product, 1)], flash_sale_id=sale)
    assert won.status_code == 201, won.text


async def test_a_replay_placed_at_the_door_takes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A keyed retry the gate admits (it lost count of the buyer's units) is placed at the
    door as a replay: the first answer, Idempotent-Replayed, no second order, and the unit
    back to the gate."""
    product, _, sale, _ = await running_sale(client, quantity=3)
    [buyer] = await buyers(app, 1)
    headers = {**buyer, "Accept-Language": "ru"}
    with reaching_the_route(app) as reached:
        first = await order(client, headers, [(product, 1)], flash_sale_id=sale, key="k1")
        await app.state.admission.gate.give_back(sale, user_id(app, buyer), 1)
        assert await remaining_at_gate(app, sale) == 3
        again = await order(client, headers, [(product, 1)], flash_sale_id=sale, key="k1")
    assert reached == []
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert "location" not in again.headers
    assert again.json() == first.json()
    assert await orders_of(app, user_id(app, buyer)) == 1
    assert await remaining_at_gate(app, sale) == 3  # the replay's unit went back


async def test_duplicates_at_the_same_moment_make_one_order(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Eight requests with one Idempotency-Key at once: the door places the first, every
    answer is that order, the database holds one, and the gate counts one unit taken."""
    product, _, sale, _ = await running_sale(client, quantity=10)
    [buyer] = await buyers(app, 1)
    headers = {**buyer, "Accept-Language": "ru"}
    with reaching_the_route(app) as reached:
        answers = await asyncio.gather(
            *(
                order(client, headers, [(product, 1)], flash_sale_id=sale, key="same")
                for _ in range(8)
            )
        )
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum("idempotent-replayed" not in a.headers for a in answers) == 1
    assert len(reached) < 8  # at least the first was placed at the door
    assert await orders_of(app, user_id(app, buyer)) == 1
    assert await remaining_at_gate(app, sale) == 9


async def test_a_rush_at_the_door_sells_exactly_the_sale(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """30 buyers at once for 10 units, every one with its language named: 10 orders placed
    at the door, 20 refusals, none of them through the route, nothing oversold."""
    product, _, sale, _ = await running_sale(client, quantity=10)
    crowd = await buyers(app, 30)
    with reaching_the_route(app) as reached:
        answers = await asyncio.gather(
            *(
                order(client, {**b, "Accept-Language": "ru"}, [(product, 1)], flash_sale_id=sale)
                for b in crowd
            )
        )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 10 + [409] * 20, [a.text for a in answers if a.status_code != 201]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {
        "flash_sale_sold_out"
    }
    assert reached == []
    async with session_scope(app.state.sessions, read_only=True) as session:
        placed = await session.scalar(
            select(func.count()).select_from(Order).where(Order.flash_sale_id == sale)
        )
        row = await session.get(FlashSale, sale)
    assert placed == 10
    assert row is not None and row.remaining == 0


async def compare_refusal(
    app: FastAPI,
    client: httpx.AsyncClient,
    sale: int,
    send: Any,
    *,
    code: str,
    status: int,
) -> None:
    """``send(headers)`` answered at the door, after the gate handed it a unit, is the same
    response the route gives the same request without the gate; the unit goes back."""
    before = await remaining_at_gate(app, sale)
    with reaching_the_route(app) as reached, statements(app) as seen:
        at_door = await send()
    assert reached == [] and seen  # answered at the door, after database work
    assert at_door.status_code == status, at_door.text
    assert at_door.json()["error"]["code"] == code
    assert await remaining_at_gate(app, sale) == before
    with without_gate(app), reaching_the_route(app) as reached:
        routed = await send()
    assert reached == [ORDERS]
    assert routed.status_code == status and routed.json() == at_door.json()
    same_headers(at_door, routed)


async def test_refusals_of_the_order_path_are_the_routes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Out of stock, a stream that does not exist, a city not served, a reused key, an
    unsupported currency: at the door the same localized answer as through the route."""
    product, _, sale, mh = await running_sale(client, quantity=5, stocked=20)
    [buyer] = await buyers(app, 1)
    kk = {**buyer, "Accept-Language": "kk"}
    items = [(product, 1)]

    def send(*, headers: dict[str, str] = kk, **extra: Any) -> Any:
        return lambda: order(client, headers, items, flash_sale_id=sale, **extra)

    await compare_refusal(
        app, client, sale, send(stream_id=987_654), code="stream_not_found", status=404
    )
    nowhere = {**ALMATY, "country": "FR", "city": "Paris"}
    await compare_refusal(
        app, client, sale, send(ship_to=nowhere), code="destination_not_served", status=422
    )
    await compare_refusal(
        app, client, sale, send(query="?currency=XXX"), code="unsupported_currency", status=422
    )
    first = await order(client, kk, items, flash_sale_id=sale, key="used")
    assert first.status_code == 201, first.text
    await app.state.admission.gate.give_back(sale, user_id(app, buyer), 1)  # gate lost count
    await compare_refusal(
        app,
        client,
        sale,
        send(key="used", ship_to={**ALMATY, "city": "Astana"}),
        code="idempotency_key_reused",
        status=422,
    )
    await stock(client, mh, product, KZALA=0)  # the sale has units, the warehouse none
    await compare_refusal(
        app, client, sale, send(headers={**buyer, "Accept-Language": "uz"}),
        code="out_of_stock", status=409,
    )  # fmt: skip


async def test_the_per_customer_limit_from_the_database_is_the_routes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A buyer at the sale's limit whom the gate lost count of: the database's
    limit_exceeded, at the door as through the route."""
    product, _, sale, _ = await running_sale(client, quantity=5, per_customer_limit=1)
    [buyer] = await buyers(app, 1)
    headers = {**buyer, "Accept-Language": "en"}
    assert (await order(client, headers, [(product, 1)], flash_sale_id=sale)).status_code == 201
    await app.state.admission.gate.give_back(sale, user_id(app, buyer), 1)
    await compare_refusal(
        app,
        client,
        sale,
        lambda: order(client, headers, [(product, 1)], flash_sale_id=sale),
        code="limit_exceeded",
        status=409,
    )


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [("bug", 500, "internal_error"), ("pool", 503, "service_unavailable")],
)
async def test_unexpected_failures_get_the_apps_answer(
    app: FastAPI,
    client: httpx.AsyncClient,
    lenient: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    failure: str,
    status: int,
    code: str,
) -> None:
    """A bug in the order path is the app's 500, a pool that stayed busy its 503 with
    Retry-After, at the door as through the route; the unit goes back."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from livecommerce.orders import service

    product, _, sale, _ = await running_sale(client)
    [buyer] = await buyers(app, 1)

    async def broken(**_: Any) -> Any:
        raise RuntimeError("boom") if failure == "bug" else PoolTimeout()

    monkeypatch.setattr(service, "place_order", broken)
    headers = {**buyer, "Accept-Language": "uz"}
    await compare_refusal(
        app,
        lenient,
        sale,
        lambda: order(lenient, headers, [(product, 1)], flash_sale_id=sale),
        code=code,
        status=status,
    )


async def test_what_the_door_answers_passes_the_outer_layers(
    client: httpx.AsyncClient, database: Any, tmp_path: Any
) -> None:
    """With CORS configured, a winner placed at the door and a loser refused there carry
    the CORS headers the route's answers carry: the door sits inside those layers."""
    from tests.conftest import make_settings

    origin = "https://shop.example.kz"
    cors_app = create_app(make_settings(database.url, tmp_path, cors_origins=[origin]))
    async with cors_app.router.lifespan_context(cors_app):
        transport = httpx.ASGITransport(app=cors_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            product, _, sale, _ = await running_sale(c, quantity=1)
            first, second = await buyers(cors_app, 2)
            headers = {"Origin": origin, "Accept-Language": "ru"}
            with reaching_the_route(cors_app) as reached:
                won = await order(c, {**first, **headers}, [(product, 1)], flash_sale_id=sale)
                lost = await order(c, {**second, **headers}, [(product, 1)], flash_sale_id=sale)
            assert reached == []
            assert won.status_code == 201 and lost.status_code == 409
            for answer in (won, lost):
                assert answer.headers["access-control-allow-origin"] == origin


async def test_a_refusal_said_again_is_the_same_answer_as_the_routes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The door renders a refusal once per language and sends its bytes again: each repeat
    is the route's answer to the same request, and another language gets its own."""
    product, _, sale, _ = await running_sale(client, quantity=1)
    first, *losers = await buyers(app, 4)
    won = await order(
        client, {**first, "Accept-Language": "ru"}, [(product, 1)], flash_sale_id=sale
    )
    assert won.status_code == 201, won.text
    langs = ["ru", "ru", "kk"]
    with reaching_the_route(app) as reached:
        refused = [
            await order(client, {**b, "Accept-Language": lang}, [(product, 1)], flash_sale_id=sale)
            for b, lang in zip(losers, langs, strict=True)
        ]
    assert reached == []
    assert [r.status_code for r in refused] == [409] * 3
    assert refused[0].content == refused[1].content != refused[2].content
    with without_gate(app):
        for b, lang, at_door in zip(losers, langs, refused, strict=True):
            routed = await order(
                client, {**b, "Accept-Language": lang}, [(product, 1)], flash_sale_id=sale
            )
            assert routed.status_code == 409
            assert routed.json() == at_door.json()
            same_headers(routed, at_door)
