"""Quotes and orders: the basket, the landed cost, the reservation, the order's life.

Stock, flash-sale quantity and per-customer limits are all taken with conditional updates
in the database (never read-modify-write in Python), always in the same lock order:
the buyer's flash-sale claim, the flash sale, then stock rows by primary key. A request
that loses a race gets a clean 409; nothing is ever oversold.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Protocol

from sqlalchemy import Select, bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from livecommerce import jobs
from livecommerce.accounts.models import Role, User
from livecommerce.accounts.service import merchant_of
from livecommerce.catalog.models import Product
from livecommerce.catalog.service import ProductNotFound
from livecommerce.db import after_commit, as_loaded
from livecommerce.errors import AppError, Conflict, NotFound, ValidationFailed
from livecommerce.flashsales import service as flashsales
from livecommerce.flashsales.admission import Admission, Ticket
from livecommerce.flashsales.models import FlashSale
from livecommerce.flashsales.service import FlashSaleNotFound
from livecommerce.i18n.messages import N_
from livecommerce.i18n.money import Money
from livecommerce.inventory import service as inventory
from livecommerce.inventory.service import OutOfStock, out_of_stock
from livecommerce.logistics.allocation import Shortage
from livecommerce.logistics.network import Destination, Network
from livecommerce.orders import states
from livecommerce.orders.consignee import check_consignee, check_tax_id
from livecommerce.orders.models import (
    Order,
    OrderEvent,
    OrderLine,
    OrderStatus,
    PaymentMethod,
)
from livecommerce.orders.quotes import BasketLine, Quote, build_quote
from livecommerce.orders.schemas import OrderIn, QuoteIn
from livecommerce.orders.snapshots import QuoteSnapshot
from livecommerce.rates.service import (
    RateBook,
    RateBookCache,
    RatesVersion,
    rates_version,
    version_columns,
)
from livecommerce.rooms import render
from livecommerce.rooms.names import stream_room
from livecommerce.sqltypes import utcnow
from livecommerce.streams.models import Stream
from livecommerce.streams.service import StreamNotFound
from livecommerce.wiring import wiring_of

log = logging.getLogger(__name__)
PAGE_SIZE = 20
# A snapshot of stock can be beaten by a concurrent order; re-read and re-allocate a few
# times (another warehouse may still have it) before answering out_of_stock.
RESERVE_ATTEMPTS = 3
TICKER_NAME_MAX = 24


class MixedMerchants(ValidationFailed):
    code = "mixed_merchants"
    message = N_("An order holds products of one merchant only. Place one order per shop.")


class NotThisStream(ValidationFailed):
    code = "product_not_in_stream"
    message = N_("These products are not sold in this stream.")


class FlashSaleNotInBasket(ValidationFailed):
    code = "flash_sale_product_missing"
    message = N_("The basket does not contain the flash sale's product.")


class OrderNotFound(NotFound):
    code = "order_not_found"
    message = N_("This order does not exist.")


class OrderNotCancellable(Conflict):
    code = "order_not_cancellable"
    message = N_("This order has already shipped or ended and can no longer be cancelled.")


class OrderAnnouncer(Protocol):
    """What the order path needs from the stream rooms (``streams.room_events``), called
    after commit only."""

    def announce_order(self, room_name: str, entry: dict[str, Any]) -> None: ...

    def announce_flash_sale(self, room_name: str, sale_id: int, card: dict[str, Any]) -> None: ...


@dataclass
class Basket:
    merchant_id: int
    products: dict[int, Product]
    lines: list[BasketLine]
    sale: FlashSale | None
    stream: Stream | None
    rates: RatesVersion
    stock: dict[int, dict[str, int]]  # a snapshot, read with the basket: product -> warehouse


@dataclass
class Placed:
    order: Order
    events: list[OrderEvent]
    take_units: Callable[[], Awaitable[None]]
    quote: QuoteSnapshot  # what ``order.quote`` holds, for the answer


def recipient_key(phone: str | None, buyer_id: int | None) -> str:
    """Customs counts allowances per recipient: by phone number when known."""
    if phone:
        return "tel:" + re.sub(r"\D", "", phone)
    return f"user:{buyer_id}"


# --- The basket ----------------------------------------------------------------------------

# The basket's products, its stream and flash sale (when named) and the rates version, in
# one round trip. Built once: in a rush every order runs it.
_BASKET = inventory.with_levels(
    select(Product, Stream, FlashSale, *version_columns())
    .select_from(Product)
    .outerjoin(Stream, col(Stream.id) == bindparam("stream_id"))
    .outerjoin(FlashSale, col(FlashSale.id) == bindparam("sale_id"))
    .where(
        col(Product.id).in_(bindparam("ids", expanding=True)), col(Product.deleted_at).is_(None)
    ),
    col(Product.id),
)


async def _load_basket(session: AsyncSession, data: QuoteIn, now: datetime) -> Basket:
    ids = [item.product_id for item in data.items]
    rows = (
        await session.execute(
            _BASKET, {"ids": ids, "stream_id": data.stream_id, "sale_id": data.flash_sale_id}
        )
    ).all()
    products = {row[0].id: row[0] for row in rows}
    for pid in ids:
        if pid not in products:
            raise ProductNotFound(id=pid)
    _, stream, sale, rate_id, rate_created, _, _ = rows[0]
    stock: dict[int, dict[str, int]] = {pid: {} for pid in products}
    for product, *_, warehouse, quantity in rows:
        if warehouse is not None:
            stock[product.id][warehouse] = quantity
    merchants = {p.merchant_id for p in products.values()}
    if len(merchants) != 1:
        raise MixedMerchants()
    merchant_id = merchants.pop()

    if data.stream_id is not None:
        if stream is None:
            raise StreamNotFound()
        if stream.merchant_id != merchant_id:
            raise NotThisStream()

    if data.flash_sale_id is not None:
        if sale is None or (stream is not None and sale.stream_id != stream.id):
            raise FlashSaleNotFound()
        if sale.product_id not in products:
            raise FlashSaleNotInBasket()

    lines = []
    for item in data.items:
        product = products[item.product_id]
        on_sale = sale is not None and sale.product_id == item.product_id
        if on_sale and sale is not None and flashsales.is_open(sale, now):
            price = Money.from_minor(sale.price_minor, sale.price_currency)
            sale_id: int | None = sale.id
        else:
            price = Money.from_minor(product.price_minor, product.price_currency)
            sale_id = None
        lines.append(
            BasketLine(
                product_id=item.product_id,
                quantity=item.quantity,
                unit_price=price,
                weight_grams=product.weight_grams,
                title=product.title or {"en": product.sku},
                flash_sale_id=sale_id,
                hs_code=product.hs_code or "",
            )
        )
    return Basket(
        merchant_id, products, lines, sale, stream, rates_version(rate_id, rate_created), stock
    )


def _month_start(now: datetime, destination: Destination) -> datetime:
    local = now.astimezone(destination.timezone)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _this_month(destination: Destination, currency: str, now: datetime) -> tuple[Any, ...]:
    """What makes an order count against a monthly allowance: to the destination's country,
    delivered the same way (courier and post have their own allowances), declared in the
    allowance's currency, this calendar month there, and not given up."""
    return (
        col(Order.destination_country) == destination.country,
        col(Order.delivery) == destination.delivery,
        col(Order.declared_currency) == currency,
        col(Order.created_at) >= _month_start(now, destination),
        col(Order.status).not_in([OrderStatus.CANCELLED, OrderStatus.REFUNDED]),
    )


