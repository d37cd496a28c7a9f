"""Duties and import VAT on parcels to individuals, under dated rules read from data.

Every rule is in force from ``effective_from`` to ``effective_to`` (both inclusive; no end
date means open-ended), and a parcel is assessed under the rule in force on the day it is
expected at the border. Rules that have ended stay in the data, so an old quote can be
explained. Three kinds of rule cover the corridor's destinations:

- ``per_parcel`` (EAEU until 30 June 2026): each parcel on its own. Duty-free up to a value
  and a gross weight; above either, ``rate`` of the value over the limit, but at least
  ``min_per_kg`` for every kilogram over the weight limit. No import VAT.
- ``ecommerce`` (EAEU from 1 July 2026): duty-free up to ``value_limit`` per purchase, with
  no weight limit. Above it, ``rate`` of the *whole* customs value, but at least
  ``min_per_kg`` for every kilogram of the *whole* weight, plus import VAT at the
  destination's national rate on the customs value plus the duty. At or below the limit
  neither is charged.
- ``monthly_per_recipient`` (Uzbekistan): a value allowance per recipient per calendar
  month; what the recipient's earlier parcels that month used is no longer free, and
  ``rate`` applies to the part of this parcel above what is left.

A rule may apply to one kind of carrier only (``carrier_kind``: ``courier`` or ``postal``):
Uzbekistan allows USD 200 a month for courier shipments and USD 100 for postal items, as two
rules in force side by side. A rule without a carrier kind applies whatever the carrier.

Values are in the rule's currency (EUR for the EAEU, USD for Uzbekistan); the caller
converts the goods' value first and says which rates it used. The duty and the VAT are
each rounded to the cent in that currency.

The data is checked when it is loaded: for one union (rules) or one country (VAT rates),
date ranges may neither overlap nor leave a gap, so on any day at most one rule applies
and "no rule" is a visible hole at the start or end of the table, never a silent 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from typing import Any

from babel.dates import format_date

from livecommerce.errors import ValidationFailed
from livecommerce.i18n.locales import BABEL_LOCALE
from livecommerce.i18n.messages import N_, translate

CENT = Decimal("0.01")
ZERO = Decimal(0)
KINDS = ("per_parcel", "ecommerce", "monthly_per_recipient")
# How a parcel reaches the buyer: the carrier's kind, which some rules tell apart.
DELIVERIES = ("courier", "postal")
# When a rule asks for the recipient's tax id: on every parcel, only on a parcel that is
# charged duty or import VAT, or never.
TAX_ID_MODES = ("always", "when_due", "never")
CONSIGNEE_FIELDS = ("name", "phone")


class CorridorDataError(ValueError):
    """The corridor file is inconsistent; the message names the file and the rule ids."""


class NoCustomsRule(ValidationFailed):
    """No rule (or no VAT rate) is in force for the destination on the border date, or the
    goods are excluded from the simplified regime: never assessed as duty-free."""

    code = "no_customs_rule"
    message = N_("No customs rule is in force for %(country)s on %(date)s.")

    def __init__(self, *, country: str, on: date, reason: str, **details: Any) -> None:
        super().__init__(
            details={"country": country, "date": on.isoformat(), "reason": reason, **details},
            country=country,
        )
        self.on = on

    def localized(self, locale: str) -> str:
        day = format_date(self.on, "long", locale=BABEL_LOCALE.get(locale, locale))
        return translate(locale, self.message, date=day, **self.params)


def _dec(raw: Mapping[str, Any], key: str) -> Decimal | None:
    value = raw.get(key)
    return None if value is None else Decimal(str(value))


def _day(raw: Mapping[str, Any], key: str, *, what: str, source: str) -> date | None:
    value = raw.get(key)
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise CorridorDataError(f"{source}: {what}: {key} {value!r} is not a date") from None


def _period(raw: Mapping[str, Any], *, what: str, source: str) -> tuple[date, date | None]:
    """The inclusive dates a rule or rate is in force (``effective_to`` None: open-ended)."""
    start = _day(raw, "effective_from", what=what, source=source)
    if start is None:
        raise CorridorDataError(f"{source}: {what}: effective_from is missing")
    end = _day(raw, "effective_to", what=what, source=source)
    if end is not None and end < start:
        raise CorridorDataError(f"{source}: {what}: ends {end} before it starts {start}")
    return start, end


def _in_force(start: date, end: date | None, day: date) -> bool:
    return start <= day and (end is None or day <= end)


@dataclass(frozen=True, slots=True)
class ExcludedCategory:
    """Goods outside the simplified regime (they have their own rates), by HS code prefix."""

    key: str
    names: Mapping[str, str]
    hs_prefixes: tuple[str, ...]

    def covers(self, hs_code: str) -> bool:
        return any(hs_code.startswith(prefix) for prefix in self.hs_prefixes)


@dataclass(frozen=True, slots=True)
class Consignee:
    """What a declaration under a rule must name of the recipient."""

    required: tuple[str, ...] = CONSIGNEE_FIELDS  # of CONSIGNEE_FIELDS
    tax_id: str = "never"  # one of TAX_ID_MODES

    def needs_tax_id(self, *, due: bool) -> bool:
        """Whether a parcel needs the recipient's tax id (``due``: duty or VAT charged)."""
        return self.tax_id == "always" or (self.tax_id == "when_due" and due)

    @property
    def may_need_tax_id(self) -> bool:
        return self.tax_id != "never"

    @classmethod
    def from_data(cls, raw: Mapping[str, Any] | None, *, what: str, source: str) -> Consignee:
        if raw is None:
            return cls()
        required = tuple(str(f) for f in raw.get("required", CONSIGNEE_FIELDS))
        for name in required:
            if name not in CONSIGNEE_FIELDS:
                raise CorridorDataError(f"{source}: {what}: unknown consignee field {name!r}")
        tax_id = str(raw.get("tax_id", "never"))
        if tax_id not in TAX_ID_MODES:
            known = ", ".join(TAX_ID_MODES)
            raise CorridorDataError(
                f"{source}: {what}: consignee tax_id {tax_id!r} is not one of {known}"
            )
        return cls(required, tax_id)


