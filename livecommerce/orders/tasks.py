"""Orders' background work, as the Celery tasks of workers/tasks.py run it.

Each function is one periodic job's whole work on a worker's sessions, each order or stream
in a transaction of its own, and safe to run twice (or in two processes at once).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import or_
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from livecommerce.db import is_postgres, session_scope
from livecommerce.orders import service, stream_sales
from livecommerce.orders.models import Order, OrderStatus
from livecommerce.orders.states import OrderChanged
from livecommerce.sqltypes import utcnow
from livecommerce.streams import rollup
from livecommerce.streams.models import Stream, StreamStatus

log = logging.getLogger(__name__)


async def expire_reservations(
    *,
    sessions: async_sessionmaker[AsyncSession],
    now: datetime | None = None,
    limit: int = 200,
) -> list[int]:
    """Cancel unpaid card orders whose hold ran out; their stock returns to sale.

    Each order is cancelled in its own short transaction, so the sweep takes the same locks,
    in the same order, as one buyer cancelling (never a cycle with orders being placed), and
    one order that fails is logged and skipped rather than holding up the rest.
    """
    now = now or utcnow()
    due = (
        col(Order.status) == OrderStatus.PENDING_PAYMENT,
        col(Order.reserved_until).is_not(None),
        col(Order.reserved_until) <= now,
    )
    async with session_scope(sessions, read_only=True) as session:
        ids = list(
            await session.scalars(
                select(col(Order.id)).where(*due).order_by(col(Order.id)).limit(limit)
            )
        )
    expired: list[int] = []
    for order_id in (i for i in ids if i is not None):
        try:
            async with session_scope(sessions) as session:
                query = select(Order).where(col(Order.id) == order_id, *due)
                if is_postgres(session):
                    # Several processes may sweep at once; each takes different orders.
                    query = query.with_for_update(skip_locked=True)
                order = (await session.scalars(query)).first()
                if order is None:
                    continue  # paid, cancelled or taken by another sweeper meanwhile
                await service.cancel_unpaid(
                    session, order, actor="system", reason="reservation_expired"
                )
        except OrderChanged:
            continue
        except Exception:
            log.exception(
                "order %s: reservation could not be released; retried next sweep", order_id
            )
            continue
        expired.append(order_id)
    return expired


async def roll_up_stream_sales(
    *, sessions: async_sessionmaker[AsyncSession], now: datetime | None = None
) -> list[int]:
    """Recompute the figures of live streams and those ended in the last day."""
    now = now or utcnow()
    async with session_scope(sessions, read_only=True) as session:
        ids = list(
            await session.scalars(
                select(col(Stream.id)).where(
                    or_(
                        col(Stream.status) == StreamStatus.LIVE,
                        col(Stream.ended_at) >= now - stream_sales.RECENT,
                    )
                )
            )
        )
    done = []
    for stream_id in ids:
        async with session_scope(sessions) as session:
            stream = await session.get(Stream, stream_id)
            if stream is None or stream.id is None:
                continue
            await rollup.store(
                session,
                stream_id=stream.id,
                data=await stream_sales.compute(session, stream),
                at=now,
            )
        done.append(stream_id)
    return [i for i in done if i is not None]
