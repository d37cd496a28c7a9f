"""Carriers behind one small interface, and a sandbox carrier that behaves like a real one.

A carrier books a parcel (idempotently, by our reference) and later reports scans. The
fulfilment service stores what ``book`` returns and hands it back to ``track``; it never
looks inside.

The sandbox simulates the corridor: on booking it plans the parcel's journey from the
route legs (picked, departed, arrived at each hub, at the border, customs cleared or held,
out for delivery, delivered), with random delays and customs holds at configurable rates,
and ``track`` reports the scans whose time has come. One transit day lasts ``day_seconds``
of real time, so a demo parcel crosses from Duisburg to Tashkent in minutes. Booking also
fails now and then (``failure_rate``), as a real carrier's API does, to keep retries honest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from livecommerce.sqltypes import utcnow

log = logging.getLogger("livecommerce.fulfillment.carriers")


class CarrierUnavailable(Exception):
    """The carrier could not take the call now; the same call may succeed later."""


@dataclass(frozen=True)
class BookingRequest:
    reference: str  # ours, unique per shipment: the carrier's idempotency key
    warehouse: str
    handling_days: int
    # [{mode, from, to, from_key, to_key, days}] with place names in every language.
    legs: Sequence[Mapping[str, Any]]
    destination_country: str
    destination_city: Mapping[str, str]
    weight_grams: int
    # Where the parcel enters the destination's customs territory (None: no border).
    border: str | None


@dataclass(frozen=True)
class Booking:
    tracking_number: str
    booked_at: datetime
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CarrierEvent:
    event_id: str  # stable: the same scan reported twice has the same id
    code: str
    at: datetime
    location: str | None
    location_names: Mapping[str, str] | None
    detail: str | None = None


class Carrier(Protocol):
    name: str

    async def book(self, request: BookingRequest) -> Booking: ...

    async def track(self, tracking_number: str, data: Mapping[str, Any]) -> list[CarrierEvent]:
        """Every scan of the parcel so far, oldest first."""
        ...

    async def cancel(self, tracking_number: str, data: Mapping[str, Any]) -> None:
        """Withdraw a booking whose parcel will not be handed over after all."""
        ...


# Scan codes, in the order a parcel normally meets them.
PICKED = "picked"
DEPARTED = "departed"
ARRIVED = "arrived"
DELAYED = "delayed"
AT_BORDER = "at_border"
CUSTOMS_HELD = "customs_held"
CUSTOMS_CLEARED = "customs_cleared"
OUT_FOR_DELIVERY = "out_for_delivery"
DELIVERY_FAILED = "delivery_failed"
DELIVERED = "delivered"
EVENT_CODES = (
    PICKED,
    DEPARTED,
    ARRIVED,
    DELAYED,
    AT_BORDER,
    CUSTOMS_HELD,
    CUSTOMS_CLEARED,
    OUT_FOR_DELIVERY,
    DELIVERY_FAILED,
    DELIVERED,
)

HOLD_REASONS = ("documents_check", "value_check", "inspection")
DELAY_REASONS = ("congestion", "weather", "capacity")


@dataclass
class SandboxCarrier:
    secret: str
    day_seconds: float = 60.0
    hold_rate: float = 0.1
    delay_rate: float = 0.1
    failure_rate: float = 0.0
    clock: Callable[[], datetime] = utcnow
    name: str = "sandbox"
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def tracking_number(self, reference: str) -> str:
        digest = hmac.new(self.secret.encode(), reference.encode(), hashlib.sha256).digest()
        return "LC" + base64.b32encode(digest[:10]).decode()[:14]

    async def book(self, request: BookingRequest) -> Booking:
        if self.failure_rate and self._random.random() < self.failure_rate:
            raise CarrierUnavailable("sandbox carrier: booking service unavailable, retry later")
        number = self.tracking_number(request.reference)
        booked_at = self.clock()
        plan = self.plan(number, request)
        # What a real carrier's books would show: one parcel per reference, however often
        # it is booked (the number is the reference's, so a repeat books nothing new).
        log.info("sandbox carrier: %s booked as %s", request.reference, number)
        return Booking(
            tracking_number=number,
            booked_at=booked_at,
            data={
                "booked_at": booked_at.isoformat(),
                "day_seconds": self.day_seconds,
                "plan": plan,
            },
        )

    def plan(self, number: str, request: BookingRequest) -> list[dict[str, Any]]:
        """The parcel's scans as (offset in transit days, code, place); random but fixed
        per tracking number, so a re-booking plans the same journey."""
        rng = random.Random(number)
        plan: list[dict[str, Any]] = []
        legs = list(request.legs)

        def scan(
            day: float, code: str, key: str | None, names: Any, detail: str | None = None
        ) -> None:
            plan.append(
                {"day": round(day, 4), "code": code, "key": key, "names": names, "detail": detail}
            )

        origin: Mapping[str, Any] = legs[0] if legs else {"from_key": request.warehouse}
        handling = max(request.handling_days, 0)
        day = handling * 0.5
        scan(day, PICKED, origin.get("from_key"), origin.get("from"))
        day = float(handling)
        scan(day, DEPARTED, origin.get("from_key"), origin.get("from"))
        for index, leg in enumerate(legs):
            days = float(leg.get("days", 0))
            last = index == len(legs) - 1
            if last:
                city_names = dict(request.destination_city) or leg.get("to")
                out = day + max(days - 0.5, 0.0)
                scan(out, OUT_FOR_DELIVERY, leg.get("to_key"), city_names)
                day += days
                if rng.random() < self.delay_rate:
                    scan(day, DELIVERY_FAILED, leg.get("to_key"), city_names, "recipient_absent")
                    day += 1.0
                    scan(day - 0.5, OUT_FOR_DELIVERY, leg.get("to_key"), city_names)
                scan(day, DELIVERED, leg.get("to_key"), city_names)
                break
            if rng.random() < self.delay_rate:
                extra = float(rng.randint(1, 3))
                scan(
                    day + days * 0.5,
                    DELAYED,
                    leg.get("from_key"),
                    leg.get("from"),
                    rng.choice(DELAY_REASONS),
                )
                days += extra
            day += days
            scan(day, ARRIVED, leg.get("to_key"), leg.get("to"))
            if request.border is not None and leg.get("to_key") == request.border:
                scan(day + 0.1, AT_BORDER, leg.get("to_key"), leg.get("to"))
                if rng.random() < self.hold_rate:
                    scan(
                        day + 0.2,
                        CUSTOMS_HELD,
                        leg.get("to_key"),
                        leg.get("to"),
                        rng.choice(HOLD_REASONS),
                    )
                    day += float(rng.randint(1, 3))
                day += 0.5
                scan(day, CUSTOMS_CLEARED, leg.get("to_key"), leg.get("to"))
        plan.sort(key=lambda step: step["day"])  # stable: scans at one instant keep their order
        return plan

    async def cancel(self, tracking_number: str, data: Mapping[str, Any]) -> None:
        # Nothing to undo: the sandbox keeps no books, its journeys are planned in ``data``.
        return None

    async def track(self, tracking_number: str, data: Mapping[str, Any]) -> list[CarrierEvent]:
        booked_at = datetime.fromisoformat(str(data["booked_at"]))
        day = timedelta(seconds=float(data.get("day_seconds", self.day_seconds)))
        now = self.clock()
        events = []
        for index, step in enumerate(data.get("plan", [])):
            at = booked_at + day * float(step["day"])
            if at > now:
                break
            events.append(
                CarrierEvent(
                    event_id=f"{tracking_number}-{index:02d}-{step['code']}",
                    code=str(step["code"]),
                    at=at,
                    location=step.get("key"),
                    location_names=step.get("names"),
                    detail=step.get("detail"),
                )
            )
        return events
