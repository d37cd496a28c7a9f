"""No secret reaches a log line, in a whole run of the real processes at debug level.

A ``livecommerce serve`` process and a Celery worker (``livecommerce worker --beat`` on the
embedded queue), both at debug level, go through what clients and the payment provider do:
sign-up, a wrong and a right password, a guest, a live room over a WebSocket carrying its
token in the URL, chat, a card order paid through the sandbox provider's signed webhook (and
a forged one), fulfilment in the worker, sign-out and a password change. Then every line
either process wrote is searched for every credential the run handled.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from livecommerce.config import Settings
from livecommerce.logs import REDACTED
from livecommerce.orders.sandbox import sign
from tests.fixtures.factories import PASSWORD, register
from tests.fixtures.frames import next_frame
from tests.fixtures.hosts import link_host
from tests.fixtures.server import SECRET, migrate, running_server, server_env
from tests.fixtures.waiting import wait_for
from tests.fixtures.worker import start_worker
from tests.orders.shop import ALMATY, stocked_product

WEBHOOK_SECRET = "whsec-sandbox-shared-secret-for-the-log-probe"
WRONG_PASSWORD = "not-the-password-at-all"
NEW_PASSWORD = "a-brand-new-passphrase"
GOOD_CARD = "4242 4242 4242 4242"
# A Sandbox-Signature's digest: ``v1=`` and 64 hex digits.
SIGNATURE = re.compile(r"v1=[0-9a-f]{64}")


async def sign_in(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post("/api/v1/auth/token", data={"username": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def full_run(base: str) -> list[str]:
    """Everything a day of the shop does once; returns each credential it handled."""
    secrets: list[str] = [PASSWORD, WRONG_PASSWORD, NEW_PASSWORD]
    ws_base = base.replace("http://", "ws://")
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        merchant = await register(http, role="merchant")
        host = await register(http, role="host")
        viewer = await register(http)
        refused = await sign_in(http, viewer["email"], WRONG_PASSWORD)
        assert refused.status_code == 401, refused.text
        tokens = {}
        for who in (merchant, host, viewer):
            answer = await sign_in(http, who["email"], PASSWORD)
            assert answer.status_code == 200, answer.text
            tokens[who["role"]] = answer.json()["access_token"]
        guest = (await http.post("/api/v1/auth/guest")).json()["access_token"]
        secrets += [*tokens.values(), guest]
        mh, hh, vh = (bearer(tokens[r]) for r in ("merchant", "host", "viewer"))

        await link_host(http, mh, host, hh)
        product = await stocked_product(http, mh, KZALA=5)
        stream = await http.post(
            "/api/v1/streams", json={"title": {"ru": "Эфир"}, "languages": ["ru"]}, headers=hh
        )
        sid = stream.json()["id"]
        assert (await http.post(f"/api/v1/streams/{sid}/start", headers=hh)).status_code == 200

        room = f"{ws_base}/ws/streams/{sid}?token={tokens['viewer']}&locale=ru"
        async with (
            connect(room) as ws,
            connect(f"{ws_base}/ws/streams/{sid}?token={guest}") as watcher,
            connect(f"{ws_base}/ws/me?token={tokens['viewer']}") as notices,
        ):
            await next_frame(ws, "welcome", wait_s=10)
            await next_frame(watcher, "welcome", wait_s=10)
            await next_frame(notices, "welcome", wait_s=10)
            await ws.send(json.dumps({"type": "chat", "data": {"text": "Сколько стоит?"}}))
            chat = await next_frame(watcher, "chat", wait_s=10)
            assert chat["data"]["text"] == "Сколько стоит?"

            body = {
                "items": [{"product_id": product["id"], "quantity": 1}],
                "ship_to": ALMATY,
                "payment_method": "card",
                "stream_id": sid,
            }
            placed = await http.post(
                "/api/v1/orders", json=body, headers={**vh, "Idempotency-Key": "order-1"}
            )
            assert placed.status_code == 201, placed.text
            oid = placed.json()["id"]
            started = await http.post(f"/api/v1/orders/{oid}/payments", headers=vh)
            assert started.status_code == 201, started.text
            payment = started.json()
            secrets.append(payment["client_secret"])
            confirmed = await http.post(
                payment["confirm_url"],
                json={"client_secret": payment["client_secret"], "card_number": GOOD_CARD},
            )
            assert confirmed.json()["status"] == "succeeded", confirmed.text

            async def paid() -> bool:
                order = (await http.get(f"/api/v1/orders/{oid}", headers=vh)).json()
                return bool(order["status"] != "pending_payment")

            # Signed by the provider.
            await wait_for(paid, "the sandbox provider's webhook", within=30)

        # The provider's event once more, signed here, and once forged.
        [event] = (await http.get(f"/sandbox/payments/{payment['intent_id']}/events")).json()
        raw = json.dumps(event).encode()
        for secret, status in ((WEBHOOK_SECRET, 200), ("forged", 400)):
            signature = sign(secret, raw, int(time.time()))
            secrets.append(signature.split("v1=", 1)[1])
            delivered = await http.post(
                "/api/v1/payments/webhooks/sandbox",
                content=raw,
                headers={"Sandbox-Signature": signature, "Content-Type": "application/json"},
            )
            assert delivered.status_code == status, delivered.text

        async def shipped() -> bool:
            tracking = await http.get(f"/api/v1/orders/{oid}/tracking", headers=vh)
            return bool(tracking.json()["shipments"])

        await wait_for(shipped, "the worker to fulfil the order", within=30)

        assert (await http.post("/api/v1/auth/logout", headers=vh)).status_code == 204
        assert (await http.get("/api/v1/me", headers=vh)).status_code == 401
        again = (await sign_in(http, viewer["email"], PASSWORD)).json()["access_token"]
        changed = await http.post(
            "/api/v1/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(again),
        )
        assert changed.status_code == 200, changed.text
        latest = changed.json()["access_token"]
        assert (await http.get("/api/v1/me", headers=bearer(latest))).status_code == 200
        secrets += [again, latest]
    return secrets


def send_token_to_worker(data_dir: Path, token: str) -> None:
    """A job the worker cannot run, carrying a token: the worker logs such a message whole."""
    from workers.app import make_celery

    celery = make_celery(Settings(data_dir=data_dir, secret_key=SECRET))
    try:
        celery.send_task("livecommerce.no_such_job", args=[token])
    finally:
        celery.close()


def test_no_log_line_of_a_full_run_holds_a_secret(tmp_path: Path) -> None:
    """Server and worker logs at debug level hold no token (nor any part of one), password,
    payment client secret, webhook secret or signature, nor the secret key: the places where
    tokens were (a WebSocket's URL, a message the worker logged) say REDACTED instead."""
    env = server_env(tmp_path, log_level="debug", payment_webhook_secret=WEBHOOK_SECRET)
    migrate(env)
    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"
    # At debug level: what a job prints at every step.
    worker = start_worker(env, worker_log, loglevel="debug")
    try:
        with running_server(env, server_log) as base:
            secrets = asyncio.run(full_run(base))
        send_token_to_worker(tmp_path, next(s for s in secrets if s.startswith("eyJ")))
        deadline = time.monotonic() + 30
        while "no_such_job" not in worker.log():
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.2)
    finally:
        worker.stop()
    logs = {"server": server_log.read_text(), "worker": worker_log.read_text()}
    # The run was logged, at debug level, where the tokens would have been.
    assert f"/ws/streams/1?token={REDACTED}&locale=ru" in logs["server"], logs["server"][-3000:]
    assert "DEBUG" in logs["server"] and "DEBUG" in logs["worker"]
    assert "livecommerce.fulfil_order" in logs["worker"], logs["worker"][-3000:]
    assert REDACTED in logs["worker"].split("no_such_job", 1)[1], logs["worker"][-3000:]
    secrets += [SECRET, WEBHOOK_SECRET]
    for name, text in logs.items():
        for secret in secrets:
            assert secret not in text, (name, secret)
            if secret.startswith("eyJ"):  # a JWT: not even one of its parts
                for part in secret.split("."):
                    assert part not in text, (name, secret, part)
        assert not SIGNATURE.search(text), (name, SIGNATURE.search(text))
