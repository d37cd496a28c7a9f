"""Notices to a buyer, written in the same transaction as the change they tell of.

A notice is a row first: it commits or rolls back with the status change, so a buyer is
never told of a change that did not happen, and one that did is never lost (a client that
was away reads what it missed by ``seq``). Live delivery to ``/ws/me`` reads the same rows.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from livecommerce.db import after_commit, dialect_insert
from livecommerce.events import NoticeEvent
from livecommerce.notifications.models import Notification, NotificationCounter
from livecommerce.wiring import NoticeWakeup, listeners_of

ORDER_STATUS = NoticeEvent.ORDER_STATUS
SHIPMENT_STATUS = NoticeEvent.SHIPMENT_STATUS
PAGE = 100


async def _wake(session: AsyncSession, wakeups: tuple[NoticeWakeup, ...]) -> None:
    session.info.pop("notices_wake", None)
    for callback in wakeups:
        callback()


async def next_seq(session: AsyncSession, user_id: int) -> int:
    table = NotificationCounter.__table__  # type: ignore[attr-defined]
    stmt = (
        dialect_insert(session, table)
        .values(user_id=user_id, last_seq=1)
        .on_conflict_do_update(index_elements=["user_id"], set_={"last_seq": table.c.last_seq + 1})
        .returning(table.c.last_seq)
    )
    return int((await session.execute(stmt)).scalar_one())


async def notify(
    session: AsyncSession,
    *,
    user_id: int,
    kind: str,
    data: dict[str, Any],
    order_id: int | None = None,
    shipment_id: int | None = None,
) -> Notification:
    notice = Notification(
        user_id=user_id,
        seq=await next_seq(session, user_id),
        kind=kind,
        order_id=order_id,
        shipment_id=shipment_id,
        data=data,
    )
    session.add(notice)
    # The process's live feed (API processes only: ``ProcessListeners.notice_wakeups``)
    # polls at once after the commit instead of at its next tick (see feed.py).
    wakeups = listeners_of(session).notice_wakeups
    if wakeups and not session.info.get("notices_wake"):
        session.info["notices_wake"] = True
        after_commit(session, partial(_wake, session, wakeups))
    return notice


async def notices_after(
    session: AsyncSession, *, user_id: int, after_seq: int, limit: int = PAGE
) -> list[Notification]:
    rows = await session.scalars(
        select(Notification)
        .where(col(Notification.user_id) == user_id, col(Notification.seq) > after_seq)
        .order_by(col(Notification.seq))
        .limit(limit)
    )
    return list(rows)


async def last_seq_of(session: AsyncSession, *, user_id: int) -> int:
    found = await session.scalar(
        select(col(NotificationCounter.last_seq)).where(col(NotificationCounter.user_id) == user_id)
    )
    return int(found or 0)


async def newer_than(session: AsyncSession, *, after_id: int, limit: int) -> list[Notification]:
    rows = await session.scalars(
        select(Notification)
        .where(col(Notification.id) > after_id)
        .order_by(col(Notification.id))
        .limit(limit)
    )
    return list(rows)


async def written_since(
    session: AsyncSession, *, since: datetime, up_to_id: int, limit: int
) -> list[Notification]:
    """Notices up to ``up_to_id`` written since ``since``, newest first: ids do not commit
    in order, so a feed reads this short window behind its cursor again."""
    rows = await session.scalars(
        select(Notification)
        .where(col(Notification.created_at) >= since, col(Notification.id) <= up_to_id)
        .order_by(col(Notification.id).desc())
        .limit(limit)
    )
    return list(rows)


async def max_id(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.max(col(Notification.id)))) or 0)
