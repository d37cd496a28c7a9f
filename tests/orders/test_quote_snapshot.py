"""The quote kept on an order: version-2 rows round-trip, version-1 rows render as before.

tests/orders/data/quote_v1.json is what ``Quote.as_data`` wrote for the two-warehouse RUB
quote of test_render (the last version-1 shape), and quote_v1_rendered.json its render in
each language by that code; the ``before_breakdown`` pair is the same order as a row of the
first days (no charge breakdown, no delivery, no border, legs without node keys).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from livecommerce.logistics.network import load_network
from livecommerce.orders.models import OrderStatus
from livecommerce.orders.rendering import render_order, render_quote
from livecommerce.orders.snapshots import (
    AssessmentSnapshot,
    LegacyAssessment,
    LegSnapshot,
    QuoteSnapshot,
)
from tests.orders.test_render import MARKETS, landed, placed

DATA = Path(__file__).parent / "data"


def stored(name: str) -> Any:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@pytest.mark.parametrize("name", ["quote_v1", "quote_v1_before_breakdown"])
def test_a_version_1_row_renders_byte_for_byte_as_before(name: str) -> None:
    """A row without a version renders in every language exactly as the code that wrote it."""
    row, rendered = stored(name), stored(f"{name}_rendered")
    quote = QuoteSnapshot.read(row)
    for locale, _ in MARKETS:
        assert text(render_quote(quote, locale)) == text(rendered[locale])


def test_a_version_1_order_renders_as_its_version_2_twin() -> None:
    """The same quote stored as version 1 or as version 2 makes the same order body."""
    v1 = stored("quote_v1")
    v2 = json.loads(json.dumps(landed("RUB", two_warehouses=True).snapshot().record()))
    for locale, _ in MARKETS:
        bodies = [
            render_order(*placed(row, "RUB", method="cod", status=OrderStatus.FULFILLING), locale)
            for row in (v1, v2)
        ]
        assert text(bodies[0]) == text(bodies[1])


def test_the_stored_record_keeps_the_figures_text() -> None:
    """A version-2 row holds what version 1 held, amounts and times written alike, plus its
    version."""
    record = landed("RUB", two_warehouses=True).snapshot().record()
    assert record.pop("version") == 2
    assert record == stored("quote_v1")
    assert record["items"][1]["unit_price"] == "22752.00"
    assert record["rates"][0]["as_of"] == "2026-11-20T06:00:00+00:00"


def test_a_version_2_row_round_trips() -> None:
    """Written as JSON and read back, a snapshot is the same snapshot and the same record."""
    for currency in ("RUB", "KZT", "UZS"):
        for two in (False, True):
            quote = landed(currency, two_warehouses=two).snapshot()
            row = json.loads(json.dumps(quote.record()))
            again = QuoteSnapshot.read(row)
            assert again == quote
            assert again.record() == row


def test_a_version_1_row_reads_as_version_2() -> None:
    """An upgraded version-1 row is the quote the current code would store."""
    assert QuoteSnapshot.read(stored("quote_v1")) == landed("RUB", two_warehouses=True).snapshot()


def test_a_row_of_the_first_days_is_upgraded() -> None:
    """No breakdown: one legacy duty per assessed parcel; by courier; no border kept."""
    quote = QuoteSnapshot.read(stored("quote_v1_before_breakdown"))
    assert (quote.version, quote.delivery, quote.deliveries) == (2, "courier", ["courier"])
    [charge] = quote.customs
    assert (charge.warehouse, charge.rule, charge.basis, charge.currency) == (
        "DEDUI",
        "EAEU",
        "legacy",
        "EUR",
    )
    assert (str(charge.assessed), str(charge.charged), charge.rate) == ("7.50", "711.00", None)
    almaty, duisburg = quote.shipments
    assert almaty.customs is None and duisburg.border_date is None
    assert isinstance(duisburg.customs, LegacyAssessment)
    # Its legs had no node keys and are copied to the parcel without them.
    assert "from_key" not in duisburg.legs[0].as_record()


def test_an_assessment_is_told_apart_by_its_shape() -> None:
    """A parcel's current assessment names its union; the first days' one does not."""
    quote = QuoteSnapshot.read(stored("quote_v1"))
    assert isinstance(quote.shipments[1].customs, AssessmentSnapshot)
    assert quote.shipments[1].customs.rule == "EAEU-2026-ECOM"


def test_a_leg_keeps_the_shape_shipments_copy() -> None:
    """The route leg a quote stores is the record a shipment and the carrier read."""
    network = load_network()
    route = network.route("DEDUI", network.destination("KZ", "Almaty"))
    assert route is not None
    records = [LegSnapshot.of(leg).as_record() for leg in route.legs]
    assert list(records[0]) == ["mode", "from", "to", "from_key", "to_key", "days"]
    assert records == stored("quote_v1")["shipments"][1]["legs"]


@pytest.mark.parametrize(
    "change",
    [
        lambda row: row.update(version=3),
        lambda row: row.update(surprise=True),
        lambda row: row["items"][0].update(unit_price="a lot"),
    ],
    ids=["later-version", "unknown-key", "not-a-number"],
)
def test_a_row_it_cannot_read_is_refused(change: Any) -> None:
    """A later version, an unknown key or a broken figure raises instead of being misread."""
    row = landed("RUB").snapshot().record()
    change(row)
    with pytest.raises(ValidationError):
        QuoteSnapshot.read(row)
