"""Flash-sale winners placed together (``orders/winners.py``): several orders in one
transaction, each with the answer it would get alone, and the database still the arbiter."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError

from livecommerce.accounts.models import User
from livecommerce.db import session_scope
from livecommerce.flashsales.models import FlashSale
from livecommerce.inventory.models import Stock
from livecommerce.orders.models import IdempotencyRecord, Order
from tests.orders.shop import TASHKENT, order
from tests.orders.test_concurrency import buyers
from tests.orders.test_placed_at_the_door import (
    ORDERS,
    comparable,
    reaching_the_route,
    remaining_at_gate,
    running_sale,
    user_id,
    without_gate,
)

RU = {"Accept-Language": "ru"}


async def rush(
    client: httpx.AsyncClient, crowd: list[dict[str, str]], product: int, sale: int, **extra: Any
) -> list[httpx.Response]:
    """Every buyer of ``crowd`` orders one unit of the sale at the same moment."""
    return await asyncio.gather(
        *(order(client, {**b, **RU}, [(product, 1)], flash_sale_id=sale, **extra) for b in crowd)
    )


async def placed_for_sale(app: FastAPI, sale: int) -> int:
    async with session_scope(app.state.sessions, read_only=True) as session:
        count = await session.scalar(
            select(func.count()).select_from(Order).where(Order.flash_sale_id == sale)
        )
    return int(count or 0)


async def test_winners_at_once_are_placed_together_with_the_answer_each_gets_alone(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Twelve winners at once, with keys: they are placed in batches (one transaction for
    several orders), and each answer is the one the route gives the same order alone; the
    stored answers replay, the sale and the stock moved by exactly twelve."""
    product, sid, sale, _ = await running_sale(client, quantity=13, stocked=20)
    reference, *crowd = await buyers(app, 13)
    with without_gate(app), reaching_the_route(app) as reached:
        alone = await order(
            client, reference, [(product, 1)], stream_id=sid, flash_sale_id=sale, key="k"
        )
    assert reached == [ORDERS] and alone.status_code == 201, alone.text
    desk = app.state.winner_desk
    before = desk.together
    answers = await rush(client, crowd, product, sale, stream_id=sid, key="k")
    assert [a.status_code for a in answers] == [201] * 12, [a.text for a in answers]
    assert desk.together - before >= 2  # not all of them one by one
    for answer in answers:
        assert comparable(answer.json()) == comparable(alone.json())
        assert answer.headers["location"] == f"{ORDERS}/{answer.json()['id']}"
    again = await order(
        client, {**crowd[3], **RU}, [(product, 1)], stream_id=sid, flash_sale_id=sale, key="k"
    )
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == answers[3].json()
    async with session_scope(app.state.sessions, read_only=True) as session:
        row = await session.get(FlashSale, sale)
        left = await session.scalar(select(Stock.quantity).where(Stock.product_id == product))
        records = await session.scalar(
            select(func.count())
            .select_from(IdempotencyRecord)
            .where(
                IdempotencyRecord.user_id.in_([user_id(app, b) for b in crowd]),  # type: ignore[attr-defined]
                IdempotencyRecord.status_code == 201,
            )
        )
    assert row is not None and row.remaining == 0
    assert left == 20 - 13
    assert records == 12
    # The gate never saw the reference order (placed without it): one unit it still offers,
    # which the database would refuse.
    assert await remaining_at_gate(app, sale) == 1


