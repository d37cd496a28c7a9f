"""The corridor as data: where warehouses sit, which legs connect places, what they cost.

Everything here is read from ``corridor.json`` (or the file ``LIVECOMMERCE_LOGISTICS_FILE``
names), never from constants: transit times, tariffs and regulations change. The functions
are pure: no database, no clock unless one is passed in.
"""

from __future__ import annotations

import heapq
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from livecommerce.errors import ValidationFailed
from livecommerce.i18n.locales import pick_translation
from livecommerce.i18n.messages import N_
from livecommerce.logistics.customs import (
    DELIVERIES,
    CorridorDataError,
    CustomsRule,
    VatRate,
    load_customs,
)

DEFAULT_FILE = Path(__file__).with_name("corridor.json")
GRAMS_PER_KG = Decimal(1000)


class DestinationNotServed(ValidationFailed):
    code = "destination_not_served"
    message = N_("We do not deliver to %(country)s yet.")


class DeliveryNotOffered(ValidationFailed):
    code = "delivery_not_available"
    message = N_("Postal delivery is not available to %(country)s: choose courier delivery.")


@dataclass(frozen=True, slots=True)
class Tariff:
    base: Decimal
    per_kg: Decimal

    def cost(self, weight_grams: int) -> Decimal:
        return self.base + self.per_kg * Decimal(weight_grams) / GRAMS_PER_KG


@dataclass(frozen=True, slots=True)
class Place:
    """A named point on a route: a network node, or the buyer's own city."""

    key: str | None
    names: Mapping[str, str]

    def name(self, locale: str) -> str:
        return pick_translation(self.names, locale) or self.key or ""


@dataclass(frozen=True, slots=True)
class Leg:
    mode: str
    origin: Place
    destination: Place
    days: int
    tariff: Tariff


@dataclass(frozen=True, slots=True)
class Destination:
    country: str
    city: Place
    timezone: ZoneInfo
    customs_union: str
    # How the parcel reaches the buyer (one of DELIVERIES): the last leg, and the customs
    # allowance where the law tells couriers and post apart.
    delivery: str = "courier"


@dataclass(frozen=True, slots=True)
class Route:
    warehouse: str
    handling_days: int
    legs: tuple[Leg, ...]
    # Days from the order to the day the parcel reaches the destination's customs union
    # (handling plus every leg up to the first node inside it); None: no border is crossed.
    border_days: int | None = None
    border: str | None = None  # the node where it enters the union

    @property
    def days(self) -> int:
        return self.handling_days + sum(leg.days for leg in self.legs)

    def shipping_cost(self, weight_grams: int) -> Decimal:
        """In the network's tariff currency, unrounded."""
        return sum((leg.tariff.cost(weight_grams) for leg in self.legs), Decimal(0))

    def eta(self, now: datetime, destination: Destination) -> date:
        """Calendar date of delivery in the destination's time zone, for an order at ``now``."""
        return now.astimezone(destination.timezone).date() + timedelta(days=self.days)

    def border_date(self, now: datetime, destination: Destination) -> date | None:
        """The day the parcel is expected at the border (in the destination's time zone, as
        ``eta``): the customs rule in force that day applies."""
        if self.border_days is None:
            return None
        return now.astimezone(destination.timezone).date() + timedelta(days=self.border_days)


@dataclass(frozen=True, slots=True)
class TaxIdFormat:
    """A country's personal tax number, as a customs declaration names the recipient by."""

    country: str
    names: Mapping[str, str]  # of the document: "IIN", "ИИН"
    pattern: re.Pattern[str]

    def name(self, locale: str) -> str:
        return pick_translation(self.names, locale) or "tax id"

    def matches(self, value: str) -> bool:
        return self.pattern.fullmatch(value) is not None


def _tax_id_format(country: str, raw: Mapping[str, Any], *, source: str) -> TaxIdFormat:
    names = raw.get("names")
    if not names or not isinstance(names, Mapping):
        raise CorridorDataError(f"{source}: country {country}: tax_id has no names")
    try:
        pattern = re.compile(str(raw["pattern"]))
    except (KeyError, re.error) as exc:
        raise CorridorDataError(f"{source}: country {country}: tax_id pattern: {exc}") from None
    return TaxIdFormat(country, dict(names), pattern)


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