async def earlier_imports(
    session: AsyncSession,
    *,
    network: Network,
    destination: Destination,
    key: str | None,
    buyer_id: int | None,
    now: datetime,
) -> Decimal:
    """Customs value already imported this calendar month by the recipient, under a
    monthly allowance (0 for per-parcel rules or an anonymous quote)."""
    currency = network.monthly_currency(destination)
    if currency is None or (key is None and buyer_id is None):
        return Decimal(0)
    who = []
    if key is not None:
        who.append(col(Order.recipient_key) == key)
    if buyer_id is not None:
        who.append(col(Order.buyer_id) == buyer_id)
    rows = await session.scalars(
        select(col(Order.declared_value)).where(
            or_(*who),
            *_this_month(destination, currency, now),
        )
    )
    return sum(rows, Decimal(0))


async def earlier_imports_of(
    session: AsyncSession,
    *,
    network: Network,
    destination: Destination,
    buyer_ids: Collection[int],
    now: datetime,
) -> dict[int, Decimal]:
    """``earlier_imports`` of many signed-in buyers to one destination's country, in one
    query (by buyer; what is not listed imported nothing)."""
    currency = network.monthly_currency(destination)
    if currency is None or not buyer_ids:
        return {}
    rows = await session.execute(
        select(col(Order.buyer_id), col(Order.declared_value)).where(
            col(Order.buyer_id).in_(list(buyer_ids)),
            *_this_month(destination, currency, now),
        )
    )
    found: dict[int, Decimal] = {}
    for buyer_id, value in rows:
        found[buyer_id] = found.get(buyer_id, Decimal(0)) + value
    return found


def _quote(
    *,
    network: Network,
    basket: Basket,
    destination: Destination,
    book: RateBook,
    currency: str,
    earlier: Decimal,
    now: datetime,
    stock: Mapping[int, Mapping[str, int]] | None = None,
) -> Quote:
    """The landed cost of ``basket``, allocated on the stock read with it (or on ``stock``)."""
    try:
        return build_quote(
            network=network,
            destination=destination,
            basket=basket.lines,
            stock=basket.stock if stock is None else stock,
            book=book,
            currency=currency,
            earlier_imports=earlier,
            now=now,
        )
    except Shortage as short:
        raise out_of_stock(short.product_id, short.requested, short.available) from None


