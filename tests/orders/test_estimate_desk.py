"""Estimates asked over a room's socket: answered in batches, with the endpoint's figures.

Seeded rates (migration 0001): 1 EUR = 14,050 UZS = 1.16 USD.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from livecommerce.orders.estimates import Asked, EstimateDesk
from tests.fixtures.factories import account
from tests.orders.shop import TASHKENT, merchant, order, stocked_product
from tests.orders.test_estimates import estimate


def desk_of(client: httpx.AsyncClient) -> EstimateDesk:
    desk: EstimateDesk = client._transport.app.state.estimate_desk  # type: ignore[attr-defined]
    return desk


class Viewer:
    def __init__(self, locale: str, currency: str, user_id: int | None) -> None:
        self.locale, self.currency, self.user_id = locale, currency, user_id
        self.frames: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    def push(self, data: str) -> None:
        self.frames.append(json.loads(data))
        self.arrived.set()

    async def answer(self) -> dict[str, Any]:
        await asyncio.wait_for(self.arrived.wait(), 5)
        return self.frames[-1]


async def test_a_burst_is_answered_in_one_batch_with_each_buyers_own_figure(
    client: httpx.AsyncClient,
) -> None:
    """Forty viewers ask at once (as after a pin): one batch answers all of them; the two
    buyers who imported this month get their own allowance, the others the anonymous
    figure, each equal to what the endpoint answers them."""
    _, mh = await merchant(client)
    bag = await stocked_product(
        client, mh, DEDUI=50, weight_grams=2000, price={"amount": "150.00", "currency": "EUR"}
    )
    buyers = []
    for _ in range(3):
        user, headers = await account(client)
        buyers.append((user, headers))
    for _, headers in buyers[:2]:  # two of the three already imported this month
        placed = await order(client, headers, [(bag["id"], 1)], ship_to=TASHKENT)
        assert placed.status_code == 201, placed.text

    desk = desk_of(client)
    before = desk.batches
    viewers = [Viewer("uz", "UZS", user["id"]) for user, _ in buyers]
    viewers += [Viewer("ru", "RUB", None) for _ in range(37)]
    for n, viewer in enumerate(viewers):
        desk.from_room(
            viewer, {"product_id": bag["id"], "country": "UZ", "city": "Toshkent", "ref": str(n)}
        )
    answers = [await viewer.answer() for viewer in viewers]
    assert desk.batches == before + 1
    assert all(a["type"] == "estimate" for a in answers), answers[0]
    assert [a["data"]["ref"] for a in answers] == [str(n) for n in range(40)]

    for (_, headers), answer in zip(buyers, answers, strict=False):
        own = await estimate(
            client, bag["id"], "UZ", "Toshkent", "UZS", headers=headers, locale="uz"
        )
        assert answer["data"] == {**own, "ref": answer["data"]["ref"]}
    assert answers[0]["data"]["personal"] is True
    assert answers[0]["data"]["duties"]["amount"] == "537776.00"  # USD 148 over the 26 left
    assert answers[2]["data"]["duties"]["amount"] == "0.00"  # nothing imported yet
    anonymous = await estimate(client, bag["id"], "UZ", "Toshkent", "RUB", locale="ru")
    assert answers[3]["data"] == {**anonymous, "ref": "3"}
    assert answers[3]["data"]["personal"] is False


async def test_bad_requests_get_the_endpoints_localized_errors(
    client: httpx.AsyncClient,
) -> None:
    _, mh = await merchant(client)
    bag = await stocked_product(client, mh, DEDUI=5)
    desk = desk_of(client)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"product_id": "7", "country": "UZ", "city": "Toshkent"}, "validation_error"),
        ({"product_id": bag["id"], "country": "UZB", "city": "Toshkent"}, "validation_error"),
        ({"product_id": bag["id"], "country": "UZ", "city": " "}, "validation_error"),
        (
            {"product_id": bag["id"], "country": "UZ", "city": "x", "ref": "r" * 65},
            "validation_error",
        ),
        ({"product_id": 2**31 - 1, "country": "UZ", "city": "Toshkent"}, "product_not_found"),
        ({"product_id": bag["id"], "country": "FR", "city": "Paris"}, "destination_not_served"),
    ]
    for data, code in cases:
        viewer = Viewer("ru", "RUB", None)
        desk.from_room(viewer, {**data, "ref": data.get("ref", "q")})
        answer = await viewer.answer()
        assert answer["type"] == "error", answer
        assert answer["data"]["code"] == code, (data, answer)
        assert answer["data"]["message"] and answer["data"]["message"].isascii() is False, answer
    invalid = Viewer("uz", "UZS", None)
    desk.from_room(invalid, {"product_id": 0, "country": "UZ", "city": "Toshkent", "ref": "a"})
    answer = await invalid.answer()
    assert answer["data"]["ref"] == "a"
    assert set(answer["data"]["details"]["fields"]) == {"product_id"}


async def test_a_full_queue_answers_busy_rather_than_growing(client: httpx.AsyncClient) -> None:
    _, mh = await merchant(client)
    bag = await stocked_product(client, mh, DEDUI=5)
    app = client._transport.app  # type: ignore[attr-defined]
    small = EstimateDesk(
        sessions=app.state.sessions,
        cache=app.state.estimates,
        network=desk_of(client).network,
        queue_max=2,
    )
    viewers = [Viewer("en", "EUR", None) for _ in range(3)]
    for viewer in viewers:
        small.ask(
            Asked(bag["id"], "KZ", "Almaty", viewer.locale, viewer.currency, None, viewer.push)
        )
    answers = [await viewer.answer() for viewer in viewers]
    assert [a["type"] for a in answers] == ["estimate", "estimate", "error"]
    assert answers[2]["data"]["code"] == "service_unavailable"
    await small.close()
