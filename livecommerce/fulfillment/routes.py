from __future__ import annotations

import csv
import io
import math
import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlmodel import col, select

from livecommerce.deps import (
    WAREHOUSE_CODE,
    ContextDep,
    CurrentUser,
    IdPath,
    IdQuery,
    ReadSessionDep,
    SettingsDep,
)
from livecommerce.fulfillment import carriers as c
from livecommerce.fulfillment import service
from livecommerce.fulfillment.models import (
    CustomsDeclaration,
    Shipment,
    ShipmentStatus,
    TrackingEvent,
)
from livecommerce.i18n.locales import pick_translation
from livecommerce.i18n.messages import N_, translate
from livecommerce.i18n.money import Money
from livecommerce.logistics.network import Network, load_network
from livecommerce.orders import service as orders
from livecommerce.orders.consignee import mask_tax_id
from livecommerce.orders.models import OrderStatus
from livecommerce.orders.states import STATUS_LABELS
from livecommerce.schemas import MoneyOut

router = APIRouter(tags=["fulfilment"])

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


@router.get("/orders/{order_id}/tracking")
async def tracking(
    order_id: IdPath,
    user: CurrentUser,
    session: ReadSessionDep,
    ctx: ContextDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Where the order's parcels are: legs, ETA, customs declaration and every scan.

    Readable by the buyer, the merchant and admins.
    """
    order = await orders.get_order(session=session, user=user, order_id=order_id)
    shipments = list(
        await session.scalars(
            select(Shipment).where(col(Shipment.order_id) == order_id).order_by(col(Shipment.id))
        )
    )
    ids = [s.id for s in shipments]
    declarations = {
        d.shipment_id: d
        for d in await session.scalars(
            select(CustomsDeclaration).where(col(CustomsDeclaration.shipment_id).in_(ids))
        )
    }
    network = load_network(settings.logistics_file)
    events: dict[int, list[TrackingEvent]] = {}
    for event in await session.scalars(
        select(TrackingEvent)
        .where(col(TrackingEvent.shipment_id).in_(ids))
        .order_by(col(TrackingEvent.at), col(TrackingEvent.id))
    ):
        events.setdefault(event.shipment_id, []).append(event)
    return {
        "order_id": order.id,
        "status": order.status,
        "status_text": translate(ctx.locale, STATUS_LABELS[OrderStatus(order.status)]),
        "shipments": [
            render_shipment(
                s, declarations.get(s.id or 0), events.get(s.id or 0, []), ctx.locale, network
            )
            for s in shipments
        ],
    }


@router.get("/shipments")
async def list_shipments(
    user: CurrentUser,
    session: ReadSessionDep,
    ctx: ContextDep,
    settings: SettingsDep,
    status_: Annotated[ShipmentStatus | None, Query(alias="status")] = None,
    warehouse: Annotated[str | None, Query(pattern=WAREHOUSE_CODE)] = None,
    day: Annotated[
        date | None, Query(alias="date", description="with warehouse: its local day")
    ] = None,
    order_id: IdQuery = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> dict[str, Any]:
    """A merchant's parcels (all of them for an admin), newest first, by status, warehouse
    and the day they were made."""
    shipments, total = await service.list_shipments(
        session=session,
        user=user,
        status=status_,
        warehouse=warehouse,
        day=day,
        order_id=order_id,
        page=page,
    )
    declarations = await service.declarations_of(session, [s.id for s in shipments])
    network = load_network(settings.logistics_file)
    items = []
    for shipment in shipments:
        declaration = declarations.get(shipment.id or 0)
        shown = render_shipment(shipment, declaration, [], ctx.locale, network)
        shown.pop("events")
        items.append({"order_id": shipment.order_id, **shown})
    return {
        "items": items,
        "page": page,
        "page_size": service.PAGE_SIZE,
        "total": total,
        "pages": math.ceil(total / service.PAGE_SIZE) if total else 0,
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


@router.get(
    "/shipments/manifest.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "one row per declared line"}},
)
async def customs_manifest(
    user: CurrentUser,
    session: ReadSessionDep,
    ctx: ContextDep,
    settings: SettingsDep,
    warehouse: Annotated[str, Query(pattern=WAREHOUSE_CODE, examples=["DEDUI"])],
    day: Annotated[date, Query(alias="date", description="the warehouse's local calendar day")],
) -> Response:
    """The customs manifest of one warehouse and day: every declared line of the parcels made
    there that day and crossing a customs border (HS code, description in the customs
    language, quantity, weight, value, recipient, export mode; the recipient's tax id shows
    its last four digits only). The export mode's name is in the request's language."""
    rows = await service.manifest(
        session=session,
        network=load_network(settings.logistics_file),
        user=user,
        warehouse=warehouse,
        day=day,
        locale=ctx.locale,
    )
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=service.MANIFEST_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({key: spreadsheet_safe(value) for key, value in row.items()} for row in rows)
    filename = f"manifest-{warehouse.upper()}-{day.isoformat()}.csv"
    return Response(
        # A byte-order mark, so spreadsheet programs read the Cyrillic descriptions as UTF-8.
        content="\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
