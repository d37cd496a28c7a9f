"""Duties on parcels to individuals, under rules read from data.

Two kinds of rule cover the corridor's destinations:

- ``per_parcel`` (EAEU): each parcel on its own. Duty-free up to a value and a gross
  weight; above either, ``rate`` of the value over the limit, but at least ``min_per_kg``
  for every kilogram over the weight limit.
- ``monthly_per_recipient`` (Uzbekistan): a value allowance per recipient per calendar
  month; what the recipient's earlier parcels that month used is no longer free, and
  ``rate`` applies to the part of this parcel above what is left.

Values are in the rule's currency (EUR for the EAEU, USD for Uzbekistan); the caller
converts the goods' value first and says which rates it used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")
ZERO = Decimal(0)


def _dec(raw: Mapping[str, Any], key: str) -> Decimal | None:
    value = raw.get(key)
    return None if value is None else Decimal(str(value))


@dataclass(frozen=True, slots=True)
class CustomsRule:
    union: str
    kind: str  # "per_parcel" | "monthly_per_recipient"
    currency: str
    value_limit: Decimal
    rate: Decimal
    weight_limit_kg: Decimal | None
    min_per_kg: Decimal | None
    declaration_language: str

    @classmethod
    def from_data(cls, union: str, raw: Mapping[str, Any]) -> CustomsRule:
        kind = str(raw["kind"])
        if kind not in ("per_parcel", "monthly_per_recipient"):
            raise ValueError(f"customs rule {union}: unknown kind {kind!r}")
        return cls(
            union=union,
            kind=kind,
            currency=str(raw["currency"]),
            value_limit=Decimal(str(raw["value_limit"])),
            rate=Decimal(str(raw["rate"])),
            weight_limit_kg=_dec(raw, "weight_limit_kg"),
            min_per_kg=_dec(raw, "min_per_kg"),
            declaration_language=str(raw.get("declaration_language", "en")),
        )

    @property
    def monthly(self) -> bool:
        return self.kind == "monthly_per_recipient"


@dataclass(frozen=True, slots=True)
class DutyAssessment:
    union: str
    currency: str
    customs_value: Decimal
    weight_kg: Decimal
    allowance: Decimal  # the duty-free value still open for this parcel
    excess_value: Decimal
    excess_kg: Decimal
    duty: Decimal  # rounded to the cent

    def as_data(self) -> dict[str, Any]:
        return {
            "rule": self.union,
            "currency": self.currency,
            "customs_value": str(self.customs_value),
            "weight_kg": str(self.weight_kg),
            "duty_free_allowance": str(self.allowance),
            "excess_value": str(self.excess_value),
            "excess_kg": str(self.excess_kg),
            "duty": str(self.duty),
        }


def assess(
    rule: CustomsRule, *, value: Decimal, weight_grams: int, earlier_value: Decimal = ZERO
) -> DutyAssessment:
    """The duty on one parcel of ``value`` (in ``rule.currency``) and gross weight.

    ``earlier_value`` is what the same recipient already imported this month under a
    monthly rule (ignored by per-parcel rules).
    """
    value = value.quantize(CENT, rounding=ROUND_HALF_UP)
    weight_kg = Decimal(weight_grams) / Decimal(1000)
    allowance = rule.value_limit
    if rule.monthly:
        allowance = max(ZERO, allowance - earlier_value)
    excess_value = max(ZERO, value - allowance)
    excess_kg = ZERO
    if rule.weight_limit_kg is not None:
        excess_kg = max(ZERO, weight_kg - rule.weight_limit_kg)
    duty = rule.rate * excess_value
    if rule.min_per_kg is not None and excess_kg > 0:
        duty = max(duty, rule.min_per_kg * excess_kg)
    return DutyAssessment(
        union=rule.union,
        currency=rule.currency,
        customs_value=value,
        weight_kg=weight_kg,
        allowance=allowance,
        excess_value=excess_value,
        excess_kg=excess_kg,
        duty=duty.quantize(CENT, rounding=ROUND_HALF_UP),
    )
