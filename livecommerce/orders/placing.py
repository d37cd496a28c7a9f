"""Placing an order as ``POST /api/v1/orders`` answers it: admission, the idempotency key,
the order itself, its stored answer, the hot rows, and the restart when stock moved.

One function for both callers: the order route, and the front door, which places a
flash-sale winner itself without the request machinery (``front_door.py``). It runs inside
the caller's transaction (the request boundary commits) and returns the answer to send;
refusals are raised (``AppError``) for the caller to render.
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
                body=data.model_dump(mode="json"),
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
        rendered = render_order(order, placed.events, locale)
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
