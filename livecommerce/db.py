"""Async engines and sessions: the same code on SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pydantic_core
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from livecommerce.errors import DatabaseUnreachable

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]


def create_engine(url: str, *, echo: bool = False, pool_timeout: float = 30.0) -> AsyncEngine:
    """``pool_timeout``: how long a request waits for a free pooled connection before it is
    answered 503."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {
        "echo": echo,
        "pool_timeout": pool_timeout,
        # JSON columns (an order's quote, its stored answer) written by pydantic's encoder:
        # the same JSON, compact, at a fifth of the standard library's CPU.
        "json_serializer": _json_text,
    }
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # One writer at a time is SQLite's nature; wait for the lock instead of failing.
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(
            pool_size=10,
            max_overflow=20,
            pool_pre_ping=True,
            pool_recycle=1800,
        )
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _json_text(value: Any) -> str:
    return pydantic_core.to_json(value).decode()


WAL_ATTEMPTS = 250  # 5 s at 20 ms


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 driver's own transaction handling starts transactions late and breaks
    # SAVEPOINT; switch it off and let SQLAlchemy emit BEGIN itself (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while an import writes; foreign keys are off by default in SQLite.
    # Switching a new file to WAL takes its exclusive lock, and SQLite refuses at once rather
    # than wait when several connections ask together (processes starting at the same time):
    # asked again, the file is soon in WAL already and the switch a no-op.
    for attempt in range(WAL_ATTEMPTS):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except Exception as exc:
            if "locked" not in str(exc) or attempt == WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.02)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


READ_ONLY = "livecommerce_read_only"


def _sqlite_begin(conn: Any) -> None:
    # A writing transaction takes the write lock up front (IMMEDIATE): two requests that
    # read and then write would otherwise both hold read snapshots and one would fail with
    # "database is locked" instead of waiting its turn. Read-only transactions stay deferred
    # so that, under WAL, they never queue behind a writer.
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(
    engine: AsyncEngine, *, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions of ``engine``; ``info`` is copied into every session's ``info``."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info=info)


def after_commit(session: AsyncSession, effect: AfterCommit) -> None:
    """Queue ``effect`` to run once the session's transaction has committed.

    Effects queued in a transaction that rolls back are dropped. Bind arguments with
    ``functools.partial`` rather than a closure in a loop.
    """
    session.info.setdefault("after_commit", []).append(effect)


def on_rollback(session: AsyncSession, effect: AfterCommit) -> None:
    """Queue ``effect`` to run if the session's transaction rolls back instead of committing
    (to undo what was done outside the database for it, such as units an admission gate
    handed out). Dropped once the transaction commits."""
    session.info.setdefault("on_rollback", []).append(effect)


async def commit_and_run_effects(session: AsyncSession) -> None:
    await session.commit()
    session.info.pop("on_rollback", None)
    await run_after_commit(session)


async def run_after_commit(session: AsyncSession) -> None:
    """The effects queued with ``after_commit``, once the transaction has committed."""
    effects: list[AfterCommit] = session.info.pop("after_commit", [])
    for effect in effects:
        await effect()


async def restart(session: AsyncSession) -> None:
    """Roll back to do the same unit of work over (an order whose stock snapshot was
    beaten): what it queued for after the commit is dropped, what it must undo if it is
    given up (``on_rollback``) is kept."""
    await session.rollback()
    session.info.pop("after_commit", None)


async def run_rollback_effects(session: AsyncSession) -> None:
    effects: list[AfterCommit] = session.info.pop("on_rollback", [])
    for effect in effects:
        try:
            await effect()
        except Exception:
            logging.getLogger(__name__).exception("a rollback effect failed")


@asynccontextmanager
async def session_scope(
    factory: async_sessionmaker[AsyncSession], *, read_only: bool = False
) -> AsyncIterator[AsyncSession]:
    """The request boundary: commit on success, roll back on any error.

    ``read_only`` is a hint for SQLite's locking (see ``_sqlite_begin``); PostgreSQL's MVCC
    needs none.
    """
    async with factory() as session:
        try:
            if read_only:
                await session.connection(execution_options={READ_ONLY: True})
            yield session
            await commit_and_run_effects(session)
        except BaseException as exc:
            session.info.pop("after_commit", None)
            lost = database_lost(exc)
            try:
                if lost:
                    with contextlib.suppress(Exception):  # there is nothing to roll back on
                        await session.rollback()
                else:
                    await session.rollback()
            finally:
                await run_rollback_effects(session)
            if lost:
                _report_lost(exc)
                raise DatabaseUnreachable() from exc
            raise


def database_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached, rather than refused a
    statement: a connect refused or timed out, or a connection that broke mid-way."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        # The driver's own error, under SQLAlchemy's adapter ("connection was closed in the
        # middle of operation" is not always flagged as a disconnect).
        seen: BaseException | None = exc.orig
        while seen is not None:
            if isinstance(seen, (OSError, *_DRIVER_CONNECTION_ERRORS)):
                return True
            seen = seen.__cause__ or seen.__context__
        return False
    # Connecting raises the socket's error itself (asyncpg does not wrap it). A bare
    # TimeoutError is not taken for one: a route's own deadlines raise it too.
    return isinstance(exc, ConnectionError | socket.gaierror)


def _driver_connection_errors() -> tuple[type[BaseException], ...]:
    try:
        from asyncpg.exceptions import ConnectionDoesNotExistError, ConnectionFailureError
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return ()
    return (ConnectionDoesNotExistError, ConnectionFailureError)


_DRIVER_CONNECTION_ERRORS = _driver_connection_errors()


_lost: dict[str, float] = {"logged_at": -60.0, "since": 0}


def _report_lost(exc: BaseException) -> None:
    """One warning line every few seconds while the database is away, not one per request."""
    _lost["since"] += 1
    now = time.monotonic()
    if now - _lost["logged_at"] >= 5.0:
        log.warning(
            "database unreachable (%s: %s); %d requests answered 503 since the last report",
            type(exc).__name__,
            exc,
            _lost["since"],
        )
        _lost["logged_at"], _lost["since"] = now, 0


M = TypeVar("M")


def as_loaded(model: type[M], values: Mapping[str, Any]) -> M:
    """An instance of the mapped class ``model`` holding ``values``, built as the ORM builds
    the objects of rows it loads (no ``__init__``, no per-attribute events), in no session.

    For rows just written with a Core statement (a new order, its events) that the answer
    and the room read back: the model's constructor costs more than writing the row.
    ``values`` must name every column that is read (an unset one reads as None).
    """
    mapper: Any = getattr(model, "__mapper__")  # noqa: B009 - mapped classes only
    instance: M = mapper.class_manager.new_instance()
    instance.__dict__.update(values)
    return instance


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """An INSERT that supports ``on_conflict_do_update`` on the session's database."""
    return insert_for(dialect_of(session), table)


def insert_for(dialect: str, table: Any) -> Any:
    """``dialect_insert`` by dialect name, for statements built once and reused."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect: {dialect}")


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def is_postgres(session: AsyncSession) -> bool:
    return dialect_of(session) == "postgresql"


async def asyncpg_connection(session: AsyncSession) -> Any:
    """The session's asyncpg connection, inside the session's transaction.

    For bulk paths only (``COPY``, array parameters), where going through SQLAlchemy's
    statement compilation per batch costs more than the database work itself.
    """
    if not is_postgres(session):
        raise RuntimeError("asyncpg_connection needs a PostgreSQL session")
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
