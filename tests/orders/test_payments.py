"""Card payments through the sandbox provider: intents, signed webhooks, refunds.

Webhook deliveries are built here from the sandbox's own event log and signed with the shared
secret, so duplicates, replays and reordering can be staged exactly. One test runs a real
server whose sandbox delivers the webhook over HTTP by itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from livecommerce.orders.sandbox import sign
from tests.conftest import BACKENDS  # noqa: F401 - the backend param drives the database
from tests.fixtures.database import TestDatabase
from tests.fixtures.factories import account
from tests.fixtures.server import running_server, server_env
from tests.orders.shop import ALMATY, merchant, order, stocked_product
from tests.orders.test_orders_api import levels

GOOD, DECLINED = "4242 4242 4242 4242", "4000 0000 0000 0002"
WEBHOOK = "/api/v1/payments/webhooks/sandbox"


async def card_order(
    client: httpx.AsyncClient, units: int = 1
) -> tuple[dict[str, Any], dict[str, str], dict[str, Any], dict[str, str]]:
    _, mh = await merchant(client)
    product = await stocked_product(client, mh, KZALA=5)
    _, bh = await account(client)
    placed = await order(client, bh, [(product["id"], units)], method="card")
    assert placed.status_code == 201, placed.text
    return placed.json(), bh, product, mh


async def start_payment(client: httpx.AsyncClient, oid: int, bh: dict[str, str]) -> dict[str, Any]:
    response = await client.post(f"/api/v1/orders/{oid}/payments", headers=bh)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def confirm(client: httpx.AsyncClient, payment: dict[str, Any], card: str) -> httpx.Response:
    return await client.post(
        payment["confirm_url"],
        json={"client_secret": payment["client_secret"], "card_number": card},
    )


async def events(client: httpx.AsyncClient, intent_id: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = (
        await client.get(f"/sandbox/payments/{intent_id}/events")
    ).json()
    return result


async def deliver(
    app: FastAPI,
    client: httpx.AsyncClient,
    event: dict[str, Any],
    *,
    at: float | None = None,
    secret: str | None = None,
) -> httpx.Response:
    body = json.dumps(event).encode()
    signature = sign(
        secret or app.state.settings.resolved_webhook_secret(),
        body,
        int(at if at is not None else time.time()),
    )
    return await client.post(
        WEBHOOK,
        content=body,
        headers={"Sandbox-Signature": signature, "Content-Type": "application/json"},
    )


async def status_of(client: httpx.AsyncClient, oid: int, headers: dict[str, str]) -> str:
    status: str = (await client.get(f"/api/v1/orders/{oid}", headers=headers)).json()["status"]
    return status


async def test_card_payment_succeeds_through_a_signed_webhook(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Intent -> confirm at the provider -> signed webhook -> order paid, recorded."""
    placed, bh, _, _ = await card_order(client)
    payment = await start_payment(client, placed["id"], bh)
    assert payment["status"] == "requires_confirmation" and payment["client_secret"]
    assert payment["amount"] == placed["total"]
    # Asking again while it is open returns the same intent.
    assert (await start_payment(client, placed["id"], bh))["intent_id"] == payment["intent_id"]
    confirmed = await confirm(client, payment, GOOD)
    assert confirmed.json()["status"] == "succeeded"
    assert await status_of(client, placed["id"], bh) == "pending_payment"  # until the webhook
    [event] = await events(client, payment["intent_id"])
    assert event["type"] == "payment_intent.succeeded"
    delivered = await deliver(app, client, event)
    assert delivered.status_code == 200 and delivered.json() == {"status": "processed"}
    paid = (await client.get(f"/api/v1/orders/{placed['id']}", headers=bh)).json()
    assert paid["status"] == "paid"
    assert paid["events"][-1]["actor"] == "provider:sandbox"
    assert paid["payment"]["method"] == "card" and paid["payment"]["expires_at"] is None
    again = await client.post(f"/api/v1/orders/{placed['id']}/payments", headers=bh)
    assert again.status_code == 409 and again.json()["error"]["code"] == "order_not_payable"