@dataclass(frozen=True, slots=True)
class CustomsRule:
    id: str
    union: str
    kind: str  # one of KINDS
    effective_from: date
    effective_to: date | None  # the last day in force; None: open-ended
    legal_basis: str
    currency: str
    value_limit: Decimal
    rate: Decimal
    weight_limit_kg: Decimal | None
    min_per_kg: Decimal | None
    vat: bool  # import VAT at the destination's national rate above the limit
    declaration_language: str
    excluded: tuple[ExcludedCategory, ...] = ()
    # Who files the declaration ("ecommerce_operator": a registered e-commerce operator on
    # the buyer's behalf); None when the data does not say.
    declared_by: str | None = None
    # The only kind of carrier (one of DELIVERIES) the rule applies to; None: any.
    carrier_kind: str | None = None
    consignee: Consignee = Consignee()

    @classmethod
    def from_data(
        cls,
        raw: Mapping[str, Any],
        *,
        categories: Mapping[str, ExcludedCategory] | None = None,
        source: str = "<data>",
    ) -> CustomsRule:
        rule_id = str(raw.get("id") or "")
        what = f"customs rule {rule_id!r}"
        if not rule_id:
            raise CorridorDataError(f"{source}: a customs rule has no id")
        kind = str(raw.get("kind"))
        if kind not in KINDS:
            raise CorridorDataError(f"{source}: {what}: unknown kind {kind!r}")
        start, end = _period(raw, what=what, source=source)
        known = categories or {}
        excluded = []
        for key in raw.get("excluded", []):
            if key not in known:
                raise CorridorDataError(f"{source}: {what}: unknown excluded category {key!r}")
            excluded.append(known[key])
        if not raw.get("legal_basis"):
            raise CorridorDataError(f"{source}: {what}: legal_basis is missing")
        carrier_kind = raw.get("carrier_kind")
        if carrier_kind is not None and carrier_kind not in DELIVERIES:
            raise CorridorDataError(f"{source}: {what}: unknown carrier_kind {carrier_kind!r}")
        return cls(
            id=rule_id,
            union=str(raw["union"]),
            kind=kind,
            effective_from=start,
            effective_to=end,
            legal_basis=str(raw["legal_basis"]),
            currency=str(raw["currency"]),
            value_limit=Decimal(str(raw["value_limit"])),
            rate=Decimal(str(raw["rate"])),
            weight_limit_kg=_dec(raw, "weight_limit_kg"),
            min_per_kg=_dec(raw, "min_per_kg"),
            vat=bool(raw.get("vat", False)),
            declaration_language=str(raw.get("declaration_language", "en")),
            excluded=tuple(excluded),
            declared_by=str(raw["declared_by"]) if raw.get("declared_by") else None,
            carrier_kind=None if carrier_kind is None else str(carrier_kind),
            consignee=Consignee.from_data(raw.get("consignee"), what=what, source=source),
        )

    @property
    def monthly(self) -> bool:
        return self.kind == "monthly_per_recipient"

    def in_force(self, day: date) -> bool:
        return _in_force(self.effective_from, self.effective_to, day)

    def carries(self, delivery: str) -> bool:
        """Whether the rule applies to parcels delivered this way (courier or postal)."""
        return self.carrier_kind is None or self.carrier_kind == delivery

    def excluded_category(self, hs_code: str) -> ExcludedCategory | None:
        return next((c for c in self.excluded if c.covers(hs_code)), None)


