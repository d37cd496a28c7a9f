"""Stock per warehouse. The only module that writes the ``stock`` table."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from livecommerce.db import after_commit, asyncpg_connection, dialect_insert, is_postgres
from livecommerce.errors import Conflict, NotFound, ValidationFailed
from livecommerce.i18n.messages import N_
from livecommerce.inventory.models import Stock, Warehouse
from livecommerce.sqltypes import utcnow
from livecommerce.wiring import listeners_of

MAX_QUANTITY = 1_000_000_000


def _may_have_grown(session: AsyncSession, product_ids: Iterable[int]) -> None:
    """Tell the process's stock listeners (``wiring.ProcessListeners.stock``), after commit,
    which products may have gained stock: a restock, a cancelled order. The API process's
    flash-sale admission gate uses it to forget "sold out" at once; a worker has none."""
    listeners = listeners_of(session).stock
    if not listeners:
        return
    ids = sorted(set(product_ids))
    for listener in listeners:
        after_commit(session, partial(listener, ids))


_PG_STOCK_UPSERT = """
INSERT INTO stock (product_id, warehouse_code, quantity, updated_at)
SELECT product_id, warehouse_code, quantity, $4
FROM unnest($1::integer[], $2::varchar[], $3::integer[]) AS u(product_id, warehouse_code, quantity)
ON CONFLICT (product_id, warehouse_code)
DO UPDATE SET quantity = excluded.quantity, updated_at = excluded.updated_at
"""


class WarehouseNotFound(NotFound):
    code = "warehouse_not_found"
    message = N_("Warehouse %(code)s does not exist.")


class UnknownWarehouse(ValidationFailed):
    """A query naming a warehouse there is none of is bad input (422); a warehouse in the
    path is a missing resource (``WarehouseNotFound``, 404). Clients rely on both codes."""

    code = "unknown_warehouse"
    message = N_("There is no warehouse %(code)s.")


class OutOfStock(Conflict):
    """Short stock, as anyone may hear it: stock figures are the merchant's, so what is left
    (``available``) is kept on the error but neither in its message nor in its details
    (``revealed()`` is the product's merchant's version). Its rendering then depends on the
    product and the quantity asked alone, as the order front door's refusal cache assumes."""

    code = "out_of_stock"
    message = N_("Not enough stock for the quantity asked.")

    def __init__(self, details: dict[str, Any] | None = None, *, available: int) -> None:
        super().__init__(details)
        self.available = available

    def revealed(self) -> OutOfStock:
        """The same refusal with the figure, for the product's own merchant."""
        return OutOfStockRevealed(
            {**self.details, "available": self.available}, available=self.available
        )


class OutOfStockRevealed(OutOfStock):
    message = N_("Not enough stock: only %(available)s left.")

    def __init__(self, details: dict[str, Any] | None = None, *, available: int) -> None:
        super().__init__(details, available=available)
        self.params = {"available": available}


def out_of_stock(product_id: int, requested: int, available: int) -> OutOfStock:
    return OutOfStock({"product_id": product_id, "requested": requested}, available=available)


class NegativeStock(ValidationFailed):
    code = "negative_stock"
    message = N_("Stock cannot be negative.")


async def list_warehouses(*, session: AsyncSession) -> list[Warehouse]:
    return list(await session.scalars(select(Warehouse).order_by(col(Warehouse.code))))


async def warehouse_codes(*, session: AsyncSession) -> list[str]:
    return list(await session.scalars(select(col(Warehouse.code)).order_by(col(Warehouse.code))))


async def require_warehouse(
    *, session: AsyncSession, code: str, in_query: bool = False
) -> Warehouse:
    """The warehouse ``code`` (any case); ``in_query`` when the code filters a listing."""
    warehouse = await session.get(Warehouse, code.upper())
    if warehouse is None:
        if in_query:
            raise UnknownWarehouse(code=code, details={"warehouse": code})
        raise WarehouseNotFound(code=code)
    return warehouse


async def set_stock_levels(
    *, session: AsyncSession, levels: Iterable[tuple[int, str, int]]
) -> None:
    """Set absolute quantities ``(product_id, warehouse_code, quantity)`` in one statement."""
    now = utcnow()
    rows: list[dict[str, object]] = []
    for pid, code, qty in levels:
        if qty < 0:
            raise NegativeStock()
        rows.append({"product_id": pid, "warehouse_code": code, "quantity": qty, "updated_at": now})
    if not rows:
        return
    _may_have_grown(session, (int(str(r["product_id"])) for r in rows))
    if is_postgres(session):
        # One prepared statement over three arrays: a 2,000-level batch is one round trip
        # instead of an executemany of 2,000 upserts (3-4x faster in a CSV import).
        driver = await asyncpg_connection(session)
        await driver.execute(
            _PG_STOCK_UPSERT,
            [r["product_id"] for r in rows],
            [r["warehouse_code"] for r in rows],
            [r["quantity"] for r in rows],
            now,
        )
        return
    stmt = dialect_insert(session, Stock.__table__)  # type: ignore[attr-defined]
    stmt = stmt.on_conflict_do_update(
        index_elements=["product_id", "warehouse_code"],
        set_={"quantity": stmt.excluded.quantity, "updated_at": stmt.excluded.updated_at},
    )
    await session.execute(stmt, rows)


