"""A flash sale's life: start, claim, release, end, and the card rooms carry.

The sale's quantity and its buyers' claims change only here, always with conditional
updates in the database (never read-modify-write in Python), in one lock order: the buyer's
claim row, then the sale row. The admission gate (``gate.py``) answers losers before any of
this runs; the database stays the arbiter.

Every change a room must see is published after the transaction commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache, partial
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select

from livecommerce.catalog.cards import product_card
from livecommerce.catalog.models import Product
from livecommerce.db import after_commit, dialect_of, insert_for
from livecommerce.errors import Conflict, NotFound
from livecommerce.events import ServerEvent
from livecommerce.flashsales.models import FlashSale, FlashSaleClaim
from livecommerce.i18n.messages import N_
from livecommerce.i18n.money import Money
from livecommerce.rates.service import RateBook, RateUnavailable
from livecommerce.rooms import render
from livecommerce.rooms.broker import Broker, publish_committed
from livecommerce.rooms.names import stream_room
from livecommerce.sqltypes import utcnow

if TYPE_CHECKING:
    from livecommerce.flashsales.admission import Admission


class FlashSaleActive(Conflict):
    code = "flash_sale_active"
    message = N_("Another flash sale is still running in this stream.")


class FlashSaleNotFound(NotFound):
    code = "flash_sale_not_found"
    message = N_("This flash sale does not exist.")


class FlashSaleEnded(Conflict):
    code = "flash_sale_ended"
    message = N_("This flash sale has ended.")


class FlashSaleSoldOut(Conflict):
    code = "flash_sale_sold_out"
    message = N_("The flash sale is sold out.")


class LimitExceeded(Conflict):
    code = "limit_exceeded"
    message = N_("You can buy at most %(limit)s of this item in the flash sale.")


def sold_out(remaining: int = 0) -> FlashSaleSoldOut:
    return FlashSaleSoldOut(details={"remaining": remaining})


def limit_exceeded(limit: int) -> LimitExceeded:
    return LimitExceeded(limit=limit, details={"limit": limit})


# --- Reading -------------------------------------------------------------------------------


def is_open(sale: FlashSale, now: datetime) -> bool:
    return sale.cancelled_at is None and sale.starts_at <= now < sale.ends_at


def status(sale: FlashSale, now: datetime | None = None) -> str:
    now = now or utcnow()
    if sale.cancelled_at is not None or now >= sale.ends_at:
        return "ended"
    if sale.remaining <= 0:
        return "sold_out"
    if now < sale.starts_at:
        return "scheduled"
    return "active"


def card(sale: FlashSale, product: Product, book: RateBook) -> dict[str, Any]:
    """The sale as room events and the API carry it (prices in every currency)."""
    return {
        "id": sale.id,
        "status": status(sale),
        "product": product_card(product, book),
        "price": render.money(
            Money.from_minor(sale.price_minor, sale.price_currency),
            book,
            unavailable=RateUnavailable,
        ),
        "quantity": sale.quantity,
        "remaining": sale.remaining,
        "per_customer_limit": sale.per_customer_limit,
        "starts_at": sale.starts_at.isoformat(),
        "ends_at": sale.ends_at.isoformat(),
    }


def _running(stream_id: int, now: datetime) -> tuple[Any, ...]:
    return (
        col(FlashSale.stream_id) == stream_id,
        col(FlashSale.cancelled_at).is_(None),
        col(FlashSale.ends_at) > now,
    )


async def current(*, session: AsyncSession, stream_id: int) -> FlashSale | None:
    """The stream's newest sale that has not ended (it may be sold out)."""
    return (
        await session.scalars(
            select(FlashSale)
            .where(*_running(stream_id, utcnow()))
            .order_by(col(FlashSale.id).desc())
            .limit(1)
        )
    ).first()


async def get(*, session: AsyncSession, sale_id: int) -> FlashSale:
    sale = await session.get(FlashSale, sale_id)
    if sale is None:
        raise FlashSaleNotFound()
    return sale