@dataclass(frozen=True, slots=True)
class VatRate:
    id: str
    country: str
    rate: Decimal
    effective_from: date
    effective_to: date | None
    legal_basis: str

    def in_force(self, day: date) -> bool:
        return _in_force(self.effective_from, self.effective_to, day)


@dataclass(frozen=True, slots=True)
class Charge:
    """One amount charged at the border, in the rule's currency."""

    type: str  # "duty" | "vat"
    rule: str  # the id of the customs rule or VAT rate it comes from
    legal_basis: str
    base: Decimal  # what ``rate`` applies to
    rate: Decimal
    amount: Decimal  # rounded to the cent
    basis: str  # "rate" | "per_kg_minimum" | "within_allowance"
    minimum: Decimal | None = None  # the per-kg floor the duty could not go below

    def as_data(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "rule": self.rule,
            "legal_basis": self.legal_basis,
            "base": str(self.base),
            "rate": str(self.rate),
            "minimum": None if self.minimum is None else str(self.minimum),
            "basis": self.basis,
            "amount": str(self.amount),
        }


@dataclass(frozen=True, slots=True)
class DutyAssessment:
    rule: CustomsRule
    border_date: date
    currency: str
    customs_value: Decimal
    weight_kg: Decimal
    allowance: Decimal  # the duty-free value still open for this parcel (or purchase)
    excess_value: Decimal
    excess_kg: Decimal
    duty: Decimal  # rounded to the cent
    vat: Decimal = ZERO  # rounded to the cent
    vat_rate: VatRate | None = None
    charges: tuple[Charge, ...] = field(default=())

    @property
    def union(self) -> str:
        return self.rule.union

    @property
    def total(self) -> Decimal:
        return self.duty + self.vat

    def as_data(self) -> dict[str, Any]:
        return {
            "rule": self.rule.id,
            "union": self.rule.union,
            "kind": self.rule.kind,
            "legal_basis": self.rule.legal_basis,
            "border_date": self.border_date.isoformat(),
            "currency": self.currency,
            "customs_value": str(self.customs_value),
            "weight_kg": str(self.weight_kg),
            "duty_free_allowance": str(self.allowance),
            "excess_value": str(self.excess_value),
            "excess_kg": str(self.excess_kg),
            "duty": str(self.duty),
            "vat": str(self.vat),
            "total": str(self.total),
            "charges": [c.as_data() for c in self.charges],
        }