async def clear_stock(*, session: AsyncSession, product_id: int) -> None:
    await session.execute(
        update(Stock)
        .where(col(Stock.product_id) == product_id)
        .values(quantity=0, updated_at=utcnow())
    )


def with_levels(query: Any, product_id: Any) -> Any:
    """``query`` with the stock rows of its product (``product_id``, a column of it) beside
    it: two more columns, warehouse code and quantity, NULL where the product has none. One
    row per warehouse holding it: a caller reads products and stock in one round trip."""
    return query.add_columns(col(Stock.warehouse_code), col(Stock.quantity)).outerjoin(
        Stock, col(Stock.product_id) == product_id
    )


_STOCK_OF = select(col(Stock.product_id), col(Stock.warehouse_code), col(Stock.quantity)).where(
    col(Stock.product_id).in_(bindparam("ids", expanding=True))
)


async def stock_by_product(
    *, session: AsyncSession, product_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    if not product_ids:
        return {}
    result: dict[int, dict[str, int]] = defaultdict(dict)
    rows = await session.execute(_STOCK_OF, {"ids": list(product_ids)})
    for pid, code, qty in rows:
        result[pid][code] = qty
    return result


class StockTaken(Exception):
    """A conditional decrement found less stock than the snapshot promised."""

    def __init__(self, product_id: int, warehouse_code: str) -> None:
        super().__init__(f"product {product_id} at {warehouse_code}")
        self.product_id = product_id
        self.warehouse_code = warehouse_code


def _lock_order(parts: Iterable[tuple[int, str, int]]) -> list[tuple[int, str, int]]:
    # Rows are always touched in primary-key order, so two orders that share products can
    # never wait on each other in a cycle (no deadlock).
    merged: dict[tuple[int, str], int] = defaultdict(int)
    for pid, code, qty in parts:
        merged[(pid, code)] += qty
    return [(pid, code, qty) for (pid, code), qty in sorted(merged.items())]


_stock = Stock.__table__  # type: ignore[attr-defined]
# Built once: in a rush the same decrement runs for every winner.
_TAKE = (
    update(_stock)
    .where(
        _stock.c.product_id == bindparam("pid"),
        _stock.c.warehouse_code == bindparam("code"),
        _stock.c.quantity >= bindparam("units"),
    )
    .values(quantity=_stock.c.quantity - bindparam("units"), updated_at=bindparam("now"))
)


async def take(*, session: AsyncSession, parts: Iterable[tuple[int, str, int]]) -> None:
    """Reserve ``(product_id, warehouse_code, quantity)`` parts, all or nothing.

    Each part is ``UPDATE stock SET quantity = quantity - n WHERE ... AND quantity >= n``: the
    database decides, so two buyers can never both get the last unit. Raises ``StockTaken``
    at the first part that no longer has enough; the caller rolls back (a savepoint).
    """
    now = utcnow()
    for pid, code, qty in _lock_order(parts):
        result = await session.execute(_TAKE, {"pid": pid, "code": code, "units": qty, "now": now})
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise StockTaken(pid, code)


async def give_back(*, session: AsyncSession, parts: Iterable[tuple[int, str, int]]) -> None:
    """Return reserved units (a cancelled or expired order), in the same lock order."""
    now = utcnow()
    rows = [
        {"product_id": pid, "warehouse_code": code, "quantity": qty, "updated_at": now}
        for pid, code, qty in _lock_order(parts)
    ]
    _may_have_grown(session, (int(str(r["product_id"])) for r in rows))
    for row in rows:
        stmt = dialect_insert(session, Stock.__table__)  # type: ignore[attr-defined]
        stmt = stmt.values(**row).on_conflict_do_update(
            index_elements=["product_id", "warehouse_code"],
            set_={
                "quantity": Stock.__table__.c.quantity + stmt.excluded.quantity,  # type: ignore[attr-defined]
                "updated_at": stmt.excluded.updated_at,
            },
        )
        await session.execute(stmt)
