"""The inventory service called directly, on SQLite and PostgreSQL: reservations across
warehouses are all or nothing, never oversell, come back in full, and tell the stock
listeners only once committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.db import session_factory, session_scope
from livecommerce.inventory import service as inventory
from livecommerce.jobs import JobQueue
from livecommerce.wiring import DomainHooks, ProcessListeners, Wiring, wired_sessions
from tests.fixtures.database import TestDatabase
from tests.fixtures.factories import account, create_product


@pytest.fixture
async def sessions(
    client: httpx.AsyncClient, database: TestDatabase
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions of the test database without the app's stock listeners (``client`` empties
    the tables afterwards)."""
    yield session_factory(database.engine)


async def products(client: httpx.AsyncClient, count: int) -> list[int]:
    _, headers = await account(client, role="merchant")
    return [(await create_product(client, headers))["id"] for _ in range(count)]


async def stock_of(
    sessions: async_sessionmaker[AsyncSession], *product_ids: int
) -> dict[int, dict[str, int]]:
    async with session_scope(sessions, read_only=True) as session:
        levels = await inventory.stock_by_product(session=session, product_ids=list(product_ids))
    # Rows at zero are as good as none: keep what is there.
    return {pid: {c: q for c, q in levels.get(pid, {}).items() if q} for pid in product_ids}


async def stocked(
    sessions: async_sessionmaker[AsyncSession], *levels: tuple[int, str, int]
) -> None:
    async with session_scope(sessions) as session:
        await inventory.set_stock_levels(session=session, levels=levels)