async def quote(
    *,
    session: AsyncSession,
    network: Network,
    data: QuoteIn,
    currency: str,
    buyer: User | None,
    books: RateBookCache,
    now: datetime | None = None,
) -> Quote:
    now = now or utcnow()
    destination = network.destination(data.ship_to.country, data.ship_to.city, data.delivery)
    check_tax_id(network, data.ship_to)  # a quote never needs one, but one given must fit
    basket = await _load_basket(session, data, now)
    book = await books.book(session, basket.rates)
    key = recipient_key(data.ship_to.phone, None) if data.ship_to.phone else None
    earlier = await earlier_imports(
        session,
        network=network,
        destination=destination,
        key=key,
        buyer_id=buyer.id if buyer else None,
        now=now,
    )
    return _quote(
        network=network,
        basket=basket,
        destination=destination,
        book=book,
        currency=data.currency or currency,
        earlier=earlier,
        now=now,
    )


# --- Placing an order --------------------------------------------------------------------


def _short_line(basket: Basket, stock: Mapping[int, Mapping[str, int]]) -> OutOfStock | None:
    """The 409 for the first line that all warehouses together cannot fill, if any."""
    for line in basket.lines:
        available = sum(stock.get(line.product_id, {}).values())
        if available < line.quantity:
            return out_of_stock(line.product_id, line.quantity, available)
    return None


class StockMoved(Exception):
    """The stock an order was quoted on went to other buyers before its units were taken:
    the order starts over from a fresh snapshot (``db.restart``), up to RESERVE_ATTEMPTS."""


async def _take_hot_rows(
    session: AsyncSession,
    *,
    basket: Basket,
    landed: Quote,
    buyer_id: int,
    now: datetime,
    last_attempt: bool,
) -> None:
    """The flash sale's units and the stock, taken last, just before the commit.

    Every winner of a rush queues on the same two rows (the sale's and the product's stock
    row at its warehouse), each locked from this moment to the commit: the order's own rows
    and its stored answer are already written, so the locks last two statements and the
    commit. Lock order: the buyer's claim, the sale, then stock rows by primary key.
    """
    if basket.sale is not None:
        qty = next(line.quantity for line in basket.lines if line.flash_sale_id)
        await flashsales.claim(
            session=session, sale=basket.sale, buyer_id=buyer_id, quantity=qty, now=now
        )
    parts = [(pid, code, qty) for pid, split in landed.allocation.items() for code, qty in split]
    try:
        await inventory.take(session=session, parts=parts)
    except inventory.StockTaken:
        if not last_attempt:
            raise StockMoved() from None  # someone was faster; another warehouse may have it
        # Still losing after a few rounds: the stock is going as we look. Say what is left.
        stock = await inventory.stock_by_product(session=session, product_ids=list(basket.products))
        line = basket.lines[0]
        raise _short_line(basket, stock) or out_of_stock(
            line.product_id, line.quantity, sum(stock.get(line.product_id, {}).values())
        ) from None


_INSERT_ORDER = insert(Order.__table__).returning(Order.__table__.c.id)  # type: ignore[attr-defined]
_INSERT_ORDERS = insert(Order.__table__).returning(  # type: ignore[attr-defined]
    Order.__table__.c.id,  # type: ignore[attr-defined]
    sort_by_parameter_order=True,  # the ids in the order of the rows
)
_INSERT_LINES = insert(OrderLine.__table__)  # type: ignore[attr-defined]
_INSERT_EVENTS = insert(OrderEvent.__table__)  # type: ignore[attr-defined]


async def admit(
    *,
    session: AsyncSession,
    admission: Admission | None,
    data: OrderIn,
    buyer_id: int,
    keyed: bool,
    ticket: Ticket | None = None,
) -> None:
    """Refuse, from the admission gate and before any database work, an order that cannot
    win: a product out of stock everywhere moments ago, a flash sale with nothing left for
    this buyer. ``keyed``: the request carries an Idempotency-Key (it may be a retry of an
    order that already won, whose stored answer the database must give). ``ticket``: units
    the front door already took for this order."""
    if ticket is not None and ticket.claim(session, data.flash_sale_id, buyer_id):
        return
    if admission is None or not admission.usable:
        return
    for item in data.items:
        if await admission.product_sold_out(
            product_id=item.product_id, buyer_id=buyer_id, keyed=keyed
        ):
            raise out_of_stock(item.product_id, item.quantity, 0)
    if data.flash_sale_id is not None:
        await admission.enter_sale(
            session=session,
            sale_id=data.flash_sale_id,
            items=[(item.product_id, item.quantity) for item in data.items],
            buyer_id=buyer_id,
            keyed=keyed,
        )


