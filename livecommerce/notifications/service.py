"""Notices to a buyer, written in the same transaction as the change they tell of.

A notice is a row first: it commits or rolls back with the status change, so a buyer is
never told of a change that did not happen, and one that did is never lost (a client that
was away reads what it missed by id). Live delivery to ``/ws/me`` reads the same rows.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from livecommerce.db import after_commit
from livecommerce.notifications.models import Notification

ORDER_STATUS = "order_status"
SHIPMENT_STATUS = "shipment_status"
PAGE = 100

# Called after a transaction that wrote notices commits: this process's live feed polls at
# once instead of at its next tick (see feed.py).
_wakeups: set[Callable[[], None]] = set()


def on_commit_wake(callback: Callable[[], None], *, enabled: bool = True) -> None:
    if enabled:
        _wakeups.add(callback)
    else:
        _wakeups.discard(callback)


async def _wake(session: AsyncSession) -> None:
    session.info.pop("notices_wake", None)
    for callback in list(_wakeups):
        callback()


def notify(
    session: AsyncSession,
    *,
    user_id: int,
    kind: str,
    data: dict[str, Any],
    order_id: int | None = None,
    shipment_id: int | None = None,
) -> Notification:
    notice = Notification(
        user_id=user_id, kind=kind, order_id=order_id, shipment_id=shipment_id, data=data
    )
    session.add(notice)
    if _wakeups and not session.info.get("notices_wake"):
        session.info["notices_wake"] = True
        after_commit(session, partial(_wake, session))
    return notice


async def notices_after(
    session: AsyncSession, *, user_id: int, after_id: int, limit: int = PAGE
) -> list[Notification]:
    rows = await session.scalars(
        select(Notification)
        .where(col(Notification.user_id) == user_id, col(Notification.id) > after_id)
        .order_by(col(Notification.id))
        .limit(limit)
    )
    return list(rows)


async def newest_after(
    session: AsyncSession, *, after_id: int, user_ids: list[int], limit: int = 500
) -> list[Notification]:
    """Notices of any of ``user_ids`` after ``after_id``: one query per poll of a process."""
    if not user_ids:
        return []
    rows = await session.scalars(
        select(Notification)
        .where(col(Notification.id) > after_id, col(Notification.user_id).in_(user_ids))
        .order_by(col(Notification.id))
        .limit(limit)
    )
    return list(rows)


async def last_id_of(session: AsyncSession, *, user_id: int) -> int:
    found = await session.scalar(
        select(func.max(col(Notification.id))).where(col(Notification.user_id) == user_id)
    )
    return int(found or 0)