async def test_take_reserves_across_warehouses(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """One reservation takes its units from each warehouse it names, parts of one row added."""
    [pid] = await products(client, 1)
    await stocked(sessions, (pid, "KZALA", 5), (pid, "DEDUI", 4))
    async with session_scope(sessions) as session:
        await inventory.take(
            session=session, parts=[(pid, "KZALA", 2), (pid, "DEDUI", 4), (pid, "KZALA", 1)]
        )
    assert await stock_of(sessions, pid) == {pid: {"KZALA": 2}}


async def test_take_is_all_or_nothing(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A part short of stock raises StockTaken naming it; rolled back, no part was taken."""
    first, second = await products(client, 2)
    await stocked(sessions, (first, "KZALA", 5), (second, "KZALA", 1))
    with pytest.raises(inventory.StockTaken) as refused:
        async with session_scope(sessions) as session:
            await inventory.take(session=session, parts=[(first, "KZALA", 3), (second, "KZALA", 2)])
    assert (refused.value.product_id, refused.value.warehouse_code) == (second, "KZALA")
    assert await stock_of(sessions, first, second) == {first: {"KZALA": 5}, second: {"KZALA": 1}}


async def test_take_refuses_to_oversell(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Parts of one row count together, a warehouse without a row has nothing, and of ten
    buyers racing for three units exactly three get one."""
    [pid] = await products(client, 1)
    await stocked(sessions, (pid, "KZALA", 3))
    for parts in ([(pid, "KZALA", 2), (pid, "KZALA", 2)], [(pid, "DEDUI", 1)]):
        with pytest.raises(inventory.StockTaken):
            async with session_scope(sessions) as session:
                await inventory.take(session=session, parts=parts)

    async def buy() -> bool:
        try:
            async with session_scope(sessions) as session:
                await inventory.take(session=session, parts=[(pid, "KZALA", 1)])
        except inventory.StockTaken:
            return False
        return True

    won = await asyncio.gather(*(buy() for _ in range(10)))
    assert won.count(True) == 3
    assert await stock_of(sessions, pid) == {pid: {}}


async def test_give_back_returns_units_to_each_warehouse(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Given-back units add to what is there, in every warehouse named, even one the product
    has no row in yet."""
    first, second = await products(client, 2)
    await stocked(sessions, (first, "KZALA", 1))
    async with session_scope(sessions) as session:
        await inventory.give_back(
            session=session,
            parts=[(first, "KZALA", 2), (second, "DEDUI", 3), (first, "KZALA", 1)],
        )
    assert await stock_of(sessions, first, second) == {
        first: {"KZALA": 4},
        second: {"DEDUI": 3},
    }


async def test_set_stock_levels_refuses_negatives(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Levels are absolute; a negative one refuses the whole batch before anything is written."""
    [pid] = await products(client, 1)
    await stocked(sessions, (pid, "KZALA", 7), (pid, "DEDUI", 2))
    await stocked(sessions, (pid, "KZALA", 3))
    with pytest.raises(inventory.NegativeStock):
        await stocked(sessions, (pid, "DEDUI", 9), (pid, "KZALA", -1))
    assert await stock_of(sessions, pid) == {pid: {"KZALA": 3, "DEDUI": 2}}


async def test_clear_stock_empties_every_warehouse(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Clearing a product's stock sets it to zero everywhere and leaves other products alone."""
    first, second = await products(client, 2)
    await stocked(sessions, (first, "KZALA", 7), (first, "DEDUI", 2), (second, "KZALA", 1))
    async with session_scope(sessions) as session:
        await inventory.clear_stock(session=session, product_id=first)
    assert await stock_of(sessions, first, second) == {first: {}, second: {"KZALA": 1}}


async def test_warehouses(sessions: async_sessionmaker[AsyncSession]) -> None:
    """The seeded warehouses are listed by code; a code is found in any case; an unknown one
    is a 404 warehouse_not_found naming it."""
    async with session_scope(sessions, read_only=True) as session:
        codes = await inventory.warehouse_codes(session=session)
        assert codes == sorted(codes) and {"DEDUI", "KZALA"} <= set(codes)
        listed = await inventory.list_warehouses(session=session)
        assert [w.code for w in listed] == codes
        assert (await inventory.require_warehouse(session=session, code="kzala")).code == "KZALA"
        with pytest.raises(inventory.WarehouseNotFound) as missing:
            await inventory.require_warehouse(session=session, code="xxnon")
    assert (missing.value.status, missing.value.code) == (404, "warehouse_not_found")
    assert missing.value.params == {"code": "xxnon"}


async def test_stock_listeners_hear_after_commit_only(
    client: httpx.AsyncClient, database: TestDatabase
) -> None:
    """Listeners hear which products may have grown (sorted, once each) after the commit of a
    restock or a give-back; never before it, never on rollback, never for a take."""
    heard: list[list[int]] = []

    async def listener(product_ids: list[int]) -> None:
        heard.append(product_ids)

    # The process's stock listeners reach the service through its sessions' wiring.
    wiring = Wiring(
        hooks=DomainHooks(),
        jobs=JobQueue(None),
        listeners=ProcessListeners(stock=(listener,)),
    )
    sessions = wired_sessions(database.engine, wiring)
    first, second = await products(client, 2)
    async with session_scope(sessions) as session:
        await inventory.set_stock_levels(
            session=session,
            levels=[(second, "KZALA", 2), (first, "KZALA", 1), (second, "DEDUI", 1)],
        )
        assert heard == []
    assert heard == [[first, second]]

    async with session_scope(sessions) as session:
        await inventory.take(session=session, parts=[(second, "KZALA", 1)])
    assert heard == [[first, second]]

    with pytest.raises(RuntimeError):
        async with session_scope(sessions) as session:
            await inventory.give_back(session=session, parts=[(first, "KZALA", 1)])
            raise RuntimeError("rolled back")
    assert heard == [[first, second]]

    async with session_scope(sessions) as session:
        await inventory.give_back(session=session, parts=[(second, "KZALA", 1)])
    assert heard == [[first, second], [second]]


def test_short_stock_shows_what_is_left_only_when_revealed() -> None:
    """out_of_stock keeps the figure off its details and message; revealed() adds both."""
    refusal = inventory.out_of_stock(7, requested=3, available=1)
    assert (refusal.status, refusal.code) == (409, "out_of_stock")
    assert refusal.details == {"product_id": 7, "requested": 3}
    assert "1" not in refusal.localized("en")
    revealed = refusal.revealed()
    assert revealed.code == "out_of_stock"
    assert revealed.details == {"product_id": 7, "requested": 3, "available": 1}
    assert revealed.localized("en") == "Not enough stock: only 1 left."
