"""Parcels as the API answers them: tracking, the shipments list, their declarations.

Built as JSON by ``fulfillment/rendering.py``, key by key in these models' field order.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from livecommerce.orders.schemas import LegOut
from livecommerce.schemas import MoneyOut, Page


class DeclarationOut(BaseModel):
    """What customs is told about the parcel; the recipient's tax id masked."""

    rule: str
    language: str
    currency: str
    declared_value: MoneyOut
    gross_weight_kg: str
    earlier_this_month: MoneyOut
    duty_free_allowance: MoneyOut
    duty: MoneyOut
    customs_union: str
    legal_basis: str | None
    border_date: str | None
    declared_by: str | None
    export_mode: str | None
    export_mode_name: str | None
    vat: MoneyOut
    total: MoneyOut
    charges: list[dict[str, Any]]
    quoted_duty: MoneyOut | None
    recipient: dict[str, Any]
    lines: list[dict[str, Any]]


class TrackingEventOut(BaseModel):
    at: str
    code: str
    location: str | None
    text: str = Field(description="In the request's language")


class ShipmentSummaryOut(BaseModel):
    """A parcel without its scans, as the shipments list shows it."""

    order_id: int
    id: int | None
    warehouse: str
    status: str
    status_text: str
    carrier: str | None
    tracking_number: str | None
    export_mode: str | None
    export_mode_name: str | None
    legs: list[LegOut]
    eta: str
    weight_grams: int
    items: list[dict[str, Any]]
    declaration: DeclarationOut | None
    created_at: str
    booked_at: str | None
    delivered_at: str | None


class ShipmentOut(BaseModel):
    """A parcel with every scan, as its order's tracking shows it."""

    id: int | None
    warehouse: str
    status: str
    status_text: str
    carrier: str | None
    tracking_number: str | None
    export_mode: str | None
    export_mode_name: str | None
    legs: list[LegOut]
    eta: str
    weight_grams: int
    items: list[dict[str, Any]]
    declaration: DeclarationOut | None
    events: list[TrackingEventOut]
    created_at: str
    booked_at: str | None
    delivered_at: str | None


class TrackingOut(BaseModel):
    order_id: int | None
    status: str
    status_text: str
    shipments: list[ShipmentOut]


ShipmentPage = Page[ShipmentSummaryOut]