async def _checked_basket(
    session: AsyncSession, data: OrderIn, now: datetime, admission: Admission | None
) -> Basket:
    """The order's basket, or its 409 when it cannot be filled or its sale has ended."""
    basket = await _load_basket(session, data, now)
    # A sold-out item is the common answer in a rush: decide it from one snapshot, before
    # the rates and the buyer's customs history are loaded.
    short = _short_line(basket, basket.stock)
    if short is not None:
        if admission is not None and short.available == 0:
            # Gone everywhere: the next buyers of this product hear it from the gate.
            await admission.mark_sold_out(short.details["product_id"])
        raise short
    if basket.sale is not None and not any(line.flash_sale_id for line in basket.lines):
        raise flashsales.FlashSaleEnded()
    return basket


def _order_row(
    *,
    buyer_id: int,
    data: OrderIn,
    basket: Basket,
    landed: Quote,
    snapshot: QuoteSnapshot,
    key: str,
    currency: str,
    locale: str,
    reservation: timedelta,
    now: datetime,
) -> dict[str, Any]:
    """The ``orders`` row of a quoted order (without its id)."""
    is_card = data.payment_method == PaymentMethod.CARD
    declared_value, declared_currency = landed.declared
    return {
        "buyer_id": buyer_id,
        "merchant_id": basket.merchant_id,
        "stream_id": basket.stream.id if basket.stream else None,
        "flash_sale_id": basket.sale.id if basket.sale else None,
        # Cash on delivery needs no payment first: the order goes straight to the warehouse
        # (both steps are recorded by opening_events).
        "status": OrderStatus.PENDING_PAYMENT if is_card else OrderStatus.FULFILLING,
        "payment_method": data.payment_method,
        "currency": currency,
        "subtotal_minor": landed.subtotal.to_minor(),
        "shipping_minor": landed.shipping.to_minor(),
        "duties_minor": landed.duties.to_minor(),
        "total_minor": landed.total.to_minor(),
        "ship_to": data.ship_to.model_dump(mode="json"),
        "destination_country": landed.destination.country,
        "delivery": landed.destination.delivery,
        "recipient_key": key,
        "declared_value": declared_value,
        "declared_currency": declared_currency,
        "quote": snapshot.record(),
        "locale": locale,
        "reserved_until": now + reservation if is_card else None,
        "created_at": now,
        "updated_at": now,
    }


def _priced(
    *,
    network: Network,
    basket: Basket,
    destination: Destination,
    book: RateBook,
    buyer_id: int,
    data: OrderIn,
    key: str,
    currency: str,
    locale: str,
    earlier: Decimal,
    reservation: timedelta,
    now: datetime,
    stock: Mapping[int, Mapping[str, int]] | None = None,
) -> tuple[Quote, QuoteSnapshot, dict[str, Any]]:
    """The order's landed cost (allocated on ``stock``, else the basket's snapshot) and its
    ``orders`` row; ``TaxIdRequired`` when a parcel's customs rule asks for the recipient's
    tax id at these figures and the address has none (both ways of placing come here)."""
    landed = _quote(
        network=network,
        basket=basket,
        destination=destination,
        book=book,
        currency=currency,
        earlier=earlier,
        now=now,
        stock=stock,
    )
    check_consignee(network, landed, data.ship_to)
    snapshot = landed.snapshot()
    row = _order_row(
        buyer_id=buyer_id,
        data=data,
        basket=basket,
        landed=landed,
        snapshot=snapshot,
        key=key,
        currency=currency,
        locale=locale,
        reservation=reservation,
        now=now,
    )
    return landed, snapshot, row


def _line_rows(order_id: int, basket: Basket, landed: Quote) -> list[dict[str, Any]]:
    """The order's ``order_lines``: one per product and warehouse it ships from."""
    units = {line.product_id: line for line in landed.lines}
    lines: list[dict[str, Any]] = []
    for pid, split in sorted(landed.allocation.items()):
        product = basket.products[pid]
        for code, qty in split:
            lines.append(
                {
                    "order_id": order_id,
                    "product_id": pid,
                    "warehouse_code": code,
                    "quantity": qty,
                    "unit_price_minor": units[pid].unit_price.to_minor(),
                    "flash_sale_id": units[pid].flash_sale_id,
                    "sku": product.sku,
                    "title": dict(product.title),
                    "hs_code": product.hs_code,
                    "weight_grams": product.weight_grams,
                }
            )
    return lines


def _event_rows(events: list[OrderEvent]) -> list[dict[str, Any]]:
    return [
        {
            "order_id": e.order_id,
            "from_status": e.from_status,
            "to_status": e.to_status,
            "actor": e.actor,
            "reason": e.reason,
            "at": e.at,
        }
        for e in events
    ]


def _after_placed(
    session: AsyncSession,
    *,
    order: Order,
    basket: Basket,
    landed: Quote,
    buyer: User,
    book: RateBook,
    announcer: OrderAnnouncer | None,
    admission: Admission | None,
    sale_card: bool = True,
) -> None:
    """What a placed order sets off once it commits: the room's ticker (and the sale's card,
    unless ``sale_card`` is False), the gate's note of the buyer, the warehouse job."""
    assert buyer.id is not None and order.id is not None
    if announcer is not None and basket.stream is not None:
        _announce(session, announcer, order, basket, landed, buyer, book, sale_card=sale_card)
    if admission is not None:
        after_commit(session, partial(admission.bought, sorted(basket.products), buyer.id))
    if order.status == OrderStatus.FULFILLING:  # cash on delivery: straight to the warehouse
        jobs.enqueue(session, "fulfil_order", order.id)


