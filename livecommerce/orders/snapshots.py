"""The quote kept on an order: one typed, versioned record of what the buyer was charged.

``Order.quote`` holds a ``QuoteSnapshot``'s JSON (``model_dump(mode="json")``). The quote
code builds it (``orders.quotes.Quote.snapshot``), rendering shows it and fulfilment builds
the parcels and their declarations from it; all of them go through these models, so the
stored shape is written down once, here.

Amounts are Decimals stored as their text (``str(Decimal)``, as they were first written:
``"917.05"`` stays ``"917.05"``), dates and times as ISO text, and place and product names
in every language (the reader picks one). Rows written before the record had a version
(version 1) are read by ``QuoteSnapshot.read``, which upgrades them in memory; they are
never rewritten, so an old order renders exactly as it always did.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PlainSerializer, Tag

from livecommerce.logistics.customs import DutyAssessment
from livecommerce.logistics.network import Leg, Route

# As ``datetime.isoformat`` writes it (``+00:00``, not pydantic's ``Z``): rows keep one form.
IsoDateTime = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str)]


class _Snapshot(BaseModel):
    # Frozen: a stored quote is a record of the past. Unknown keys are refused, as a row of
    # a later version is: every key any version wrote is known here, and one misspelt where
    # a snapshot is built must not be dropped without a word.
    model_config = ConfigDict(frozen=True, extra="forbid", serialize_by_alias=True)


class DestinationSnapshot(_Snapshot):
    country: str
    city: dict[str, str]  # the city's name in every language
    city_key: str | None


class LineSnapshot(_Snapshot):
    product_id: int
    title: dict[str, str]
    quantity: int
    unit_price: Decimal  # the buyer's currency, rounded to its display step
    line_total: Decimal
    flash_sale_id: int | None


class LegSnapshot(_Snapshot):
    """One leg of a parcel's route as planned; shipments keep the same record."""

    mode: str
    origin: dict[str, str] = Field(alias="from")  # place names in every language
    destination: dict[str, str] = Field(alias="to")
    # Network node keys (None for the buyer's city). The first version-1 rows, written
    # before fulfilment existed (23 November), have none: their records stay without them.
    from_key: str | None = None
    to_key: str | None = None
    days: int

    @classmethod
    def of(cls, leg: Leg) -> LegSnapshot:
        return cls.model_validate(
            {
                "mode": leg.mode,
                "from": dict(leg.origin.names),
                "to": dict(leg.destination.names),
                "from_key": leg.origin.key,
                "to_key": leg.destination.key,
                "days": leg.days,
            }
        )

    def as_record(self) -> dict[str, Any]:
        """The leg as ``Shipment.legs`` and the carriers read it (keys absent stay absent)."""
        return self.model_dump(mode="json", exclude_unset=True)


class RoutePlan(_Snapshot):
    """When and how a parcel travels, as planned when the order was placed."""

    legs: list[LegSnapshot]
    handling_days: int
    days: int  # handling plus every leg
    eta: date  # in the destination's time zone
    border: str | None = None  # the node where it enters the destination's customs union
    # The day the parcel is expected at that border: its customs rule is the one in force
    # then. None when no border is crossed, or for a version-1 row written before it was kept.
    border_date: date | None = None

    @classmethod
    def of(cls, route: Route, *, eta: date, border_date: date | None = None) -> RoutePlan:
        return cls(
            legs=[LegSnapshot.of(leg) for leg in route.legs],
            handling_days=route.handling_days,
            days=route.days,
            eta=eta,
            border=route.border,
            border_date=border_date,
        )


class ChargeDetail(_Snapshot):
    """One duty or VAT within a parcel's assessment (``logistics.customs.Charge``)."""

    type: str
    rule: str
    legal_basis: str
    base: Decimal
    rate: Decimal
    minimum: Decimal | None
    basis: str
    amount: Decimal


class AssessmentSnapshot(_Snapshot):
    """A parcel's customs assessment (``logistics.customs.DutyAssessment.as_data``), in the
    rule's currency."""

    rule: str  # the customs rule's id
    union: str
    kind: str
    legal_basis: str
    border_date: date
    currency: str
    customs_value: Decimal
    weight_kg: Decimal
    duty_free_allowance: Decimal
    excess_value: Decimal
    excess_kg: Decimal
    duty: Decimal
    vat: Decimal
    total: Decimal
    charges: list[ChargeDetail]

    @classmethod
    def of(cls, assessment: DutyAssessment) -> AssessmentSnapshot:
        a = assessment
        return cls(
            rule=a.rule.id,
            union=a.rule.union,
            kind=a.rule.kind,
            legal_basis=a.rule.legal_basis,
            border_date=a.border_date,
            currency=a.currency,
            customs_value=a.customs_value,
            weight_kg=a.weight_kg,
            duty_free_allowance=a.allowance,
            excess_value=a.excess_value,
            excess_kg=a.excess_kg,
            duty=a.duty,
            vat=a.vat,
            total=a.total,
            charges=[
                ChargeDetail(
                    type=c.type,
                    rule=c.rule,
                    legal_basis=c.legal_basis,
                    base=c.base,
                    rate=c.rate,
                    minimum=c.minimum,
                    basis=c.basis,
                    amount=c.amount,
                )
                for c in a.charges
            ],
        )