# --- Start and end -------------------------------------------------------------------------


def _announce(session: AsyncSession, broker: Broker, sale: FlashSale, data: dict[str, Any]) -> None:
    payload = render.encode_event(ServerEvent.FLASH_SALE, data)
    after_commit(session, partial(publish_committed, broker, stream_room(sale.stream_id), payload))


def _forget(session: AsyncSession, admission: Admission | None, sale_id: int | None) -> None:
    if admission is not None and sale_id is not None:
        after_commit(session, partial(admission.ended, sale_id))


async def start(
    *,
    session: AsyncSession,
    broker: Broker,
    admission: Admission | None,
    stream_id: int,
    product: Product,
    price: Money,
    quantity: int,
    duration_s: int,
    per_customer_limit: int | None,
    book: RateBook,
) -> FlashSale:
    """Start a sale in a live stream (the caller checked the stream and the product).

    A sale still running with units left blocks the next one; a sold-out one is ended by
    the new one, so a host can follow a sell-out with the next offer at once.
    """
    now = utcnow()
    running = list(
        await session.scalars(
            select(FlashSale)
            .where(*_running(stream_id, now))
            .order_by(col(FlashSale.id))
            .with_for_update()
        )
    )
    if any(sale.remaining > 0 for sale in running):
        raise FlashSaleActive()
    for old in running:
        await _end(session, broker, admission, old, now, book)
    sale = FlashSale(
        stream_id=stream_id,
        product_id=product.id or 0,
        price_minor=price.to_minor(),
        price_currency=price.currency,
        quantity=quantity,
        remaining=quantity,
        per_customer_limit=per_customer_limit,
        starts_at=now,
        ends_at=now + timedelta(seconds=duration_s),
    )
    session.add(sale)
    await session.flush()
    if admission is not None:
        # Admission opens with the sale, once it is committed (a rolled-back sale has none).
        after_commit(
            session,
            partial(
                admission.opened,
                sale.id or 0,
                sale.product_id,
                quantity,
                per_customer_limit,
                sale.ends_at,
            ),
        )
    _announce(session, broker, sale, card(sale, product, book))
    return sale


async def _end(
    session: AsyncSession,
    broker: Broker,
    admission: Admission | None,
    sale: FlashSale,
    now: datetime,
    book: RateBook,
) -> None:
    sale.cancelled_at = now
    sale.end_announced_at = now
    await session.flush()
    _forget(session, admission, sale.id)
    product = await session.get(Product, sale.product_id)
    if product is not None:
        _announce(session, broker, sale, card(sale, product, book))