async def place_order(
    *,
    session: AsyncSession,
    network: Network,
    buyer: User,
    data: OrderIn,
    currency: str,
    locale: str,
    reservation: timedelta,
    announcer: OrderAnnouncer | None,
    books: RateBookCache,
    admission: Admission | None = None,
    last_attempt: bool = True,
    now: datetime | None = None,
) -> Placed:
    """Record an order, quoted on a snapshot of stock; its units are taken when the caller
    calls ``Placed.take_units``, last, once its answer is stored (see ``_take_hot_rows``).
    That raises ``StockMoved`` when the snapshot was beaten and this is not the
    ``last_attempt``: the caller then restarts the transaction and places it again."""
    assert buyer.id is not None
    now = now or utcnow()
    destination = network.destination(data.ship_to.country, data.ship_to.city, data.delivery)
    basket = await _checked_basket(session, data, now, admission)
    book = await books.book(session, basket.rates)
    key = recipient_key(data.ship_to.phone, buyer.id)
    earlier = await earlier_imports(
        session, network=network, destination=destination, key=key, buyer_id=buyer.id, now=now
    )
    landed, snapshot, values = _priced(
        network=network,
        basket=basket,
        destination=destination,
        book=book,
        buyer_id=buyer.id,
        data=data,
        key=key,
        currency=data.currency or currency,
        locale=locale,
        earlier=earlier,
        reservation=reservation,
        now=now,
    )
    # Core inserts: the unit of work's bookkeeping for three new rows cost more than the rows.
    order_id = (await session.execute(_INSERT_ORDER, values)).scalar_one()
    order = as_loaded(Order, {"id": order_id, **values})  # for the answer and the room
    await session.execute(_INSERT_LINES, _line_rows(order_id, basket, landed))
    events = states.opening_events(order, placed_by=f"user:{buyer.id}")
    await session.execute(_INSERT_EVENTS, _event_rows(events))
    _after_placed(
        session,
        order=order,
        basket=basket,
        landed=landed,
        buyer=buyer,
        book=book,
        announcer=announcer,
        admission=admission,
    )
    return Placed(
        order,
        events,
        partial(
            _take_hot_rows,
            session,
            basket=basket,
            landed=landed,
            buyer_id=buyer.id,
            now=now,
            last_attempt=last_attempt,
        ),
        snapshot,
    )


# --- Placing orders together ----------------------------------------------------------


@dataclass(frozen=True)
class Wanted:
    """One order of those placed together."""

    buyer: User
    data: OrderIn
    currency: str  # the request's (``data.currency`` still wins, as for one order)
    locale: str


@dataclass
class Together:
    placed: list[Placed]
    take_units: Callable[[], Awaitable[None]]


class PlaceApart(Exception):
    """Orders that cannot be placed together as each would be placed alone (a basket or a
    quote refused, a claim or the stock not there for all of them): the caller rolls back
    and places each on its own, which gives each its precise answer."""


def _basket_key(data: OrderIn) -> tuple[Any, ...]:
    return (
        data.stream_id,
        data.flash_sale_id,
        tuple((i.product_id, i.quantity) for i in data.items),
    )


async def _imports_of(
    session: AsyncSession,
    *,
    network: Network,
    destination: Destination,
    buyer_ids: Collection[int],
    keys: Collection[str],
    now: datetime,
) -> list[tuple[int | None, str | None, Decimal]]:
    """The orders counted by ``earlier_imports`` for any of these buyers or recipients:
    ``(buyer_id, recipient_key, declared_value)``; nothing under a per-parcel rule."""
    currency = network.monthly_currency(destination)
    if currency is None:
        return []
    rows = await session.execute(
        select(col(Order.buyer_id), col(Order.recipient_key), col(Order.declared_value)).where(
            or_(col(Order.buyer_id).in_(list(buyer_ids)), col(Order.recipient_key).in_(list(keys))),
            *_this_month(destination, currency, now),
        )
    )
    return [(buyer_id, key, value) for buyer_id, key, value in rows]


