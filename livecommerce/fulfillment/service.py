"""From a paid order to a delivered parcel: shipments, declarations, booking, tracking.

Every function here is safe to run twice and safe to run in two workers at once, because
the Celery tasks that call them acknowledge late and retry:

- ``create_shipments`` makes one shipment per warehouse of the order's allocation; the
  unique ``(order_id, warehouse_code)`` makes a second run (or a concurrent one) fail or find
  the first run's rows, never add parcels. A run that finds them sends the bookings of those
  still unbooked again: the first run's sends, after its commit, may never have happened.
- ``book_shipment`` gives the carrier our shipment reference as its idempotency key.
- ``ingest_events`` inserts scans with ``ON CONFLICT DO NOTHING`` on the carrier's event id.

Order statuses move with the parcels: ``paid -> fulfilling`` when the shipments exist,
``fulfilling -> shipped`` at the first departure, ``shipped -> delivered`` when the last parcel
arrives. Each change notifies the buyer in the same transaction (order moves through
``states.transition``, parcel moves here).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from livecommerce import jobs
from livecommerce.accounts.models import Role, User
from livecommerce.accounts.service import merchant_of
from livecommerce.db import dialect_insert, is_postgres, session_scope
from livecommerce.errors import Conflict, Forbidden, ValidationFailed
from livecommerce.fulfillment.carriers import (
    ARRIVED,
    AT_BORDER,
    CUSTOMS_CLEARED,
    CUSTOMS_HELD,
    DELAYED,
    DELIVERED,
    DELIVERY_FAILED,
    DEPARTED,
    OUT_FOR_DELIVERY,
    PICKED,
    BookingRequest,
    Carrier,
    CarrierEvent,
)
from livecommerce.fulfillment.models import (
    ACTIVE_SHIPMENT_STATUSES,
    CustomsAllowance,
    CustomsDeclaration,
    Shipment,
    ShipmentStatus,
    TrackingEvent,
)
from livecommerce.i18n.locales import pick_translation
from livecommerce.i18n.messages import N_
from livecommerce.i18n.money import Money
from livecommerce.inventory import service as inventory
from livecommerce.logistics.customs import assess
from livecommerce.logistics.network import Destination, Network
from livecommerce.notifications import service as notices
from livecommerce.orders import service as orders_service
from livecommerce.orders import states
from livecommerce.orders.consignee import mask_tax_id
from livecommerce.orders.models import Order, OrderLine, OrderStatus
from livecommerce.orders.snapshots import (
    AssessmentSnapshot,
    QuoteSnapshot,
    RoutePlan,
    ShipmentSnapshot,
)
from livecommerce.rates.service import RateBook, RateQuote, RateUnavailable, load_rate_book
from livecommerce.sqltypes import utcnow

log = logging.getLogger("livecommerce.fulfillment")

CENT = Decimal("0.01")
SHIPPABLE = (OrderStatus.PAID, OrderStatus.FULFILLING)
BOOKABLE = (OrderStatus.FULFILLING, OrderStatus.SHIPPED)

# The shipment status each scan leaves the parcel in (scans not listed change nothing).
STATUS_AFTER = {
    DEPARTED: ShipmentStatus.IN_TRANSIT,
    ARRIVED: ShipmentStatus.IN_TRANSIT,
    DELAYED: ShipmentStatus.IN_TRANSIT,
    AT_BORDER: ShipmentStatus.IN_TRANSIT,
    CUSTOMS_HELD: ShipmentStatus.CUSTOMS_HOLD,
    CUSTOMS_CLEARED: ShipmentStatus.IN_TRANSIT,
    OUT_FOR_DELIVERY: ShipmentStatus.OUT_FOR_DELIVERY,
    DELIVERY_FAILED: ShipmentStatus.IN_TRANSIT,
    DELIVERED: ShipmentStatus.DELIVERED,
}
assert PICKED not in STATUS_AFTER  # picking happens in the warehouse: still "booked"


def destination_of(network: Network, order: Order) -> Destination:
    return network.destination(
        order.destination_country, str(order.ship_to["city"]), order.delivery
    )


def quoted_rates(quote: QuoteSnapshot) -> RateBook:
    """The exchange rates the order was priced with: customs values use the same ones."""
    return RateBook(
        RateQuote(base=r.base, quote=r.quote, rate=r.rate, source=r.source, as_of=r.as_of)
        for r in quote.rates
    )


def month_of(now: datetime, destination: Destination) -> str:
    return now.astimezone(destination.timezone).strftime("%Y-%m")


async def _raise_allowance(
    session: AsyncSession, *, rule: str, recipient_key: str, month: str, value: Decimal
) -> Decimal:
    """Add ``value`` to the recipient's month and return what was declared before it.

    One atomic upsert: two parcels for one recipient declared at once each count the other.
    """
    cents = int((value / CENT).to_integral_value(rounding=ROUND_HALF_UP))
    table = CustomsAllowance.__table__  # type: ignore[attr-defined]
    stmt = dialect_insert(session, table).values(
        rule=rule, recipient_key=recipient_key, month=month, declared_minor=cents
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["rule", "recipient_key", "month"],
        set_={"declared_minor": table.c.declared_minor + cents},
    ).returning(table.c.declared_minor)
    total = int((await session.execute(stmt)).scalar_one())
    return Decimal(total - cents) * CENT


def _declaration_lines(
    lines: Sequence[OrderLine],
    *,
    order: Order,
    books: Sequence[RateBook],
    currency: str,
    language: str,
) -> list[dict[str, Any]]:
    out = []
    for line in lines:
        unit = Money.from_minor(line.unit_price_minor, order.currency)
        value = _convert(Money(unit.amount * line.quantity, order.currency), currency, books)
        out.append(
            {
                "hs_code": line.hs_code,
                "description": pick_translation(line.title, language) or line.sku,
                "sku": line.sku,
                "quantity": line.quantity,
                "weight_kg": str(Decimal(line.weight_grams * line.quantity) / Decimal(1000)),
                "value": str(value.amount.quantize(CENT, rounding=ROUND_HALF_UP)),
            }
        )
    return out


def _convert(money: Money, currency: str, books: Sequence[RateBook]) -> Money:
    """With the first book that has a path: the rates the order was priced with, then the
    current ones (the quote converted from the product's currency, which may not connect the
    buyer's currency to the customs currency)."""
    for book in books[:-1]:
        try:
            return book.convert(money, currency)[0]
        except RateUnavailable:
            continue
    return books[-1].convert(money, currency)[0]


def _recipient(order: Order) -> dict[str, Any]:
    """The consignee as declared. The tax id is kept whole, as filed: whatever shows it to
    someone (tracking, the merchant's lists, the manifest) masks it."""
    ship_to = order.ship_to
    recipient = {
        "name": ship_to.get("recipient_name"),
        "phone": ship_to.get("phone"),
        "country": order.destination_country,
        "city": ship_to.get("city"),
        "postal_code": ship_to.get("postal_code"),
        "address": ", ".join(
            p for p in (ship_to.get("address_line1"), ship_to.get("address_line2")) if p
        ),
    }
    if ship_to.get("tax_id"):
        recipient["tax_id"] = ship_to["tax_id"]
    return recipient


def _border_date(
    plan: RoutePlan, network: Network, code: str, order: Order, destination: Destination
) -> date:
    """The day the quote expected the parcel at the border (for a quote stored before border
    dates were kept: the same day worked out from today's route)."""
    if plan.border_date:
        return plan.border_date
    route = network.route(code, destination)
    day = route.border_date(order.created_at, destination) if route is not None else None
    return day or plan.eta


def _purchase_value(
    planned: Mapping[str, ShipmentSnapshot], code: str, rule_id: str, value: Decimal
) -> Decimal:
    """This parcel's customs value plus, as quoted, that of the order's other parcels under
    the same rule: an e-commerce threshold applies to the whole purchase."""
    others = Decimal(0)
    for other, plan in planned.items():
        # A legacy assessment names its union, never a rule id: it matches no rule.
        customs = plan.customs
        if other != code and isinstance(customs, AssessmentSnapshot) and customs.rule == rule_id:
            others += customs.customs_value
    return value + others


async def create_shipments(
    *, session: AsyncSession, network: Network, order_id: int, now: datetime | None = None
) -> list[Shipment]:
    """The order's parcels, one per warehouse it is allocated to, each declared to customs
    when it crosses a border. Returns the existing parcels when they were made before, and
    nothing for an order that is not (or no longer) to be shipped."""
    now = now or utcnow()
    query = select(Order).where(col(Order.id) == order_id)
    if is_postgres(session):
        # Under the order's lock, a cancel cannot slip in between this check and the
        # shipments (a cash-on-delivery order changes no status here to catch it).
        query = query.with_for_update()
    order = (await session.scalars(query)).first()
    if order is None or order.status not in SHIPPABLE:
        log.info("order %s: not shippable (%s)", order_id, order.status if order else "missing")
        return []
    existing = list(
        await session.scalars(
            select(Shipment).where(col(Shipment.order_id) == order_id).order_by(col(Shipment.id))
        )
    )
    if existing:
        # A run again (the job redelivered after its worker died between this commit and
        # the bookings' sends, or retried): the parcels exist, but their bookings may never
        # have been sent. Send them again for every parcel still waiting; booking is
        # idempotent, so one already on its way costs a duplicate job, never a second parcel.
        _book_after_commit(session, existing)
        return existing
    lines = list(
        await session.scalars(
            select(OrderLine).where(col(OrderLine.order_id) == order_id).order_by(col(OrderLine.id))
        )
    )
    by_warehouse: dict[str, list[OrderLine]] = {}
    for line in lines:
        by_warehouse.setdefault(line.warehouse_code, []).append(line)
    quote = QuoteSnapshot.read(order.quote)
    planned = {s.warehouse: s for s in quote.shipments}
    destination = destination_of(network, order)
    books = [quoted_rates(quote)]
    # Parcels in the quote's order (soonest first): under a monthly allowance the first to
    # reach customs is declared first, as it was quoted.
    codes = [c for c in planned if c in by_warehouse] + sorted(set(by_warehouse) - set(planned))
    shipments = []
    for code in codes:
        parts = by_warehouse[code]
        quoted_parcel = planned.get(code)
        plan: RoutePlan
        if quoted_parcel is None:  # allocated without a quoted route (never expected): route it now
            route = network.route(code, destination)
            assert route is not None, f"no route from {code} to {destination.country}"
            plan = RoutePlan.of(route, eta=route.eta(order.created_at, destination))
        else:
            plan = quoted_parcel
        weight = sum(line.weight_grams * line.quantity for line in parts)
        shipment = Shipment(
            order_id=order_id,
            merchant_id=order.merchant_id,
            warehouse_code=code,
            status=ShipmentStatus.CREATED,
            legs=[leg.as_record() for leg in plan.legs],
            handling_days=plan.handling_days,
            planned_days=plan.days,
            eta=plan.eta,
            destination_country=order.destination_country,
            destination_city=dict(quote.destination.city),
            weight_grams=weight,
            items=[
                {"product_id": line.product_id, "sku": line.sku, "quantity": line.quantity}
                for line in parts
            ],
            export_mode=network.export_mode(code),
            created_at=now,
            updated_at=now,
        )
        session.add(shipment)
        # A concurrent run inserting the same parcel fails here on the unique constraint;
        # its task retries and finds this run's rows.
        await session.flush()
        assert shipment.id is not None
        rule = vat = None
        border_day = None
        if network.crosses_border(code, destination):
            border_day = _border_date(plan, network, code, order, destination)
            # The rule in force on the quote's border date: the parcel is declared under the
            # rule its buyer was charged under, even when the day it ships is in another.
            rule = network.customs_for(destination, on=border_day)
            if rule.vat:
                vat = network.vat_for(destination.country, on=border_day)
        if rule is not None and border_day is not None:
            try:
                declared_lines = _declaration_lines(
                    parts,
                    order=order,
                    books=books,
                    currency=rule.currency,
                    language=rule.declaration_language,
                )
            except RateUnavailable:
                # The order's own rates do not reach the customs currency: add today's.
                books.append(await load_rate_book(session))
                declared_lines = _declaration_lines(
                    parts,
                    order=order,
                    books=books,
                    currency=rule.currency,
                    language=rule.declaration_language,
                )
            value = sum((Decimal(x["value"]) for x in declared_lines), Decimal(0))
            earlier = Decimal(0)
            month = month_of(now, destination) if rule.monthly else None
            if month is not None:
                earlier = await _raise_allowance(
                    session,
                    rule=rule.id,
                    recipient_key=order.recipient_key,
                    month=month,
                    value=value,
                )
            assessed = assess(
                rule,
                value=value,
                weight_grams=weight,
                border_date=border_day,
                vat=vat,
                earlier_value=earlier,
                purchase_value=_purchase_value(planned, code, rule.id, value),
            )
            quoted = quoted_parcel.customs.duty if quoted_parcel and quoted_parcel.customs else None
            session.add(
                CustomsDeclaration(
                    shipment_id=shipment.id,
                    rule=rule.id,
                    customs_union=rule.union,
                    legal_basis=rule.legal_basis,
                    border_date=border_day,
                    declared_by=rule.declared_by,
                    language=rule.declaration_language,
                    export_mode=shipment.export_mode,
                    currency=rule.currency,
                    declared_value=assessed.customs_value,
                    gross_weight_grams=weight,
                    earlier_value=earlier,
                    allowance_month=month,
                    duty_free_allowance=assessed.allowance,
                    duty=assessed.duty.quantize(CENT),
                    vat=assessed.vat.quantize(CENT),
                    total=assessed.total.quantize(CENT),
                    charges=[c.as_data() for c in assessed.charges],
                    quoted_duty=quoted,
                    recipient=_recipient(order),
                    lines=declared_lines,
                    created_at=now,
                )
            )
        shipments.append(shipment)
    if order.status == OrderStatus.PAID:
        await states.transition(
            session, order, OrderStatus.FULFILLING, actor="system", reason="shipments_created"
        )
    await session.flush()
    _book_after_commit(session, shipments)
    return shipments


def _book_after_commit(session: AsyncSession, shipments: Sequence[Shipment]) -> None:
    """A ``book_shipment`` job, sent after commit, for each parcel not yet booked."""
    for shipment in shipments:
        if shipment.status == ShipmentStatus.CREATED:
            jobs.enqueue(session, "book_shipment", shipment.id)


class AlreadyWithCarrier(Conflict):
    code = "order_with_carrier"
    message = N_("The order has been handed to the carrier and can no longer be cancelled.")


async def withdraw_shipments(session: AsyncSession, order: Order, strict: bool) -> None:
    """Withdraw the order's parcels that no carrier has yet, as the order is cancelled or
    refunded (called with the order locked; see ``orders.service.before_closing``; wired
    in ``livecommerce/composition.py``).

    The Uzbek monthly allowance they took is given back. When ``strict``, a parcel already
    booked makes this raise ``AlreadyWithCarrier`` (the whole cancellation rolls back).
    The conditional UPDATE runs first: a booking that commits meanwhile is then seen.
    """
    assert order.id is not None
    now = utcnow()
    withdrawn = [
        shipment_id
        for shipment_id in await session.scalars(
            update(Shipment)
            .where(
                col(Shipment.order_id) == order.id,
                col(Shipment.status) == ShipmentStatus.CREATED,
            )
            .values(status=ShipmentStatus.CANCELLED, updated_at=now)
            .returning(col(Shipment.id))
            .execution_options(synchronize_session=False)
        )
        if shipment_id is not None
    ]
    if strict:
        remaining = await session.scalar(
            select(func.count())
            .select_from(Shipment)
            .where(
                col(Shipment.order_id) == order.id,
                col(Shipment.status) != ShipmentStatus.CANCELLED,
            )
        )
        if remaining:
            raise AlreadyWithCarrier(details={"order_id": order.id})
    if withdrawn:
        declarations = await session.scalars(
            select(CustomsDeclaration).where(
                col(CustomsDeclaration.shipment_id).in_(withdrawn),
                col(CustomsDeclaration.allowance_month).is_not(None),
            )
        )
        table = CustomsAllowance.__table__  # type: ignore[attr-defined]
        for declaration in declarations:
            cents = int((declaration.declared_value / CENT).to_integral_value(ROUND_HALF_UP))
            await session.execute(
                update(table)
                .where(
                    table.c.rule == declaration.rule,
                    table.c.recipient_key == order.recipient_key,
                    table.c.month == declaration.allowance_month,
                )
                .values(
                    declared_minor=case(
                        (table.c.declared_minor > cents, table.c.declared_minor - cents), else_=0
                    )
                )
            )
        log.info("order %s: shipments %s withdrawn", order.id, withdrawn)


def booking_request(network: Network, order: Order, shipment: Shipment) -> BookingRequest:
    destination = destination_of(network, order)
    return BookingRequest(
        reference=f"shipment-{shipment.id}",
        warehouse=shipment.warehouse_code,
        handling_days=shipment.handling_days,
        legs=shipment.legs,
        destination_country=shipment.destination_country,
        destination_city=shipment.destination_city,
        weight_grams=shipment.weight_grams,
        border=network.border(shipment.warehouse_code, destination, shipment.legs),
    )


async def book_shipment(
    *,
    sessions: async_sessionmaker[AsyncSession],
    network: Network,
    carrier: Carrier,
    shipment_id: int,
) -> Shipment | None:
    """Hand the parcel to the carrier (raises ``CarrierUnavailable`` to be retried).

    The carrier is called outside any transaction: its latency never holds a database lock
    (on SQLite, the one write lock). Booking is idempotent at the carrier (our reference), so
    two runs may both call it; the first to write wins and the other finds it booked.
    """
    async with session_scope(sessions, read_only=True) as session:
        shipment = await session.get(Shipment, shipment_id)
        if shipment is None or shipment.status != ShipmentStatus.CREATED:
            return shipment
        order = await session.get(Order, shipment.order_id)
        assert order is not None
        if order.status not in BOOKABLE:
            log.info("shipment %s: order %s is %s, not booked", shipment_id, order.id, order.status)
            return shipment
        request = booking_request(network, order, shipment)
    booking = await carrier.book(request)
    async with session_scope(sessions) as session:
        query = select(Shipment).where(
            col(Shipment.id) == shipment_id, col(Shipment.status) == ShipmentStatus.CREATED
        )
        if is_postgres(session):
            query = query.with_for_update()
        shipment = (await session.scalars(query)).first()
        if shipment is None:
            return await session.get(Shipment, shipment_id)  # booked or withdrawn meanwhile
        order = await session.get(Order, shipment.order_id)
        assert order is not None
        withdrawn = order.status not in BOOKABLE
        if not withdrawn:
            shipment.carrier = carrier.name
            shipment.tracking_number = booking.tracking_number
            shipment.carrier_data = booking.data
            shipment.booked_at = booking.booked_at
            shipment.status = ShipmentStatus.BOOKED
            shipment.updated_at = utcnow()
            await _notify_shipment(session, order, shipment)
            await session.flush()
    if withdrawn:
        # The order was cancelled while the carrier answered: undo the booking, like the
        # booking itself outside any transaction.
        await carrier.cancel(booking.tracking_number, booking.data)
    return shipment


async def ingest_events(
    *, session: AsyncSession, shipment: Shipment, events: Sequence[CarrierEvent]
) -> int:
    """Store the carrier's scans (a repeated scan is ignored) and move the parcel and its
    order along. Returns how many scans were new."""
    assert shipment.id is not None
    fresh: list[CarrierEvent] = []
    table = TrackingEvent.__table__  # type: ignore[attr-defined]
    for event in events:
        stmt = (
            dialect_insert(session, table)
            .values(
                shipment_id=shipment.id,
                carrier_event_id=event.event_id,
                code=event.code,
                at=event.at,
                location=event.location,
                location_names=dict(event.location_names) if event.location_names else None,
                detail=event.detail,
                received_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["shipment_id", "carrier_event_id"])
        )
        if (await session.execute(stmt)).rowcount:  # type: ignore[attr-defined]
            fresh.append(event)
    now = utcnow()
    shipment.polled_at = now
    if not fresh:
        return 0
    order = await session.get(Order, shipment.order_id)
    assert order is not None
    # Walk the new scans in time order, so the buyer hears of each step (held by customs,
    # out for delivery) even when one poll brings several.
    for event in sorted(fresh, key=lambda e: e.at):
        if shipment.status == ShipmentStatus.DELIVERED:
            break  # terminal: a scan reported late never moves a delivered parcel back
        status = STATUS_AFTER.get(event.code)
        if status is None or status == shipment.status:
            continue
        shipment.status = status
        shipment.updated_at = now
        if status == ShipmentStatus.DELIVERED:
            shipment.delivered_at = event.at
        await _notify_shipment(session, order, shipment, code=event.code)
    await session.flush()
    await _advance_order(session, order)
    return len(fresh)


async def _advance_order(session: AsyncSession, order: Order) -> None:
    if is_postgres(session):
        # Two parcels of one order delivered at once: under the order's lock the second one
        # sees the first as delivered (else neither would see "all delivered").
        await session.execute(
            select(col(Order.id)).where(col(Order.id) == order.id).with_for_update()
        )
        await session.refresh(order)
    statuses = list(
        await session.scalars(
            select(col(Shipment.status)).where(col(Shipment.order_id) == order.id)
        )
    )
    if order.status == OrderStatus.FULFILLING and any(
        s not in (ShipmentStatus.CREATED, ShipmentStatus.BOOKED) for s in statuses
    ):
        await states.transition(
            session, order, OrderStatus.SHIPPED, actor="carrier", reason="departed"
        )
    if order.status == OrderStatus.SHIPPED and all(s == ShipmentStatus.DELIVERED for s in statuses):
        await states.transition(
            session, order, OrderStatus.DELIVERED, actor="carrier", reason="delivered"
        )


async def poll_tracking(
    *,
    sessions: async_sessionmaker[AsyncSession],
    carriers: Mapping[str, Carrier],
    limit: int = 200,
) -> int:
    """Ask the carriers about parcels on the way, least recently asked first.

    Each carrier call happens outside any transaction; what it reports is then stored in a
    short transaction per parcel, so one failing call delays only that parcel.
    """
    async with session_scope(sessions, read_only=True) as session:
        rows = (
            await session.execute(
                select(
                    col(Shipment.id),
                    col(Shipment.carrier),
                    col(Shipment.tracking_number),
                    col(Shipment.carrier_data),
                )
                .where(
                    col(Shipment.status).in_(ACTIVE_SHIPMENT_STATUSES),
                    col(Shipment.tracking_number).is_not(None),
                )
                .order_by(col(Shipment.polled_at).is_not(None), col(Shipment.polled_at))
                .limit(limit)
            )
        ).all()
    new = 0
    for shipment_id, carrier_name, tracking_number, data in rows:
        carrier = carriers.get(carrier_name or "")
        if carrier is None or tracking_number is None:
            log.error("shipment %s: unknown carrier %r", shipment_id, carrier_name)
            continue
        try:
            events = await carrier.track(tracking_number, data or {})
            async with session_scope(sessions) as session:
                query = select(Shipment).where(col(Shipment.id) == shipment_id)
                if is_postgres(session):
                    query = query.with_for_update(skip_locked=True)
                shipment = (await session.scalars(query)).first()
                if shipment is None or shipment.status not in ACTIVE_SHIPMENT_STATUSES:
                    continue  # another poller has it, or it arrived meanwhile
                new += await ingest_events(session=session, shipment=shipment, events=events)
        except states.OrderChanged:
            continue  # someone else moved the order meanwhile; the next poll sees it
        except Exception:
            log.exception("shipment %s: tracking poll failed; retried next poll", shipment_id)
    return new


async def unshipped_orders(
    *, session: AsyncSession, older_than: datetime, limit: int = 200
) -> list[int]:
    """Paid or cash-on-delivery orders that have no shipment although their fulfilment job
    should long have run: the job was lost (a broker outage after commit) or kept failing."""
    has_shipment = select(col(Shipment.id)).where(col(Shipment.order_id) == col(Order.id))
    rows = await session.scalars(
        select(col(Order.id))
        .where(
            col(Order.status).in_(SHIPPABLE),
            col(Order.updated_at) <= older_than,
            ~has_shipment.exists(),
        )
        .order_by(col(Order.id))
        .limit(limit)
    )
    return [r for r in rows if r is not None]


async def unbooked_shipments(
    *, session: AsyncSession, older_than: datetime, limit: int = 200
) -> list[int]:
    rows = await session.scalars(
        select(col(Shipment.id))
        .where(
            col(Shipment.status) == ShipmentStatus.CREATED,
            col(Shipment.created_at) <= older_than,
        )
        .order_by(col(Shipment.id))
        .limit(limit)
    )
    return [r for r in rows if r is not None]


async def count_shipments(*, session: AsyncSession, order_id: int) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Shipment).where(col(Shipment.order_id) == order_id)
        )
        or 0
    )