class Network:
    def __init__(self, raw: Mapping[str, Any], *, source: str = "<data>") -> None:
        self.tariff_currency: str = raw["tariff_currency"]
        self.nodes = {key: Place(key, node["names"]) for key, node in raw["nodes"].items()}
        self._node_country = {key: node["country"] for key, node in raw["nodes"].items()}
        self.warehouses: dict[str, tuple[str, int]] = {
            code: (w["node"], int(w["handling_days"])) for code, w in raw["warehouses"].items()
        }
        self.export_modes: dict[str, Mapping[str, str]] = {
            str(code): dict(mode.get("names", {}))
            for code, mode in raw.get("export_modes", {}).items()
        }
        self._export_mode: dict[str, str | None] = {}
        for code, w in raw["warehouses"].items():
            mode = w.get("export_mode")
            if mode is not None and str(mode) not in self.export_modes:
                raise CorridorDataError(
                    f"{source}: warehouse {code}: unknown export mode {mode!r} "
                    f"(known: {', '.join(self.export_modes) or 'none'})"
                )
            self._export_mode[code] = None if mode is None else str(mode)
        self._edges: dict[str, list[tuple[str, str, int, Tariff]]] = {}
        for edge in raw["edges"]:
            tariff = Tariff(Decimal(edge["base"]), Decimal(edge["per_kg"]))
            self._edges.setdefault(edge["from"], []).append(
                (edge["to"], edge["mode"], int(edge["days"]), tariff)
            )
        self.countries: dict[str, Mapping[str, Any]] = raw["countries"]
        self.customs = load_customs(raw["customs"], countries=self.countries, source=source)
        self.tax_ids: dict[str, TaxIdFormat] = {
            country: _tax_id_format(country, info["tax_id"], source=source)
            for country, info in self.countries.items()
            if info.get("tax_id") is not None
        }
        # A rule that may ask for a tax id must know the format in each of its countries, or
        # an order could be refused for a number nobody can tell the shape of.
        for rule in self.customs.rules:
            if not rule.consignee.may_need_tax_id:
                continue
            for country, info in self.countries.items():
                if info["customs_union"] == rule.union and country not in self.tax_ids:
                    raise CorridorDataError(
                        f"{source}: customs rule {rule.id!r} asks for a tax id but country "
                        f"{country} has no tax_id format"
                    )
        self._paths: dict[tuple[str, str], tuple[Leg, ...] | None] = {}
        self._aliases: dict[str, str] = {}
        for key, place in self.nodes.items():
            self._aliases[_fold(key)] = key
            for name in place.names.values():
                self._aliases[_fold(name)] = key
        self._raw_aliases: dict[str, str] = dict(raw.get("city_aliases", {}))
        for alias, key in self._raw_aliases.items():
            self._aliases[_fold(alias)] = key
        # A served country that some warehouse reaches across a union border needs rules:
        # without them its parcels could only be assessed as a silent 0.
        unions = self.customs.unions()
        for country, info in self.countries.items():
            union = info["customs_union"]
            if not any(self._origin_union(code) != union for code in self.warehouses):
                continue
            if union not in unions:
                raise CorridorDataError(f"{source}: no customs rule for {country} (union {union})")
            for kind in self.deliveries(country):
                if not self.customs.rules_of(union, kind):
                    raise CorridorDataError(
                        f"{source}: no customs rule for {kind} delivery to {country} "
                        f"(union {union})"
                    )

    def deliveries(self, country: str) -> tuple[str, ...]:
        """How parcels can reach a buyer in ``country``: courier always, post where the
        country's data has a postal last leg."""
        info = self.countries.get(country.upper(), {})
        return tuple(kind for kind in DELIVERIES if kind == "courier" or kind in info)

    def export_mode(self, warehouse: str) -> str | None:
        """The Chinese export customs mode the warehouse's stock left China under ("9810"),
        or None when the data does not say."""
        return self._export_mode.get(warehouse)

    def export_mode_name(self, mode: str | None, locale: str) -> str | None:
        if mode is None:
            return None
        return pick_translation(self.export_modes.get(mode), locale) or mode

    def tax_id_format(self, country: str) -> TaxIdFormat | None:
        return self.tax_ids.get(country.upper())

    def destination(self, country: str, city: str, delivery: str = "courier") -> Destination:
        country = country.upper()
        info = self.countries.get(country)
        if info is None:
            raise DestinationNotServed(country=country, details={"country": country})
        if delivery not in self.deliveries(country):
            raise DeliveryNotOffered(
                country=country, details={"country": country, "delivery": delivery}
            )
        key = self._aliases.get(_fold(city))
        if key is not None and self._node_country.get(key) == country:
            place = self.nodes[key]
        else:
            # A city off the network: the route ends at the country's hub, then a road leg.
            place = Place(None, {"en": city.strip()})
        return Destination(
            country, place, ZoneInfo(info["timezone"]), info["customs_union"], delivery
        )

    def cities(self) -> list[tuple[str, Place, tuple[str, ...]]]:
        """The network's cities in served countries: ``(country, place, aliases)``, in file
        order (a handful; every other city is reached through its country's hub)."""
        aliases: dict[str, list[str]] = {}
        for alias, key in self._raw_aliases.items():
            aliases.setdefault(key, []).append(alias)
        return [
            (self._node_country[key], place, tuple(aliases.get(key, ())))
            for key, place in self.nodes.items()
            if self._node_country[key] in self.countries
        ]

    def route(self, warehouse: str, destination: Destination) -> Route | None:
        """The fastest route (fewest days, then cheapest) from a warehouse to the buyer."""
        if warehouse not in self.warehouses:
            return None
        start, handling = self.warehouses[warehouse]
        info = self.countries[destination.country]
        postal = destination.delivery == "postal"
        last_mile = info["postal"] if postal else info["last_mile"]
        tariff = Tariff(Decimal(last_mile["base"]), Decimal(last_mile["per_kg"]))
        if destination.city.key is not None:
            path = self._path(start, destination.city.key)
            if path is None:
                return None
            final = Leg(
                "post" if postal else "courier",
                destination.city,
                destination.city,
                int(last_mile["days"]),
                tariff,
            )
        else:
            path = self._path(start, info["hub"])
            if path is None:
                return None
            hub = self.nodes[info["hub"]]
            # Off the network: the post carries it from the hub; a courier goes by road.
            days = int(last_mile["extra_days"] if postal else info["extra_days"])
            final = Leg("post" if postal else "road", hub, destination.city, days, tariff)
        legs = (*path, final)
        border_days = border = None
        if self._origin_union(warehouse) != destination.customs_union:
            # Up to the first node inside the union; with none on the way, the parcel is
            # assessed on arrival at the buyer's city (the loop runs through every leg).
            border_days = handling
            for leg in legs:
                border_days += leg.days
                key = leg.destination.key
                if key is not None and self._union_of_node(key) == destination.customs_union:
                    border = key
                    break
        return Route(warehouse, handling, legs, border_days, border)

    def _union_of_node(self, key: str) -> str | None:
        info = self.countries.get(self._node_country.get(key, ""))
        return None if info is None else str(info["customs_union"])

    def _origin_union(self, warehouse: str) -> str | None:
        return self._union_of_node(self.warehouses[warehouse][0])

    def _path(self, start: str, goal: str) -> tuple[Leg, ...] | None:
        key = (start, goal)
        if key not in self._paths:  # the network is immutable: each path is found once
            self._paths[key] = self._find_path(start, goal)
        return self._paths[key]

    def _find_path(self, start: str, goal: str) -> tuple[Leg, ...] | None:
        # Dijkstra on (days, cost of a 1 kg parcel): a dozen nodes, so no need for anything
        # cleverer, and the rule "fastest, then cheapest" stays visible.
        queue: list[tuple[int, Decimal, str, tuple[Leg, ...]]] = [(0, Decimal(0), start, ())]
        settled: set[str] = set()
        while queue:
            days, cost, node, legs = heapq.heappop(queue)
            if node == goal:
                return legs
            if node in settled:
                continue
            settled.add(node)
            for target, mode, leg_days, tariff in self._edges.get(node, []):
                if target in settled:
                    continue
                leg = Leg(mode, self.nodes[node], self.nodes[target], leg_days, tariff)
                heapq.heappush(
                    queue,
                    (days + leg_days, cost + tariff.cost(1000), target, (*legs, leg)),
                )
        return None

    def crosses_border(self, warehouse: str, destination: Destination) -> bool:
        """Whether a shipment leaves one customs union for another (and so is assessed)."""
        return self._origin_union(warehouse) != destination.customs_union

    def customs_for(self, destination: Destination, *, on: date) -> CustomsRule:
        """The rule in force on ``on`` for the destination's union (``NoCustomsRule``: none)."""
        return self.customs.rule(
            destination.customs_union,
            country=destination.country,
            on=on,
            delivery=destination.delivery,
        )

    def vat_for(self, country: str, *, on: date) -> VatRate:
        """The destination country's import VAT rate on ``on`` (``NoCustomsRule``: none)."""
        return self.customs.vat_rate(country, on=on)

    def monthly_currency(self, destination: Destination) -> str | None:
        """The currency a monthly per-recipient allowance of the destination (for its kind
        of delivery) counts in, or None when none of those rules (of any date) is monthly."""
        for rule in self.customs.rules_of(destination.customs_union, destination.delivery):
            if rule.monthly:
                return rule.currency
        return None

    def border(self, warehouse: str, destination: Destination, legs: Any) -> str | None:
        """The node where a parcel on ``legs`` (``{from_key, to_key}`` records) enters the
        destination's customs territory, or None when it crosses no customs border."""
        if not self.crosses_border(warehouse, destination):
            return None
        for leg in legs:
            key = leg.get("to_key")
            if key and self._union_of_node(key) == destination.customs_union:
                return str(key)
        return None


def load_network(path: Path | None = None) -> Network:
    return _load(str(path or DEFAULT_FILE))


@cache
def _load(path: str) -> Network:
    return Network(json.loads(Path(path).read_text(encoding="utf-8")), source=path)
