from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from livecommerce.sqltypes import DecimalText, UTCDateTime, utcnow


class ShipmentStatus(StrEnum):
    CREATED = "created"  # declared, not yet handed to a carrier
    BOOKED = "booked"  # the carrier has it on its books, with a tracking number
    IN_TRANSIT = "in_transit"
    CUSTOMS_HOLD = "customs_hold"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"  # withdrawn before a carrier had it (the order was cancelled)


# Shipments the tracking poll still asks the carrier about.
ACTIVE_SHIPMENT_STATUSES = (
    ShipmentStatus.BOOKED,
    ShipmentStatus.IN_TRANSIT,
    ShipmentStatus.CUSTOMS_HOLD,
    ShipmentStatus.OUT_FOR_DELIVERY,
)


class Shipment(SQLModel, table=True):
    """The part of an order that leaves one warehouse: one parcel on one route.

    ``(order_id, warehouse_code)`` is unique: running the fulfilment task twice, or two
    workers running it at once, can never make a second parcel.
    """

    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("order_id", "warehouse_code", name="uq_shipments_order_warehouse"),
        Index("ix_shipments_merchant_created", "merchant_id", "created_at"),
        Index("ix_shipments_status_polled", "status", "polled_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", index=True, ondelete="CASCADE")
    merchant_id: int = Field(foreign_key="merchants.id")
    warehouse_code: str = Field(foreign_key="warehouses.code", max_length=5)
    status: str = Field(default=ShipmentStatus.CREATED, max_length=20)
    # Route as planned when the order was placed: [{mode, from, to, from_key, to_key, days}]
    # with place names in every language.
    legs: list[dict[str, Any]] = Field(sa_type=JSON)
    handling_days: int = 0
    planned_days: int
    eta: date = Field(sa_type=Date)
    destination_country: str = Field(max_length=2)
    destination_city: dict[str, str] = Field(sa_type=JSON)
    weight_grams: int
    items: list[dict[str, Any]] = Field(sa_type=JSON)  # [{product_id, sku, quantity}]
    # The Chinese export customs mode the parcel's stock left China under ("9810": export to
    # an overseas warehouse), from the warehouse's data; None: not recorded.
    export_mode: str | None = Field(default=None, max_length=8)
    carrier: str | None = Field(default=None, max_length=32)
    tracking_number: str | None = Field(default=None, max_length=64, unique=True)
    # What the carrier returned on booking, kept for its own later calls.
    carrier_data: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    booked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    polled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CustomsDeclaration(SQLModel, table=True):
    """What customs is told about a parcel that crosses into another customs union."""

    __tablename__ = "customs_declarations"

    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="shipments.id", unique=True, ondelete="CASCADE")
    # The dated rule it was assessed under ("EAEU-2026-ECOM"), kept with its legal basis so
    # the declaration still explains itself after the law (and the corridor data) changes.
    rule: str = Field(max_length=40)
    customs_union: str = Field(max_length=16)  # "EAEU", "UZ": the union it enters
    legal_basis: str | None = Field(default=None, max_length=300)  # None: filed before kept
    # The day the parcel is expected at the border, which chose the rule; None: not kept.
    border_date: date | None = Field(default=None, sa_type=Date)
    # Who files it ("ecommerce_operator"), as the rule's data says; None: not stated.
    declared_by: str | None = Field(default=None, max_length=32)
    language: str = Field(max_length=8)  # the customs language of the descriptions
    export_mode: str | None = Field(default=None, max_length=8)  # as its shipment's
    currency: str = Field(max_length=3)  # declared values and the duty, as the rule requires
    declared_value: Decimal = Field(sa_type=DecimalText)
    gross_weight_grams: int
    # Under a monthly allowance: what the recipient had already declared that month, and
    # which month ("2026-11") this declaration counts against (given back if withdrawn).
    earlier_value: Decimal = Field(default=Decimal(0), sa_type=DecimalText)
    allowance_month: str | None = Field(default=None, max_length=7)
    duty_free_allowance: Decimal = Field(sa_type=DecimalText)
    duty: Decimal = Field(sa_type=DecimalText)
    vat: Decimal = Field(default=Decimal(0), sa_type=DecimalText)  # import VAT
    total: Decimal = Field(sa_type=DecimalText)  # to pay at the border: duty + VAT
    # Each amount with the rule or VAT rate it comes from, base, rate and basis.
    charges: list[dict[str, Any]] | None = Field(default=None, sa_type=JSON)
    # The duty the buyer was quoted when ordering, for comparison (same currency).
    quoted_duty: Decimal | None = Field(default=None, sa_type=DecimalText)
    recipient: dict[str, Any] = Field(sa_type=JSON)
    lines: list[dict[str, Any]] = Field(sa_type=JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CustomsAllowance(SQLModel, table=True):
    """Value a recipient has declared in one calendar month under a monthly allowance.

    Raised with one atomic upsert per declaration, so two parcels of the same recipient
    declared at the same moment each see the other.
    """

    __tablename__ = "customs_allowances"

    # The rule's id ("UZ-2025-COURIER"): each rule has its own allowance, so courier
    # shipments and postal items of one recipient count apart.
    rule: str = Field(primary_key=True, max_length=16)
    recipient_key: str = Field(primary_key=True, max_length=64)
    month: str = Field(primary_key=True, max_length=7)  # "2026-11", in the destination's zone
    declared_minor: int = Field(default=0, sa_type=BigInteger)  # cents of the rule's currency


class TrackingEvent(SQLModel, table=True):
    """One scan reported by the carrier; a repeated report of the same scan is ignored."""

    __tablename__ = "tracking_events"
    __table_args__ = (
        UniqueConstraint("shipment_id", "carrier_event_id", name="uq_tracking_events_carrier_id"),
        Index("ix_tracking_events_shipment_at", "shipment_id", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shipment_id: int = Field(foreign_key="shipments.id", ondelete="CASCADE")
    carrier_event_id: str = Field(max_length=96)
    code: str = Field(max_length=32)
    at: datetime = Field(sa_type=UTCDateTime)
    # A network node key ("khorgos") or the destination city's name.
    location: str | None = Field(default=None, max_length=80)
    location_names: dict[str, str] | None = Field(default=None, sa_type=JSON)
    detail: str | None = Field(default=None, max_length=64)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
