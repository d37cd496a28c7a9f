"""The corridor as data: where warehouses sit, which legs connect places, what they cost.

Everything here is read from ``corridor.json`` (or the file ``LIVECOMMERCE_LOGISTICS_FILE``
names), never from constants: transit times, tariffs and regulations change. The functions
are pure: no database, no clock unless one is passed in.
"""

from __future__ import annotations

import heapq
import json
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
from livecommerce.logistics.customs import CustomsRule

DEFAULT_FILE = Path(__file__).with_name("corridor.json")
GRAMS_PER_KG = Decimal(1000)


class DestinationNotServed(ValidationFailed):
    code = "destination_not_served"
    message = N_("We do not deliver to %(country)s yet.")


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

    def as_data(self, locale: str) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "from": self.origin.name(locale),
            "to": self.destination.name(locale),
            "days": self.days,
        }


@dataclass(frozen=True, slots=True)
class Destination:
    country: str
    city: Place
    timezone: ZoneInfo
    customs_union: str


@dataclass(frozen=True, slots=True)
class Route:
    warehouse: str
    handling_days: int
    legs: tuple[Leg, ...]

    @property
    def days(self) -> int:
        return self.handling_days + sum(leg.days for leg in self.legs)

    def shipping_cost(self, weight_grams: int) -> Decimal:
        """In the network's tariff currency, unrounded."""
        return sum((leg.tariff.cost(weight_grams) for leg in self.legs), Decimal(0))

    def eta(self, now: datetime, destination: Destination) -> date:
        """Calendar date of delivery in the destination's time zone, for an order at ``now``."""
        return now.astimezone(destination.timezone).date() + timedelta(days=self.days)


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


class Network:
    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.tariff_currency: str = raw["tariff_currency"]
        self.nodes = {key: Place(key, node["names"]) for key, node in raw["nodes"].items()}
        self._node_country = {key: node["country"] for key, node in raw["nodes"].items()}
        self.warehouses: dict[str, tuple[str, int]] = {
            code: (w["node"], int(w["handling_days"])) for code, w in raw["warehouses"].items()
        }
        self._edges: dict[str, list[tuple[str, str, int, Tariff]]] = {}
        for edge in raw["edges"]:
            tariff = Tariff(Decimal(edge["base"]), Decimal(edge["per_kg"]))
            self._edges.setdefault(edge["from"], []).append(
                (edge["to"], edge["mode"], int(edge["days"]), tariff)
            )
        self.countries: dict[str, Mapping[str, Any]] = raw["countries"]
        self.customs = {
            union: CustomsRule.from_data(union, rule) for union, rule in raw["customs"].items()
        }
        self._paths: dict[tuple[str, str], tuple[Leg, ...] | None] = {}
        self._aliases: dict[str, str] = {}
        for key, place in self.nodes.items():
            self._aliases[_fold(key)] = key
            for name in place.names.values():
                self._aliases[_fold(name)] = key
        self._raw_aliases: dict[str, str] = dict(raw.get("city_aliases", {}))
        for alias, key in self._raw_aliases.items():
            self._aliases[_fold(alias)] = key

    def destination(self, country: str, city: str) -> Destination:
        country = country.upper()
        info = self.countries.get(country)
        if info is None:
            raise DestinationNotServed(country=country, details={"country": country})
        key = self._aliases.get(_fold(city))
        if key is not None and self._node_country.get(key) == country:
            place = self.nodes[key]
        else:
            # A city off the network: the route ends at the country's hub, then a road leg.
            place = Place(None, {"en": city.strip()})
        return Destination(country, place, ZoneInfo(info["timezone"]), info["customs_union"])

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
        last_mile = info["last_mile"]
        courier = Tariff(Decimal(last_mile["base"]), Decimal(last_mile["per_kg"]))
        if destination.city.key is not None:
            path = self._path(start, destination.city.key)
            if path is None:
                return None
            final = Leg(
                "courier", destination.city, destination.city, int(last_mile["days"]), courier
            )
        else:
            path = self._path(start, info["hub"])
            if path is None:
                return None
            hub = self.nodes[info["hub"]]
            final = Leg("road", hub, destination.city, int(info["extra_days"]), courier)
        return Route(warehouse, handling, (*path, final))

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

    def crosses_customs(self, warehouse: str, destination: Destination) -> CustomsRule | None:
        """The rule a shipment is assessed under, or None inside one customs union."""
        node, _ = self.warehouses[warehouse]
        origin_country = self._node_country[node]
        origin_info = self.countries.get(origin_country)
        if origin_info is not None and origin_info["customs_union"] == destination.customs_union:
            return None
        return self.customs.get(destination.customs_union)

    def border(self, warehouse: str, destination: Destination, legs: Any) -> str | None:
        """The node where a parcel on ``legs`` (``{from_key, to_key}`` records) enters the
        destination's customs territory, or None when it crosses no customs border."""
        if self.crosses_customs(warehouse, destination) is None:
            return None
        for leg in legs:
            key = leg.get("to_key")
            country = self._node_country.get(key) if key else None
            info = self.countries.get(country) if country else None
            if info is not None and info["customs_union"] == destination.customs_union:
                return str(key)
        return None


def load_network(path: Path | None = None) -> Network:
    return _load(str(path or DEFAULT_FILE))


@cache
def _load(path: str) -> Network:
    return Network(json.loads(Path(path).read_text(encoding="utf-8")))
