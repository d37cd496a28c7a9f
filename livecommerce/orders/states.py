"""The order state machine: every allowed transition, in one table.

::

    pending_payment --paid (card)--------> paid --> fulfilling --> shipped --> delivered
          |  \\--cash on delivery confirmed--------^     |                        |
          |                                             |                        |
          +--> cancelled  (buyer, expiry; cod orders also from fulfilling)       |
                           paid / fulfilling (card) / delivered --> refunded <---+

A transition is a conditional ``UPDATE ... WHERE status = <from>``: two writers racing
(a payment webhook and the reservation expiry) cannot both win, and the loser sees
``OrderChanged``. Every transition adds an ``order_events`` row.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from livecommerce.db import as_loaded
from livecommerce.errors import Conflict
from livecommerce.i18n.messages import N_
from livecommerce.notifications import service as notices
from livecommerce.orders.models import Order, OrderEvent, OrderStatus, PaymentMethod
from livecommerce.sqltypes import utcnow

S = OrderStatus
CARD, COD = PaymentMethod.CARD.value, PaymentMethod.COD.value

# (from, to) -> payment methods for which the transition is allowed.
TRANSITIONS: dict[tuple[str, str], frozenset[str]] = {
    (S.PENDING_PAYMENT, S.PAID): frozenset({CARD}),
    (S.PENDING_PAYMENT, S.FULFILLING): frozenset({COD}),
    (S.PENDING_PAYMENT, S.CANCELLED): frozenset({CARD, COD}),
    (S.PAID, S.FULFILLING): frozenset({CARD}),
    (S.PAID, S.REFUNDED): frozenset({CARD}),
    (S.FULFILLING, S.SHIPPED): frozenset({CARD, COD}),
    (S.FULFILLING, S.CANCELLED): frozenset({COD}),
    (S.FULFILLING, S.REFUNDED): frozenset({CARD}),
    (S.SHIPPED, S.DELIVERED): frozenset({CARD, COD}),
    (S.DELIVERED, S.REFUNDED): frozenset({CARD, COD}),
}

# Stock is still held by the order in these states (returned when it leaves them unshipped).
HOLDS_STOCK = frozenset({S.PENDING_PAYMENT, S.PAID, S.FULFILLING})

STATUS_LABELS = {
    S.PENDING_PAYMENT: N_("awaiting payment"),
    S.PAID: N_("paid"),
    S.FULFILLING: N_("being prepared"),
    S.SHIPPED: N_("shipped"),
    S.DELIVERED: N_("delivered"),
    S.CANCELLED: N_("cancelled"),
    S.REFUNDED: N_("refunded"),
}


class InvalidOrderTransition(Conflict):
    code = "invalid_order_transition"
    message = N_("This order cannot change to that status now.")


class OrderChanged(Conflict):
    code = "order_changed"
    message = N_("The order was changed at the same moment. Reload it and try again.")


def allowed(order: Order, target: str) -> bool:
    return order.payment_method in TRANSITIONS.get((order.status, target), frozenset())


async def transition(
    session: AsyncSession, order: Order, target: str, *, actor: str, reason: str | None = None
) -> None:
    if not allowed(order, target):
        raise InvalidOrderTransition(details={"status": order.status, "target": target})
    assert order.id is not None
    source = order.status
    now = utcnow()
    result = await session.execute(
        update(Order)
        .where(col(Order.id) == order.id, col(Order.status) == source)
        .values(status=target, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise OrderChanged()
    # The row is already written; keep the loaded object in step without a second UPDATE.
    set_committed_value(order, "status", target)
    set_committed_value(order, "updated_at", now)
    session.add(
        OrderEvent(
            order_id=order.id,
            from_status=source,
            to_status=target,
            actor=actor,
            reason=reason,
            at=now,
        )
    )
    # The buyer hears of every move, in the same transaction (see livecommerce/notifications).
    await notices.notify(
        session,
        user_id=order.buyer_id,
        kind=notices.ORDER_STATUS,
        order_id=order.id,
        data={"status": target, "from": source, "reason": reason},
    )


def opening_events(order: Order, *, placed_by: str) -> list[OrderEvent]:
    """The history of a just-inserted order: placed, then its first move when it made one.

    A new order is inserted directly in its opening status (cash on delivery goes straight to
    fulfilling), so no UPDATE is needed, but the record still shows both steps.
    """
    assert order.id is not None
    at = order.created_at
    rows = [
        {
            "order_id": order.id,
            "from_status": None,
            "to_status": S.PENDING_PAYMENT,
            "actor": placed_by,
            "reason": "placed",
            "at": at,
        }
    ]
    if order.status != S.PENDING_PAYMENT:
        if order.payment_method not in TRANSITIONS.get((S.PENDING_PAYMENT, order.status), ()):
            raise InvalidOrderTransition(
                details={"status": S.PENDING_PAYMENT, "target": order.status}
            )
        rows.append(
            {
                "order_id": order.id,
                "from_status": S.PENDING_PAYMENT,
                "to_status": order.status,
                "actor": "system",
                "reason": "cash_on_delivery",
                "at": at,
            }
        )
    # Written by the caller with a Core insert: built as loaded rows (see db.as_loaded).
    events = [as_loaded(OrderEvent, row) for row in rows]
    return events
