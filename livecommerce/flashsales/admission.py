"""The order path's use of the gate: refuse a loser before the database, admit the rest.

``Admission`` is one per API process. It turns the gate's verdicts into the order path's
answers (the same localized 409s the database path gives), gives admitted units back when
the order does not commit, rebuilds the gate from the database when it is empty, checks a
"sold out" against the database at most once a second per sale, and steps aside for a
moment whenever the gate itself fails (Redis down): orders then go through the database
alone, slower but with the same answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from livecommerce.db import on_rollback, session_scope
from livecommerce.errors import AppError
from livecommerce.flashsales import service
from livecommerce.flashsales.gate import Breaker, Gate, Verdict
from livecommerce.flashsales.models import FlashSale
from livecommerce.inventory.service import out_of_stock
from livecommerce.sqltypes import utcnow

log = logging.getLogger(__name__)

VERIFY_EVERY_S = 1.0  # a gate's "sold out" is checked against the database this often


@dataclass(eq=False)
class Ticket:
    """Units the front door took from the gate for one order. The order path claims it
    (and gives the units back if its transaction rolls back); unclaimed, the front door
    gives them back once the request is answered."""

    admission: Admission
    sale_id: int
    buyer_id: int
    quantity: int
    claimed: bool = False

    def claim(self, session: AsyncSession, sale_id: int | None, buyer_id: int) -> bool:
        if self.claimed or sale_id != self.sale_id or buyer_id != self.buyer_id:
            return False
        self.claimed = True
        on_rollback(session, self.release)
        return True

    async def release(self) -> None:
        await self.admission.give_back(self.sale_id, self.buyer_id, self.quantity)


class Admission:
    def __init__(
        self, gate: Gate | None, *, sessions: async_sessionmaker[AsyncSession] | None = None
    ) -> None:
        self.gate = gate
        # For the front door's checks against the database, which run beside the requests.
        self.sessions = sessions
        self.breaker = Breaker()
        self._checks: set[asyncio.Task[None]] = set()
        self._verified: dict[int, float] = {}
        self._seen: dict[int, int] = {}  # sale -> units the database had at the last check
        self._products: dict[int, int] = {}  # sale -> its product (never changes)

    def _remember(self, sale_id: int, product_id: int) -> int:
        if len(self._products) > 10_000:
            self._products.clear()
        self._products[sale_id] = product_id
        return product_id

    def _failed(self, what: str) -> None:
        if not self.breaker.open:
            log.warning("admission gate unavailable (%s); orders go to the database", what)
        self.breaker.trip()

    @property
    def usable(self) -> bool:
        return self.gate is not None and not self.breaker.open

    async def enter_sale(
        self,
        *,
        session: AsyncSession,
        sale_id: int,
        items: list[tuple[int, int]],
        buyer_id: int,
        keyed: bool,
    ) -> None:
        """Raise the sale's 409 when this request cannot win; otherwise let it go on to the
        database, with the units it took from the gate given back if it does not commit.

        ``items`` are the basket's (product id, quantity); the sale's product decides how
        many units this request asks of the sale.
        """
        gate = self.gate
        if gate is None or self.breaker.open:
            return
        product_id = self._products.get(sale_id)
        if product_id is None:
            sale, _ = await service.snapshot(session=session, sale_id=sale_id)
            if sale is None:
                return  # the database answers flash_sale_not_found
            product_id = self._remember(sale_id, sale.product_id)
        quantity = sum(q for p, q in items if p == product_id)
        if quantity <= 0:
            return  # not in the basket: the database answers flash_sale_product_missing
        for attempt in range(2):
            try:
                verdict, limit, left = await gate.admit(sale_id, buyer_id, quantity, keyed)
                if verdict is Verdict.UNKNOWN:
                    if not await self._rebuild(session, gate, sale_id, replace=False):
                        return  # not running: the database gives the precise answer
                    verdict, limit, left = await gate.admit(sale_id, buyer_id, quantity, keyed)
            except Exception as exc:
                self._failed(type(exc).__name__)
                return
            if verdict is Verdict.ADMIT:
                on_rollback(session, partial(self.give_back, sale_id, buyer_id, quantity))
                return
            if verdict in (Verdict.PASS, Verdict.UNKNOWN):
                return
            # A refusal the database contradicts rebuilds the gate; then ask it once more.
            if verdict is Verdict.SOLD_OUT:
                if attempt or not await self._gate_was_wrong(session, gate, sale_id):
                    raise service.sold_out(max(left, 0))
                continue
            assert limit is not None
            if attempt or not await self._limit_was_wrong(
                session, gate, sale_id, buyer_id, quantity, limit
            ):
                raise service.limit_exceeded(limit)

    async def at_door(
        self, *, sale_id: int | None, items: list[tuple[int, int]], buyer_id: int, keyed: bool
    ) -> AppError | Ticket | None:
        """Admission before the request machinery, with what the gate alone can tell.

        The order's 409 when it cannot win whatever the database says (a product marked
        sold out; a sale the gate holds with nothing left, no check against the database
        due); a ``Ticket`` when it took units for the order (the caller gives them back
        unless the order path claims it); None when it cannot tell (the order path then
        asks the gate, and the database, itself).
        """
        gate = self.gate
        if gate is None or self.breaker.open:
            return None
        try:
            for product_id, quantity in items:
                if await gate.sold_out(product_id, buyer_id, keyed):
                    return out_of_stock(product_id, quantity, 0)
            if sale_id is None:
                return None
            on_sale = self._products.get(sale_id)
            if on_sale is None and len(items) == 1:
                # A process that did not start the sale: the gate says whether this item is
                # the sale's (it holds the sale's product), in the same call.
                on_sale = items[0][0]
            asked = sum(q for p, q in items if p == on_sale)
            if on_sale is None or asked <= 0:
                return None
            verdict, _, left = await gate.admit(sale_id, buyer_id, asked, keyed, on_sale)
            if verdict is Verdict.UNKNOWN:
                return None  # not a sale the gate holds, or not its product: the route decides
            self._remember(sale_id, on_sale)
        except Exception as exc:
            self._failed(type(exc).__name__)
            return None
        if verdict is Verdict.ADMIT:
            return Ticket(self, sale_id, buyer_id, asked)
        if verdict is not Verdict.SOLD_OUT:
            return None
        if time.monotonic() - self._verified.get(sale_id, 0.0) >= VERIFY_EVERY_S:
            if self.sessions is None:
                return None  # the order path checks this one against the database
            # Checked beside the requests, not by them: in a rush thousands of refusals
            # arrive within the same moment, and none of them should wait for the database.
            self._verified[sale_id] = time.monotonic()
            task = asyncio.create_task(self._check_in_background(self.sessions, gate, sale_id))
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)
        return service.sold_out(max(left, 0))

    async def _check_in_background(
        self, sessions: async_sessionmaker[AsyncSession], gate: Gate, sale_id: int
    ) -> None:
        try:
            async with session_scope(sessions, read_only=True) as session:
                sale, _ = await service.snapshot(session=session, sale_id=sale_id)
                if sale is None or not self._units_lost(sale_id, sale):
                    return
                log.info(
                    "flash sale %s: gate said sold out with %s left; rebuilt",
                    sale_id,
                    sale.remaining,
                )
                await self._rebuild(session, gate, sale_id, replace=True)
        except Exception as exc:
            self._failed(type(exc).__name__)

    def _units_lost(self, sale_id: int, sale: FlashSale) -> bool:
        """Whether the units the database still has for a sale the gate calls sold out were
        lost by the gate (a process died mid-order, a give-back failed), rather than handed
        to orders still being placed.

        In a rush the database lags the gate: every unit is handed out within moments, and
        the orders holding them commit over the next second or more, so a positive count is
        no proof. Lost units are the ones no order comes for: the database shows the same
        count at two checks a second apart (checks run at most once a second, see
        ``VERIFY_EVERY_S``). A count that moved between them is orders committing."""
        if sale.remaining <= 0 or not service.is_open(sale, utcnow()):
            self._seen.pop(sale_id, None)
            return False
        if len(self._seen) > 10_000:
            self._seen.clear()
        seen, self._seen[sale_id] = self._seen.get(sale_id), sale.remaining
        return seen == sale.remaining

    async def give_back(self, sale_id: int, buyer_id: int, quantity: int) -> None:
        if self.gate is None:
            return
        try:
            await self.gate.give_back(sale_id, buyer_id, quantity)
        except Exception as exc:  # corrected by the next verification against the database
            self._failed(type(exc).__name__)

    async def _rebuild(
        self, session: AsyncSession, gate: Gate, sale_id: int, *, replace: bool
    ) -> bool:
        sale, claims = await service.snapshot(session=session, sale_id=sale_id)
        if sale is None or not service.is_open(sale, utcnow()):
            return False
        self._remember(sale_id, sale.product_id)
        await gate.load_sale(
            sale_id,
            sale.remaining,
            claims,
            sale.per_customer_limit,
            sale.ends_at,
            replace=replace,
            product_id=sale.product_id,
        )
        return True

    async def _gate_was_wrong(self, session: AsyncSession, gate: Gate, sale_id: int) -> bool:
        """At most once a second per sale: does the database still have units the gate has
        given away? Then the gate lost give-backs (a process died mid-order): rebuild it."""
        now = time.monotonic()
        if now - self._verified.get(sale_id, 0.0) < VERIFY_EVERY_S:
            return False
        self._verified[sale_id] = now
        if len(self._verified) > 10_000:
            self._verified = {s: t for s, t in self._verified.items() if now - t < 60}
        sale, _ = await service.snapshot(session=session, sale_id=sale_id)
        if sale is None or not self._units_lost(sale_id, sale):
            return False
        log.info("flash sale %s: gate said sold out with %s left; rebuilt", sale_id, sale.remaining)
        return await self._rebuild_or_step_aside(session, gate, sale_id)

    async def _limit_was_wrong(
        self,
        session: AsyncSession,
        gate: Gate,
        sale_id: int,
        buyer_id: int,
        quantity: int,
        limit: int,
    ) -> bool:
        """A buyer over the limit is one buyer, not the rush: ask the database every time.
        The gate can count too many when an order gave its units back without it (a card
        order whose hold expired, a cancellation in another process)."""
        held = await service.claimed(session=session, sale_id=sale_id, buyer_id=buyer_id)
        if held + quantity > limit:
            return False
        return await self._rebuild_or_step_aside(session, gate, sale_id)

    async def _rebuild_or_step_aside(self, session: AsyncSession, gate: Gate, sale_id: int) -> bool:
        try:
            return await self._rebuild(session, gate, sale_id, replace=True)
        except Exception as exc:  # the next admit fails too and the database decides
            self._failed(type(exc).__name__)
            return True

    async def product_sold_out(self, *, product_id: int, buyer_id: int, keyed: bool) -> bool:
        """True when the product was out of stock everywhere moments ago."""
        gate = self.gate
        if gate is None or self.breaker.open:
            return False
        try:
            return await gate.sold_out(product_id, buyer_id, keyed)
        except Exception as exc:
            self._failed(type(exc).__name__)
            return False

    async def mark_sold_out(self, product_id: int) -> None:
        if self.gate is None or self.breaker.open:
            return
        try:
            await self.gate.mark_sold_out(product_id)
        except Exception as exc:
            self._failed(type(exc).__name__)

    async def restocked(self, product_ids: list[int]) -> None:
        """After commit: these products may have stock again."""
        if self.gate is None:
            return
        try:
            await self.gate.restocked(product_ids)
        except Exception as exc:  # the marker's own short life ends it
            self._failed(type(exc).__name__)

    async def bought(self, product_ids: list[int], buyer_id: int) -> None:
        """After commit: these products' keyed retries by this buyer may be replays."""
        if self.gate is None or self.breaker.open:
            return
        try:
            for product_id in product_ids:
                await self.gate.note_buyer(product_id, buyer_id)
        except Exception as exc:
            self._failed(type(exc).__name__)

    async def opened(
        self, sale_id: int, product_id: int, quantity: int, limit: int | None, ends_at: datetime
    ) -> None:
        """After commit: a new sale's gate, full."""
        if self.gate is None:
            return
        self._remember(sale_id, product_id)
        try:
            await self.gate.load_sale(
                sale_id, quantity, {}, limit, ends_at, replace=True, product_id=product_id
            )
        except Exception as exc:  # rebuilt from the database by the first order
            self._failed(type(exc).__name__)

    async def ended(self, sale_id: int) -> None:
        """After commit: the sale is over; its gate goes (late orders meet the database)."""
        if self.gate is None:
            return
        try:
            await self.gate.forget_sale(sale_id)
        except Exception as exc:  # the gate's own expiry removes it
            self._failed(type(exc).__name__)