# --- Buyer notices -------------------------------------------------------------------------


async def _notify_shipment(
    session: AsyncSession, order: Order, shipment: Shipment, *, code: str | None = None
) -> None:
    assert order.id is not None and shipment.id is not None
    await notices.notify(
        session,
        user_id=order.buyer_id,
        kind=notices.SHIPMENT_STATUS,
        order_id=order.id,
        shipment_id=shipment.id,
        data={
            "status": shipment.status,
            "warehouse": shipment.warehouse_code,
            "tracking_number": shipment.tracking_number,
            "code": code,
        },
    )


# --- Merchant views ------------------------------------------------------------------------

PAGE_SIZE = 20
MANIFEST_COLUMNS = (
    "shipment_id",
    "order_id",
    "tracking_number",
    "created_at",
    "warehouse",
    "destination_country",
    "rule",
    "recipient_name",
    "recipient_phone",
    "city",
    "postal_code",
    "address",
    "hs_code",
    "description",
    "quantity",
    "weight_kg",
    "value",
    "currency",
    "parcel_value",
    "parcel_weight_kg",
    "parcel_duty",
    # Added at the end, so the columns above keep their places in merchants' sheets.
    "legal_basis",
    "border_date",
    "parcel_vat",
    "parcel_total",
    "declared_by",
    "export_mode",
    "export_mode_name",
    "recipient_tax_id",  # masked: the last four digits
    "delivery",  # courier or postal: who the warehouse hands the parcel to
)