async def end(
    *,
    session: AsyncSession,
    broker: Broker,
    admission: Admission | None,
    stream_id: int,
    sale_id: int,
    book: RateBook,
) -> FlashSale:
    """End a running sale early (the host's or the merchant's call); the room hears it."""
    now = utcnow()
    sale = (
        await session.scalars(
            select(FlashSale)
            .where(col(FlashSale.id) == sale_id, col(FlashSale.stream_id) == stream_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).first()
    if sale is None:
        raise FlashSaleNotFound()
    if sale.cancelled_at is not None or sale.ends_at <= now:
        raise FlashSaleEnded()
    await _end(session, broker, admission, sale, now, book)
    return sale


async def end_all(
    *,
    session: AsyncSession,
    broker: Broker,
    admission: Admission | None,
    stream_id: int,
    book: RateBook,
) -> None:
    """End every running sale of a stream (the stream is ending)."""
    now = utcnow()
    running = await session.scalars(
        select(FlashSale).where(*_running(stream_id, now)).order_by(col(FlashSale.id))
    )
    for sale in list(running):
        await _end(session, broker, admission, sale, now, book)


async def due(*, session: AsyncSession, now: datetime | None = None, limit: int = 100) -> list[int]:
    """Sales whose end is due and not yet announced (ended within the last hour: older ones
    are long over for every viewer, who also counts down to ``ends_at``)."""
    now = now or utcnow()
    rows = await session.scalars(
        select(col(FlashSale.id))
        .where(
            col(FlashSale.end_announced_at).is_(None),
            col(FlashSale.cancelled_at).is_(None),
            col(FlashSale.ends_at) <= now,
            col(FlashSale.ends_at) > now - timedelta(hours=1),
        )
        .order_by(col(FlashSale.ends_at))
        .limit(limit)
    )
    return [i for i in rows if i is not None]


async def close_if_due(
    *,
    session: AsyncSession,
    broker: Broker,
    admission: Admission | None,
    sale_id: int,
    book: RateBook,
) -> bool:
    """Announce the end of a sale whose time is up, once.

    Two timers watch every sale: one in the API process that started it (immediate, and
    the only one that reaches in-process rooms) and the workers' periodic sweep of due
    sales (``due``; it survives that process). Whichever claims the sale first announces;
    the other finds it claimed. The sale's state lives in the database (clients also count
    down to ``ends_at``), so even a lost announcement never loses the end itself.
    """
    now = utcnow()
    claimed = await session.execute(
        update(FlashSale)
        .where(
            col(FlashSale.id) == sale_id,
            col(FlashSale.end_announced_at).is_(None),
            col(FlashSale.cancelled_at).is_(None),
            col(FlashSale.ends_at) <= now,
        )
        .values(end_announced_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    sale = await session.get(FlashSale, sale_id)
    product = await session.get(Product, sale.product_id) if sale is not None else None
    if sale is None or product is None:
        return False
    _forget(session, admission, sale.id)
    _announce(session, broker, sale, card(sale, product, book))
    return True


# --- Claims ----------------------------------------------------------------------------------


@cache
def _claim_statements(dialect: str, limited: bool) -> tuple[Any, Any]:
    """The claim's two statements, built once per database kind: building and hashing a
    statement costs more CPU than running it, and a rush runs them thousands of times."""
    claims = FlashSaleClaim.__table__  # type: ignore[attr-defined]
    add = insert_for(dialect, claims).values(
        flash_sale_id=bindparam("sale_id"),
        buyer_id=bindparam("buyer_id"),
        quantity=bindparam("quantity"),
    )
    add = add.on_conflict_do_update(
        index_elements=["flash_sale_id", "buyer_id"],
        set_={"quantity": claims.c.quantity + add.excluded.quantity},
        where=(claims.c.quantity + add.excluded.quantity <= bindparam("per_buyer"))
        if limited
        else None,
    ).returning(claims.c.quantity)
    sales = FlashSale.__table__  # type: ignore[attr-defined]
    take = (
        update(sales)
        .where(
            sales.c.id == bindparam("sale_id"),
            sales.c.remaining >= bindparam("units"),
            sales.c.cancelled_at.is_(None),
            sales.c.starts_at <= bindparam("now"),
            sales.c.ends_at > bindparam("now"),
        )
        .values(remaining=sales.c.remaining - bindparam("units"))
        .returning(sales.c.remaining)
    )
    return add, take


async def claim(
    *, session: AsyncSession, sale: FlashSale, buyer_id: int, quantity: int, now: datetime
) -> int:
    """Count the units against the buyer's limit, then take them from the sale; returns
    the sale's remaining units. Raises the sale's 409 when it cannot be done."""
    assert sale.id is not None
    limit = sale.per_customer_limit
    if limit is not None and quantity > limit:
        raise limit_exceeded(limit)
    add, take = _claim_statements(dialect_of(session), limit is not None)
    params: dict[str, Any] = {"sale_id": sale.id, "buyer_id": buyer_id, "quantity": quantity}
    if limit is not None:
        params["per_buyer"] = limit
    if (await session.execute(add, params)).first() is None:
        assert limit is not None
        raise limit_exceeded(limit)

    result = await session.execute(take, {"sale_id": sale.id, "units": quantity, "now": now})
    remaining = result.scalar_one_or_none()
    if remaining is None:
        await session.refresh(sale)
        if not is_open(sale, now):
            raise FlashSaleEnded()
        raise sold_out(sale.remaining)
    set_committed_value(sale, "remaining", remaining)
    return int(remaining)


async def claim_together(
    *,
    session: AsyncSession,
    sales: dict[int, FlashSale],
    claims: list[tuple[int, int, int]],
    now: datetime,
) -> bool:
    """``claim`` for several orders in one transaction: ``(sale_id, buyer_id, quantity)``,
    one per buyer and sale. Every buyer's claim first (one statement per sale), then each
    sale's units, taken once for their sum; in the lock order of ``claim`` (claim rows, then
    sale rows, each by key). False when any of it cannot be done as asked: the caller rolls
    back and claims them one by one, which says which order failed and why."""
    dialect = dialect_of(session)
    wanted: dict[int, list[dict[str, Any]]] = {}
    for sale_id, buyer_id, quantity in sorted(claims):
        rows = wanted.setdefault(sale_id, [])
        if rows and rows[-1]["buyer_id"] == buyer_id:
            return False  # one statement cannot count a buyer twice
        rows.append({"sale_id": sale_id, "buyer_id": buyer_id, "quantity": quantity})
    for sale_id, rows in wanted.items():
        limit = sales[sale_id].per_customer_limit
        if limit is not None and any(row["quantity"] > limit for row in rows):
            return False
        add, _ = _claim_statements(dialect, limit is not None)
        if limit is not None:
            rows = [{**row, "per_buyer": limit} for row in rows]
        counted = (await session.execute(add, rows)).all()
        if len(counted) != len(rows):
            return False
    for sale_id, rows in wanted.items():
        _, take = _claim_statements(dialect, False)
        units = sum(row["quantity"] for row in rows)
        result = await session.execute(take, {"sale_id": sale_id, "units": units, "now": now})
        remaining = result.scalar_one_or_none()
        if remaining is None:
            return False
        set_committed_value(sales[sale_id], "remaining", remaining)
    return True


async def release(*, session: AsyncSession, sale_id: int, buyer_id: int, quantity: int) -> None:
    """Give a buyer's units back to the sale (an order was cancelled, refunded or expired)."""
    await session.execute(
        update(FlashSaleClaim)
        .where(
            col(FlashSaleClaim.flash_sale_id) == sale_id,
            col(FlashSaleClaim.buyer_id) == buyer_id,
        )
        .values(quantity=col(FlashSaleClaim.quantity) - quantity)
        .execution_options(synchronize_session=False)
    )
    # Back into the sale, so another buyer can have them; "sold" stays quantity - remaining.
    await session.execute(
        update(FlashSale)
        .where(
            col(FlashSale.id) == sale_id,
            col(FlashSale.remaining) + quantity <= col(FlashSale.quantity),
        )
        .values(remaining=col(FlashSale.remaining) + quantity)
        .execution_options(synchronize_session=False)
    )


async def snapshot(
    *, session: AsyncSession, sale_id: int
) -> tuple[FlashSale | None, dict[int, int]]:
    """The sale and its buyers' claims as the database has them (to rebuild the gate)."""
    sale = (
        await session.scalars(
            select(FlashSale)
            .where(col(FlashSale.id) == sale_id)
            .execution_options(populate_existing=True)
        )
    ).first()
    if sale is None:
        return None, {}
    rows = await session.execute(
        select(col(FlashSaleClaim.buyer_id), col(FlashSaleClaim.quantity)).where(
            col(FlashSaleClaim.flash_sale_id) == sale_id, col(FlashSaleClaim.quantity) > 0
        )
    )
    return sale, {int(b): int(q) for b, q in rows}


async def claimed(*, session: AsyncSession, sale_id: int, buyer_id: int) -> int:
    """Units of the sale the buyer holds, as the database has it."""
    held = await session.scalar(
        select(col(FlashSaleClaim.quantity)).where(
            col(FlashSaleClaim.flash_sale_id) == sale_id, col(FlashSaleClaim.buyer_id) == buyer_id
        )
    )
    return int(held or 0)
