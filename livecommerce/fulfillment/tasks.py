"""Fulfilment's background work, as the Celery tasks of workers/tasks.py run it.

Each function is one job's whole work on a worker's sessions, in its own transactions, and
safe to run twice: the Celery side (retries, batching, logging, time limits) is the
worker's, the rules are fulfilment's.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.db import session_scope
from livecommerce.fulfillment import service
from livecommerce.fulfillment.carriers import Carrier
from livecommerce.logistics.network import Network
from livecommerce.sqltypes import utcnow

Sessions = async_sessionmaker[AsyncSession]


async def fulfil(*, sessions: Sessions, network: Network, order_id: int) -> int:
    """Shipments and customs declarations for a paid (or cash-on-delivery) order; how many
    were made (none when the order already has them)."""
    async with session_scope(sessions) as session:
        made = await service.create_shipments(session=session, network=network, order_id=order_id)
        return len(made)


async def book(
    *, sessions: Sessions, network: Network, carrier: Carrier, shipment_id: int
) -> str | None:
    """Book one parcel with its carrier; its tracking number, None when there is nothing
    to book."""
    shipment = await service.book_shipment(
        sessions=sessions, network=network, carrier=carrier, shipment_id=shipment_id
    )
    return shipment.tracking_number if shipment else None


async def poll(*, sessions: Sessions, carriers: Mapping[str, Carrier]) -> int:
    """New scans from the carriers; how many parcels moved."""
    return await service.poll_tracking(sessions=sessions, carriers=dict(carriers))


async def lost_work(*, sessions: Sessions, grace_seconds: float) -> tuple[list[int], list[int]]:
    """What a lost job should have started, ``grace_seconds`` ago or earlier: orders paid
    without shipments, and shipments never booked (their jobs are to be sent again)."""
    older_than = utcnow() - timedelta(seconds=grace_seconds)
    async with session_scope(sessions, read_only=True) as session:
        order_ids = await service.unshipped_orders(session=session, older_than=older_than)
        shipment_ids = await service.unbooked_shipments(session=session, older_than=older_than)
    return order_ids, shipment_ids
