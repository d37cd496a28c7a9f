"""One contract for both admission gates: in process and in Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from redis.asyncio.client import Pipeline

from livecommerce.flashsales.gate import Gate, MemoryGate, RedisGate, Verdict
from livecommerce.sqltypes import utcnow
from tests.fixtures.redis import prepare_redis


@pytest.fixture(params=["memory", "redis"])
async def gate(request: pytest.FixtureRequest) -> AsyncIterator[Gate]:
    if request.param == "memory":
        made: Gate = MemoryGate()
    else:
        made = RedisGate(await prepare_redis(), prefix=f"test:{uuid.uuid4().hex}:")
    yield made
    await made.close()


def soon() -> object:
    return utcnow() + timedelta(minutes=10)


async def test_unknown_sale_is_unknown(gate: Gate) -> None:
    """A sale the gate was never told of is UNKNOWN (the caller rebuilds it)."""
    assert (await gate.admit(7, 1, 1, False))[0] is Verdict.UNKNOWN


async def test_admits_until_sold_out(gate: Gate) -> None:
    """Units are handed out one request at a time until none are left."""
    await gate.load_sale(1, 3, {}, None, soon())  # type: ignore[arg-type]
    verdicts = [(await gate.admit(1, buyer, 1, False))[0] for buyer in range(5)]
    assert verdicts == [Verdict.ADMIT] * 3 + [Verdict.SOLD_OUT] * 2


async def test_per_customer_limit(gate: Gate) -> None:
    """A buyer gets at most the limit, counted over requests, and hears the limit."""
    await gate.load_sale(1, 10, {}, 2, soon())  # type: ignore[arg-type]
    assert (await gate.admit(1, 5, 2, False)) == (Verdict.ADMIT, 2, 8)
    assert (await gate.admit(1, 5, 1, False)) == (Verdict.LIMIT, 2, 8)
    assert (await gate.admit(1, 6, 3, False)) == (Verdict.LIMIT, 2, 8)
    assert (await gate.admit(1, 6, 2, False))[0] is Verdict.ADMIT


async def test_give_back_reopens_units_and_the_limit(gate: Gate) -> None:
    """Units given back can be won again, by the same buyer too."""
    await gate.load_sale(1, 1, {}, 1, soon())  # type: ignore[arg-type]
    assert (await gate.admit(1, 5, 1, False))[0] is Verdict.ADMIT
    assert (await gate.admit(1, 6, 1, False))[0] is Verdict.SOLD_OUT
    await gate.give_back(1, 5, 1)
    assert (await gate.admit(1, 5, 1, False))[0] is Verdict.ADMIT


async def test_a_keyed_holder_passes_to_the_database(gate: Gate) -> None:
    """A refused buyer who holds units and sends a key may be retrying: PASS, not a 409."""
    await gate.load_sale(1, 1, {}, 1, soon())  # type: ignore[arg-type]
    assert (await gate.admit(1, 5, 1, True))[0] is Verdict.ADMIT
    assert (await gate.admit(1, 5, 1, True))[0] is Verdict.PASS
    assert (await gate.admit(1, 5, 1, False))[0] is Verdict.LIMIT
    assert (await gate.admit(1, 6, 1, True))[0] is Verdict.SOLD_OUT


async def test_peek_takes_nothing(gate: Gate) -> None:
    """peek answers as admit would, and the units stay."""
    await gate.load_sale(1, 1, {}, None, soon())  # type: ignore[arg-type]
    assert (await gate.peek(1, 5, 1, False)) == (Verdict.ADMIT, None, 1)
    assert (await gate.peek(1, 5, 2, False)) == (Verdict.SOLD_OUT, None, 1)
    assert (await gate.admit(1, 6, 1, False)) == (Verdict.ADMIT, None, 0)
    assert (await gate.peek(1, 5, 1, False))[0] is Verdict.SOLD_OUT


async def test_load_keeps_a_live_gate_unless_replaced(gate: Gate) -> None:
    """Loading twice does not refill a running gate; a replace does, claims included."""
    await gate.load_sale(1, 2, {}, 1, soon())  # type: ignore[arg-type]
    assert (await gate.admit(1, 5, 1, False))[0] is Verdict.ADMIT
    await gate.load_sale(1, 2, {}, 1, soon())  # type: ignore[arg-type]
    assert (await gate.admit(1, 6, 1, False))[0] is Verdict.ADMIT
    assert (await gate.admit(1, 7, 1, False))[0] is Verdict.SOLD_OUT
    await gate.load_sale(1, 5, {5: 1}, 1, soon(), replace=True)  # type: ignore[arg-type]
    assert (await gate.admit(1, 5, 1, False))[0] is Verdict.LIMIT
    assert (await gate.admit(1, 7, 1, False))[0] is Verdict.ADMIT


async def test_forgotten_sale_is_unknown_and_ignores_give_backs(gate: Gate) -> None:
    """After forget_sale the gate holds nothing, and a late give-back creates nothing."""
    await gate.load_sale(1, 2, {}, None, soon())  # type: ignore[arg-type]
    await gate.forget_sale(1)
    await gate.give_back(1, 5, 1)
    assert (await gate.admit(1, 5, 1, False))[0] is Verdict.UNKNOWN


async def test_sold_out_marker_until_restocked(gate: Gate) -> None:
    """A product marked sold out is refused, except a keyed retry by one of its buyers, until
    it is restocked."""
    assert not await gate.sold_out(3, 1, False)
    await gate.note_buyer(3, 1)
    await gate.mark_sold_out(3)
    assert await gate.sold_out(3, 2, False)
    assert await gate.sold_out(3, 2, True)
    assert await gate.sold_out(3, 1, False)
    assert not await gate.sold_out(3, 1, True)
    assert not await gate.sold_out(4, 2, False)
    await gate.restocked([3])
    assert not await gate.sold_out(3, 2, False)


async def test_checks_and_admissions_asked_together_each_get_their_answer(gate: Gate) -> None:
    """A rush asks sold-out checks (one or two commands each, keyed or not) and admissions
    in the same moment: sent in one round trip to Redis, every caller still gets its own."""
    await gate.load_sale(1, 3, {}, None, soon(), product_id=7)  # type: ignore[arg-type]
    await gate.note_buyer(9, 1)
    await gate.mark_sold_out(9)
    asked = []
    for buyer in range(1, 31):
        asked.append(gate.sold_out(9, buyer, buyer % 2 == 1))
        asked.append(gate.admit(1, buyer, 1, False, 7))
        asked.append(gate.sold_out(7, buyer, True))
    answers = await asyncio.gather(*asked)
    marked, admitted, fresh = answers[0::3], answers[1::3], answers[2::3]
    assert marked == [buyer != 1 for buyer in range(1, 31)]  # buyer 1 bought it, keyed
    assert [a[0] for a in admitted] == [Verdict.ADMIT] * 3 + [Verdict.SOLD_OUT] * 27
    assert fresh == [False] * 30


async def test_a_product_that_is_not_the_sales_is_unknown(gate: Gate) -> None:
    """Asked with a product, the gate admits only for the sale's own, and takes nothing
    otherwise."""
    await gate.load_sale(1, 2, {}, None, soon(), product_id=7)  # type: ignore[arg-type]
    assert (await gate.admit(1, 5, 1, False, 8))[0] is Verdict.UNKNOWN
    assert (await gate.admit(1, 5, 1, False, 7)) == (Verdict.ADMIT, None, 1)
    assert (await gate.admit(1, 6, 1, False)) == (Verdict.ADMIT, None, 0)


async def test_a_rush_at_once_is_answered_exactly(gate: Gate) -> None:
    """1,000 admissions asked in the same instant (the Redis gate sends them in a few
    pipelines): exactly the units are handed out, each buyer within the limit, the rest
    hear sold out or their limit, and what is left agrees."""
    await gate.load_sale(1, 300, {}, 2, soon())  # type: ignore[arg-type]
    asks = [(buyer % 400, 1) for buyer in range(1_000)]  # most buyers ask two or three times
    answers = await asyncio.gather(*(gate.admit(1, b, q, False) for b, q in asks))
    verdicts = Counter(a[0] for a in answers)
    assert verdicts[Verdict.ADMIT] == 300
    assert verdicts[Verdict.ADMIT] + verdicts[Verdict.SOLD_OUT] + verdicts[Verdict.LIMIT] == 1_000
    per_buyer = Counter(b for (b, _), a in zip(asks, answers, strict=True) if a[0] is Verdict.ADMIT)
    assert max(per_buyer.values()) <= 2
    # Arrival order is kept: the first 300 asks (buyers 0-299, once each) won.
    assert sorted(per_buyer) == list(range(300))
    assert (await gate.peek(1, 999, 1, False))[0] is Verdict.SOLD_OUT


async def test_redis_gate_sends_a_rush_in_few_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    """Admissions asked together share pipelines: 600 in three round trips, not 600."""
    gate = RedisGate(await prepare_redis(), prefix=f"test:{uuid.uuid4().hex}:")
    try:
        await gate.load_sale(1, 50, {}, None, soon())  # type: ignore[arg-type]
        sent: list[int] = []
        execute = Pipeline.execute

        async def counted(self: Pipeline, raise_on_error: bool = True) -> list[object]:
            sent.append(len(self.command_stack))
            return await execute(self, raise_on_error)

        monkeypatch.setattr(Pipeline, "execute", counted)
        answers = await asyncio.gather(*(gate.admit(1, b, 1, False) for b in range(600)))
        assert sum(a[0] is Verdict.ADMIT for a in answers) == 50
        assert len(sent) <= 4 and sum(sent) == 600, sent  # batches of at most 256
    finally:
        await gate.close()


async def test_redis_gate_gives_back_what_a_request_that_went_away_was_given() -> None:
    """A request cancelled while its admission waits for the pipeline (its client went
    away) does not keep the units it was handed: the next buyer gets them."""
    gate = RedisGate(await prepare_redis(), prefix=f"test:{uuid.uuid4().hex}:")
    try:
        await gate.load_sale(1, 1, {}, None, soon())  # type: ignore[arg-type]
        gone = asyncio.ensure_future(gate.admit(1, 7, 1, False))
        await asyncio.sleep(0)  # asked: queued for the next round trip
        gone.cancel()
        for _ in range(50):  # the round trip, then the give-back
            if (await gate.peek(1, 8, 1, False))[0] is Verdict.ADMIT:
                break
            await asyncio.sleep(0.01)
        assert (await gate.admit(1, 8, 1, False))[0] is Verdict.ADMIT
    finally:
        await gate.close()
