"""A sandbox card provider that behaves like a real one, for development, demos and tests.

It stands apart from the shop on purpose: its books are its own tables in its own
transactions (in the embedded mode its own SQLite file, so it never waits on the shop's
write lock), the buyer's card form talks to it directly (``/sandbox/payments/...``), and it
tells the shop what happened only through webhooks signed with HMAC-SHA256 over
``"<timestamp>.<body>"`` in the ``Sandbox-Signature`` header (``t=<unix>,v1=<hex>``),
delivered over HTTP with retries. Test cards (any future expiry, any CVC):

- ``4242 4242 4242 4242`` succeeds;
- ``4000 0000 0000 0002`` is declined (``card_declined``);
- ``4000 0000 0000 9995`` fails with ``insufficient_funds``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from livecommerce.db import create_engine
from livecommerce.errors import AppError, NotFound
from livecommerce.i18n.messages import N_
from livecommerce.i18n.money import Money
from livecommerce.orders.payments import ProviderIntent, WebhookEvent, WebhookRejected
from livecommerce.sqltypes import utcnow

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "sandbox-signature"
TOLERANCE_S = 300  # a signed delivery older than this is refused as a replay
DELIVERY_DELAYS_S = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)

OUTCOMES = {
    "4242424242424242": ("succeeded", None),
    "4000000000000002": ("failed", "card_declined"),
    "4000000000009995": ("failed", "insufficient_funds"),
}

metadata = MetaData()
CREATE_LOCK = 0x5A4E_DB0C  # the advisory lock held while the sandbox's tables are created
intents = Table(
    "sandbox_payment_intents",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("status", String(24), nullable=False),
    Column("client_secret", String(80), nullable=False),
    Column("reference", String(80), nullable=False),
    Column("idempotency_key", String(255), unique=True),
    Column("failure_code", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
events = Table(
    "sandbox_payment_events",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("intent_id", String(40), nullable=False, index=True),
    Column("type", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("delivered_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
)


class IntentNotFound(NotFound):
    code = "payment_intent_not_found"
    message = N_("This payment does not exist.")


class CardRejected(AppError):
    status = 402
    code = "card_declined"
    message = N_("The card was declined.")


class InvalidCard(AppError):
    status = 422
    code = "invalid_card_number"
    message = N_("The card number is not valid.")


class WrongSecret(AppError):
    status = 403
    code = "payment_secret_mismatch"
    message = N_("This payment form does not belong to this payment.")


class AlreadyFinal(AppError):
    status = 409
    code = "payment_already_final"
    message = N_("This payment is already complete.")


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, body: bytes, header: str | None, *, now: float | None = None) -> None:
    if not header:
        raise WebhookRejected(details={"reason": "missing_signature"})
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        raise WebhookRejected(details={"reason": "malformed_signature"}) from None
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        raise WebhookRejected(details={"reason": "bad_signature"})
    if abs((now or time.time()) - timestamp) > TOLERANCE_S:
        raise WebhookRejected(details={"reason": "timestamp_out_of_tolerance"})


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return 12 <= len(digits) <= 19 and total % 10 == 0


def _intent(row: Mapping[str, Any], *, with_secret: bool = False) -> ProviderIntent:
    return ProviderIntent(
        id=row["id"],
        status=row["status"],
        amount_minor=row["amount_minor"],
        currency=row["currency"],
        client_secret=row["client_secret"] if with_secret else None,
        failure_code=row["failure_code"],
        metadata={"reference": row["reference"]},
    )


def storage_url(database_url: str, data_dir: Any) -> str:
    """The sandbox's own database: beside the shop's on PostgreSQL, its own file on SQLite."""
    if make_url(database_url).get_backend_name() == "sqlite":
        return f"sqlite+aiosqlite:///{(data_dir / 'sandbox_payments.db').as_posix()}"
    return database_url


class SandboxProvider:
    name = "sandbox"

    def __init__(self, *, database_url: str, secret: str, webhook_url: str) -> None:
        self.engine: AsyncEngine = create_engine(database_url)
        self.secret = secret
        self.webhook_url = webhook_url
        self._deliveries: set[asyncio.Task[None]] = set()
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Several API processes start at once (``serve --workers N``): one creates
                # the tables, the others wait for its commit and find them (two CREATE TABLE
                # at once would fail one process's start-up on PostgreSQL's catalog).
                await conn.execute(select(func.pg_advisory_xact_lock(CREATE_LOCK)))
            await conn.run_sync(metadata.create_all)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))

    async def close(self) -> None:
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
        await self.engine.dispose()

    # --- the provider API the shop calls --------------------------------------------------

    async def create_intent(
        self, *, amount: Money, reference: str, idempotency_key: str
    ) -> ProviderIntent:
        now = utcnow()
        row = {
            "id": "pi_" + secrets.token_hex(12),
            "amount_minor": amount.to_minor(),
            "currency": amount.currency,
            "status": "requires_confirmation",
            "client_secret": secrets.token_urlsafe(24),
            "reference": reference,
            "idempotency_key": idempotency_key,
            "failure_code": None,
            "created_at": now,
            "updated_at": now,
        }
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(intents).values(**row))
        except IntegrityError:
            # The same key again (a retried call): the intent made the first time.
            async with self.engine.connect() as conn:
                found = (
                    (
                        await conn.execute(
                            select(intents).where(intents.c.idempotency_key == idempotency_key)
                        )
                    )
                    .mappings()
                    .one()
                )
            return _intent(dict(found), with_secret=True)
        return _intent(row, with_secret=True)

    async def retrieve(self, intent_id: str) -> ProviderIntent:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(intents).where(intents.c.id == intent_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise IntentNotFound()
        return _intent(dict(row), with_secret=True)

    async def refund(self, intent_id: str, *, idempotency_key: str) -> ProviderIntent:
        async with self.engine.begin() as conn:
            row = await self._lock(conn, intent_id)
            if row["status"] == "refunded":
                return _intent(row)
            if row["status"] != "succeeded":
                raise AlreadyFinal()
            row = await self._set(conn, row, "refunded", None)
            event = await self._record(conn, row, "charge.refunded")
        self._deliver_later(event)
        return _intent(row)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        verify(self.secret, body, headers.get(SIGNATURE_HEADER))
        try:
            raw = json.loads(body)
            return WebhookEvent(
                id=str(raw["id"]), type=str(raw["type"]), intent_id=str(raw["data"]["object"]["id"])
            )
        except (ValueError, KeyError, TypeError):
            raise WebhookRejected(details={"reason": "malformed_body"}) from None

    def confirm_url(self, intent_id: str) -> str | None:
        return f"/sandbox/payments/{intent_id}/confirm"

    # --- what the buyer's card form calls -------------------------------------------------

    async def confirm(
        self, intent_id: str, *, client_secret: str, card_number: str
    ) -> ProviderIntent:
        number = "".join(ch for ch in card_number if ch in "0123456789")
        if (
            not number
            or number != card_number.replace(" ", "").replace("-", "")
            or not luhn_ok(number)
        ):
            raise InvalidCard()
        async with self.engine.begin() as conn:
            row = await self._lock(conn, intent_id)
            if not hmac.compare_digest(row["client_secret"].encode(), client_secret.encode()):
                raise WrongSecret()
            if row["status"] in ("succeeded", "refunded"):
                raise AlreadyFinal()
            status, failure = OUTCOMES.get(number, ("succeeded", None))
            row = await self._set(conn, row, status, failure)
            kind = (
                "payment_intent.succeeded"
                if status == "succeeded"
                else "payment_intent.payment_failed"
            )
            event = await self._record(conn, row, kind)
        self._deliver_later(event)
        return _intent(row)

    async def event_payloads(self, intent_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(events.c.payload)
                .where(events.c.intent_id == intent_id)
                .order_by(events.c.created_at)
            )
            return [r[0] for r in rows]

    async def resend(self, event_id: str) -> None:
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(events).where(events.c.id == event_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise IntentNotFound()
        self._deliver_later(dict(row))

    # --- internals -----------------------------------------------------------------------

    async def _lock(self, conn: AsyncConnection, intent_id: str) -> dict[str, Any]:
        query = select(intents).where(intents.c.id == intent_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise IntentNotFound()
        return dict(row)

    async def _set(
        self, conn: AsyncConnection, row: dict[str, Any], status: str, failure: str | None
    ) -> dict[str, Any]:
        now = utcnow()
        await conn.execute(
            update(intents)
            .where(intents.c.id == row["id"])
            .values(status=status, failure_code=failure, updated_at=now)
        )
        return {**row, "status": status, "failure_code": failure, "updated_at": now}

    async def _record(
        self, conn: AsyncConnection, row: dict[str, Any], kind: str
    ) -> dict[str, Any]:
        now = utcnow()
        event_id = "evt_" + secrets.token_hex(12)
        payload = {
            "id": event_id,
            "type": kind,
            "created": int(now.timestamp()),
            "data": {"object": _public(row)},
        }
        event = {
            "id": event_id,
            "intent_id": row["id"],
            "type": kind,
            "payload": payload,
            "attempts": 0,
            "delivered_at": None,
            "created_at": now,
        }
        await conn.execute(insert(events).values(**event))
        return event

    def _deliver_later(self, event: dict[str, Any]) -> None:
        task = asyncio.create_task(
            self._deliver(event, self.webhook_url), name=f"sandbox-{event['id']}"
        )
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, event: dict[str, Any], url: str) -> None:
        body = json.dumps(event["payload"], separators=(",", ":")).encode()
        assert self._http is not None
        for attempt, delay in enumerate(DELIVERY_DELAYS_S, start=1):
            await asyncio.sleep(delay)
            # Signed at send time, as real providers do: a retry carries a fresh timestamp.
            signature = sign(self.secret, body, int(time.time()))
            try:
                response = await self._http.post(
                    url,
                    content=body,
                    headers={"Content-Type": "application/json", "Sandbox-Signature": signature},
                )
                ok = response.status_code < 300
            except httpx.HTTPError as exc:
                log.info("sandbox webhook %s attempt %d failed: %s", event["id"], attempt, exc)
                ok = False
            async with self.engine.begin() as conn:
                await conn.execute(
                    update(events)
                    .where(events.c.id == event["id"])
                    .values(attempts=attempt, delivered_at=utcnow() if ok else None)
                )
            if ok:
                return
        log.warning("sandbox webhook %s not delivered after %d attempts", event["id"], attempt)


def _public(row: Mapping[str, Any]) -> dict[str, Any]:
    updated: datetime = row["updated_at"]
    return {
        "id": row["id"],
        "object": "payment_intent",
        "status": row["status"],
        "amount_minor": row["amount_minor"],
        "currency": row["currency"],
        "failure_code": row["failure_code"],
        "reference": row["reference"],
        "updated": updated.isoformat(),
    }
