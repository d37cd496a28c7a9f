"""``livecommerce serve --workers N``: several API processes on one port, sharing Redis."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.fixtures.redis import prepare_redis
from tests.fixtures.server import migrate, running_server, server_env

pytestmark = pytest.mark.slow

STREAM = {"ru": "Эфир", "kk": "Эфир", "uz": "Efir"}


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def wait_for_children(pid: int, count: int) -> int:
    deadline = time.monotonic() + 30
    while len(children(pid)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(children(pid))


def test_several_workers_need_redis(tmp_path: Path) -> None:
    """Without Redis, --workers 2 refuses to start and says why (rooms could not be shared)."""
    env = server_env(tmp_path)
    migrate(env)
    done = subprocess.run(
        [sys.executable, "-m", "livecommerce.cli", "serve", "--workers", "2", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "LIVECOMMERCE_REDIS_URL" in done.stderr


async def register(http: httpx.AsyncClient, email: str, role: str) -> dict[str, str]:
    body = {"email": email, "password": "long-enough-pass", "display_name": email, "role": role}
    assert (await http.post("/api/v1/auth/register", json=body)).status_code == 201
    token = await http.post(
        "/api/v1/auth/token", data={"username": email, "password": "long-enough-pass"}
    )
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def test_two_workers_share_one_flash_sale(tmp_path: Path) -> None:
    """Two API processes behind one port sell a 3-unit flash sale exactly 3 times."""
    url = await prepare_redis()
    env = server_env(tmp_path, redis_url=url)
    migrate(env)
    pid: list[int] = []
    with running_server(env, tmp_path / "serve.log", "--workers", "2", pid=pid) as base:
        assert wait_for_children(pid[0], 2) >= 2
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            mh = await register(http, "shop@workers.example.kz", "merchant")
            product = await http.post(
                "/api/v1/products",
                headers=mh,
                json={
                    "sku": "W-1",
                    "title": {"ru": "Крем"},
                    "price": {"amount": "100.00", "currency": "CNY"},
                    "weight_grams": 200,
                    "hs_code": "330499",
                    "origin_country": "CN",
                },
            )
            pid_ = product.json()["id"]
            await http.put(
                f"/api/v1/products/{pid_}/stock/KZALA", json={"quantity": 50}, headers=mh
            )
            sid = (await http.post("/api/v1/streams", json={"title": STREAM}, headers=mh)).json()[
                "id"
            ]
            await http.post(f"/api/v1/streams/{sid}/start", headers=mh)
            sale = await http.post(
                f"/api/v1/streams/{sid}/flash-sales",
                headers=mh,
                json={
                    "product_id": pid_,
                    "price": {"amount": "60.00", "currency": "CNY"},
                    "quantity": 3,
                    "duration_s": 600,
                },
            )
            assert sale.status_code == 201, sale.text
            crowd = [await register(http, f"b{i}@workers.example.kz", "viewer") for i in range(8)]
            ship_to = {
                "country": "KZ",
                "city": "Almaty",
                "postal_code": "050000",
                "address_line1": "Abay 1",
                "recipient_name": "A B",
                "phone": "+77011234567",
            }
            body = {
                "items": [{"product_id": pid_, "quantity": 1}],
                "ship_to": ship_to,
                "payment_method": "cod",
                "stream_id": sid,
                "flash_sale_id": sale.json()["id"],
            }

        # One connection per buyer, so both processes take requests.
        async def buy(headers: dict[str, str]) -> httpx.Response:
            async with httpx.AsyncClient(base_url=base, timeout=30) as own:
                return await own.post("/api/v1/orders", json=body, headers=headers)

        responses = await asyncio.gather(*(buy(h) for h in crowd))
        assert Counter(r.status_code for r in responses) == {201: 3, 409: 5}
        codes = {r.json()["error"]["code"] for r in responses if r.status_code == 409}
        assert codes == {"flash_sale_sold_out"}


async def test_two_workers_share_sign_in_throttling(tmp_path: Path) -> None:
    """Failed sign-ins are counted in Redis: whichever process answers, the sixth is a 429."""
    url = await prepare_redis()
    env = server_env(tmp_path, redis_url=url)
    migrate(env)
    pid: list[int] = []
    with running_server(env, tmp_path / "serve.log", "--workers", "2", pid=pid) as base:
        assert wait_for_children(pid[0], 2) >= 2
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await register(http, "locked@workers.example.kz", "viewer")
        codes = []
        for _ in range(12):
            # A new connection each time, so that the attempts land on both processes.
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                answer = await http.post(
                    "/api/v1/auth/token",
                    data={"username": "locked@workers.example.kz", "password": "wrong-password"},
                )
                codes.append(answer.status_code)
        assert codes == [401] * 5 + [429] * 7
