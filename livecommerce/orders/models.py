from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index
from sqlmodel import Field, SQLModel

from livecommerce.sqltypes import DecimalText, UTCDateTime, utcnow


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    FULFILLING = "fulfilling"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


class PaymentMethod(StrEnum):
    CARD = "card"
    COD = "cod"


class Order(SQLModel, table=True):
    """A viewer's purchase from one merchant, with the landed cost it was sold at."""

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_status_reserved_until", "status", "reserved_until"),
        Index("ix_orders_recipient_created", "recipient_key", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    buyer_id: int = Field(foreign_key="users.id", index=True)
    merchant_id: int = Field(foreign_key="merchants.id", index=True)
    stream_id: int | None = Field(default=None, foreign_key="streams.id", index=True)
    flash_sale_id: int | None = Field(default=None, foreign_key="flash_sales.id")
    status: str = Field(max_length=20, index=True)
    payment_method: str = Field(max_length=8)
    # How the parcels reach the buyer: "courier" or "postal" (the carrier's kind, which
    # decides the customs allowance a parcel falls under where the law tells them apart).
    delivery: str = Field(
        default="courier", max_length=16, sa_column_kwargs={"server_default": "courier"}
    )
    # Amounts in integer minor units of ``currency``, the currency the buyer pays in.
    currency: str = Field(max_length=3)
    subtotal_minor: int = Field(sa_type=BigInteger)
    shipping_minor: int = Field(sa_type=BigInteger)
    duties_minor: int = Field(sa_type=BigInteger)
    total_minor: int = Field(sa_type=BigInteger)
    ship_to: dict[str, Any] = Field(sa_type=JSON)
    destination_country: str = Field(max_length=2)
    # Who customs counts a monthly allowance against: the recipient's phone number.
    recipient_key: str = Field(max_length=64)
    # Customs value of the parcels that cross a border, in ``declared_currency`` (None when
    # every parcel stays inside one customs union).
    declared_value: Decimal = Field(default=Decimal(0), sa_type=DecimalText)
    declared_currency: str | None = Field(default=None, max_length=3)
    # The landed-cost figures as quoted (language-neutral): a QuoteSnapshot's JSON
    # (orders/snapshots.py), read with ``QuoteSnapshot.read`` whatever its version.
    # Fulfilment builds shipments from it.
    quote: dict[str, Any] = Field(sa_type=JSON)
    locale: str = Field(max_length=8)
    # Unpaid card orders hold their stock until then; None once paid or for cash on delivery.
    reserved_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancel_reason: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    paid_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OrderLine(SQLModel, table=True):
    """Part of an order taken from one warehouse; the stock it holds is returned on cancel."""

    __tablename__ = "order_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="ck_order_lines_quantity_pos"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True, ondelete="CASCADE")
    product_id: int = Field(foreign_key="products.id", index=True)
    warehouse_code: str = Field(foreign_key="warehouses.code", max_length=5)
    quantity: int
    unit_price_minor: int = Field(sa_type=BigInteger)  # in the order's currency
    flash_sale_id: int | None = Field(default=None, foreign_key="flash_sales.id")
    # What was sold, as it was then: a later catalog edit does not rewrite an order.
    sku: str = Field(max_length=64)
    title: dict[str, str] = Field(sa_type=JSON)
    hs_code: str = Field(max_length=10)
    weight_grams: int


class OrderEvent(SQLModel, table=True):
    """One status transition of an order: every change is recorded, with who made it."""

    __tablename__ = "order_events"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True, ondelete="CASCADE")
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str = Field(max_length=20)
    actor: str = Field(max_length=40)  # "user:12", "system", "provider:sandbox"
    reason: str | None = Field(default=None, max_length=64)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class IdempotencyRecord(SQLModel, table=True):
    """The first response to a keyed request, stored in the same transaction as its effect."""

    __tablename__ = "idempotency_keys"

    user_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    key: str = Field(primary_key=True, max_length=255)
    scope: str = Field(max_length=80)
    request_hash: str = Field(max_length=64)
    status_code: int | None = Field(default=None)
    response: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class PaymentStatus(StrEnum):
    REQUIRES_CONFIRMATION = "requires_confirmation"
    FAILED = "failed"
    SUCCEEDED = "succeeded"
    REFUNDED = "refunded"


class Payment(SQLModel, table=True):
    """One card payment attempt of an order at a provider (its payment intent)."""

    __tablename__ = "payments"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True, ondelete="CASCADE")
    provider: str = Field(max_length=32)
    intent_id: str = Field(max_length=64, unique=True)
    amount_minor: int = Field(sa_type=BigInteger)
    currency: str = Field(max_length=3)
    status: str = Field(max_length=24)
    failure_code: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PaymentWebhookEvent(SQLModel, table=True):
    """A provider event already processed: a duplicate or replayed delivery is a no-op."""

    __tablename__ = "payment_webhook_events"

    provider: str = Field(primary_key=True, max_length=32)
    event_id: str = Field(primary_key=True, max_length=64)
    type: str = Field(max_length=64)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
