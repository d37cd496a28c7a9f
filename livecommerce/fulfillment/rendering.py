"""Parcels as the API shows them, in the request's language: tracking, the shipments list
and the customs manifest (shapes in ``fulfillment/schemas.py``)."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from livecommerce.fulfillment import carriers as c
from livecommerce.fulfillment.models import CustomsDeclaration, Shipment, TrackingEvent
from livecommerce.fulfillment.service import MANIFEST_COLUMNS, PAGE_SIZE, ShipmentsPage, Tracking
from livecommerce.i18n.locales import pick_translation
from livecommerce.i18n.messages import N_, translate
from livecommerce.i18n.money import Money
from livecommerce.logistics.network import Network
from livecommerce.orders.consignee import mask_tax_id
from livecommerce.orders.models import OrderStatus
from livecommerce.orders.states import STATUS_LABELS
from livecommerce.schemas import MoneyOut

EVENT_TEXT = {
    c.PICKED: N_("Picked and packed in %(place)s"),
    c.DEPARTED: N_("Left %(place)s"),
    c.ARRIVED: N_("Arrived in %(place)s"),
    c.DELAYED: N_("Delayed near %(place)s: %(reason)s"),
    c.AT_BORDER: N_("At the border in %(place)s"),
    c.CUSTOMS_HELD: N_("Held by customs in %(place)s: %(reason)s"),
    c.CUSTOMS_CLEARED: N_("Cleared customs in %(place)s"),
    c.OUT_FOR_DELIVERY: N_("Out for delivery in %(place)s"),
    c.DELIVERY_FAILED: N_("Delivery attempt failed in %(place)s: %(reason)s"),
    c.DELIVERED: N_("Delivered in %(place)s"),
}
UNKNOWN_EVENT = N_("Update from the carrier in %(place)s")
REASONS = {
    "documents_check": N_("documents are being checked"),
    "value_check": N_("the declared value is being checked"),
    "inspection": N_("the parcel is being inspected"),
    "congestion": N_("congestion on the route"),
    "weather": N_("bad weather"),
    "capacity": N_("waiting for space on the train"),
    "recipient_absent": N_("nobody was at the address"),
}
SHIPMENT_STATUS_LABELS = {
    "created": N_("being prepared"),
    "booked": N_("handed to the carrier"),
    "in_transit": N_("on the way"),
    "customs_hold": N_("held by customs"),
    "out_for_delivery": N_("out for delivery"),
    "delivered": N_("handed to the recipient"),
}
NO_DETAILS = N_("no details given")


def event_text(event: TrackingEvent, locale: str) -> str:
    place = pick_translation(event.location_names, locale) or event.location or ""
    reason = translate(locale, REASONS.get(event.detail or "", NO_DETAILS))
    return translate(locale, EVENT_TEXT.get(event.code, UNKNOWN_EVENT), place=place, reason=reason)


def _recipient(recipient: dict[str, Any]) -> dict[str, Any]:
    """The declared consignee as shown to the buyer or the merchant: the tax id masked."""
    if not recipient.get("tax_id"):
        return recipient
    return {**recipient, "tax_id": mask_tax_id(recipient["tax_id"])}


def render_declaration(
    declaration: CustomsDeclaration, locale: str, network: Network
) -> dict[str, Any]:
    def money(value: Decimal) -> dict[str, Any]:
        return MoneyOut.of(Money(value, declaration.currency), locale).model_dump()

    return {
        "rule": declaration.rule,
        "language": declaration.language,
        "currency": declaration.currency,
        "declared_value": money(declaration.declared_value),
        "gross_weight_kg": str(Decimal(declaration.gross_weight_grams) / Decimal(1000)),
        "earlier_this_month": money(declaration.earlier_value),
        "duty_free_allowance": money(declaration.duty_free_allowance),
        "duty": money(declaration.duty),
        "customs_union": declaration.customs_union,
        "legal_basis": declaration.legal_basis,
        "border_date": declaration.border_date.isoformat() if declaration.border_date else None,
        "declared_by": declaration.declared_by,
        "export_mode": declaration.export_mode,
        "export_mode_name": network.export_mode_name(declaration.export_mode, locale),
        "vat": money(declaration.vat),
        "total": money(declaration.total),
        "charges": declaration.charges or [],
        "quoted_duty": money(declaration.quoted_duty)
        if declaration.quoted_duty is not None
        else None,
        "recipient": _recipient(declaration.recipient),
        "lines": declaration.lines,
    }


def render_shipment(
    shipment: Shipment,
    declaration: CustomsDeclaration | None,
    events: list[TrackingEvent],
    locale: str,
    network: Network,
) -> dict[str, Any]:
    return {
        "id": shipment.id,
        "warehouse": shipment.warehouse_code,
        "status": shipment.status,
        "status_text": translate(locale, SHIPMENT_STATUS_LABELS.get(shipment.status, "")),
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "export_mode": shipment.export_mode,
        "export_mode_name": network.export_mode_name(shipment.export_mode, locale),
        "legs": [
            {
                "mode": leg["mode"],
                "from": pick_translation(leg["from"], locale) or "",
                "to": pick_translation(leg["to"], locale) or "",
                "days": leg["days"],
            }
            for leg in shipment.legs
        ],
        "eta": shipment.eta.isoformat(),
        "weight_grams": shipment.weight_grams,
        "items": shipment.items,
        "declaration": render_declaration(declaration, locale, network) if declaration else None,
        "events": [
            {
                "at": e.at.isoformat(),
                "code": e.code,
                "location": pick_translation(e.location_names, locale) or e.location,
                "text": event_text(e, locale),
            }
            for e in events
        ],
        "created_at": shipment.created_at.isoformat(),
        "booked_at": shipment.booked_at.isoformat() if shipment.booked_at else None,
        "delivered_at": shipment.delivered_at.isoformat() if shipment.delivered_at else None,
    }


def render_tracking(tracking: Tracking, locale: str, network: Network) -> dict[str, Any]:
    order = tracking.order
    return {
        "order_id": order.id,
        "status": order.status,
        "status_text": translate(locale, STATUS_LABELS[OrderStatus(order.status)]),
        "shipments": [
            render_shipment(
                s,
                tracking.declarations.get(s.id or 0),
                tracking.events.get(s.id or 0, []),
                locale,
                network,
            )
            for s in tracking.shipments
        ],
    }


def render_shipment_page(listed: ShipmentsPage, locale: str, network: Network) -> dict[str, Any]:
    items = []
    for shipment in listed.shipments:
        declaration = listed.declarations.get(shipment.id or 0)
        shown = render_shipment(shipment, declaration, [], locale, network)
        shown.pop("events")
        items.append({"order_id": shipment.order_id, **shown})
    return {
        "items": items,
        "page": listed.page,
        "page_size": PAGE_SIZE,
        "total": listed.total,
        "pages": math.ceil(listed.total / PAGE_SIZE) if listed.total else 0,
    }


PHONE_LIKE = re.compile(r"[+-][\d\s()-]*")


def spreadsheet_safe(value: Any) -> Any:
    """A cell a spreadsheet will not run as a formula: names and addresses come from buyers.

    Text starting with ``=``, ``@``, ``+`` or ``-`` gets a leading apostrophe, except a
    phone number such as ``+998 90 123 45 67``.
    """
    if not isinstance(value, str) or not value or value[0] not in "=+-@\t\r":
        return value
    if PHONE_LIKE.fullmatch(value):
        return value
    return "'" + value


def render_manifest(rows: Iterable[dict[str, Any]]) -> str:
    """The manifest's CSV, with a byte-order mark so spreadsheet programs read the Cyrillic
    descriptions as UTF-8."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=MANIFEST_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({key: spreadsheet_safe(value) for key, value in row.items()} for row in rows)
    return "\ufeff" + out.getvalue()
