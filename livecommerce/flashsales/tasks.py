"""Flash sales' background work, as the Celery task of workers/tasks.py runs it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.db import session_scope
from livecommerce.flashsales import service
from livecommerce.rates.service import load_rate_book
from livecommerce.rooms.broker import Broker


async def close_due(*, sessions: async_sessionmaker[AsyncSession], rooms: Broker | None) -> int:
    """Announce the end of flash sales whose API process could not (it stopped meanwhile);
    how many were announced. Without a shared broker (``rooms`` None: in-process rooms) only
    the API process's own timer can reach the rooms, and this does nothing."""
    if rooms is None:
        return 0
    async with session_scope(sessions, read_only=True) as session:
        due = await service.due(session=session)
    announced = 0
    for sale_id in due:
        async with session_scope(sessions) as session:
            book = await load_rate_book(session)
            # The sale's admission gate expires on its own shortly after its end.
            if await service.close_if_due(
                session=session, broker=rooms, admission=None, sale_id=sale_id, book=book
            ):
                announced += 1
    return announced