class LegacyAssessment(_Snapshot):
    """An assessment as stored before 3 December (version 1): per union, duty only.

    Its figures cannot be recomputed, so it is kept and shown as it was stored: only the
    keys the row had, in their order.
    """

    rule: str  # the customs union, not a rule id
    currency: str
    customs_value: Decimal | None = None
    weight_kg: Decimal | None = None
    duty_free_allowance: Decimal | None = None
    excess_value: Decimal | None = None
    excess_kg: Decimal | None = None
    duty: Decimal


def _assessment_kind(value: Any) -> str:
    # Only the current shape names the union (the legacy one's ``rule`` is the union).
    if isinstance(value, BaseModel):
        return "legacy" if isinstance(value, LegacyAssessment) else "current"
    return "current" if "union" in value else "legacy"


Assessment = Annotated[
    Annotated[AssessmentSnapshot, Tag("current")] | Annotated[LegacyAssessment, Tag("legacy")],
    Discriminator(_assessment_kind),
]


class ShipmentItem(_Snapshot):
    product_id: int
    quantity: int


class ShipmentSnapshot(RoutePlan):
    """One parcel: a warehouse's part of the order and its route, shipping and duties."""

    warehouse: str
    items: list[ShipmentItem]
    weight_grams: int
    shipping: Decimal  # the buyer's currency
    duties: Decimal  # duty plus import VAT, in the buyer's currency
    customs: Assessment | None


class ChargeSnapshot(_Snapshot):
    """One duty or VAT of one parcel, as assessed (the rule's currency) and as charged.

    ``basis == "legacy"``: a version-1 quote stored before the breakdown was kept; the
    charge is the parcel's whole duty, and what the rule's figures were is not known.
    """

    warehouse: str
    type: str  # "duty" | "vat"
    rule: str
    legal_basis: str | None
    border_date: date | None
    currency: str  # the rule's
    base: Decimal | None
    rate: Decimal | None  # a fraction: 0.05 is 5 %
    basis: str
    minimum: Decimal | None
    allowance: Decimal | None
    assessed: Decimal
    charged: Decimal  # the buyer's currency, rounded


class RateSnapshot(_Snapshot):
    """An exchange rate the quote used: customs values are converted with the same ones."""

    base: str
    quote: str
    rate: Decimal
    source: str
    as_of: IsoDateTime


class QuoteSnapshot(_Snapshot):
    """The landed cost as quoted and charged, in the buyer's currency, language-neutral."""

    version: Literal[2] = 2
    currency: str  # the buyer's: every amount below without its own currency is in it
    destination: DestinationSnapshot
    items: list[LineSnapshot]
    subtotal: Decimal
    shipping: Decimal
    duties: Decimal
    customs: list[ChargeSnapshot]  # adds up to ``duties``
    total: Decimal
    shipments: list[ShipmentSnapshot]  # soonest first
    rates: list[RateSnapshot]
    delivery: str  # "courier" | "postal"
    deliveries: list[str]  # how the destination's country could be delivered to

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> QuoteSnapshot:
        """A stored quote of any version (``Order.quote``), as the current version."""
        if "version" not in data:
            data = _upgrade_v1(data)
        return cls.model_validate(data)

    def record(self) -> dict[str, Any]:
        """The JSON kept in ``Order.quote``."""
        return self.model_dump(mode="json")


def _upgrade_v1(data: Mapping[str, Any]) -> dict[str, Any]:
    """A version-1 row (no ``version``) as version 2. Rows written since 3 December have the
    same keys; older ones lack the charge breakdown (then one "legacy" duty per assessed
    parcel, as charged), the delivery (all went by courier), and the shipments' border."""
    upgraded = dict(data, version=2)
    upgraded.setdefault("delivery", "courier")
    upgraded.setdefault("deliveries", ["courier"])
    if "customs" not in data:
        upgraded["customs"] = [
            {
                "warehouse": s["warehouse"],
                "type": "duty",
                "rule": str(s["customs"].get("rule", "")),
                "legal_basis": None,
                "border_date": None,
                "currency": s["customs"]["currency"],
                "base": None,
                "rate": None,
                "basis": "legacy",
                "minimum": None,
                "allowance": None,
                "assessed": s["customs"]["duty"],
                "charged": s["duties"],
            }
            for s in data["shipments"]
            if s.get("customs")
        ]
    return upgraded