async def place_together(
    *,
    session: AsyncSession,
    network: Network,
    wanted: list[Wanted],
    reservation: timedelta,
    announcer: OrderAnnouncer | None,
    books: RateBookCache,
    admission: Admission | None = None,
    now: datetime | None = None,
) -> Together:
    """Several orders in one transaction (a flash sale's winners, gathered by the front
    door), each quoted and recorded exactly as ``place_order`` records it alone, with one
    statement per kind of row for all of them; their units are taken once, for their sum,
    when the caller calls ``Together.take_units`` (last, as for one order).

    All or nothing: where one of them would not be placed alone as it is here, this raises
    ``PlaceApart`` (and ``take_units`` does too), and the caller places them one by one.
    Stock is allocated on one snapshot that each order leaves less of for the next, and a
    monthly customs allowance counts the orders placed before it in the same batch.
    """
    now = now or utcnow()
    baskets: dict[tuple[Any, ...], Basket] = {}
    stock: dict[int, dict[str, int]] = {}  # the snapshot, less what earlier orders took
    destinations: list[Destination] = []
    try:
        for want in wanted:
            destinations.append(
                network.destination(
                    want.data.ship_to.country, want.data.ship_to.city, want.data.delivery
                )
            )
            if _basket_key(want.data) not in baskets:
                basket = await _checked_basket(session, want.data, now, None)
                baskets[_basket_key(want.data)] = basket
                for pid, levels in basket.stock.items():
                    stock.setdefault(pid, dict(levels))
    except AppError:
        raise PlaceApart() from None
    keys = [recipient_key(w.data.ship_to.phone, w.buyer.id) for w in wanted]
    history: dict[tuple[str, str], list[tuple[int | None, str | None, Decimal]]] = {}
    for destination in {(d.country, d.delivery): d for d in destinations}.values():
        history[(destination.country, destination.delivery)] = await _imports_of(
            session,
            network=network,
            destination=destination,
            buyer_ids={w.buyer.id for w in wanted if w.buyer.id is not None},
            keys=set(keys),
            now=now,
        )
    rows: list[dict[str, Any]] = []
    quoted: list[tuple[Basket, Quote, RateBook]] = []
    snapshots: list[QuoteSnapshot] = []
    for want, destination, key in zip(wanted, destinations, keys, strict=True):
        assert want.buyer.id is not None
        basket = baskets[_basket_key(want.data)]
        book = await books.book(session, basket.rates)
        mine = history[(destination.country, destination.delivery)]
        earlier = sum((v for b, k, v in mine if b == want.buyer.id or k == key), Decimal(0))
        try:
            landed, snapshot, row = _priced(
                network=network,
                basket=basket,
                destination=destination,
                book=book,
                buyer_id=want.buyer.id,
                data=want.data,
                key=key,
                currency=want.data.currency or want.currency,
                locale=want.locale,
                earlier=earlier,
                reservation=reservation,
                now=now,
                stock=stock,
            )
        except AppError:
            raise PlaceApart() from None
        for pid, shipped in landed.allocation.items():
            for code, qty in shipped:
                stock[pid][code] -= qty
        rows.append(row)
        monthly = network.monthly_currency(destination)
        if monthly is not None and row["declared_currency"] == monthly:
            mine.append((want.buyer.id, key, row["declared_value"]))  # the next ones count it
        quoted.append((basket, landed, book))
        snapshots.append(snapshot)
    ids = (await session.execute(_INSERT_ORDERS, rows)).scalars().all()
    placed: list[Placed] = []
    lines: list[dict[str, Any]] = []
    events: list[OrderEvent] = []
    last_of_sale = {want.data.flash_sale_id: i for i, want in enumerate(wanted)}
    for i, (want, order_id, row, (basket, landed, book), snapshot) in enumerate(
        zip(wanted, ids, rows, quoted, snapshots, strict=True)
    ):
        order = as_loaded(Order, {"id": order_id, **row})
        opened = states.opening_events(order, placed_by=f"user:{want.buyer.id}")
        placed.append(Placed(order, opened, _nothing, snapshot))
        lines.extend(_line_rows(order_id, basket, landed))
        events.extend(opened)
        _after_placed(
            session,
            order=order,
            basket=basket,
            landed=landed,
            buyer=want.buyer,
            book=book,
            announcer=announcer,
            admission=admission,
            # The sale's card once, with what the last of them left.
            sale_card=last_of_sale[want.data.flash_sale_id] == i,
        )
    await session.execute(_INSERT_LINES, lines)
    await session.execute(_INSERT_EVENTS, _event_rows(events))
    return Together(
        placed,
        partial(_take_together, session, wanted=wanted, baskets=baskets, quotes=quoted, now=now),
    )


async def _nothing() -> None:
    """A batch's orders have their units taken together (``Together.take_units``)."""


async def _take_together(
    session: AsyncSession,
    *,
    wanted: list[Wanted],
    baskets: dict[tuple[Any, ...], Basket],
    quotes: list[tuple[Basket, Quote, RateBook]],
    now: datetime,
) -> None:
    """``_take_hot_rows`` for a batch: every claim, every sale once, then the stock once."""
    sales = {b.sale.id: b.sale for b in baskets.values() if b.sale is not None and b.sale.id}
    claims = []
    for want, (basket, _, _) in zip(wanted, quotes, strict=True):
        if basket.sale is not None and basket.sale.id is not None:
            assert want.buyer.id is not None
            qty = next(line.quantity for line in basket.lines if line.flash_sale_id)
            claims.append((basket.sale.id, want.buyer.id, qty))
    if claims and not await flashsales.claim_together(
        session=session, sales=sales, claims=claims, now=now
    ):
        raise PlaceApart()
    parts = [
        (pid, code, qty)
        for _, landed, _ in quotes
        for pid, split in landed.allocation.items()
        for code, qty in split
    ]
    try:
        await inventory.take(session=session, parts=parts)
    except inventory.StockTaken:
        raise PlaceApart() from None


