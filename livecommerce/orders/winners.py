"""Flash-sale winners placed in batches: one transaction, one commit, for all who won at once.

In a rush every winner writes the same hot rows (the sale's units, the product's stock) and
pays for a whole transaction: its statements one by one, its commit, its own reading of the
basket. The front door hands its winners (orders that hold their units at the admission
gate, a ``Ticket`` each) to this desk instead. The desk places what arrived while the
previous batch was being placed (``BATCH_MAX`` at most) together in one transaction
(``placing.place_together``): one statement per kind of row for all of them, the sale's
units and the stock taken once for their sum, one commit. Nothing waits for a batch to fill:
a lone winner is placed at once, and a batch forms only while the database is busy with the
one before.

Every order of a batch gets the answer it would get alone. Whatever would make one of them
differ (a buyer twice in a batch, a deactivated account, a refused basket, a claim or stock
the database does not have for all) sends it, or the whole batch, to ``placing.place``, one
order per transaction, exactly as the door placed winners before: the database stays the
arbiter, and that path gives each its precise answer. A batch whose commit fails answers
each of its orders with that error (as one order's failed commit would be answered): it is
not placed again, since the commit may have happened.

The desk owns the tickets it is handed: units an order did not keep go back to the gate
once it is answered (or on the rollback of the transaction that claimed them).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy import bindparam, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from livecommerce.accounts.deps import active_user
from livecommerce.accounts.models import User
from livecommerce.config import Settings
from livecommerce.db import run_after_commit, session_scope
from livecommerce.deps import choose_currency
from livecommerce.errors import AppError
from livecommerce.flashsales.admission import Admission, Ticket
from livecommerce.orders import placing, service
from livecommerce.orders.placing import Answer, Win
from livecommerce.orders.schemas import OrderIn
from livecommerce.rates.service import RateBookCache

log = logging.getLogger(__name__)

BATCH_MAX = 100  # orders in one transaction; the rest wait for the next
# Batches placed at once: while one waits for the database (its hot rows wait for the commit
# of the one before), the next is read and quoted.
LANES = 4

_USERS_BY_ID = select(User).where(col(User.id).in_(bindparam("ids", expanding=True)))


@dataclass(frozen=True)
class OrderRequest:
    """An order request as the front door read it, exactly as the route would read it."""

    order: OrderIn
    buyer_id: int
    token_version: int  # the bearer token's, checked against the buyer's row
    locale: str
    currency: str | None  # ?currency=
    idempotency_key: str | None


@dataclass(eq=False)
class Winner:
    """An order request, and the units the gate handed it."""

    request: OrderRequest
    ticket: Ticket
    answer: asyncio.Future[Answer] = field(default_factory=lambda: _future())
    settled: bool = False

    async def settle(self, answer: Answer | BaseException) -> None:
        """Answer the request, once; units the order did not keep go back to the gate
        first (so that the next request already finds them)."""
        if self.settled:
            return
        self.settled = True
        if not self.ticket.claimed:
            await self.ticket.release()
        if self.answer.done():  # cancelled: nobody is waiting
            return
        if isinstance(answer, BaseException):
            self.answer.set_exception(answer)
        else:
            self.answer.set_result(answer)


class WinnerDesk:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        settings: Settings,
        admission: Admission,
        announcer: service.OrderAnnouncer | None,
        books: RateBookCache,
        batch: int = BATCH_MAX,
        lanes: int = LANES,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.admission = admission
        self.announcer = announcer
        self.books = books
        self.batch = batch
        self.lanes = lanes
        self._waiting: list[Winner] = []
        self._lanes: set[asyncio.Task[None]] = set()
        # For tests and figures: batches placed together, orders placed in them, orders
        # placed one by one, batches placed apart, batches whose commit failed.
        self.batches = 0
        self.together = 0
        self.alone = 0
        self.apart = 0
        self.failed = 0

    async def place(self, winner: Winner) -> Answer:
        """The order's answer; its refusal or failure is raised, as ``placing.place`` raises
        it. The winner's ticket is the desk's from here on."""
        self._waiting.append(winner)
        if len(self._lanes) < self.lanes:
            lane = asyncio.create_task(self._run(), name="winner-desk")
            self._lanes.add(lane)
            lane.add_done_callback(self._lanes.discard)
        # Shielded: a request that goes away still has its order placed (or its units
        # given back) by the desk, as the route's transaction would go on.
        return await asyncio.shield(winner.answer)

    async def close(self) -> None:
        """Once the server stops taking requests: what is waiting is placed and answered."""
        if self._lanes:
            await asyncio.gather(*self._lanes, return_exceptions=True)

    async def _run(self) -> None:
        lane = asyncio.current_task()
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self.batch], self._waiting[self.batch :]
                try:
                    await self._place_batch(batch)
                except Exception as exc:  # a bug: answered as the route's server error would be
                    log.exception("%d flash-sale orders could not be placed", len(batch))
                    for winner in batch:
                        await winner.settle(exc)
                for winner in batch:  # none is left unanswered, nor its units unreturned
                    await winner.settle(RuntimeError("flash-sale order not answered"))
        finally:
            # Out of the count at once, not when the task's end is processed: on an event
            # loop busy with a rush that is a turn later, and the winners arriving meanwhile
            # would wait for a busy lane instead of starting a free one.
            self._lanes.discard(lane)

    async def _place_batch(self, batch: list[Winner]) -> None:
        together: list[Winner] = []
        alone: list[Winner] = []
        seen: set[int] = set()
        for winner in batch:
            # A buyer's second order in a batch waits for the first's commit (its retry
            # with the same key is then a replay).
            (alone if winner.request.buyer_id in seen else together).append(winner)
            seen.add(winner.request.buyer_id)
        if len(together) > 1:
            alone[:0] = await self._together(together)
        else:
            alone[:0] = together
        if alone:
            self.alone += len(alone)
            await asyncio.gather(*(self._alone(w) for w in alone))

    async def _together(self, batch: list[Winner]) -> list[Winner]:
        """Places ``batch`` in one transaction; returns those to place alone."""
        async with self.sessions() as session:
            try:
                wins, alone = await self._read_buyers(session, batch)
                answers, held = await placing.place_together(
                    session=session,
                    wins=[win for _, win in wins],
                    settings=self.settings,
                    admission=self.admission,
                    announcer=self.announcer,
                    books=self.books,
                )
            except Exception as exc:
                await session.rollback()
                _forget_effects(session)
                if isinstance(exc, (service.PlaceApart, AppError)) or _retryable(exc):
                    self.apart += 1
                    return batch  # each on its own gives each its precise answer
                raise
            alone += [wins[i][0] for i in held]
            try:
                await session.commit()
            except Exception as exc:
                _forget_effects(session)
                self.failed += 1
                for i in answers:
                    await wins[i][0].settle(exc)
                return alone
            session.info.pop("on_rollback", None)
            for i in answers:
                wins[i][0].ticket.claimed = True
            self.batches += 1
            self.together += len(answers)
            try:
                await run_after_commit(session)
            except Exception:  # the orders are placed: their answers stand
                log.exception("an effect of %d placed orders failed", len(answers))
        for i, answer in answers.items():
            await wins[i][0].settle(answer)
        return alone

    async def _read_buyers(
        self, session: AsyncSession, batch: list[Winner]
    ) -> tuple[list[tuple[Winner, Win]], list[Winner]]:
        """The buyers' rows in one query, as ``accounts.deps.active_user`` reads one, and the
        currency as ``deps.choose_currency`` chooses it; what differs from a plain case goes
        alone."""
        users = (
            await session.execute(_USERS_BY_ID, {"ids": [w.request.buyer_id for w in batch]})
        ).scalars()
        by_id = {user.id: user for user in users}
        wins: list[tuple[Winner, Win]] = []
        alone: list[Winner] = []
        for winner in batch:
            asked = winner.request
            buyer = by_id.get(asked.buyer_id)
            try:
                if buyer is None or not buyer.is_active:
                    raise LookupError
                if buyer.token_version != asked.token_version:
                    raise LookupError
                currency = choose_currency(asked.currency, buyer, asked.locale)
            except (LookupError, AppError):
                alone.append(winner)  # its 401 or 422 comes from the path of one order
                continue
            win = Win(buyer, asked.order, asked.locale, currency, asked.idempotency_key)
            wins.append((winner, win))
        return wins, alone

    async def _alone(self, winner: Winner) -> None:
        """``winner`` in its own transaction, as the route places an order."""
        asked = winner.request
        try:
            async with session_scope(self.sessions) as session:  # as deps.get_session
                buyer = await active_user(session, asked.buyer_id, asked.token_version)
                answer = await placing.place(
                    session=session,
                    buyer=buyer,
                    data=asked.order,
                    locale=asked.locale,
                    currency=choose_currency(asked.currency, buyer, asked.locale),
                    idempotency_key=asked.idempotency_key,
                    settings=self.settings,
                    admission=self.admission,
                    announcer=self.announcer,
                    books=self.books,
                    ticket=winner.ticket,
                )
        except Exception as exc:
            await winner.settle(exc)
        else:
            await winner.settle(answer)


def _retryable(exc: BaseException) -> bool:
    """A database error that one transaction per order may not meet (a deadlock between two
    batches, a serialization failure), as opposed to a database that cannot be reached."""
    return isinstance(exc, DBAPIError) and not exc.connection_invalidated


def _future() -> asyncio.Future[Answer]:
    return asyncio.get_running_loop().create_future()


def _forget_effects(session: AsyncSession) -> None:
    """A batch that did not commit leaves nothing to do after it (and claimed no ticket)."""
    session.info.pop("after_commit", None)
    session.info.pop("on_rollback", None)