async def test_a_gate_promising_more_than_the_stock_is_corrected_by_the_database(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The gate hands out ten units, the warehouse has four: the batch cannot take them all,
    so its orders are placed one by one, and the database sells exactly four; the others
    hear the database's 409, never a 500, and their units go back to the gate."""
    product, _, sale, _ = await running_sale(client, quantity=10, stocked=20)
    async with session_scope(app.state.sessions) as session:
        await session.execute(update(Stock).where(Stock.product_id == product).values(quantity=4))
    crowd = await buyers(app, 20)
    apart = app.state.winner_desk.apart
    answers = await rush(client, crowd, product, sale)
    assert app.state.winner_desk.apart > apart
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] * 4 + [409] * 16, [a.text for a in answers if a.status_code != 201]
    assert await placed_for_sale(app, sale) == 4
    async with session_scope(app.state.sessions, read_only=True) as session:
        left = await session.scalar(select(Stock.quantity).where(Stock.product_id == product))
        row = await session.get(FlashSale, sale)
    assert left == 0
    assert row is not None and row.remaining == 6  # the sale's units not sold stay the sale's


async def test_a_monthly_allowance_counts_the_orders_before_it_in_the_same_batch(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Uzbekistan's USD 200 a month per recipient: five parcels to one phone number placed
    together pay the duties that five placed one after another pay (the first ones free,
    then duty once the month's imports pass the allowance)."""
    product, _, sale, _ = await running_sale(
        client, quantity=10, stocked=20, price={"amount": "80.00", "currency": "USD"}
    )
    crowd = await buyers(app, 10)
    one_by_one = []
    for buyer in crowd[:5]:
        placed = await order(
            client,
            {**buyer, **RU},
            [(product, 1)],
            flash_sale_id=sale,
            ship_to={**TASHKENT, "phone": "+998 90 000 00 01"},
        )
        assert placed.status_code == 201, placed.text
        one_by_one.append(placed.json()["duties"]["amount"])
    desk = app.state.winner_desk
    before = desk.together
    answers = await rush(
        client, crowd[5:], product, sale, ship_to={**TASHKENT, "phone": "+998 90 000 00 02"}
    )
    assert [a.status_code for a in answers] == [201] * 5, [a.text for a in answers]
    assert desk.together - before >= 2
    together = [a.json()["duties"]["amount"] for a in answers]
    assert sorted(together) == sorted(one_by_one)
    assert one_by_one[0] == "0.00" != one_by_one[-1]  # the allowance really ran out


async def test_a_deactivated_buyer_in_a_batch_hears_401_and_the_rest_are_placed(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    product, _, sale, _ = await running_sale(client, quantity=10)
    crowd = await buyers(app, 6)
    async with session_scope(app.state.sessions) as session:
        await session.execute(
            update(User).where(User.id == user_id(app, crowd[2])).values(is_active=False)
        )
    answers = await rush(client, crowd, product, sale)
    assert [a.status_code for a in answers] == [201, 201, 401, 201, 201, 201]
    assert answers[2].json()["error"]["code"] == "invalid_token"
    assert await placed_for_sale(app, sale) == 5
    assert await remaining_at_gate(app, sale) == 5  # the refused buyer's unit went back


async def test_a_batch_whose_commit_fails_is_answered_as_failed_and_not_placed_again(
    app: FastAPI, client: httpx.AsyncClient, lenient: httpx.AsyncClient
) -> None:
    """The database goes away at the commit: every order waiting on it hears the server
    error (as one order's failed commit does), none is placed a second time behind the
    client's back, and the gate gets every unit back."""
    product, _, sale, _ = await running_sale(client, quantity=10)
    crowd = await buyers(app, 8)
    desk = app.state.winner_desk
    sessions = desk.sessions

    def failing() -> Any:
        session = sessions()

        async def commit() -> None:
            raise OperationalError("COMMIT", {}, ConnectionError("the database went away"))

        session.commit = commit
        return session

    desk.sessions = failing
    failed = desk.failed
    try:
        answers = await rush(lenient, crowd, product, sale)
    finally:
        desk.sessions = sessions
    assert desk.failed > failed  # a batch, not only orders one by one
    assert [a.status_code for a in answers] == [500] * 8
    assert await placed_for_sale(app, sale) == 0
    assert await remaining_at_gate(app, sale) == 10
    won = await order(client, {**crowd[0], **RU}, [(product, 1)], flash_sale_id=sale)
    assert won.status_code == 201, won.text