async def test_bad_signatures_and_old_replays_are_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Wrong secret, tampered body, no header, a stale timestamp: 400 and nothing changes."""
    placed, bh, _, _ = await card_order(client)
    payment = await start_payment(client, placed["id"], bh)
    await confirm(client, payment, GOOD)
    [event] = await events(client, payment["intent_id"])
    wrong = await deliver(app, client, event, secret="not-the-shared-secret-at-all")
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "webhook_rejected"
    assert wrong.json()["error"]["details"] == {"reason": "bad_signature"}
    stale = await deliver(app, client, event, at=time.time() - 3600)
    assert stale.json()["error"]["details"] == {"reason": "timestamp_out_of_tolerance"}
    body = json.dumps(event).encode()
    signature = sign(app.state.settings.resolved_webhook_secret(), body, int(time.time()))
    tampered = body.replace(b"succeeded", b"succeedeD")
    forged = await client.post(WEBHOOK, content=tampered, headers={"Sandbox-Signature": signature})
    assert forged.status_code == 400
    unsigned = await client.post(WEBHOOK, content=body)
    assert unsigned.json()["error"]["details"] == {"reason": "missing_signature"}
    assert await status_of(client, placed["id"], bh) == "pending_payment"
    unknown = await client.post("/api/v1/payments/webhooks/stripe", content=body)
    assert unknown.status_code == 404


async def test_duplicate_and_reordered_webhooks_are_harmless(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A decline then a success: delivered twice and in reverse order, the order is paid once."""
    placed, bh, _, _ = await card_order(client)
    payment = await start_payment(client, placed["id"], bh)
    declined = await confirm(client, payment, DECLINED)
    assert declined.json() == {
        **declined.json(),
        "status": "failed",
        "failure_code": "card_declined",
    }
    assert (await confirm(client, payment, GOOD)).json()["status"] == "succeeded"
    failed_event, succeeded_event = await events(client, payment["intent_id"])
    assert failed_event["type"] == "payment_intent.payment_failed"
    # Newest first, then the old failure, then both again.
    assert (await deliver(app, client, succeeded_event)).json()["status"] == "processed"
    assert (await deliver(app, client, failed_event)).json()["status"] == "processed"
    assert (await deliver(app, client, succeeded_event)).json()["status"] == "duplicate"
    assert (await deliver(app, client, failed_event)).json()["status"] == "duplicate"
    detail = (await client.get(f"/api/v1/orders/{placed['id']}", headers=bh)).json()
    assert detail["status"] == "paid"
    assert [e["to_status"] for e in detail["events"]] == ["pending_payment", "paid"]
    [stored] = (await client.get(f"/api/v1/orders/{placed['id']}/payments", headers=bh)).json()
    assert stored["status"] == "succeeded"