def _announce(
    session: AsyncSession,
    announcer: OrderAnnouncer,
    order: Order,
    basket: Basket,
    landed: Quote,
    buyer: User,
    book: RateBook,
    *,
    sale_card: bool = True,
) -> None:
    assert basket.stream is not None and basket.stream.id is not None
    room = stream_room(basket.stream.id)
    first = landed.lines[0]
    name = (buyer.display_name or "").split()[:1]
    city = dict(landed.destination.city.names)
    who = (
        render.message(
            N_("%(name)s from %(city)s"), name=name[0][:TICKER_NAME_MAX], city=render.text(city)
        )
        if name
        else render.message(N_("A buyer from %(city)s"), city=render.text(city))
    )
    entry = {
        "buyer": who,
        "product": render.text(dict(first.title)),
        "quantity": first.quantity,
        "items": len(landed.lines),
    }
    after_commit(session, partial(_ticker, announcer, room, entry))
    sale = basket.sale
    if sale_card and sale is not None and sale.id is not None:
        # The card (prices in every currency) is built after commit, not while this
        # transaction still holds the sale's hot row.
        product = basket.products[sale.product_id]
        after_commit(session, partial(_sale_update, announcer, room, sale, product, book))


async def _ticker(announcer: OrderAnnouncer, room: str, entry: dict[str, Any]) -> None:
    announcer.announce_order(room, entry)


async def _sale_update(
    announcer: OrderAnnouncer, room: str, sale: FlashSale, product: Product, book: RateBook
) -> None:
    assert sale.id is not None
    announcer.announce_flash_sale(room, sale.id, flashsales.card(sale, product, book))


# --- Reading -------------------------------------------------------------------------------


async def can_read(*, session: AsyncSession, user: User, order: Order) -> bool:
    if user.role == Role.ADMIN or order.buyer_id == user.id:
        return True
    merchant = await merchant_of(session=session, user=user)
    return merchant is not None and merchant.id == order.merchant_id


async def get_order(*, session: AsyncSession, user: User, order_id: int) -> Order:
    order = await session.get(Order, order_id)
    # Someone else's order is "not found", so ids cannot be probed.
    if order is None or not await can_read(session=session, user=user, order=order):
        raise OrderNotFound()
    return order


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """An order with its status history: what the API shows of one order."""

    order: Order
    events: list[OrderEvent]


async def order_record(*, session: AsyncSession, order: Order) -> OrderRecord:
    """``order`` with its history, as it stands in this transaction (changes flushed)."""
    await session.flush()
    assert order.id is not None
    return OrderRecord(order, await order_events(session=session, order_id=order.id))


async def read_order(*, session: AsyncSession, user: User, order_id: int) -> OrderRecord:
    """One order ``user`` may read, with its history (someone else's is not found)."""
    order = await get_order(session=session, user=user, order_id=order_id)
    return OrderRecord(order, await order_events(session=session, order_id=order_id))


async def orders_page(
    *, session: AsyncSession, user: User, status: str | None, page: int, warehouse: str | None
) -> tuple[list[OrderRecord], int]:
    """A page of the orders ``user`` lists, each with its history, and how many there are.
    An unknown ``status`` is a 422."""
    if status is not None and status not in {s.value for s in OrderStatus}:
        raise ValidationFailed(details={"status": status})
    orders, total = await list_orders(
        session=session, user=user, status=status, page=page, warehouse=warehouse
    )
    events = await events_of(session=session, order_ids=[o.id for o in orders if o.id is not None])
    return [OrderRecord(o, events.get(o.id or 0, [])) for o in orders], total


async def order_events(*, session: AsyncSession, order_id: int) -> list[OrderEvent]:
    return (await events_of(session=session, order_ids=[order_id])).get(order_id, [])


async def events_of(*, session: AsyncSession, order_ids: list[int]) -> dict[int, list[OrderEvent]]:
    """Every order's events in one query (a page of orders is not twenty queries)."""
    found: dict[int, list[OrderEvent]] = {}
    if not order_ids:
        return found
    rows = await session.scalars(
        select(OrderEvent)
        .where(col(OrderEvent.order_id).in_(order_ids))
        .order_by(col(OrderEvent.order_id), col(OrderEvent.id))
    )
    for event in rows:
        found.setdefault(event.order_id, []).append(event)
    return found


