"""Card payments behind a provider interface, and the webhook that tells us the outcome.

Flow: the shop asks the provider for a payment intent (``start_payment``); the buyer's card
form confirms it with the provider directly; the provider reports the outcome with a
signed webhook. A webhook is never trusted as a story of what happened: after checking its
signature and that it is new, the shop re-reads the intent from the provider and applies
the intent's *current* status, moving only forward. Duplicate, replayed and reordered
deliveries are therefore harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from livecommerce import jobs
from livecommerce.accounts.models import User
from livecommerce.db import dialect_insert, is_postgres
from livecommerce.errors import AppError, Conflict
from livecommerce.i18n.messages import N_
from livecommerce.i18n.money import Money
from livecommerce.orders import service, states
from livecommerce.orders.models import (
    Order,
    OrderStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    PaymentWebhookEvent,
)
from livecommerce.sqltypes import utcnow

log = logging.getLogger(__name__)

# Payment statuses only move forward in this order (a late "failed" never undoes "succeeded").
RANK = {
    PaymentStatus.REQUIRES_CONFIRMATION: 0,
    PaymentStatus.FAILED: 1,
    PaymentStatus.SUCCEEDED: 2,
    PaymentStatus.REFUNDED: 3,
}


class WebhookRejected(AppError):
    status = 400
    code = "webhook_rejected"
    message = N_("The webhook signature is missing, invalid or too old.")


class PaymentNotNeeded(Conflict):
    code = "payment_not_needed"
    message = N_("This order is paid in cash on delivery.")


class OrderNotPayable(Conflict):
    code = "order_not_payable"
    message = N_("This order is no longer awaiting payment.")


class UnknownProvider(AppError):
    status = 404
    code = "payment_provider_not_found"
    message = N_("This payment provider is not configured.")


@dataclass(frozen=True)
class ProviderIntent:
    id: str
    status: str  # one of PaymentStatus
    amount_minor: int
    currency: str
    client_secret: str | None = None
    failure_code: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    intent_id: str


class PaymentProvider(Protocol):
    name: str

    async def create_intent(
        self, *, amount: Money, reference: str, idempotency_key: str
    ) -> ProviderIntent: ...

    async def retrieve(self, intent_id: str) -> ProviderIntent: ...

    async def refund(self, intent_id: str, *, idempotency_key: str) -> ProviderIntent: ...

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify the signature and timestamp; raise ``WebhookRejected`` otherwise."""
        ...

    def confirm_url(self, intent_id: str) -> str | None: ...


async def _locked_order(session: AsyncSession, order_id: int) -> Order:
    query = select(Order).where(col(Order.id) == order_id).execution_options(populate_existing=True)
    if is_postgres(session):
        query = query.with_for_update()
    return (await session.scalars(query)).one()


async def start_payment(
    *, session: AsyncSession, provider: PaymentProvider, user: User, order_id: int
) -> tuple[Payment, ProviderIntent]:
    """The intent the buyer pays through: the open one, or a new attempt after a decline."""
    order = await service.get_order(session=session, user=user, order_id=order_id)
    if order.buyer_id != user.id:
        raise service.OrderNotFound()
    assert order.id is not None
    order = await _locked_order(session, order.id)
    assert order.id is not None
    if order.payment_method != PaymentMethod.CARD:
        raise PaymentNotNeeded()
    if order.status != OrderStatus.PENDING_PAYMENT:
        raise OrderNotPayable()
    attempts = list(
        await session.scalars(
            select(Payment).where(col(Payment.order_id) == order.id).order_by(col(Payment.id))
        )
    )
    for payment in reversed(attempts):
        if payment.status == PaymentStatus.REQUIRES_CONFIRMATION:
            return payment, await provider.retrieve(payment.intent_id)
    amount = Money.from_minor(order.total_minor, order.currency)
    intent = await provider.create_intent(
        amount=amount,
        reference=f"order:{order.id}",
        # One intent per attempt even if this request is retried after a timeout. The creation
        # time keeps keys apart should order ids ever be reused (a restored or reset database).
        idempotency_key=(
            f"order-{order.id}-{order.created_at.timestamp():.6f}-attempt-{len(attempts) + 1}"
        ),
    )
    payment = Payment(
        order_id=order.id,
        provider=provider.name,
        intent_id=intent.id,
        amount_minor=intent.amount_minor,
        currency=intent.currency,
        status=intent.status,
    )
    session.add(payment)
    await session.flush()
    return payment, intent