async def test_two_webhooks_at_once_pay_the_order_once(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Two events for one intent processed together: paid once, never refunded by mistake."""
    placed, bh, _, _ = await card_order(client)
    payment = await start_payment(client, placed["id"], bh)
    await confirm(client, payment, DECLINED)
    await confirm(client, payment, GOOD)
    failed_event, succeeded_event = await events(client, payment["intent_id"])
    outcomes = await asyncio.gather(
        deliver(app, client, failed_event), deliver(app, client, succeeded_event)
    )
    assert [r.status_code for r in outcomes] == [200, 200]
    assert await status_of(client, placed["id"], bh) == "paid"
    [stored] = (await client.get(f"/api/v1/orders/{placed['id']}/payments", headers=bh)).json()
    assert stored["status"] == "succeeded"
    assert [e["type"] for e in await events(client, payment["intent_id"])] == [
        "payment_intent.payment_failed",
        "payment_intent.succeeded",
    ]


async def test_odd_webhook_and_card_input_is_refused_cleanly(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Non-ASCII signatures, secrets and digits, odd ids: 4xx answers, never a 500."""
    placed, bh, _, _ = await card_order(client)
    payment = await start_payment(client, placed["id"], bh)
    odd_signature = await client.post(
        WEBHOOK, content=b"{}", headers={"Sandbox-Signature": "t=1,v1=\u00e9\u00e9".encode()}
    )
    assert odd_signature.status_code == 400
    odd_secret = await client.post(
        payment["confirm_url"], json={"client_secret": "секрет", "card_number": GOOD}
    )
    assert odd_secret.status_code == 403
    superscript = await confirm(client, payment, "²" * 16)
    assert superscript.status_code == 422
    for path in ("/sandbox/payments/pi_zz%00/events", "/sandbox/payments/events/x/resend"):
        response = await (client.get(path) if path.endswith("events") else client.post(path))
        assert response.status_code == 422, path


async def test_a_failure_webhook_arriving_first_leaves_the_order_payable(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A decline keeps the order awaiting payment; a retry with another card pays it."""
    placed, bh, _, _ = await card_order(client)
    payment = await start_payment(client, placed["id"], bh)
    await confirm(client, payment, "4000 0000 0000 9995")
    [failed] = await events(client, payment["intent_id"])
    await deliver(app, client, failed)
    assert await status_of(client, placed["id"], bh) == "pending_payment"
    [stored] = (await client.get(f"/api/v1/orders/{placed['id']}/payments", headers=bh)).json()
    assert stored["status"] == "failed"
    retry = await start_payment(client, placed["id"], bh)
    assert retry["intent_id"] == payment["intent_id"] or retry["status"] == "requires_confirmation"


async def test_cancelling_a_paid_order_refunds_it(app: FastAPI, client: httpx.AsyncClient) -> None:
    """Cancel after payment: refunded at the provider, stock back, the refund webhook is a no-op."""
    placed, bh, product, mh = await card_order(client, units=2)
    payment = await start_payment(client, placed["id"], bh)
    await confirm(client, payment, GOOD)
    [succeeded] = await events(client, payment["intent_id"])
    await deliver(app, client, succeeded)
    assert await levels(client, product["id"], mh) == {"KZALA": 3}
    cancelled = await client.post(f"/api/v1/orders/{placed['id']}/cancel", headers=bh)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "refunded"
    assert await levels(client, product["id"], mh) == {"KZALA": 5}
    _, refunded = await events(client, payment["intent_id"])
    assert refunded["type"] == "charge.refunded"
    assert (await deliver(app, client, refunded)).json()["status"] == "processed"
    detail = (await client.get(f"/api/v1/orders/{placed['id']}", headers=bh)).json()
    assert [e["to_status"] for e in detail["events"]] == ["pending_payment", "paid", "refunded"]
    assert await levels(client, product["id"], mh) == {"KZALA": 5}  # returned once


async def test_money_for_an_expired_order_is_given_back(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """The buyer pays after the hold ran out: the order stays cancelled and is refunded."""
    from datetime import timedelta

    from livecommerce.orders import tasks as order_tasks
    from livecommerce.sqltypes import utcnow

    placed, bh, _, _ = await card_order(client)
    payment = await start_payment(client, placed["id"], bh)
    await order_tasks.expire_reservations(
        sessions=app.state.sessions, now=utcnow() + timedelta(hours=1)
    )
    await confirm(client, payment, GOOD)
    [succeeded] = await events(client, payment["intent_id"])
    await deliver(app, client, succeeded)
    assert await status_of(client, placed["id"], bh) == "cancelled"
    [stored] = (await client.get(f"/api/v1/orders/{placed['id']}/payments", headers=bh)).json()
    assert stored["status"] == "refunded"
    assert [e["type"] for e in await events(client, payment["intent_id"])] == [
        "payment_intent.succeeded",
        "charge.refunded",
    ]


async def test_payment_calls_honour_idempotency_and_ownership(client: httpx.AsyncClient) -> None:
    """Same key: same intent; COD orders and other people's orders cannot be paid by card."""
    placed, bh, _, _ = await card_order(client)
    first = await client.post(
        f"/api/v1/orders/{placed['id']}/payments", headers={**bh, "Idempotency-Key": "pay-1"}
    )
    second = await client.post(
        f"/api/v1/orders/{placed['id']}/payments", headers={**bh, "Idempotency-Key": "pay-1"}
    )
    assert first.json() == second.json() and second.headers["idempotent-replayed"] == "true"
    _, stranger = await account(client)
    assert (
        await client.post(f"/api/v1/orders/{placed['id']}/payments", headers=stranger)
    ).status_code == 404
    _, mh = await merchant(client)
    product = await stocked_product(client, mh, KZALA=1)
    cod = (await order(client, bh, [(product["id"], 1)])).json()
    refused = await client.post(f"/api/v1/orders/{cod['id']}/payments", headers=bh)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "payment_not_needed"
    bad_card = await confirm(client, first.json(), "4242 4242 4242 4241")
    assert bad_card.status_code == 422 and bad_card.json()["error"]["code"] == "invalid_card_number"
    wrong_secret = await client.post(
        first.json()["confirm_url"], json={"client_secret": "guess", "card_number": GOOD}
    )
    assert wrong_secret.status_code == 403


def test_sandbox_delivers_its_webhook_over_http(database: TestDatabase, tmp_path: Path) -> None:
    """A real server: the sandbox posts the signed webhook to the shop, and the order is paid."""
    env = server_env(tmp_path, database_url=database.url)

    async def scenario(base: str) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            placed, bh, _, _ = await card_order(client)
            payment = await start_payment(client, placed["id"], bh)
            assert (await confirm(client, payment, GOOD)).json()["status"] == "succeeded"
            for _ in range(100):
                if await status_of(client, placed["id"], bh) == "paid":
                    break
                await asyncio.sleep(0.1)
            assert await status_of(client, placed["id"], bh) == "paid"
            [event] = await events(client, payment["intent_id"])
            assert event["type"] == "payment_intent.succeeded"

    with running_server(env, tmp_path / "server.log") as base:
        asyncio.run(scenario(base))
    assert ALMATY["country"] == "KZ"


async def test_api_processes_starting_at_once_all_start(
    database: TestDatabase, tmp_path: Path
) -> None:
    """``serve --workers N`` starts its processes together on a database the sandbox has not
    used yet: each creates the sandbox's tables if missing, and none fails its start-up on
    another's CREATE TABLE. Run on a scratch database (PostgreSQL) or file (SQLite)."""
    import uuid

    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from livecommerce.db import create_engine
    from livecommerce.orders.sandbox import SandboxProvider, storage_url

    if database.backend == "postgresql":
        scratch = f"lc_sandbox_start_{uuid.uuid4().hex[:8]}"
        admin = create_engine(database.url)
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql(f'CREATE DATABASE "{scratch}"')
        url = make_url(database.url).set(database=scratch).render_as_string(hide_password=False)
    else:
        url = storage_url(f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}", tmp_path)
    providers = [
        SandboxProvider(database_url=url, secret="s", webhook_url="http://127.0.0.1:1/")
        for _ in range(4)
    ]
    try:
        await asyncio.gather(*(p.start() for p in providers))
        async with providers[0].engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert {"sandbox_payment_intents", "sandbox_payment_events"} <= names
    finally:
        for provider in providers:
            await provider.close()
        if database.backend == "postgresql":
            async with admin.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
            await admin.dispose()