def _cent(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def assess(
    rule: CustomsRule,
    *,
    value: Decimal,
    weight_grams: int,
    border_date: date,
    vat: VatRate | None = None,
    earlier_value: Decimal = ZERO,
    purchase_value: Decimal | None = None,
) -> DutyAssessment:
    """The duty (and import VAT) on one parcel of ``value`` (in ``rule.currency``).

    ``earlier_value`` is what the same recipient already imported this month under a
    monthly rule (ignored by the others). ``purchase_value`` is the customs value of the
    whole purchase an e-commerce rule's threshold applies to (this parcel's by default).
    """
    value = _cent(value)
    weight_kg = Decimal(weight_grams) / Decimal(1000)
    if rule.kind == "ecommerce":
        return _ecommerce(rule, value, weight_kg, border_date, vat, purchase_value)
    allowance = _cent(rule.value_limit)
    if rule.monthly:
        allowance = _cent(max(ZERO, allowance - earlier_value))
    excess_value = max(ZERO, value - allowance)
    excess_kg = ZERO
    if rule.weight_limit_kg is not None:
        excess_kg = max(ZERO, weight_kg - rule.weight_limit_kg)
    duty = rule.rate * excess_value
    minimum = None
    basis = "rate" if excess_value > 0 or excess_kg > 0 else "within_allowance"
    if rule.min_per_kg is not None and excess_kg > 0:
        minimum = _cent(rule.min_per_kg * excess_kg)
        if minimum > duty:
            duty, basis = minimum, "per_kg_minimum"
    duty = _cent(duty)
    charge = Charge(
        "duty", rule.id, rule.legal_basis, excess_value, rule.rate, duty, basis, minimum
    )
    return DutyAssessment(
        rule=rule,
        border_date=border_date,
        currency=rule.currency,
        customs_value=value,
        weight_kg=weight_kg,
        allowance=allowance,
        excess_value=excess_value,
        excess_kg=excess_kg,
        duty=duty,
        charges=(charge,),
    )


def _ecommerce(
    rule: CustomsRule,
    value: Decimal,
    weight_kg: Decimal,
    border_date: date,
    vat: VatRate | None,
    purchase_value: Decimal | None,
) -> DutyAssessment:
    if rule.vat and vat is None:
        raise ValueError(f"customs rule {rule.id} charges VAT: pass the VAT rate in force")
    threshold = value if purchase_value is None else _cent(purchase_value)
    minimum = None if rule.min_per_kg is None else _cent(rule.min_per_kg * weight_kg)
    duty = vat_amount = ZERO
    vat_base = value
    if threshold <= rule.value_limit:
        basis = vat_basis = "within_allowance"
    else:
        by_rate = rule.rate * value  # the whole value, not the excess
        basis = vat_basis = "rate"
        duty = by_rate
        if minimum is not None and minimum > by_rate:
            duty, basis = minimum, "per_kg_minimum"
        duty = _cent(duty)
        vat_base = value + duty
        if vat is not None:
            vat_amount = _cent(vat.rate * vat_base)
    charges = [Charge("duty", rule.id, rule.legal_basis, value, rule.rate, duty, basis, minimum)]
    if vat is not None:
        charges.append(
            Charge("vat", vat.id, vat.legal_basis, vat_base, vat.rate, vat_amount, vat_basis)
        )
    return DutyAssessment(
        rule=rule,
        border_date=border_date,
        currency=rule.currency,
        customs_value=value,
        weight_kg=weight_kg,
        allowance=_cent(rule.value_limit),
        excess_value=max(ZERO, threshold - rule.value_limit),
        excess_kg=ZERO,
        duty=duty,
        vat=vat_amount,
        vat_rate=vat,
        charges=tuple(charges),
    )


class CustomsBook:
    """Every dated rule and VAT rate of the corridor file, checked for overlaps and gaps."""

    def __init__(
        self,
        rules: Sequence[CustomsRule],
        vat: Mapping[str, Sequence[VatRate]],
        categories: Mapping[str, ExcludedCategory],
    ) -> None:
        self.rules = tuple(rules)
        self.vat = {country: tuple(rates) for country, rates in vat.items()}
        self.categories = dict(categories)

    def unions(self) -> frozenset[str]:
        return frozenset(r.union for r in self.rules)

    def rules_of(self, union: str, delivery: str | None = None) -> tuple[CustomsRule, ...]:
        """The union's rules of every date; with ``delivery``, those that apply to it."""
        return tuple(
            r for r in self.rules if r.union == union and (delivery is None or r.carries(delivery))
        )

    def rule(self, union: str, *, country: str, on: date, delivery: str = "courier") -> CustomsRule:
        """The rule in force for ``union`` on ``on`` for parcels delivered this way;
        ``NoCustomsRule`` when there is none."""
        for rule in self.rules_of(union, delivery):
            if rule.in_force(on):
                return rule
        raise NoCustomsRule(
            country=country, on=on, reason="no_rule", union=union, delivery=delivery
        )

    def vat_rate(self, country: str, *, on: date) -> VatRate:
        for rate in self.vat.get(country, ()):
            if rate.in_force(on):
                return rate
        raise NoCustomsRule(country=country, on=on, reason="no_vat")


def _check_sequence(
    items: Iterable[tuple[str, date, date | None]], *, scope: str, what: str, source: str
) -> None:
    """No overlap and no gap between consecutive date ranges of one union or country."""
    ordered = sorted(items, key=lambda item: item[1])
    for (a, _, a_end), (b, b_start, _) in pairwise(ordered):
        if a_end is None:
            raise CorridorDataError(
                f"{source}: {what} {a!r} for {scope} is open-ended but {b!r} starts "
                f"{b_start} (overlap)"
            )
        if b_start <= a_end:
            raise CorridorDataError(
                f"{source}: {what} {b!r} for {scope} overlaps {a!r} ({b_start} <= {a_end})"
            )
        if b_start > a_end + timedelta(days=1):
            raise CorridorDataError(
                f"{source}: gap for {scope} between {what} {a!r} (ends {a_end}) and "
                f"{b!r} (starts {b_start})"
            )


def load_customs(
    raw: Mapping[str, Any], *, countries: Mapping[str, Mapping[str, Any]], source: str
) -> CustomsBook:
    """Parse and check the ``customs`` section; ``CorridorDataError`` names file and ids."""
    categories = {
        key: ExcludedCategory(
            key, dict(c.get("names", {})), tuple(str(p) for p in c.get("hs_prefixes", []))
        )
        for key, c in raw.get("excluded_categories", {}).items()
    }
    rules = [
        CustomsRule.from_data(r, categories=categories, source=source) for r in raw.get("rules", [])
    ]
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise CorridorDataError(f"{source}: customs rule {rule.id!r} is defined twice")
        seen.add(rule.id)
    vat: dict[str, list[VatRate]] = {}
    for country, entries in raw.get("vat", {}).items():
        for entry in entries:
            vat_id = str(entry.get("id") or "")
            what = f"VAT rate {vat_id!r}"
            if not vat_id:
                raise CorridorDataError(f"{source}: a VAT rate for {country} has no id")
            start, end = _period(entry, what=what, source=source)
            vat.setdefault(country, []).append(
                VatRate(
                    vat_id,
                    country,
                    Decimal(str(entry["rate"])),
                    start,
                    end,
                    str(entry.get("legal_basis", "")),
                )
            )
    # On any day one rule at most applies to a parcel: per union and kind of carrier, the
    # rules for that kind and those for any carrier form one sequence without overlap or gap.
    for union in {r.union for r in rules}:
        own = [r for r in rules if r.union == union]
        specific = sorted({r.carrier_kind for r in own if r.carrier_kind is not None})
        kinds: list[str | None] = [*specific] if specific else [None]
        for kind in kinds:
            _check_sequence(
                (
                    (r.id, r.effective_from, r.effective_to)
                    for r in own
                    if kind is None or r.carries(kind)
                ),
                scope=union if kind is None else f"{union} ({kind})",
                what="customs rule",
                source=source,
            )
    for country, rates in vat.items():
        _check_sequence(
            ((v.id, v.effective_from, v.effective_to) for v in rates),
            scope=country,
            what="VAT rate",
            source=source,
        )
    # A rule that charges VAT needs a rate for each of its union's countries on every day
    # it is in force: otherwise a quote would fail only on the day it reaches the hole.
    for rule in rules:
        if not rule.vat:
            continue
        for country, info in countries.items():
            if info.get("customs_union") != rule.union:
                continue
            rates = vat.get(country, [])
            day: date | None = rule.effective_from
            # Walk the (already gap-free) VAT ranges from the rule's first day to its last.
            while day is not None and (rule.effective_to is None or day <= rule.effective_to):
                found = next((v for v in rates if v.in_force(day)), None)
                if found is None:
                    raise CorridorDataError(
                        f"{source}: customs rule {rule.id!r} needs a VAT rate for {country} "
                        f"from {day}"
                    )
                day = None if found.effective_to is None else found.effective_to + timedelta(1)
    return CustomsBook(rules, vat, categories)
