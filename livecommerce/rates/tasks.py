"""Rates' background work, as the Celery task of workers/tasks.py runs it."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.db import session_scope
from livecommerce.rates.sources import SourceResult, refresh_rates


async def refresh(
    *, sessions: async_sessionmaker[AsyncSession], locations: Sequence[str]
) -> list[SourceResult]:
    """New exchange rates from the configured sources (national-bank files or URLs), in one
    transaction; a source that fails is reported in its result, not raised."""
    if not locations:
        return []
    async with session_scope(sessions) as session:
        return await refresh_rates(session=session, locations=locations)
