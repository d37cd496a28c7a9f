"""Sign-in throttling: one contract for both counters, and the login route behind them."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from livecommerce.accounts import security
from livecommerce.accounts.throttle import Limit, MemoryThrottle, RedisThrottle, Throttle
from tests.fixtures.factories import PASSWORD, register
from tests.fixtures.redis import prepare_redis

LIMIT = Limit(attempts=3, window_s=60)


@pytest.fixture(params=["memory", "redis"])
async def throttle(request: pytest.FixtureRequest) -> AsyncIterator[Throttle]:
    if request.param == "memory":
        made: Throttle = MemoryThrottle()
    else:
        made = RedisThrottle(await prepare_redis(), prefix=f"test:{uuid.uuid4().hex}:")
    yield made
    await made.close()


async def test_refuses_after_the_limit_for_the_window(throttle: Throttle) -> None:
    """A key is refused once its failures reach the limit, for what is left of the window."""
    keys = [("acct:a", LIMIT)]
    for _ in range(2):
        await throttle.failed(keys)
        assert await throttle.retry_after(keys) == 0
    await throttle.failed(keys)
    assert 0 < await throttle.retry_after(keys) <= 60
    assert await throttle.retry_after([("acct:b", LIMIT)]) == 0


async def test_reset_clears_one_key(throttle: Throttle) -> None:
    """A reset clears that key's count and leaves the others."""
    keys = [("acct:a", LIMIT), ("addr:x", LIMIT)]
    for _ in range(3):
        await throttle.failed(keys)
    await throttle.reset("acct:a")
    assert await throttle.retry_after([("acct:a", LIMIT)]) == 0
    assert await throttle.retry_after([("addr:x", LIMIT)]) > 0


async def test_window_closes() -> None:
    """Once the window has passed the key may try again."""
    now = [0.0]
    throttle = MemoryThrottle(clock=lambda: now[0])
    keys = [("acct:a", LIMIT)]
    for _ in range(3):
        await throttle.failed(keys)
    assert await throttle.retry_after(keys) == 60
    now[0] = 61.0
    assert await throttle.retry_after(keys) == 0


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/token", data={"username": email, "password": password})


async def test_account_locked_after_five_failures(client: httpx.AsyncClient) -> None:
    """Five wrong passwords, then even the right one is a 429 with Retry-After."""
    user = await register(client)
    for _ in range(5):
        assert (await _login(client, user["email"], "wrong-password")).status_code == 401
    refused = await client.post(
        "/api/v1/auth/token?locale=ru", data={"username": user["email"], "password": PASSWORD}
    )
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "too_many_attempts"
    assert 0 < int(refused.headers["retry-after"]) <= 15 * 60
    assert "Слишком много" in refused.json()["error"]["message"]


async def test_unknown_email_is_throttled_the_same(client: httpx.AsyncClient) -> None:
    """An unknown email is locked after as many failures, with the same answer."""
    user = await register(client)
    for email in (user["email"], "nobody@example.kz"):
        for _ in range(5):
            await _login(client, email, "wrong-password")
    known = await _login(client, user["email"], "wrong-password")
    unknown = await _login(client, "nobody@example.kz", "wrong-password")
    assert known.status_code == unknown.status_code == 429
    # The same answer but for the seconds left, which differ by when each window opened.
    assert known.json()["error"]["code"] == unknown.json()["error"]["code"] == "too_many_attempts"
    assert known.json()["error"]["message"] == unknown.json()["error"]["message"]


async def test_success_resets_the_account(client: httpx.AsyncClient) -> None:
    """A right password before the limit clears the account's failures."""
    user = await register(client)
    for _ in range(4):
        await _login(client, user["email"], "wrong-password")
    assert (await _login(client, user["email"], PASSWORD)).status_code == 200
    for _ in range(4):
        assert (await _login(client, user["email"], "wrong-password")).status_code == 401


async def test_address_locked_across_accounts(client: httpx.AsyncClient) -> None:
    """Twenty failures from one address over many emails lock that address."""
    for i in range(20):
        assert (await _login(client, f"guess{i}@example.kz", "wrong-password")).status_code == 401
    refused = await _login(client, "another@example.kz", "wrong-password")
    assert refused.status_code == 429


async def test_throttled_attempts_do_not_hash(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused attempt never reaches argon2, and a concurrent flood hashes only a few."""
    user = await register(client)
    calls = 0
    hasher = security._hasher

    class Counting:
        def verify(self, password_hash: str, password: str) -> bool:
            nonlocal calls
            calls += 1
            return hasher.verify(password_hash, password)

    monkeypatch.setattr(security, "_hasher", Counting())
    answers = await asyncio.gather(
        *(_login(client, user["email"], "wrong-password") for _ in range(30))
    )
    codes = [a.status_code for a in answers]
    # Guesses already hashing when the fifth failure lands still finish: at most one per
    # hashing slot beyond the limit.
    assert 5 <= codes.count(401) < 5 + security._hash_concurrency
    assert codes.count(401) + codes.count(429) == 30
    assert calls == codes.count(401)


async def test_hashing_runs_a_bounded_number_at_once(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of sign-ins for many accounts never runs more hashes at once than the bound."""
    running = peak = 0
    lock = threading.Lock()

    class Slow:
        def verify(self, password_hash: str, password: str) -> bool:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.02)
            with lock:
                running -= 1
            return False

    monkeypatch.setattr(security, "_hasher", Slow())
    answers = await asyncio.gather(
        *(_login(client, f"burst{i}@example.kz", "wrong-password") for i in range(15))
    )
    assert all(a.status_code == 401 for a in answers)
    assert peak <= security._hash_concurrency