class ShipmentsForbidden(Forbidden):
    code = "shipments_forbidden"
    message = N_("Only merchants and admins can list shipments.")


async def _merchant_scope(session: AsyncSession, user: User) -> int | None:
    """The merchant whose shipments ``user`` may see; None for an admin (all of them)."""
    if user.role == Role.ADMIN:
        return None
    if user.role == Role.MERCHANT:
        merchant = await merchant_of(session=session, user=user)
        if merchant is not None and merchant.id is not None:
            return merchant.id
    raise ShipmentsForbidden()


FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """The instants a calendar day in ``zone`` starts and ends."""
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationFailed(details={"date": day.isoformat()})
    start = datetime.combine(day, time(0), tzinfo=ZoneInfo(zone))
    return start, start + timedelta(days=1)


async def list_shipments(
    *,
    session: AsyncSession,
    user: User,
    status: str | None = None,
    warehouse: str | None = None,
    day: date | None = None,
    order_id: int | None = None,
    page: int = 1,
) -> tuple[list[Shipment], int]:
    merchant_id = await _merchant_scope(session, user)
    query = select(Shipment)
    if merchant_id is not None:
        query = query.where(col(Shipment.merchant_id) == merchant_id)
    if status:
        query = query.where(col(Shipment.status) == status)
    if order_id is not None:
        query = query.where(col(Shipment.order_id) == order_id)
    if warehouse:
        found = await inventory.require_warehouse(session=session, code=warehouse, in_query=True)
        query = query.where(col(Shipment.warehouse_code) == found.code)
        if day is not None:
            start, end = day_bounds(day, found.timezone)
            query = query.where(col(Shipment.created_at) >= start, col(Shipment.created_at) < end)
    elif day is not None:
        raise ValidationFailed(details={"date": "needs warehouse (days are in its time zone)"})
    total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = await session.scalars(
        query.order_by(col(Shipment.id).desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    )
    return list(rows), total


async def declarations_of(
    session: AsyncSession, shipment_ids: Sequence[int | None]
) -> dict[int, CustomsDeclaration]:
    ids = [i for i in shipment_ids if i is not None]
    if not ids:
        return {}
    rows = await session.scalars(
        select(CustomsDeclaration).where(col(CustomsDeclaration.shipment_id).in_(ids))
    )
    return {d.shipment_id: d for d in rows}


# --- What the parcel routes answer ------------------------------------------------------


@dataclass(frozen=True)
class Tracking:
    """An order's parcels with their declarations and scans (keyed by shipment id)."""

    order: Order
    shipments: list[Shipment]
    declarations: dict[int, CustomsDeclaration]
    events: dict[int, list[TrackingEvent]]


async def tracking_of(*, session: AsyncSession, user: User, order_id: int) -> Tracking:
    """Where the order's parcels are, for whoever may read the order: the buyer, the
    merchant and admins (anyone else hears the order does not exist)."""
    order = await orders_service.get_order(session=session, user=user, order_id=order_id)
    shipments = list(
        await session.scalars(
            select(Shipment).where(col(Shipment.order_id) == order_id).order_by(col(Shipment.id))
        )
    )
    ids = [s.id for s in shipments]
    events: dict[int, list[TrackingEvent]] = {}
    for event in await session.scalars(
        select(TrackingEvent)
        .where(col(TrackingEvent.shipment_id).in_(ids))
        .order_by(col(TrackingEvent.at), col(TrackingEvent.id))
    ):
        events.setdefault(event.shipment_id, []).append(event)
    return Tracking(order, shipments, await declarations_of(session, ids), events)


@dataclass(frozen=True)
class ShipmentsPage:
    shipments: list[Shipment]
    declarations: dict[int, CustomsDeclaration]
    page: int
    total: int


async def shipments_page(
    *,
    session: AsyncSession,
    user: User,
    status: str | None = None,
    warehouse: str | None = None,
    day: date | None = None,
    order_id: int | None = None,
    page: int = 1,
) -> ShipmentsPage:
    """``list_shipments`` with the parcels' declarations."""
    shipments, total = await list_shipments(
        session=session,
        user=user,
        status=status,
        warehouse=warehouse,
        day=day,
        order_id=order_id,
        page=page,
    )
    declarations = await declarations_of(session, [s.id for s in shipments])
    return ShipmentsPage(shipments, declarations, page, total)


def delivery_of(shipment: Shipment) -> str:
    """How the parcel reaches the buyer: by the post when its last leg is the post's."""
    last = shipment.legs[-1] if shipment.legs else {}
    return "postal" if last.get("mode") == "post" else "courier"


async def manifest(
    *,
    session: AsyncSession,
    network: Network,
    user: User,
    warehouse: str,
    day: date,
    locale: str = "en",
) -> list[dict[str, Any]]:
    """One row per declared line of the parcels that left ``warehouse`` on ``day`` (its local
    calendar day) and cross a customs border: what a customs broker files for that dispatch."""
    merchant_id = await _merchant_scope(session, user)
    found = await inventory.require_warehouse(session=session, code=warehouse, in_query=True)
    start, end = day_bounds(day, found.timezone)
    query = (
        select(Shipment, CustomsDeclaration)
        .join(CustomsDeclaration, col(CustomsDeclaration.shipment_id) == col(Shipment.id))
        .where(
            col(Shipment.warehouse_code) == found.code,
            col(Shipment.created_at) >= start,
            col(Shipment.created_at) < end,
            col(Shipment.status) != ShipmentStatus.CANCELLED,
        )
        .order_by(col(Shipment.id))
    )
    if merchant_id is not None:
        query = query.where(col(Shipment.merchant_id) == merchant_id)
    rows = []
    for shipment, declaration in await session.execute(query):
        recipient = declaration.recipient
        for line in declaration.lines:
            rows.append(
                {
                    "shipment_id": shipment.id,
                    "order_id": shipment.order_id,
                    "tracking_number": shipment.tracking_number or "",
                    "created_at": shipment.created_at.isoformat(),
                    "warehouse": shipment.warehouse_code,
                    "destination_country": shipment.destination_country,
                    "rule": declaration.rule,
                    "recipient_name": recipient.get("name") or "",
                    "recipient_phone": recipient.get("phone") or "",
                    "city": recipient.get("city") or "",
                    "postal_code": recipient.get("postal_code") or "",
                    "address": recipient.get("address") or "",
                    "hs_code": line["hs_code"],
                    "description": line["description"],
                    "quantity": line["quantity"],
                    "weight_kg": line["weight_kg"],
                    "value": line["value"],
                    "currency": declaration.currency,
                    "parcel_value": str(declaration.declared_value),
                    "parcel_weight_kg": str(
                        Decimal(declaration.gross_weight_grams) / Decimal(1000)
                    ),
                    "parcel_duty": str(declaration.duty),
                    "legal_basis": declaration.legal_basis or "",
                    "border_date": declaration.border_date.isoformat()
                    if declaration.border_date
                    else "",
                    "parcel_vat": str(declaration.vat),
                    "parcel_total": str(declaration.total),
                    "declared_by": declaration.declared_by or "",
                    "export_mode": declaration.export_mode or "",
                    "export_mode_name": network.export_mode_name(declaration.export_mode, locale)
                    or "",
                    "recipient_tax_id": mask_tax_id(recipient.get("tax_id")) or "",
                    "delivery": delivery_of(shipment),
                }
            )
    return rows
