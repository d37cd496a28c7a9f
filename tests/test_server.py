"""The real command line and server: migrate, seed, serve over a socket."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from livecommerce.demo.seed import DEMO_ACCOUNTS
from tests.fixtures.server import free_port


def _cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livecommerce.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIVECOMMERCE_")}
    return {**clean, "LIVECOMMERCE_DATA_DIR": str(tmp_path / "var")}


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[str]:
    assert _cli("migrate", env=env).returncode == 0
    seeded = _cli("seed", "--demo", env=env)
    assert seeded.returncode == 0, seeded.stderr
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "livecommerce.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            proc.kill()
            pytest.fail(f"server did not start: {proc.stdout.read() if proc.stdout else ''}")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_refuses_an_unmigrated_database(env: dict[str, str]) -> None:
    """`livecommerce serve` on an empty database exits with a clear instruction."""
    result = _cli("serve", "--port", str(free_port()), env=env, timeout=60)
    assert result.returncode == 1
    assert "Run `livecommerce migrate` first" in result.stderr


def test_demo_server_end_to_end(server: str) -> None:
    """Over a real socket: the demo accounts sign in and the catalog reads in Kazakh."""
    assert httpx.get(f"{server}/readyz").json()["database"] == "ok"
    merchant = next(a for a in DEMO_ACCOUNTS if a.role == "merchant")
    token = httpx.post(
        f"{server}/api/v1/auth/token",
        data={"username": merchant.email, "password": merchant.password},
    ).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    # The demo merchant's saved currency is CNY, so KZT has to be asked for.
    page = httpx.get(
        f"{server}/api/v1/products?locale=kk&currency=KZT&page_size=100", headers=headers
    ).json()
    assert page["total"] >= 50
    assert (
        httpx.get(f"{server}/api/v1/products?page_size=1", headers=headers).json()["items"][0][
            "price"
        ]["currency"]
        == "CNY"
    )
    assert all(
        p["price"]["currency"] == "KZT" and p["price"]["formatted"].endswith("₸")
        for p in page["items"]
    )
    assert all(
        set(p["translations"]["title"]) == {"kk", "ru", "uz", "en", "zh"} for p in page["items"]
    )
    assert all({s["warehouse"] for s in p["stock"]} == {"DEDUI", "KZALA"} for p in page["items"])
    openapi = httpx.get(f"{server}/openapi.json").json()
    assert "/api/v1/products/import" in openapi["paths"]


def test_seed_is_idempotent_and_prints_accounts(env: dict[str, str]) -> None:
    """Seeding twice refreshes rather than duplicates, and prints the demo credentials."""
    assert _cli("migrate", env=env).returncode == 0
    first = _cli("seed", "--demo", env=env)
    second = _cli("seed", "--demo", env=env)
    assert "60 products created" in first.stdout
    assert "0 products created, 60 refreshed" in second.stdout
    for account in DEMO_ACCOUNTS:
        assert account.email in second.stdout and account.password in second.stdout


def test_create_admin_and_rates_commands(env: dict[str, str], tmp_path: Path) -> None:
    """create-admin makes an admin; rates import adds a publication that rates list shows."""
    assert _cli("migrate", env=env).returncode == 0
    created = _cli(
        "create-admin", "--email", "ops@example.kz", "--password", "long-enough-pw", env=env
    )
    assert created.returncode == 0 and "Admin ops@example.kz created" in created.stdout
    weak = _cli("create-admin", "--email", "ops2@example.kz", "--password", "password12", env=env)
    assert weak.returncode == 2 and "too common" in weak.stderr
    rates = tmp_path / "rates.csv"
    rates.write_text(
        "base,quote,rate,as_of,source\n"
        "EUR,KZT,611.25,2026-11-23T09:00:00+05:00,National Bank of Kazakhstan\n"
    )
    assert _cli("rates", "import", str(rates), env=env).returncode == 0
    listed = _cli("rates", "list", env=env).stdout
    assert "1 EUR = 611.25 KZT   (National Bank of Kazakhstan" in listed
