"""Stream sales figures as last rolled up: stored here, computed from the orders by
``orders/stream_sales.py`` in a periodic worker job (``orders/tasks.py``) rather than per
request.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from livecommerce.db import dialect_insert
from livecommerce.streams.models import StreamStatsRollup


async def store(
    session: AsyncSession, *, stream_id: int, data: dict[str, Any], at: datetime
) -> None:
    """Replace the stream's figures with ``data``, rolled up ``at``."""
    table = StreamStatsRollup.__table__  # type: ignore[attr-defined]
    await session.execute(
        dialect_insert(session, table)
        .values(stream_id=stream_id, data=data, rolled_up_at=at)
        .on_conflict_do_update(
            index_elements=["stream_id"], set_={"data": data, "rolled_up_at": at}
        )
    )


async def latest(session: AsyncSession, stream_id: int) -> StreamStatsRollup | None:
    return await session.get(StreamStatsRollup, stream_id)
