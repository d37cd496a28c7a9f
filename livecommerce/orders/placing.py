"""Placing an order as ``POST /api/v1/orders`` answers it: admission, the idempotency key,
the order itself, its stored answer, the hot rows, and the restart when stock moved.

One function for both callers: the order route, and the front door's winner desk, which
places flash-sale winners without the request machinery (``front_door.py``, ``winners.py``).
It runs inside the caller's transaction (the request boundary commits) and returns the
answer to send; refusals are raised (``AppError``) for the caller to render.
``place_together`` does the same for several winners in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from livecommerce.accounts.models import User
from livecommerce.config import Settings
from livecommerce.db import restart, run_rollback_effects
from livecommerce.flashsales.admission import Admission, Ticket
from livecommerce.logistics.network import load_network
from livecommerce.orders import idempotency, service
from livecommerce.orders.rendering import render_order
from livecommerce.orders.schemas import OrderIn
from livecommerce.rates.service import RateBookCache

SCOPE = "POST /orders"  # the idempotency records' scope


@dataclass(frozen=True)
class Answer:
    """What to send: the status, the JSON body and the extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


async def place(
    *,
    session: AsyncSession,
    buyer: User,
    data: OrderIn,
    locale: str,
    currency: str,
    idempotency_key: str | None,
    settings: Settings,
    admission: Admission | None,
    announcer: service.OrderAnnouncer | None,
    books: RateBookCache,
    ticket: Ticket | None = None,
) -> Answer:
    """The order's 201 (or the stored answer of the first request with the same key).

    ``ticket``: units the front door already took from the admission gate for this order;
    claimed here, they go back to the gate if the transaction rolls back.
    """
    assert buyer.id is not None
    await service.admit(
        session=session,
        admission=admission,
        data=data,
        buyer_id=buyer.id,
        keyed=idempotency_key is not None,
        ticket=ticket,
    )
    network = load_network(settings.logistics_file)
    for attempt in range(1, service.RESERVE_ATTEMPTS + 1):
        if idempotency_key is not None:
            replay = await idempotency.begin(
                session,
                user_id=buyer.id,
                key=idempotency_key,
                scope=SCOPE,
                body=data.fingerprint(),
            )
            if replay is not None:
                # A replay takes nothing: units back to the gate.
                await run_rollback_effects(session)
                return Answer(replay.status_code, replay.body, {"Idempotent-Replayed": "true"})
        placed = await service.place_order(
            session=session,
            network=network,
            buyer=buyer,
            data=data,
            currency=currency,
            locale=locale,
            reservation=timedelta(minutes=settings.reservation_minutes),
            announcer=announcer,
            admission=admission,
            books=books,
            last_attempt=attempt == service.RESERVE_ATTEMPTS,
        )
        order = placed.order
        assert order.id is not None
        rendered = render_order(order, placed.events, locale, quote=placed.quote)
        if idempotency_key is not None:
            # Stored in the order's own transaction: committed together or not at all.
            await idempotency.finish(
                session, user_id=buyer.id, key=idempotency_key, status_code=201, body=rendered
            )
        try:
            await placed.take_units()  # the hot rows, last: see service._take_hot_rows
        except service.StockMoved:
            await restart(session)  # beaten to the stock it was quoted on: once more
            await session.refresh(buyer)  # the rollback expired what the session had loaded
            continue
        break
    return Answer(201, rendered, {"Location": f"/api/v1/orders/{order.id}"})


@dataclass(frozen=True)
class Win:
    """One order of those placed together: the buyer's row and the request's parts."""

    buyer: User
    data: OrderIn
    locale: str
    currency: str
    idempotency_key: str | None


async def place_together(
    *,
    session: AsyncSession,
    wins: list[Win],
    settings: Settings,
    admission: Admission | None,
    announcer: service.OrderAnnouncer | None,
    books: RateBookCache,
) -> tuple[dict[int, Answer], list[int]]:
    """``place`` for several orders in the caller's one transaction: the answers by index
    in ``wins``, and the indexes of those to place alone (their Idempotency-Key is another
    request's: ``place`` gives its replay, or its 409 while that request runs).

    Raises ``service.PlaceApart`` when they cannot be placed together: the caller rolls
    back and places every one of them with ``place``. Admission is the caller's: these are
    orders that already hold their units at the gate.
    """
    keyed = [
        (w.buyer.id, w.idempotency_key, w.data.fingerprint())
        for w in wins
        if w.buyer.id is not None and w.idempotency_key is not None
    ]
    claimed = await idempotency.begin_together(session, scope=SCOPE, requests=keyed)
    here: list[int] = []
    digests: dict[int, str] = {}  # the claimed requests' hashes, by index
    for i, w in enumerate(wins):
        if w.idempotency_key is None:
            here.append(i)
        elif (digest := claimed.pop((w.buyer.id or 0, w.idempotency_key), None)) is not None:
            here.append(i)  # a key twice in the batch: the second goes alone, for the replay
            digests[i] = digest
    alone = sorted(set(range(len(wins))) - set(here))
    if not here:
        return {}, alone
    together = await service.place_together(
        session=session,
        network=load_network(settings.logistics_file),
        wanted=[
            service.Wanted(wins[i].buyer, wins[i].data, wins[i].currency, wins[i].locale)
            for i in here
        ],
        reservation=timedelta(minutes=settings.reservation_minutes),
        announcer=announcer,
        books=books,
        admission=admission,
    )
    answers: dict[int, Answer] = {}
    stored: list[tuple[int, str, str, int, dict[str, Any]]] = []
    for i, placed in zip(here, together.placed, strict=True):
        win, order = wins[i], placed.order
        rendered = render_order(order, placed.events, win.locale, quote=placed.quote)
        answers[i] = Answer(201, rendered, {"Location": f"/api/v1/orders/{order.id}"})
        if win.idempotency_key is not None and win.buyer.id is not None:
            stored.append((win.buyer.id, win.idempotency_key, digests[i], 201, rendered))
    # Stored in the orders' own transaction, before their hot rows (as for one order).
    await idempotency.finish_together(session, scope=SCOPE, answers=stored)
    await together.take_units()
    return answers, alone