async def handle_webhook(
    *,
    session: AsyncSession,
    provider: PaymentProvider,
    body: bytes,
    headers: Mapping[str, str],
) -> str:
    """Process one delivery; returns ``processed``, ``duplicate`` or ``ignored``."""
    event = provider.parse_webhook(body, headers)
    table = PaymentWebhookEvent.__table__  # type: ignore[attr-defined]
    fresh = await session.execute(
        dialect_insert(session, table)
        .values(provider=provider.name, event_id=event.id, type=event.type, received_at=utcnow())
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(table.c.event_id)
    )
    if fresh.first() is None:
        return "duplicate"
    payment = (
        await session.scalars(select(Payment).where(col(Payment.intent_id) == event.intent_id))
    ).first()
    if payment is None or payment.provider != provider.name:
        log.warning("webhook %s for unknown intent %s", event.id, event.intent_id)
        return "ignored"
    intent = await provider.retrieve(event.intent_id)
    await apply_intent(session=session, provider=provider, payment=payment, intent=intent)
    return "processed"


async def apply_intent(
    *, session: AsyncSession, provider: PaymentProvider, payment: Payment, intent: ProviderIntent
) -> None:
    """Bring the payment and its order up to the intent's current status (forward only).

    The order is locked first and the payment re-read under that lock: two deliveries
    processed at once (a provider often sends several events for one charge) then see each
    other's work instead of both acting on the same stale status.
    """
    order = await _locked_order(session, payment.order_id)
    payment = (
        await session.scalars(
            select(Payment)
            .where(col(Payment.id) == payment.id)
            .execution_options(populate_existing=True)
        )
    ).one()
    if intent.amount_minor != payment.amount_minor or intent.currency != payment.currency:
        log.error("payment %s: provider amount differs; left for review", payment.id)
        return
    try:
        new = PaymentStatus(intent.status)
    except ValueError:
        log.info("payment %s: provider status %r needs no action", payment.id, intent.status)
        return
    old = PaymentStatus(payment.status)
    if RANK[new] <= RANK[old] and not (new == old == PaymentStatus.FAILED):
        return
    assert payment.id is not None
    payment.status = new
    payment.failure_code = intent.failure_code
    payment.updated_at = utcnow()
    actor = f"provider:{provider.name}"
    if new == PaymentStatus.SUCCEEDED:
        if order.status == OrderStatus.PENDING_PAYMENT:
            await states.transition(session, order, OrderStatus.PAID, actor=actor, reason="card")
            order.paid_at = utcnow()
            order.reserved_until = None
            assert order.id is not None
            jobs.enqueue(session, "fulfil_order", order.id)
        else:
            # Money arrived for an order that expired or was cancelled (or paid twice):
            # give it back rather than keep it.
            refunded = await provider.refund(
                intent.id, idempotency_key=f"refund-payment-{payment.id}"
            )
            payment.status = PaymentStatus(refunded.status)
            log.info("payment %s refunded: order %s is %s", payment.id, order.id, order.status)
    elif new == PaymentStatus.REFUNDED and order.status in (
        OrderStatus.PAID,
        OrderStatus.FULFILLING,
        OrderStatus.DELIVERED,
    ):
        # The provider already gave the money back: withdraw what can be, refuse nothing.
        await service.before_closing(session, order, strict=False)
        await service.mark_refunded(session, order, actor=actor, reason="refund")
    await session.flush()


async def cancel_order(
    *, session: AsyncSession, provider: PaymentProvider, user: User, order_id: int
) -> service.OrderRecord:
    """Cancel for the buyer, the merchant or an admin; paid card orders are refunded. The
    order as it now stands, with its history."""
    await service.get_order(session=session, user=user, order_id=order_id)
    order = await _locked_order(session, order_id)
    target = service.can_cancel(order)
    if target is None:
        raise service.OrderNotCancellable()
    # Before any money moves: refuses (raises) when a parcel is already with the carrier.
    await service.before_closing(session, order, strict=True)
    actor = f"user:{user.id}"
    reason = "cancelled_by_buyer" if order.buyer_id == user.id else "cancelled_by_staff"
    if target == OrderStatus.CANCELLED:
        await service.cancel_unpaid(session, order, actor=actor, reason=reason)
        return await service.order_record(session=session, order=order)
    paid = (
        await session.scalars(
            select(Payment).where(
                col(Payment.order_id) == order_id, col(Payment.status) == PaymentStatus.SUCCEEDED
            )
        )
    ).first()
    if paid is not None:
        refunded = await provider.refund(
            paid.intent_id, idempotency_key=f"refund-payment-{paid.id}"
        )
        paid.status = PaymentStatus(refunded.status)
        paid.updated_at = utcnow()
    await service.mark_refunded(session, order, actor=actor, reason=reason)
    return await service.order_record(session=session, order=order)


async def payments_of(*, session: AsyncSession, user: User, order_id: int) -> list[Payment]:
    """The payments of an order ``user`` may read, oldest first."""
    await service.get_order(session=session, user=user, order_id=order_id)
    return list(
        await session.scalars(
            select(Payment).where(col(Payment.order_id) == order_id).order_by(col(Payment.id))
        )
    )