async def readable(*, session: AsyncSession, user: User) -> Select[Order]:
    """The orders ``user`` lists: all for an admin, its shop's for a merchant, their own for
    anyone else. (Reading one order, ``can_read`` also lets a merchant open one it bought.)"""
    query = select(Order)
    if user.role == Role.MERCHANT:
        merchant = await merchant_of(session=session, user=user)
        query = query.where(col(Order.merchant_id) == (merchant.id if merchant else -1))
    elif user.role != Role.ADMIN:
        query = query.where(col(Order.buyer_id) == user.id)
    return query


async def list_orders(
    *,
    session: AsyncSession,
    user: User,
    status: str | None,
    page: int,
    warehouse: str | None = None,
) -> tuple[list[Order], int]:
    query = await readable(session=session, user=user)
    if warehouse is not None:
        # Orders with at least one line taken from that warehouse.
        query = query.where(
            select(col(OrderLine.id))
            .where(
                col(OrderLine.order_id) == col(Order.id),
                col(OrderLine.warehouse_code) == warehouse.upper(),
            )
            .exists()
        )
    if status:
        query = query.where(col(Order.status) == status)
    total = int(await session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    rows = await session.scalars(
        query.order_by(col(Order.id).desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    )
    return list(rows), total


# --- Cancelling, expiry --------------------------------------------------------------------


async def release(session: AsyncSession, order: Order) -> None:
    """Give the order's units back: flash-sale claim, flash sale, then stock (lock order)."""
    assert order.id is not None
    lines = list(
        await session.scalars(select(OrderLine).where(col(OrderLine.order_id) == order.id))
    )
    on_sale: dict[int, int] = {}
    for line in lines:
        if line.flash_sale_id is not None:
            on_sale[line.flash_sale_id] = on_sale.get(line.flash_sale_id, 0) + line.quantity
    for sale_id, qty in sorted(on_sale.items()):
        await flashsales.release(
            session=session, sale_id=sale_id, buyer_id=order.buyer_id, quantity=qty
        )
    await inventory.give_back(
        session=session,
        parts=[(line.product_id, line.warehouse_code, line.quantity) for line in lines],
    )


async def before_closing(session: AsyncSession, order: Order, *, strict: bool) -> None:
    """Run the session's order-closing hooks (``wiring.DomainHooks.order_closing``), with the
    order locked, just before it is cancelled or refunded, in the same transaction.

    ``livecommerce/composition.py`` gives every process fulfilment's, which withdraws the
    parcels no carrier has yet (and, when ``strict``, refuses by raising if one has). Orders
    import nothing of fulfilment; a session made without wiring raises ``NotWired`` here
    rather than close the order with its parcels still on their way.
    """
    for hook in wiring_of(session).hooks.order_closing:
        await hook(session, order, strict)


def can_cancel(order: Order) -> str | None:
    """The status cancelling leads to, or None when it is too late."""
    if states.allowed(order, OrderStatus.CANCELLED):
        return OrderStatus.CANCELLED
    if order.status in (OrderStatus.PAID, OrderStatus.FULFILLING) and states.allowed(
        order, OrderStatus.REFUNDED
    ):
        return OrderStatus.REFUNDED
    return None


async def cancel_unpaid(session: AsyncSession, order: Order, *, actor: str, reason: str) -> None:
    """Cancel an order no money was taken for, and give its stock back."""
    await states.transition(session, order, OrderStatus.CANCELLED, actor=actor, reason=reason)
    set_committed_value(order, "cancel_reason", reason)
    await session.execute(
        update(Order)
        .where(col(Order.id) == order.id)
        .values(cancel_reason=reason, reserved_until=None)
        .execution_options(synchronize_session=False)
    )
    await release(session, order)


async def mark_refunded(session: AsyncSession, order: Order, *, actor: str, reason: str) -> None:
    held = order.status in states.HOLDS_STOCK
    await states.transition(session, order, OrderStatus.REFUNDED, actor=actor, reason=reason)
    if held:
        await release(session, order)


async def shown_to(*, session: AsyncSession, user: User | None, short: OutOfStock) -> OutOfStock:
    """``short`` as ``user`` may hear it: with what is left for the product's own merchant,
    without for anyone else (stock figures are the merchant's)."""
    if user is None or user.role != Role.MERCHANT:
        return short
    try:
        product = await session.get(Product, short.details.get("product_id"))
        merchant = await merchant_of(session=session, user=user)
    except Exception:  # the session failed with the request: the public answer will do
        log.warning("out_of_stock: could not tell the product's merchant", exc_info=True)
        return short
    if product is not None and merchant is not None and product.merchant_id == merchant.id:
        return short.revealed()
    return short


@asynccontextmanager
async def stock_shown_to(*, session: AsyncSession, user: User | None) -> AsyncIterator[None]:
    """Short stock refused inside the block is raised as ``user`` may hear it (``shown_to``)."""
    try:
        yield
    except OutOfStock as short:
        raise await shown_to(session=session, user=user, short=short) from None
