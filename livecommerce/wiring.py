"""What a process wires into the sessions it makes for domain work.

Domains lend each other behaviour without importing each other: fulfilment withdraws an
order's parcels as the order is cancelled, though orders import nothing of fulfilment. No
module registers such a hook itself when it is imported (a behaviour would then depend on
which modules a process happened to import): ``livecommerce.composition`` lists them, and
both the API process (``create_app``) and each worker process (``workers.runtime.Runtime``)
make their sessions with what it builds, so every process has the same ones.

A session carries its process's ``Wiring`` in ``session.info[WIRING]`` (its factory copies
it into every session):

- ``hooks``: the domain hooks (``DomainHooks``), the same in every process;
- ``jobs``: the process's job queue (``livecommerce.jobs.JobQueue``), which
  ``jobs.enqueue`` hands its jobs to after commit;
- ``listeners``: what only this process listens for (``ProcessListeners``). The API process
  has its flash-sale admission gate hear of restocks and its notice feed of new notices; a
  worker serves no sockets and has none.

A session made without wiring (a bare ``db.session_factory``: the CLI, a test of the
database layer) does all that needs none; closing an order or enqueuing a job in one raises
``NotWired``, rather than skip a parcel withdrawal or a job without a word.

This module imports no domain package.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from livecommerce.db import session_factory

if TYPE_CHECKING:
    from livecommerce.jobs import JobQueue

WIRING = "wiring"  # the key in ``session.info``

# Called with the order (an ``orders.models.Order``) locked, just before it is cancelled or
# refunded, in the same transaction; ``strict`` (the third argument) asks it to refuse by
# raising when it cannot undo its part (see ``orders.service.before_closing``).
OrderClosingHook = Callable[[AsyncSession, Any, bool], Awaitable[None]]
# Hears, after commit, which products may have gained stock (see ``inventory.service``).
StockListener = Callable[[list[int]], Awaitable[None]]
# Called after a transaction that wrote notices commits (see ``notifications.service``).
NoticeWakeup = Callable[[], None]


class NotWired(RuntimeError):
    """Domain work that needs the process's wiring, in a session made without it."""


@dataclass(frozen=True, slots=True)
class DomainHooks:
    """What one domain lends another; every process has the same (``composition``)."""

    order_closing: tuple[OrderClosingHook, ...] = ()


@dataclass(frozen=True, slots=True)
class ProcessListeners:
    """What only this process listens for, after commit."""

    stock: tuple[StockListener, ...] = ()
    notice_wakeups: tuple[NoticeWakeup, ...] = ()


NO_LISTENERS = ProcessListeners()


@dataclass(frozen=True, slots=True)
class Wiring:
    hooks: DomainHooks
    jobs: JobQueue
    listeners: ProcessListeners = NO_LISTENERS


def wired_sessions(engine: AsyncEngine, wiring: Wiring) -> async_sessionmaker[AsyncSession]:
    """Sessions of ``engine`` that carry ``wiring``."""
    return session_factory(engine, info={WIRING: wiring})


def wiring_of(session: AsyncSession) -> Wiring:
    """The session's wiring; ``NotWired`` when its factory was given none."""
    wiring: Wiring | None = session.info.get(WIRING)
    if wiring is None:
        raise NotWired(
            "this session carries no wiring: make its factory with "
            "livecommerce.composition.wire() and wiring.wired_sessions()"
        )
    return wiring


def listeners_of(session: AsyncSession) -> ProcessListeners:
    """The process's listeners; none for a session made without wiring (nobody listens)."""
    wiring: Wiring | None = session.info.get(WIRING)
    return NO_LISTENERS if wiring is None else wiring.listeners
